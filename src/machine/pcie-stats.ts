// PCIe and ATS counters in the shared statistics region (STAT.PCIE onwards): ATC hits and misses,
// ATC invalidations as the SMMU sent them and as endpoints handled them, resets, DMA, and a histogram
// of ATC invalidation round-trip latencies (SMMU sends the request -> the completion arrives).
//
// The histogram has 8 buckets per power of two of nanoseconds, so a percentile read from it is within
// about 9% of the true value.

import { STAT } from './layout.ts';

export const PCIE_STAT = {
  /** Endpoint: translated requests served from the ATC. */
  ATC_HITS: 0,
  /** Endpoint: ATC lookups that needed a Translation Request. */
  ATC_MISSES: 1,
  /** Endpoint: Translation Requests that did not return a usable translation (UR/CA/no permission). */
  ATS_TREQ_UNUSABLE: 2,
  /** SMMU: ATC Invalidate Requests sent to endpoints. */
  ATC_INV_SENT: 4,
  /** SMMU: Invalidate Completions received in time. */
  ATC_INV_COMPLETED: 5,
  /** SMMU: invalidations that timed out. */
  ATC_INV_TIMEOUTS: 6,
  /** SMMU: completions that arrived after their invalidation had timed out (discarded). */
  ATC_INV_LATE: 7,
  /** SMMU: times the command queue stalled on an endpoint's invalidate queue depth. */
  ATC_INV_STALLS: 8,
  /** SMMU: ATC_INV commands with no ATS endpoint at the StreamID, or consumed while SMMUEN=0. */
  ATC_INV_NOT_SENT: 9,
  /** Endpoint: Invalidate Requests received. */
  EP_INV_RECEIVED: 10,
  /** Endpoint: Invalidate Requests not answered (in reset, removed, or told to ignore them). */
  EP_INV_DROPPED: 11,
  /** Endpoint: ATC entries dropped by invalidations. */
  EP_INV_ENTRIES: 12,
  DMA_TRANSFERS: 16,
  DMA_BYTES: 17,
  DMA_ERRORS: 18,
  /** Transfers cut short by a reset (their remaining chunks were dropped). */
  DMA_CUT_BY_RESET: 19,
  FLRS: 24,
  HOT_RESETS: 25,
  PM_RESETS: 26,
  LAT_HIST: 64,
  LAT_BUCKETS: 8 * 48,
} as const;

/** Buckets of the latency histogram per power of two of nanoseconds. */
export const LAT_SUB = 8;

function slot(off: number): number {
  return STAT.PCIE + off;
}

export function pcieStat(stats: Float64Array, off: number): number {
  return stats[slot(off)]!;
}

export function bumpPcieStat(stats: Float64Array, off: number, by = 1): void {
  stats[slot(off)]! += by;
}

/** Records one ATC invalidation round trip (platform ns). */
export function recordInvLatency(stats: Float64Array, ns: number): void {
  const b = ns < 1 ? 0 : Math.min(PCIE_STAT.LAT_BUCKETS - 1, Math.floor(Math.log2(ns) * LAT_SUB));
  stats[slot(PCIE_STAT.LAT_HIST + b)]!++;
}

/** The latency histogram (copy). */
export function latencyHistogram(stats: Float64Array): Float64Array {
  return stats.slice(slot(PCIE_STAT.LAT_HIST), slot(PCIE_STAT.LAT_HIST + PCIE_STAT.LAT_BUCKETS));
}

/** A percentile (0..100) from a histogram (or the difference of two snapshots); null if it is empty. */
export function histogramPercentile(hist: Float64Array, p: number): number | null {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const want = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b]!;
    // The bucket's geometric middle.
    if (seen >= want) return Math.round(2 ** ((b + 0.5) / LAT_SUB));
  }
  return null;
}
