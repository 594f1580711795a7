// Charts of the CMDQ benchmark's results (bench/cmdq.ts writes them; bench/plot.ts redraws them from a
// results file), as SVG next to the JSON (cmdq.json -> cmdq-throughput.svg, ...):
//   -throughput.svg          commands/s against batch size, one series per producer count and sync
//                            mode, with the raw ring and postMessage baselines for scale
//   -sync-latency.svg        CMD_SYNC round trip p50 (solid) and p99 (dashed) against batch size, per
//                            producer count and sync mode
//   -sync-histogram-bN.svg   per batch size N, the share of CMD_SYNCs in each power-of-two latency
//                            bucket, per producer count and sync mode, when the results hold histograms
//                            (files from before bench/cmdq.ts recorded them have percentiles only)
// Series are coloured by producer count and sync mode together, so the same case has the same colour
// in every chart.

import { writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError, int, num, oneOf } from '../src/protocol/check.ts';
import { readJsonFile } from '../src/host/input-file.ts';
import { PALETTE, tickNs, lineChart, type Series } from './svg.ts';

export const SYNC_MODES = ['msi-poll', 'cons-poll'] as const;
export type SyncMode = (typeof SYNC_MODES)[number];

/** What the charts read of one case of cmdq.json. */
export interface PlotCase {
  producers: number;
  batch: number;
  syncMode: SyncMode;
  cmdsPerSec: number;
  syncP50Ns: number;
  syncP99Ns: number;
  /** CMD_SYNC round trips per power-of-two bucket, keyed by the bucket's low bound in ns. */
  syncLatencyHistNs?: Record<string, number>;
}

export interface PlotResults {
  cases: PlotCase[];
  baselines?: { byBatch?: Record<string, { rawRingCmdsPerSec: number; postMessageCmdsPerSec: number }> };
}

/** Largest results file read (a full run's is about 20 KB). */
const MAX_RESULTS_BYTES = 16 << 20;

