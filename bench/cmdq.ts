// CMDQ benchmark (npm run bench [-- --quick]): command throughput and CMD_SYNC round trip of the
// emulator (driver CPUs in workers, lock-free multi-producer CMDQ, SMMU hardware worker), against two
// baselines measured in the same run:
//   raw ring     an SPSC ring of 16-byte entries in a SharedArrayBuffer between two workers, with the
//                same batch and ring size; the producer publishes a batch and spins until the consumer
//                has caught up. No SMMU semantics: the ceiling for moving commands between threads.
//   postMessage  a naive emulator: each command is its own postMessage to a worker, and each batch
//                waits for the reply to a 'sync' message.
// and the spin round trip between two workers (Atomics ping-pong), which bounds any CMD_SYNC wait.
//
// Case = producers (driver CPUs) x batch x sync mode. Sync modes: MSI-poll (the SMMU completes each
// CMD_SYNC by an MSI write into the SYNC's own slot, Linux's default with MSI + coherent access) and
// CONS-poll (Linux disable_msipolling: the CPU reads CMDQ_CONS, waiting with WFE since the default
// profile has SEV). Each producer runs the default workload: batches of TLBI_NH_VA, each ending with
// a CMD_SYNC it waits for (drivers/workloads/cmdq-stress.ts).
//
// cmdsPerSec counts the batches' commands (TLBI_NH_VA), not the CMD_SYNC ending each batch: the raw
// ring moves the same `batch` entries per round trip, so the two compare like for like
// (cmdsPerSecInclSync adds the SYNCs). SYNC round trip = time in batchSubmit (issue the batch and the
// CMD_SYNC, wait for completion). Each number is the median over --trials trials; every trial checks
// that the SMMU executed exactly what the CPUs issued.
//
// Options: --quick (1 and 2 producers x batch 1 and 64 x both modes), --trials N (default 3),
// --trial-ms N (default 500; 300 with --quick), --out FILE (default bench/results/cmdq.json; its SVG
// charts are drawn next to it by bench/cmdq-plots.ts, as bench/plot.ts redraws them from a file).

import { Worker } from 'node:worker_threads';
import { cpus as hostCpus, loadavg } from 'node:os';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { System } from '../src/host/system.ts';
import { executedByOpcode } from '../src/host/stats.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { CMDQ_MAX_SZ_SHIFT } from '../drivers/arm-smmu-v3/cmdq.ts';
import type { TlbiWorkload, SmmuShared } from '../src/protocol/ops/smmu.ts';
import { parseScriptArgs, intOpt, runScript, type OptSpec } from '../src/host/cli/args.ts';
import { sumCounts } from '../src/host/cli/workload-api.ts';
import { NS_PER_MS } from '../src/arch/time.ts';
import { RING, SPIN } from './ring.ts';
import { median } from './stats.ts';
import { pow2Bucket, pow2Low } from '../src/machine/histogram.ts';
import { writeCmdqPlots } from './cmdq-plots.ts';

const NAME = 'bench:cmdq';
const SPEC: Record<string, OptSpec> = {
  quick: { type: 'boolean', help: '1 and 2 producers x batch 1 and 64 x both sync modes (under a minute)' },
  trials: { type: 'number', help: 'trials per measurement (the median is reported)', default: 3 },
  'trial-ms': { type: 'number', help: 'host ms per trial (default 500, 300 with --quick)' },
  out: { type: 'string', help: 'where to write the JSON results', default: 'bench/results/cmdq.json' },
};

type SyncMode = 'msi-poll' | 'cons-poll';

interface CaseResult {
  producers: number;
  batch: number;
  syncMode: SyncMode;
  cmdsPerSec: number;
  cmdsPerSecInclSync: number;
  rawRingCmdsPerSec: number;
  postMessageCmdsPerSec: number;
  syncP50Ns: number;
  syncP99Ns: number;
  ratioRawRing: number;
  ratioPostMessage: number;
  syncP50OverSpinRt: number;
  trials: number[];
  /** Every trial's CMD_SYNC round trips per power-of-two bucket, keyed by the bucket's low bound in ns (for the charts). */
  syncLatencyHistNs: Record<string, number>;
}

const ENTRY = new URL('../src/host/worker-entry.mjs', import.meta.url);
const BASELINE = new URL('./baseline-worker.ts', import.meta.url).href;
/** The emulator's command queue size: the default profile's CMDQS capped by the driver. */
const RING_ENTRIES = 1 << Math.min(DEFAULT_FEATURES.cmdqLog2, CMDQ_MAX_SZ_SHIFT);

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function startWorker(data: object): Worker {
  return new Worker(ENTRY, { workerData: { module: BASELINE, ...data } });
}

