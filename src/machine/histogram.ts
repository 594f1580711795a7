// Power-of-two latency histograms in the shared statistics region, bucketed as bpftrace's hist():
// bucket 0 holds values below 1, bucket k >= 1 values in [2^(k-1), 2^k). Histograms are plain counts, so
// the host subtracts a snapshot taken before a workload from one taken after it.
//
// CMD_SYNC waits: one histogram per CPU (each CPU writes only its own slots: no lost increments between
// workers), filled by the driver while trace point arm_smmu_cmdq_sync_done is enabled, since that point
// already reads the clock around the wait. ATC invalidation round trips: the finer histogram of
// pcie-stats.ts (8 buckets per power of two), folded into these buckets.

import { MAX_CPUS, STAT } from './layout.ts';
import { LAT_SUB, latencyHistogram } from './pcie-stats.ts';

/** Buckets per histogram: up to 2^47 ns (about 39 hours). */
export const POW2_BUCKETS = 48;

/** The bucket of a value (clamped to the last bucket). */
export function pow2Bucket(v: number): number {
  return v < 1 ? 0 : Math.min(POW2_BUCKETS - 1, Math.floor(Math.log2(v)) + 1);
}

/** Lowest value of bucket k (its upper bound is pow2Low(k + 1)). */
export function pow2Low(k: number): number {
  return k === 0 ? 0 : 2 ** (k - 1);
}

/** Records one CMD_SYNC wait of `cpu` (platform ns). */
export function recordSyncWait(stats: Float64Array, cpu: number, ns: number): void {
  stats[STAT.DRV_SYNC_WAIT + cpu * POW2_BUCKETS + pow2Bucket(ns)]!++;
}

/** The CMD_SYNC wait histogram summed over every CPU (a copy). */
export function syncWaitHistogram(stats: Float64Array): number[] {
  const out = new Array<number>(POW2_BUCKETS).fill(0);
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
    for (let k = 0; k < POW2_BUCKETS; k++) out[k]! += stats[STAT.DRV_SYNC_WAIT + cpu * POW2_BUCKETS + k]!;
  }
  return out;
}

/** The ATC invalidation round-trip histogram (pcie-stats.ts) in power-of-two buckets (a copy). */
export function atcInvHistogram(stats: Float64Array): number[] {
  const out = new Array<number>(POW2_BUCKETS).fill(0);
  // Fine bucket b holds [2^(b/S), 2^((b+1)/S)), which lies inside [2^p, 2^(p+1)) for p = floor(b/S).
  latencyHistogram(stats).forEach((n, b) => (out[Math.min(POW2_BUCKETS - 1, Math.floor(b / LAT_SUB) + 1)]! += n));
  return out;
}
