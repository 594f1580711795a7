// DMA-able physical memory and the page allocator the driver uses for queues and tables.
//
// PhysMem gives both sides typed access by physical address. 64-bit accessors use Atomics on a
// BigInt64Array: STEs, CDs and page-table entries are read and written 64 bits at a time with
// single-copy atomicity, as the SMMU architecture requires (IHI 0070 3.21.3), and the hitless STE
// update depends on it. An access outside DRAM throws BusAbort, which the hardware turns into the
// architected abort (CERROR_ABT, F_STE_FETCH, ...).
//
// The PageAllocator keeps its bitmap and lock in the first pages of DRAM, so every driver CPU shares
// one allocator, as every kernel CPU shares one page allocator. Allocations are naturally aligned
// (to the power of two at or above their size), which is what queue and table bases need (6.3.24-29).

import { BusAbort, type SharedViews } from './layout.ts';
import { PA, PAGE_SHIFT, PAGE_SIZE } from '../arch/platform.ts';
import type { Sanitizer } from './sanitizer.ts';
import { hex } from '../arch/bits.ts';

export class PhysMem {
  readonly base = PA.DRAM_BASE;
  readonly size: number;
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
  readonly i64: BigInt64Array;

  constructor(v: SharedViews) {
    this.size = v.layout.memBytes;
    this.i32 = v.dram32;
    this.u8 = v.dram8;
    this.i64 = v.dram64;
  }

  contains(pa: number, bytes: number): boolean {
    const off = pa - this.base;
    return off >= 0 && off + bytes <= this.size;
  }

  /** Index into i32 for a 4-byte aligned PA; throws BusAbort outside DRAM. */
  idx32(pa: number, what = 'memory access'): number {
    const off = pa - this.base;
    if (off < 0 || off + 4 > this.size || (off & 3) !== 0) throw new BusAbort(pa, 4, what);
    return off >>> 2;
  }

  /** Index into i64 for an 8-byte aligned PA; throws BusAbort outside DRAM. */
  idx64(pa: number, what = 'memory access'): number {
    const off = pa - this.base;
    if (off < 0 || off + 8 > this.size || (off & 7) !== 0) throw new BusAbort(pa, 8, what);
    return off / 8;
  }

  read32(pa: number): number {
    return Atomics.load(this.i32, this.idx32(pa)) >>> 0;
  }

  write32(pa: number, v: number): void {
    Atomics.store(this.i32, this.idx32(pa), v | 0);
  }

  /** 64-bit single-copy atomic read. */
  read64(pa: number, what?: string): bigint {
    return BigInt.asUintN(64, Atomics.load(this.i64, this.idx64(pa, what)));
  }

  /** 64-bit single-copy atomic write. */
  write64(pa: number, v: bigint, what?: string): void {
    Atomics.store(this.i64, this.idx64(pa, what), BigInt.asIntN(64, v));
  }

  /**
   * Reads a structure of `qwords` 64-bit words at pa (an STE, a CD), each with a single-copy atomic
   * 64-bit access, into 32-bit words (the form Field.read expects). Throws BusAbort when any part is
   * not RAM.
   */
  readStruct(pa: number, qwords: number, what: string): Uint32Array {
    const out = new Uint32Array(qwords * 2);
    for (let q = 0; q < qwords; q++) {
      const v = this.read64(pa + q * 8, what);
      out[2 * q] = Number(v & 0xffffffffn);
      out[2 * q + 1] = Number(v >> 32n);
    }
    return out;
  }

  /** Copies bytes out of DRAM (throws BusAbort if any byte is outside). */
  readBytes(pa: number, len: number, what = 'memory read'): Uint8Array {
    if (!this.contains(pa, len)) throw new BusAbort(pa, len, what);
    return this.u8.slice(pa - this.base, pa - this.base + len);
  }

  writeBytes(pa: number, data: Uint8Array, what = 'memory write'): void {
    if (!this.contains(pa, data.length)) throw new BusAbort(pa, data.length, what);
    this.u8.set(data, pa - this.base);
  }

  fill(pa: number, len: number, byte: number): void {
    if (!this.contains(pa, len)) throw new BusAbort(pa, len, 'memory fill');
    this.u8.fill(byte, pa - this.base, pa - this.base + len);
  }
}