function once<T>(w: Worker, what: string, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    w.once('message', (m: T) => {
      clearTimeout(t);
      resolve(m);
    });
    w.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

/** Median ns of one Atomics ping-pong round trip between two spinning workers. */
async function spinRoundTripNs(): Promise<number> {
  const sab = new SharedArrayBuffer(SPIN.WORDS * 4);
  const pong = startWorker({ role: 'spin-pong', sab });
  const ping = startWorker({ role: 'spin-ping', sab, chunk: 2000, chunks: 200 });
  const [per] = await Promise.all([once<number[]>(ping, 'spin-ping'), once(pong, 'spin-pong')]);
  await Promise.all([ping.terminate(), pong.terminate()]);
  return median(per);
}

async function rawRing(batch: number, ms: number): Promise<number> {
  const sab = new SharedArrayBuffer((RING.ENTRIES + RING_ENTRIES * 4) * 4);
  const consumer = startWorker({ role: 'ring-consumer', sab, entries: RING_ENTRIES });
  const producer = startWorker({ role: 'ring-producer', sab, entries: RING_ENTRIES, batch, ms });
  const [p, c] = await Promise.all([once<{ cmds: number; ms: number }>(producer, 'ring-producer'), once<{ consumed: number; byOp: number }>(consumer, 'ring-consumer')]);
  await Promise.all([producer.terminate(), consumer.terminate()]);
  if (c.byOp !== p.cmds) throw new Error(`raw ring: consumer saw ${c.byOp} commands, producer sent ${p.cmds}`);
  return p.cmds / (p.ms / 1000);
}

async function postMessageEmulator(batch: number, ms: number): Promise<number> {
  const w = startWorker({ role: 'pm-consumer' });
  // One listener for every reply: resolves the batch currently waiting for its 'sync'.
  let waiting: ((seen: number) => void) | null = null;
  w.on('message', (seen: number) => waiting?.(seen));
  const failed = new Promise<never>((_, reject) => w.once('error', reject));
  const sync = () => {
    const r = new Promise<number>((resolve) => (waiting = resolve));
    w.postMessage('sync');
    return Promise.race([r, failed]);
  };
  await sync(); // the worker has loaded before the clock starts
  let cmds = 0;
  let seen = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let k = 0; k < batch; k++) w.postMessage([0x12, 1 << 16, (cmds + k) << 12, 0]);
    seen = await sync();
    cmds += batch;
  }
  const elapsed = performance.now() - start;
  await w.terminate();
  if (seen !== cmds) throw new Error(`postMessage emulator: consumer saw ${seen} commands, producer sent ${cmds}`);
  return cmds / (elapsed / 1000);
}

interface OursTrial {
  cmdsPerSec: number;
  inclSync: number;
  p50: number;
  p99: number;
  /** Round trips per power-of-two bucket (src/machine/histogram.ts). */
  hist: number[];
}

async function oursTrial(sys: System, batch: number, ms: number): Promise<OursTrial> {
  const w: TlbiWorkload = { batch, durationNs: ms * NS_PER_MS, recordLatency: true };
  const before = sys.stats();
  const per = await Promise.all(sys.cpus.map((c) => c.op('workload', w, ms + 60_000)));
  const after = sys.stats();
  const executed = executedByOpcode(before, after);
  const issued = sumCounts(per.map((r) => r.issuedByOpcode));
  if (JSON.stringify(executed, Object.keys(executed).sort()) !== JSON.stringify(issued, Object.keys(issued).sort())) {
    throw new Error(`executed ${JSON.stringify(executed)} != issued ${JSON.stringify(issued)}`);
  }
  const timeouts = per.reduce((n, r) => n + r.syncTimeouts, 0);
  if (timeouts) throw new Error(`${timeouts} CMD_SYNC timeout(s)`);
  const s = Math.max(...per.map((r) => r.elapsedNs)) / 1e9;
  const lat = Float64Array.from(per.flatMap((r) => r.latenciesNs)).sort();
  return {
    cmdsPerSec: (executed.TLBI_NH_VA ?? 0) / s,
    inclSync: ((executed.TLBI_NH_VA ?? 0) + (executed.SYNC ?? 0)) / s,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    hist: lat.reduce((h, ns) => ((h[pow2Bucket(ns)] = (h[pow2Bucket(ns)] ?? 0) + 1), h), [] as number[]),
  };
}

