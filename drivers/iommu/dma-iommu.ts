// A DMA API for device drivers on top of a paging domain (Linux drivers/iommu/dma-iommu.c and the
// IOVA allocator, drivers/iommu/iova.c).
//
// map() allocates an IOVA range, maps the buffer's pages into the domain and returns the device
// address; unmap() removes the mapping. What unmap does about the IOTLB depends on the mode:
//   strict  the TLB (and ATC) invalidation and its CMD_SYNC complete before unmap returns, and the IOVA
//           is free for reuse at once;
//   lazy    (iommu.strict=0) unmap only clears the page table; the IOVA waits in a flush queue and is
//           reused only after the queue is flushed with one domain-wide invalidation, when it holds
//           fqSize entries or fqTimeoutNs after its first entry. Until then the device may still reach
//           the unmapped buffer through the IOTLB: the price of fewer invalidations.
//
// Linux flushes on a timer; here the timeout is checked whenever the DMA API is entered and by poll(),
// which a CPU calls at its idle points.

import { PAGE_SIZE } from '../../src/arch/platform.ts';
import type { Platform } from '../platform/platform.ts';
import type { PagingDomain } from '../arm-smmu-v3/domain.ts';
import { IOMMU, IommuError, newGather } from './iommu.ts';
import { shouldFail } from '../fault-inject.ts';
import type { DmaDirection, DmaStats } from '../../src/protocol/ops/iommu.ts';


export interface DmaOptions {
  /** Strict invalidation on unmap (iommu.strict=1); false = lazy, with a flush queue. */
  strict: boolean;
  /** Bits of the device's DMA mask (dma_set_mask); default 64, capped by the domain's input size. */
  dmaBits?: number;
  /** The device snoops CPU caches (dev_is_dma_coherent): mappings get IOMMU_CACHE. Default true. */
  coherent?: boolean;
  /** Flush-queue entries that force a flush (Linux IOVA_DEFAULT_FQ_SIZE, 256). */
  fqSize?: number;
  /** Flush-queue timeout, platform ns (Linux IOVA_FQ_TIMEOUT, 10 ms). */
  fqTimeoutNs?: number;
}

const FQ_SIZE_DEFAULT = 256;
const FQ_TIMEOUT_NS_DEFAULT = 10_000_000;
/** Allocations below 2^(IOVA_RANGE_CACHE_MAX_SIZE-1) pages are rounded up to a power of two (iova.c). */
const IOVA_ROUND_PAGES = 32;

/** Top-down IOVA allocator with size-aligned ranges (alloc_iova with size_aligned). */
class IovaAllocator {
  /** Allocated ranges [lo, hi] in pages, ascending. */
  private readonly ranges: { lo: number; hi: number }[] = [];

  constructor(
    /** Lowest allocatable page frame (IOVA 0 is never handed out). */
    readonly startPfn: number,
  ) {}

  /** Allocates n pages at or below limitPfn, aligned to n rounded up to a power of two; null when full. */
  alloc(n: number, limitPfn: number): number | null {
    const align = 2 ** Math.ceil(Math.log2(n));
    let top = limitPfn;
    for (let i = this.ranges.length; i >= 0; i--) {
      const floor = i > 0 ? this.ranges[i - 1]!.hi + 1 : this.startPfn;
      if (i < this.ranges.length) top = Math.min(top, this.ranges[i]!.lo - 1);
      const lo = Math.floor((top - n + 1) / align) * align;
      if (lo >= floor && lo + n - 1 <= top) {
        this.ranges.splice(i, 0, { lo, hi: lo + n - 1 });
        return lo;
      }
    }
    return null;
  }

  /** Frees a range from alloc(); throws if it is not exactly an allocated range. */
  free(pfn: number, n: number): void {
    const i = this.ranges.findIndex((r) => r.lo === pfn);
    if (i < 0 || this.ranges[i]!.hi !== pfn + n - 1) throw new Error(`IOVA pfn 0x${pfn.toString(16)} (+${n} pages) is not an allocated range`);
    this.ranges.splice(i, 1);
  }
}