function record(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${path}: must be an object`);
  return v as Record<string, unknown>;
}

/**
 * Checks the fields the charts use (others are left alone: results files grow fields over time);
 * messages start with `file: ` and name the field.
 */
export function checkResults(v: unknown, file: string): PlotResults {
  const path = `${file}:`;
  const o = record(v, `${file}: the top level`);
  if (!Array.isArray(o.cases) || o.cases.length === 0) throw new InputError(`${path} cases: must be a non-empty list of cases (is this a bench/cmdq.ts results file?)`);
  const cases = o.cases.map((x, i): PlotCase => {
    const p = `${path} cases[${i}]`;
    const c = record(x, p);
    const hist = c.syncLatencyHistNs === undefined ? undefined : record(c.syncLatencyHistNs, `${p}.syncLatencyHistNs`);
    if (hist) for (const [k, n] of Object.entries(hist)) num(0, 2 ** 60)(Number(k), `${p}.syncLatencyHistNs key '${k}'`), int()(n, `${p}.syncLatencyHistNs.${k}`);
    return {
      producers: int(1, 1024)(c.producers, `${p}.producers`),
      batch: int(1, 1 << 20)(c.batch, `${p}.batch`),
      syncMode: oneOf(SYNC_MODES)(c.syncMode, `${p}.syncMode`),
      cmdsPerSec: num(0, 1e15)(c.cmdsPerSec, `${p}.cmdsPerSec`),
      syncP50Ns: num(0, 1e15)(c.syncP50Ns, `${p}.syncP50Ns`),
      syncP99Ns: num(0, 1e15)(c.syncP99Ns, `${p}.syncP99Ns`),
      ...(hist ? { syncLatencyHistNs: hist as Record<string, number> } : {}),
    };
  });
  const byBatch = o.baselines === undefined ? undefined : record(o.baselines, `${path} baselines`).byBatch;
  const baselines: PlotResults['baselines'] = {};
  if (byBatch !== undefined) {
    baselines.byBatch = {};
    for (const [b, x] of Object.entries(record(byBatch, `${path} baselines.byBatch`))) {
      const p = `${path} baselines.byBatch.${b}`;
      const r = record(x, p);
      baselines.byBatch[b] = { rawRingCmdsPerSec: num(0, 1e15)(r.rawRingCmdsPerSec, `${p}.rawRingCmdsPerSec`), postMessageCmdsPerSec: num(0, 1e15)(r.postMessageCmdsPerSec, `${p}.postMessageCmdsPerSec`) };
    }
  }
  return { cases, baselines };
}

/** A series' name: "2 producers, cons-poll". */
export function caseName(producers: number, mode: SyncMode): string {
  return `${producers} producer${producers === 1 ? '' : 's'}, ${mode}`;
}

/** Every (producers, sync mode) present, in order, with its colour. */
function groups(cases: readonly PlotCase[]): { producers: number; mode: SyncMode; color: string; cases: PlotCase[] }[] {
  const producers = [...new Set(cases.map((c) => c.producers))].sort((a, b) => a - b);
  const out: { producers: number; mode: SyncMode; color: string; cases: PlotCase[] }[] = [];
  for (const p of producers) {
    for (const mode of SYNC_MODES) {
      const cs = cases.filter((c) => c.producers === p && c.syncMode === mode).sort((a, b) => a.batch - b.batch);
      if (cs.length) out.push({ producers: p, mode, color: PALETTE[out.length % 8]!, cases: cs });
    }
  }
  return out;
}

/** The charts of a results file: [file name suffix, SVG] pairs. */
export function cmdqCharts(r: PlotResults): [name: string, svg: string][] {
  const gs = groups(r.cases);
  const batches = [...new Set(r.cases.map((c) => c.batch))].sort((a, b) => a - b);
  const base = Object.entries(r.baselines?.byBatch ?? {}).map(([b, x]) => ({ batch: Number(b), ...x })).sort((a, b) => a.batch - b.batch);
  const throughput: Series[] = gs.map((g) => ({ name: caseName(g.producers, g.mode), color: g.color, ...(g.mode === 'cons-poll' ? { dash: '6 4' } : {}), points: g.cases.map((c) => [c.batch, c.cmdsPerSec] as const) }));
  if (base.length) {
    throughput.push({ name: 'raw SPSC ring (ceiling)', color: PALETTE[8], dash: '2 3', points: base.map((b) => [b.batch, b.rawRingCmdsPerSec] as const) });
    throughput.push({ name: 'postMessage emulator', color: PALETTE[9], dash: '2 3', points: base.map((b) => [b.batch, b.postMessageCmdsPerSec] as const) });
  }
  const latency: Series[] = gs.flatMap((g) => [
    { name: `${caseName(g.producers, g.mode)} p50`, color: g.color, points: g.cases.map((c) => [c.batch, c.syncP50Ns] as const) },
    { name: `${caseName(g.producers, g.mode)} p99`, color: g.color, dash: '6 4', points: g.cases.map((c) => [c.batch, c.syncP99Ns] as const) },
  ]);
  const charts: [string, string][] = [
    ['-throughput.svg', lineChart({ title: 'CMDQ throughput (commands/s, CMD_SYNCs not counted)', xLabel: 'batch size (commands per CMD_SYNC)', yLabel: 'commands per second', xLog: true, yLog: true, xTicks: batches, series: throughput })],
    ['-sync-latency.svg', lineChart({ title: 'CMD_SYNC round trip: p50 (solid) and p99 (dashed)', xLabel: 'batch size (commands per CMD_SYNC)', yLabel: 'round trip', xLog: true, yLog: true, xTicks: batches, yFormat: tickNs, series: latency })],
  ];
  // One histogram chart per batch size: all cases in one would need a legend of two dozen rows.
  for (const batch of batches) {
    const hist: Series[] = gs.flatMap((g) => {
      const c = g.cases.find((x) => x.batch === batch && x.syncLatencyHistNs);
      if (!c) return [];
      const counts = new Map(Object.entries(c.syncLatencyHistNs!).map(([lo, n]) => [Number(lo), n]));
      // Every bucket from the first to the last non-empty one, so a line never skips an empty bucket.
      const h: (readonly [number, number])[] = [];
      const los = [...counts.keys()].sort((a, b) => a - b);
      for (let lo = los[0]!; lo <= los[los.length - 1]!; lo = lo === 0 ? 1 : lo * 2) h.push([lo, counts.get(lo) ?? 0]);
      const total = h.reduce((a, [, n]) => a + n, 0) || 1;
      // A bucket [lo, 2 lo) is drawn at its geometric middle; 0 (the sub-ns bucket) at 0.7 ns.
      return [{ name: caseName(g.producers, g.mode), color: g.color, ...(g.mode === 'cons-poll' ? { dash: '6 4' } : {}), points: h.map(([lo, n]) => [lo === 0 ? 0.7 : lo * Math.SQRT2, (100 * n) / total] as const) }];
    });
    if (hist.length) charts.push([`-sync-histogram-b${batch}.svg`, lineChart({ title: `CMD_SYNC round trip distribution, batch ${batch}`, xLabel: 'round trip (power-of-two buckets)', yLabel: '% of CMD_SYNCs in the bucket', xLog: true, xFormat: tickNs, series: hist })]);
  }
  return charts;
}

/** Draws the charts of a results file next to it (cmdq.json -> cmdq-*.svg); returns the files written. */
export function writeCmdqPlots(jsonFile: string): string[] {
  const results = checkResults(readJsonFile(jsonFile, 'bench results file', MAX_RESULTS_BYTES), jsonFile);
  const stem = basename(jsonFile).replace(/\.json$/i, '');
  return cmdqCharts(results).map(([suffix, svg]) => {
    const file = join(dirname(jsonFile), stem + suffix);
    writeFileSync(file, svg);
    return file;
  });
}
