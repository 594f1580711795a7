// What the IOMMU core (Linux drivers/iommu/iommu.c) does around a driver's page tables: split a range
// into the largest page sizes that fit (iommu_pgsize), map and unmap ranges in those chunks
// (__iommu_map / __iommu_unmap, unwinding a failed map), and gather leaf invalidations so one ranged
// TLBI covers a whole unmap (struct iommu_iotlb_gather).

/** IOMMU_* protection flags (include/linux/iommu.h). */
export const IOMMU = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  CACHE: 1 << 2,
  NOEXEC: 1 << 3,
  MMIO: 1 << 4,
  PRIV: 1 << 5,
} as const;

/** Why a mapping operation failed, with the errno Linux would return. */
export class IommuError extends Error {
  constructor(
    readonly code: 'EINVAL' | 'EEXIST' | 'ERANGE' | 'ENOMEM' | 'ENOSPC',
    message: string,
    /** Bytes mapped before the failure (the core unmaps them again). */
    readonly mapped = 0,
  ) {
    super(message);
  }
}

/** Leaf invalidations collected during an unmap (struct iommu_iotlb_gather). */
export interface IotlbGather {
  /** First and last byte of the range gathered; start=Infinity when empty. */
  start: number;
  end: number;
  /** Leaf size of the gathered pages; 0 = nothing gathered. */
  pgsize: number;
  /** The unmap goes to a flush queue (lazy mode): leaves are not gathered at all. */
  queued: boolean;
  /**
   * What the unmap removed, as (pa, bytes) pairs, whatever the mode: the sanitizer learns from it
   * which pages stop being mapped once the unmap returns. Not emptied by resetGather.
   */
  released: number[];
}

export function newGather(queued = false): IotlbGather {
  return { start: Infinity, end: 0, pgsize: 0, queued, released: [] };
}

/** Resets a gather after it was synced (iommu_iotlb_gather_init), keeping its mode. */
export function resetGather(g: IotlbGather): void {
  g.start = Infinity;
  g.end = 0;
  g.pgsize = 0;
}

/**
 * Adds a leaf page to the gather; a page of another size, or one not adjacent to the range, makes the
 * gathered range be invalidated first (iommu_iotlb_gather_add_page).
 */
export function gatherAddPage(g: IotlbGather, iova: number, size: number, sync: (g: IotlbGather) => void): void {
  const end = iova + size - 1;
  const disjoint = g.end !== 0 && (end + 1 < g.start || iova > g.end + 1);
  if ((g.pgsize && g.pgsize !== size) || disjoint) {
    sync(g);
    resetGather(g);
  }
  g.pgsize = size;
  if (g.start > iova) g.start = iova;
  if (g.end < end) g.end = end;
}

/** Index of the lowest / highest set bit of a positive integer up to 2^53. */
function ffs(x: number): number {
  let n = 0;
  while (x % 2 === 0) {
    x /= 2;
    n++;
  }
  return n;
}
function fls(x: number): number {
  let n = 0;
  while (x >= 2) {
    x = Math.floor(x / 2);
    n++;
  }
  return n;
}

/**
 * The largest supported page size for mapping `size` bytes at iova -> paddr, and how many pages of it
 * to map before a larger size becomes possible (Linux iommu_pgsize).
 */
function iommuPgsize(pgsizes: readonly number[], iova: number, paddr: number, size: number): { pgsize: number; count: number } {
  const merge = iova + paddr === 0 ? 0 : Math.min(iova === 0 ? Infinity : 2 ** ffs(iova), paddr === 0 ? Infinity : 2 ** ffs(paddr));
  const fit = pgsizes.filter((s) => s <= 2 ** fls(size) && (merge === 0 || s <= merge));
  if (fit.length === 0) throw new IommuError('EINVAL', `no page size fits iova 0x${iova.toString(16)} pa 0x${paddr.toString(16)} size 0x${size.toString(16)}`);
  const pgsize = Math.max(...fit);
  let span = size;
  const bigger = pgsizes.filter((s) => s > pgsize);
  if (bigger.length) {
    const next = Math.min(...bigger);
    // A bigger page only becomes usable if iova and paddr sit at the same offset inside it; then stop
    // at its boundary so the next chunk can use it.
    if ((iova % next) === (paddr % next)) {
      const offset = next - (iova % next);
      if (offset + next <= size) span = offset;
    }
  }
  return { pgsize, count: Math.floor(span / pgsize) };
}

/** The page-table operations the core drives (struct io_pgtable_ops). */
export interface PgtableOps {
  readonly pgsizes: readonly number[];
  /** Maps up to pgcount pages; returns bytes mapped (maybe fewer: it stops at the end of a table). */
  mapPages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number): number;
  /** Unmaps up to pgcount pages; returns bytes unmapped (0 when it cannot, e.g. a hole). */
  unmapPages(iova: number, pgsize: number, pgcount: number, gather: IotlbGather | null): number;
}

/**
 * Maps [iova, iova+size) to paddr in the largest pages that fit; on failure unmaps what it mapped and
 * throws (Linux __iommu_map).
 */
export function iommuMap(ops: PgtableOps, iova: number, paddr: number, size: number, prot: number, iotlbSync: (g: IotlbGather) => void): void {
  const min = Math.min(...ops.pgsizes);
  if (iova % min || paddr % min || size % min || size <= 0) {
    throw new IommuError('EINVAL', `unaligned: iova 0x${iova.toString(16)} pa 0x${paddr.toString(16)} size 0x${size.toString(16)} min_pagesz 0x${min.toString(16)}`);
  }
  let done = 0;
  try {
    while (done < size) {
      const { pgsize, count } = iommuPgsize(ops.pgsizes, iova + done, paddr + done, size - done);
      done += ops.mapPages(iova + done, paddr + done, pgsize, count, prot);
    }
  } catch (e) {
    const mapped = done + (e instanceof IommuError ? e.mapped : 0);
    if (mapped > 0) {
      const g = newGather();
      iommuUnmap(ops, iova, mapped, g);
      iotlbSync(g);
    }
    throw e;
  }
}

/**
 * Unmaps [iova, iova+size) in the largest pages that fit, gathering leaf invalidations; returns the
 * bytes unmapped, which is less than size when it met a hole or part of a larger page (Linux
 * __iommu_unmap).
 */
export function iommuUnmap(ops: PgtableOps, iova: number, size: number, gather: IotlbGather | null): number {
  const min = Math.min(...ops.pgsizes);
  if (iova % min || size % min) {
    throw new IommuError('EINVAL', `unaligned: iova 0x${iova.toString(16)} size 0x${size.toString(16)} min_pagesz 0x${min.toString(16)}`);
  }
  let done = 0;
  while (done < size) {
    const { pgsize, count } = iommuPgsize(ops.pgsizes, iova + done, iova + done, size - done);
    const n = ops.unmapPages(iova + done, pgsize, count, gather);
    if (n === 0) break;
    done += n;
  }
  return done;
}