interface FqEntry {
  pfn: number;
  pages: number;
  /** Flushes started when it was queued: it is free once a flush started later has finished. */
  counter: number;
  /** What the unmap removed, (pa, bytes) pairs, in the sanitizer's lazy window until then. */
  released: readonly number[];
}

export class IommuDma {
  readonly strict: boolean;
  readonly stats: DmaStats = { maps: 0, unmaps: 0, fqFlushes: 0, fqTimeouts: 0, iovaExhausted: 0 };
  private readonly iovad = new IovaAllocator(1);
  private readonly limitPfn: number;
  private readonly coherent: boolean;
  private readonly fqSize: number;
  private readonly fqTimeoutNs: number;
  /** Live mappings by IOVA page frame: pages mapped, pages of IOVA space allocated. */
  private readonly live = new Map<number, { pages: number; alloc: number }>();
  private readonly fq: FqEntry[] = [];
  private flushStart = 0;
  private flushFinish = 0;
  private timerDeadline: number | null = null;

  constructor(
    private readonly p: Platform,
    readonly domain: PagingDomain,
    opts: DmaOptions,
  ) {
    this.strict = opts.strict;
    const bits = Math.min(opts.dmaBits ?? 64, domain.pgtbl.ias);
    if (!Number.isInteger(bits) || bits < 13) throw new RangeError(`dmaBits ${opts.dmaBits}: must be an integer of at least 13`);
    this.limitPfn = 2 ** (bits - 12) - 1;
    this.coherent = opts.coherent ?? true;
    this.fqSize = opts.fqSize ?? FQ_SIZE_DEFAULT;
    this.fqTimeoutNs = opts.fqTimeoutNs ?? FQ_TIMEOUT_NS_DEFAULT;
    if (!Number.isInteger(this.fqSize) || this.fqSize < 1) throw new RangeError(`fqSize ${opts.fqSize}: must be a positive integer`);
  }

  /** IOMMU protection for a direction (dma_info_to_prot). */
  private prot(dir: DmaDirection): number {
    const base = this.coherent ? IOMMU.CACHE : 0;
    switch (dir) {
      case 'to-device':
        return base | IOMMU.READ;
      case 'from-device':
        return base | IOMMU.WRITE;
      case 'bidirectional':
        return base | IOMMU.READ | IOMMU.WRITE;
    }
  }

  /** Maps `size` bytes at physical address pa for the device; returns the device (IO virtual) address. */
  map(pa: number, size: number, dir: DmaDirection): number {
    this.poll();
    if (!Number.isInteger(size) || size <= 0) throw new RangeError(`dma map: size ${size} must be a positive integer`);
    const off = pa % PAGE_SIZE;
    const pages = Math.ceil((size + off) / PAGE_SIZE);
    // The IOVA range is rounded up to a power of two for small sizes; only `pages` are mapped.
    const alloc = pages < IOVA_ROUND_PAGES ? 2 ** Math.ceil(Math.log2(pages)) : pages;
    // Fault 'fail-iova-alloc': the allocator finds no range, as when the space is exhausted.
    const pfn = shouldFail(this.p, 'iova-alloc') ? null : this.iovad.alloc(alloc, this.limitPfn);
    if (pfn === null) {
      this.stats.iovaExhausted++;
      throw new IommuError('ENOSPC', `dma map: no free IOVA range of ${alloc} pages below 0x${((this.limitPfn + 1) * PAGE_SIZE).toString(16)}`);
    }
    try {
      this.domain.map(pfn * PAGE_SIZE, pa - off, pages * PAGE_SIZE, this.prot(dir));
    } catch (e) {
      this.iovad.free(pfn, alloc);
      throw e;
    }
    this.live.set(pfn, { pages, alloc });
    this.stats.maps++;
    return pfn * PAGE_SIZE + off;
  }

