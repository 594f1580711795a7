// ASID and VMID allocation shared by every CPU (Linux arm_smmu_asid_xa, smmu->vmid_map): bitmaps in a
// DRAM page set allocated at probe, claimed and released with atomic bit operations, so domains
// created on different CPUs never share a TLB tag.
//
// ASID 0 and VMID 0 are never handed out: VMID 0 tags stage-1-only EL1 STEs (Linux leaves S2VMID=0
// there) and Linux allocates ASIDs from 1.

import type { PhysMem } from '../../src/machine/dma.ts';
import type { Platform } from '../platform/platform.ts';
import { PAGE_SIZE } from '../../src/arch/platform.ts';

/** Bits per bitmap: 16-bit ASIDs and VMIDs (IDR0.ASID16 / VMID16). */
const ID_SPACE = 1 << 16;
const BITMAP_BYTES = ID_SPACE / 8;
const STATE_PAGES = (2 * BITMAP_BYTES) / PAGE_SIZE;

/** Allocates the zeroed shared state (ASID bitmap, then VMID bitmap); returns its PA. */
export function allocIdState(p: Platform): number {
  return p.pages.alloc(STATE_PAGES, 'ASID/VMID bitmaps');
}

export class IdAllocator {
  private readonly first: number;

  constructor(
    private readonly mem: PhysMem,
    bitmapPa: number,
    /** Ids are 1 .. 2^bits - 1. */
    readonly bits: number,
    readonly what: 'ASID' | 'VMID',
  ) {
    this.first = mem.idx32(bitmapPa);
  }

  static asids(mem: PhysMem, statePa: number, bits: number): IdAllocator {
    return new IdAllocator(mem, statePa, bits, 'ASID');
  }

  static vmids(mem: PhysMem, statePa: number, bits: number): IdAllocator {
    return new IdAllocator(mem, statePa + BITMAP_BYTES, bits, 'VMID');
  }

  /** Claims the lowest free id; throws when all 2^bits - 1 are in use. */
  alloc(): number {
    const limit = 2 ** this.bits;
    for (let id = 1; id < limit; id++) {
      const w = this.first + (id >>> 5);
      const bit = 1 << (id & 31);
      for (;;) {
        const old = Atomics.load(this.mem.i32, w);
        if (old & bit) break;
        if (Atomics.compareExchange(this.mem.i32, w, old, old | bit) === old) return id;
      }
    }
    throw new Error(`no free ${this.what}: all ${limit - 1} are in use`);
  }

  /** Releases an id; throws if it was not allocated. */
  free(id: number): void {
    if (!Number.isInteger(id) || id < 1 || id >= 2 ** this.bits) throw new RangeError(`${this.what} ${id} is out of range`);
    const bit = 1 << (id & 31);
    const old = Atomics.and(this.mem.i32, this.first + (id >>> 5), ~bit);
    if (!(old & bit)) throw new Error(`${this.what} ${id} freed but not allocated`);
  }

  inUse(id: number): boolean {
    return (Atomics.load(this.mem.i32, this.first + (id >>> 5)) & (1 << (id & 31))) !== 0;
  }
}
