// Latency histograms as `run --histogram` shows them: the power-of-two histograms of the shared buffer
// (src/machine/histogram.ts) over one workload, printed as bpftrace prints hist() maps, so they read
// (and diff) like the output of `bpftrace -e '... @ns = hist(...)'`:
//
//   @cmd_sync_wait_ns:
//   [256, 512)            12 |@@@@                                                |
//   [512, 1K)            140 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
//
// A bucket's label is [low, high) with K/M/G/T for powers of 1024, "[0]" and "[1]" for the first two
// (values are counted by their integer part, as bpftrace counts integers).

import { atcInvHistogram, pow2Low, syncWaitHistogram } from '../machine/histogram.ts';

export interface LatencyHistograms {
  /** CMD_SYNC waits (issuer's view: CMD_SYNC published -> completion seen), every CPU. */
  cmdSyncWaitNs: number[];
  /** ATC invalidation round trips (SMMU sends the request -> the completion arrives). */
  atcInvLatencyNs: number[];
}

/** The histograms now. */
export function latencyHistograms(stats: Float64Array): LatencyHistograms {
  return { cmdSyncWaitNs: syncWaitHistogram(stats), atcInvLatencyNs: atcInvHistogram(stats) };
}

/** What was counted between two snapshots. */
export function histogramsSince(before: LatencyHistograms, after: LatencyHistograms): LatencyHistograms {
  const d = (a: number[], b: number[]) => a.map((v, i) => v - b[i]!);
  return { cmdSyncWaitNs: d(after.cmdSyncWaitNs, before.cmdSyncWaitNs), atcInvLatencyNs: d(after.atcInvLatencyNs, before.atcInvLatencyNs) };
}

/** bpftrace's bucket bound label: 1, 2, ... 512, 1K, ... 512K, 1M, ... */
function label(v: number): string {
  const power = Math.log2(v);
  const unit = power >= 40 ? 40 : power >= 30 ? 30 : power >= 20 ? 20 : power >= 10 ? 10 : 0;
  return `${2 ** (power - unit)}${{ 0: '', 10: 'K', 20: 'M', 30: 'G', 40: 'T' }[unit]}`;
}

function bucketLabel(k: number): string {
  return k === 0 ? '[0]' : k === 1 ? '[1]' : `[${label(pow2Low(k))}, ${label(pow2Low(k + 1))})`;
}

/** Width of the @ bar of the largest bucket (bpftrace's). */
const BAR = 52;

/** One histogram in bpftrace's hist() format, from its first to its last non-empty bucket. */
export function formatHistogram(name: string, counts: readonly number[]): string {
  const first = counts.findIndex((c) => c > 0);
  if (first < 0) return `@${name}:\n(no samples)\n`;
  const last = counts.findLastIndex((c) => c > 0);
  const max = Math.max(...counts);
  const lines = [`@${name}:`];
  for (let k = first; k <= last; k++) {
    const c = counts[k]!;
    lines.push(`${bucketLabel(k).padEnd(16)}${String(c).padStart(8)} |${'@'.repeat(Math.floor((c / max) * BAR)).padEnd(BAR)}|`);
  }
  return lines.join('\n') + '\n';
}

/** Both histograms as text, a blank line after each (as bpftrace ends its maps). */
export function formatHistograms(h: LatencyHistograms): string {
  return `${formatHistogram('cmd_sync_wait_ns', h.cmdSyncWaitNs)}\n${formatHistogram('atc_inv_latency_ns', h.atcInvLatencyNs)}\n`;
}

/** The non-empty buckets, for JSON reports: [low, high) in ns and the count. */
export function histogramBuckets(counts: readonly number[]): { lowNs: number; highNs: number; count: number }[] {
  return counts.flatMap((count, k) => (count > 0 ? [{ lowNs: pow2Low(k), highNs: pow2Low(k + 1), count }] : []));
}