  /** Unmaps what map() returned for the same size (iommu_dma_unmap_page / __iommu_dma_unmap). */
  unmap(iova: number, size: number, _dir: DmaDirection): void {
    this.poll();
    const pfn = Math.floor(iova / PAGE_SIZE);
    const m = this.live.get(pfn);
    const want = Math.ceil((size + (iova % PAGE_SIZE)) / PAGE_SIZE);
    if (m === undefined || want !== m.pages) {
      throw new Error(`dma unmap: iova 0x${iova.toString(16)} size 0x${size.toString(16)} does not match a mapping`);
    }
    const gather = newGather(!this.strict);
    const bytes = m.pages * PAGE_SIZE;
    const unmapped = this.domain.unmapFast(pfn * PAGE_SIZE, bytes, gather);
    if (unmapped !== bytes) throw new Error(`dma unmap: iova 0x${iova.toString(16)}: only 0x${unmapped.toString(16)} of 0x${bytes.toString(16)} bytes were mapped`);
    this.live.delete(pfn);
    this.stats.unmaps++;
    if (this.strict) {
      this.domain.iotlbSync(gather);
      this.domain.unmapped(gather);
      this.iovad.free(pfn, m.alloc);
    } else {
      this.queueIova(pfn, m.alloc, this.domain.unmappedLazy(gather));
    }
  }

  /** Allocates zeroed pages and maps them bidirectionally (dma_alloc_coherent). */
  allocCoherent(size: number): { pa: number; iova: number } {
    const pages = Math.ceil(size / PAGE_SIZE);
    const pa = this.p.pages.alloc(pages, 'dma_alloc_coherent');
    try {
      return { pa, iova: this.map(pa, size, 'bidirectional') };
    } catch (e) {
      this.p.pages.free(pa, pages);
      throw e;
    }
  }

  freeCoherent(size: number, buf: { pa: number; iova: number }): void {
    this.unmap(buf.iova, size, 'bidirectional');
    this.p.pages.free(buf.pa, Math.ceil(size / PAGE_SIZE));
  }

  // ---- the flush queue (queue_iova, fq_flush_iotlb, fq_flush_timeout) ----

  private queueIova(pfn: number, pages: number, released: readonly number[]): void {
    this.ringFree();
    if (this.fq.length >= this.fqSize) {
      this.flushIotlb();
      this.ringFree();
    }
    this.fq.push({ pfn, pages, counter: this.flushStart, released });
    if (this.timerDeadline === null) this.timerDeadline = this.p.clock.now() + this.fqTimeoutNs;
  }

  /** Frees the IOVAs of entries a completed flush has covered. */
  private ringFree(): void {
    while (this.fq.length && this.fq[0]!.counter < this.flushFinish) {
      const e = this.fq.shift()!;
      this.domain.lazyFlushed(e.released);
      this.iovad.free(e.pfn, e.pages);
    }
  }

  /** One invalidation of everything the domain caches, covering every queued unmap. */
  private flushIotlb(): void {
    this.flushStart++;
    this.domain.flushAll();
    this.flushFinish++;
    this.stats.fqFlushes++;
  }

  /** Runs the flush-queue timer if it has expired; call at idle points. */
  poll(): void {
    if (this.timerDeadline === null || this.p.clock.now() < this.timerDeadline) return;
    this.timerDeadline = null;
    this.stats.fqTimeouts++;
    this.flushIotlb();
    this.ringFree();
  }

  /** Flushes the queue now (as iommu_dma_flush_iotlb_all does on teardown). */
  flushQueue(): void {
    if (this.fq.length === 0) return;
    this.timerDeadline = null;
    this.flushIotlb();
    this.ringFree();
  }

  /** Unmapped IOVA ranges still waiting for a flush. */
  get queued(): number {
    return this.fq.length;
  }

  /** Live mappings. */
  get mapped(): number {
    return this.live.size;
  }
}