export class OutOfMemory extends Error {}

/** Header words of the allocator (at the start of DRAM). */
const LOCK = 0;
const USED = 1;
const BITMAP = 16;

export class PageAllocator {
  readonly pages: number;
  /** Pages at the start of DRAM that hold the allocator itself. */
  readonly reserved: number;
  /** Asked before each allocation (the driver's should-fail point 'page-alloc'); true fails it. */
  shouldFail: () => boolean = () => false;

  constructor(
    private readonly mem: PhysMem,
    /** Told who owns each page, for the DMA use-after-free sanitizer's reports. */
    private readonly owners: Sanitizer,
  ) {
    this.pages = mem.size >>> PAGE_SHIFT;
    this.reserved = Math.ceil((BITMAP * 4 + Math.ceil(this.pages / 32) * 4) / PAGE_SIZE);
  }

  /** Marks the allocator's own pages used. Call once, before any CPU allocates. */
  init(): void {
    for (let p = 0; p < this.reserved; p++) this.mark(p, true);
    Atomics.store(this.mem.i32, USED, this.reserved);
  }

  /** Pages currently allocated (including the allocator's own). */
  used(): number {
    return Atomics.load(this.mem.i32, USED);
  }

  /**
   * Allocates `count` contiguous zeroed pages, naturally aligned; returns the physical address.
   * Throws OutOfMemory naming the request when no run is free.
   */
  alloc(count: number, what = 'allocation'): number {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`${what}: page count ${count} must be a positive integer`);
    if (this.shouldFail()) throw new OutOfMemory(`${what}: allocation of ${count} page(s) failed (fault fail-page-alloc)`);
    const align = 1 << Math.ceil(Math.log2(count));
    this.lock();
    try {
      for (let start = 0; start + count <= this.pages; start += align) {
        let free = true;
        for (let p = start; p < start + count; p++) {
          if (this.isUsed(p)) {
            free = false;
            break;
          }
        }
        if (!free) continue;
        for (let p = start; p < start + count; p++) this.mark(p, true);
        Atomics.add(this.mem.i32, USED, count);
        this.owners.setOwner(start, count, what);
        const pa = this.mem.base + start * PAGE_SIZE;
        this.mem.fill(pa, count * PAGE_SIZE, 0);
        return pa;
      }
    } finally {
      this.unlock();
    }
    throw new OutOfMemory(`${what}: no ${count} free contiguous pages (${this.used()}/${this.pages} in use)`);
  }

  /** Frees pages from alloc(); throws if any of them is not allocated (a double free). */
  free(pa: number, count: number): void {
    const first = (pa - this.mem.base) / PAGE_SIZE;
    if (!Number.isInteger(first) || first < this.reserved || first + count > this.pages) {
      throw new RangeError(`free: PA ${hex(pa, 0)} (+${count} pages) is not an allocated page range`);
    }
    this.lock();
    try {
      for (let p = first; p < first + count; p++) {
        if (!this.isUsed(p)) throw new Error(`free: page at PA ${hex(this.mem.base + p * PAGE_SIZE, 0)} is not allocated (double free)`);
      }
      for (let p = first; p < first + count; p++) this.mark(p, false);
      Atomics.sub(this.mem.i32, USED, count);
      this.owners.setOwner(first, count, null);
    } finally {
      this.unlock();
    }
  }

  private isUsed(p: number): boolean {
    return (Atomics.load(this.mem.i32, BITMAP + (p >>> 5)) & (1 << (p & 31))) !== 0;
  }

  private mark(p: number, used: boolean): void {
    const bit = 1 << (p & 31);
    if (used) Atomics.or(this.mem.i32, BITMAP + (p >>> 5), bit);
    else Atomics.and(this.mem.i32, BITMAP + (p >>> 5), ~bit);
  }

  private lock(): void {
    // Held only for a bitmap scan; CPUs never sleep while holding it.
    for (let i = 0; Atomics.compareExchange(this.mem.i32, LOCK, 0, 1) !== 0; i++) {
      if (i > 1e8) throw new Error('page allocator lock held for too long (a CPU died holding it?)');
    }
  }

  private unlock(): void {
    Atomics.store(this.mem.i32, LOCK, 0);
  }
}