async function trials<T>(n: number, f: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await f());
  return out;
}

const fmt = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(0));
const fmtNs = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} ms` : v >= 1e3 ? `${(v / 1e3).toFixed(1)} us` : `${v.toFixed(0)} ns`);

async function main(): Promise<void> {
  const p = parseScriptArgs(process.argv.slice(2), SPEC, NAME);
  const quick = p.opts.quick === true;
  const nTrials = intOpt(p, 'trials', 1, 100, NAME);
  const trialMs = p.opts['trial-ms'] === undefined ? (quick ? 300 : 500) : intOpt(p, 'trial-ms', 10, 60_000, NAME);
  const producersList = quick ? [1, 2] : [1, 2, 4];
  const batches = quick ? [1, 64] : [1, 8, 64, 256];
  const modes: SyncMode[] = ['msi-poll', 'cons-poll'];
  const t0 = performance.now();
  const log = (s: string) => process.stderr.write(`${s}\n`);

  log(`bench: ${quick ? 'quick' : 'full'} run, ${nTrials} trials of ${trialMs} ms, ring ${RING_ENTRIES} entries`);
  // Every case here spins two or more threads on a small machine: other load distorts it badly.
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) log(`bench: WARNING: 1-minute load average is ${loadBefore.toFixed(2)}; other processes will distort these numbers`);
  const spinRt = median(await trials(nTrials, spinRoundTripNs));
  log(`spin round trip: ${spinRt.toFixed(0)} ns`);
  const raw = new Map<number, number>();
  const pm = new Map<number, number>();
  for (const b of batches) {
    raw.set(b, median(await trials(nTrials, () => rawRing(b, trialMs))));
    pm.set(b, median(await trials(nTrials, () => postMessageEmulator(b, trialMs))));
    log(`baselines batch ${b}: raw ring ${fmt(raw.get(b)!)} cmds/s, postMessage ${fmt(pm.get(b)!)} cmds/s`);
  }

  const cases: CaseResult[] = [];
  for (const producers of producersList) {
    for (const syncMode of modes) {
      const sys = await System.boot({ cpus: producers, features: DEFAULT_FEATURES });
      try {
        const shared = await sys.probe({ disableMsiPolling: syncMode === 'cons-poll' });
        if (shared.cmdq.msiPoll !== (syncMode === 'msi-poll')) throw new Error(`probe chose msiPoll=${shared.cmdq.msiPoll} for ${syncMode}`);
        checkSev(shared);
        for (const batch of batches) {
          await oursTrial(sys, batch, Math.min(100, trialMs)); // warm-up: JIT, page allocation
          const ts = await trials(nTrials, () => oursTrial(sys, batch, trialMs));
          const c: CaseResult = {
            producers,
            batch,
            syncMode,
            cmdsPerSec: Math.round(median(ts.map((t) => t.cmdsPerSec))),
            cmdsPerSecInclSync: Math.round(median(ts.map((t) => t.inclSync))),
            rawRingCmdsPerSec: Math.round(raw.get(batch)!),
            postMessageCmdsPerSec: Math.round(pm.get(batch)!),
            syncP50Ns: Math.round(median(ts.map((t) => t.p50))),
            syncP99Ns: Math.round(median(ts.map((t) => t.p99))),
            ratioRawRing: 0,
            ratioPostMessage: 0,
            syncP50OverSpinRt: 0,
            trials: ts.map((t) => Math.round(t.cmdsPerSec)),
            syncLatencyHistNs: sumHist(ts.map((t) => t.hist)),
          };
          c.ratioRawRing = round3(c.cmdsPerSec / c.rawRingCmdsPerSec);
          c.ratioPostMessage = round3(c.cmdsPerSec / c.postMessageCmdsPerSec);
          c.syncP50OverSpinRt = round3(c.syncP50Ns / spinRt);
          cases.push(c);
          log(`  ${producers} producer(s) batch ${batch} ${syncMode}: ${fmt(c.cmdsPerSec)} cmds/s, SYNC p50 ${fmtNs(c.syncP50Ns)}`);
        }
      } finally {
        await sys.shutdown();
      }
    }
  }

  const targets = evaluateTargets(cases, spinRt);
  const result = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    host: { node: process.version, cpus: hostCpus().length, model: hostCpus()[0]?.model ?? 'unknown', loadAvgBefore: loadBefore, loadAvgAfter: loadavg()[0]! },
    quick,
    trials: nTrials,
    trialMs,
    ringEntries: RING_ENTRIES,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
    baselines: {
      rawRingCmdsPerSec: Math.round(raw.get(64) ?? NaN),
      postMessageCmdsPerSec: Math.round(pm.get(64) ?? NaN),
      spinRoundTripNs: Math.round(spinRt),
      note: 'rawRingCmdsPerSec and postMessageCmdsPerSec at batch 64; byBatch has every batch size',
      byBatch: Object.fromEntries(batches.map((b) => [b, { rawRingCmdsPerSec: Math.round(raw.get(b)!), postMessageCmdsPerSec: Math.round(pm.get(b)!) }])),
    },
    cases,
    targets,
  };
  const out = String(p.opts.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(table(cases, spinRt) + '\n' + targets.map((t) => `${t.met ? 'MET ' : 'MISS'}  ${t.name}: ${t.value} (target ${t.target})`).join('\n') + '\n');
  log(`wrote ${out} (${result.seconds} s)`);
  for (const svg of writeCmdqPlots(out)) log(`wrote ${svg}`);
}

function checkSev(shared: SmmuShared): void {
  if (!shared.cmdq.sev) throw new Error('the default profile should have SEV (CONS-poll waits with WFE)');
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/** Trials' histograms summed, as {low bound in ns: count} of the non-empty buckets. */
function sumHist(hs: readonly number[][]): Record<string, number> {
  const sum: number[] = [];
  for (const h of hs) h.forEach((n, k) => (sum[k] = (sum[k] ?? 0) + (n ?? 0)));
  return Object.fromEntries(sum.flatMap((n, k) => (n ? [[String(pow2Low(k)), n]] : [])));
}

function table(cases: CaseResult[], spinRt: number): string {
  const head = ['prod', 'batch', 'sync', 'ours cmds/s', 'raw ring', 'ours/raw', 'postMsg', 'ours/pm', 'SYNC p50', 'SYNC p99', `p50/spinRT(${spinRt.toFixed(0)}ns)`];
  const rows = cases.map((c) => [
    String(c.producers),
    String(c.batch),
    c.syncMode,
    fmt(c.cmdsPerSec),
    fmt(c.rawRingCmdsPerSec),
    c.ratioRawRing.toFixed(3),
    fmt(c.postMessageCmdsPerSec),
    c.ratioPostMessage.toFixed(2),
    fmtNs(c.syncP50Ns),
    fmtNs(c.syncP99Ns),
    c.syncP50OverSpinRt.toFixed(1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => x.padStart(w[i]!)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

interface Target {
  name: string;
  value: number;
  target: string;
  met: boolean;
}

/** The targets (benchmark, not test), per sync mode where they apply. */
function evaluateTargets(cases: CaseResult[], spinRt: number): Target[] {
  const out: Target[] = [];
  const find = (producers: number, batch: number, mode: SyncMode) => cases.find((c) => c.producers === producers && c.batch === batch && c.syncMode === mode);
  for (const mode of ['msi-poll', 'cons-poll'] as const) {
    const c = find(1, 64, mode);
    if (c) {
      out.push({ name: `batch 64, 1 producer, ${mode}: ours / raw ring`, value: c.ratioRawRing, target: '>= 0.25', met: c.ratioRawRing >= 0.25 });
      out.push({ name: `batch 64, 1 producer, ${mode}: ours / postMessage`, value: c.ratioPostMessage, target: '>= 30', met: c.ratioPostMessage >= 30 });
    }
  }
  const b1 = find(1, 1, 'cons-poll');
  if (b1) out.push({ name: `batch 1, 1 producer, cons-poll: SYNC p50 / spin RT (${spinRt.toFixed(0)} ns)`, value: b1.syncP50OverSpinRt, target: '<= 3', met: b1.syncP50OverSpinRt <= 3 });
  for (const c2 of cases.filter((c) => c.producers === 2)) {
    const c1 = find(1, c2.batch, c2.syncMode);
    if (!c1) continue;
    const r = round3(c2.cmdsPerSec / c1.cmdsPerSec);
    out.push({ name: `batch ${c2.batch}, ${c2.syncMode}: 2 producers / 1 producer`, value: r, target: '>= 0.8', met: r >= 0.8 });
  }
  return out;
}

await runScript(main);
