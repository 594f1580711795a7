// Running one scenario (src/protocol/scenario.ts) in lockstep, where every run of a seed is the same
// (one CPU in this thread, or N CPUs interleaved by a strategy from the seed), or threaded
// (machine.ts): boot the machine, probe the SMMU and bind every PCI function, inject the faults, run
// the workload steps (each CPU its own, in order; the CPUs at the same time) under a watchdog, then
// judge.
//
// Judging, in this order:
// - invariants, which every run must keep whatever its faults: no command lost or executed twice (the
//   hardware's per-opcode counts against what the driver issued, less what the driver was told failed
//   and what a fault corrupted in queue memory), no wait that the watchdog had to end, and device
//   states the hardware agrees with (a function the driver calls gone is removed, or stuck in a reset);
// - the scenario's expectation: violations none or some, step errors none or some, per-device state.

import { dirname, resolve } from 'node:path';
import { bootMachine, type ScenarioMachine, type ScenarioMode } from './machine.ts';
import { loadTopologyFile } from '../topology-file.ts';
import { executedByOpcode, cerrorsByName } from '../stats.ts';
import { sumCounts } from '../cli/workload-api.ts';
import { InputError } from '../../protocol/check.ts';
import { parseTopology, defaultTopology, iommuMap, TopologyError, type Topology } from '../../protocol/topology.ts';
import { DEFAULT_FEATURES, parseFeatures, type SmmuFeatures } from '../../arch/smmu/features.ts';
import { FAIL_POINTS } from '../../protocol/faults.ts';
import { FAULT_OF_POINT, FailPoints } from '../../protocol/fail-points.ts';
import { formatLog } from '../../protocol/log.ts';
import { NS_PER_MS, NS_PER_US } from '../../arch/time.ts';
import { CERROR } from '../../arch/smmu/regs.ts';
import { errName } from '../../protocol/errno.ts';
import type { DeviceReport, Scenario, ScenarioReport, Step } from '../../protocol/scenario.ts';
import type { HwReport } from '../../protocol/ops/hw.ts';
import { DEFAULT_ATC_RECOVERY, type AtcRecovery, type DriverStats } from '../../protocol/ops/smmu.ts';
import type { TraceOptions } from '../trace.ts';
import type { RawTraceRecord } from '../../machine/trace-ring.ts';
import { parseLockstepSpec, type LockstepNOptions } from '../../protocol/lockstep.ts';
import type { DriverBug } from '../../protocol/ops/smmu.ts';

/** Default platform time the whole workload may take before the watchdog calls it a hang. */
const WATCHDOG_MS = 600_000;
/** Platform time after the last step for the event thread and late completions to settle. */
const SETTLE_NS = 2 * NS_PER_MS;
/** Kernel log lines a report keeps (the last ones). */
const LOG_LINES = 400;

export interface ScenarioRunOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Overrides the scenario's driver.atcRecovery. */
  atcRecovery?: AtcRecovery;
  /** Directory a topology file path is relative to (the scenario file's). */
  baseDir?: string;
  /** Overrides the scenario's lockstep strategy (runs it on the N-CPU lockstep, even with one CPU). */
  lockstep?: LockstepNOptions;
  /** Runs threaded instead of in lockstep (real concurrency; not repeatable), recording the schedule when asked. */
  threaded?: { record: boolean };
  /** Overrides the scenario's driver.bug (a known-broken driver variant, tests of smmulab only). */
  bug?: DriverBug;
  /** Receives the machine after the run, before it is shut down (what only a System offers: the schedule record). */
  onMachine?: (m: ScenarioMachine) => Promise<void>;
  /** Trace points to record, handed to onTrace as the run goes (all of them by the time it returns). */
  trace?: TraceOptions;
  onTrace?: (records: RawTraceRecord[], lost: number) => void;
}

function topologyOf(s: Scenario, baseDir: string): Topology {
  if (s.topology === undefined) return defaultTopology();
  try {
    return typeof s.topology === 'string' ? loadTopologyFile(resolve(baseDir, s.topology)) : parseTopology(s.topology, 'topology');
  } catch (e) {
    if (e instanceof TopologyError) throw new InputError(e.message.startsWith('topology') ? e.message : `topology: ${e.message}`);
    throw e;
  }
}

function featuresOf(s: Scenario): SmmuFeatures {
  let f: SmmuFeatures;
  try {
    f = s.smmu?.features === undefined ? DEFAULT_FEATURES : parseFeatures(s.smmu.features).features;
  } catch (e) {
    throw new InputError(`smmu.features: ${(e as Error).message.replace(/^--features: /, '')}`);
  }
  return s.smmu?.eventqLog2 === undefined ? f : { ...f, eventqLog2: s.smmu.eventqLog2 };
}

/** The machine a scenario runs on, from its CPUs, its strategy and the run's options. */
export function modeOf(s: Scenario, o: ScenarioRunOptions): ScenarioMode {
  const cpus = s.cpus ?? 1;
  if (o.threaded) return { kind: 'threaded', cpus, record: o.threaded.record };
  const strategy = o.lockstep ?? (s.lockstep !== undefined ? parseLockstepSpec(s.lockstep, 'lockstep') : undefined);
  if (cpus === 1 && strategy === undefined) return { kind: 'lockstep', cpus: 1 };
  return { kind: 'lockstep', cpus, strategy: strategy ?? { strategy: 'random' } };
}

/** Every CPU's driver statistics summed (counts added; records in CPU order). */
function sumDriverStats(all: DriverStats[]): DriverStats {
  const add = (f: (d: DriverStats) => number) => all.reduce((n, d) => n + f(d), 0);
  return {
    cmdqErrors: all.flatMap((d) => d.cmdqErrors),
    recovery: {
      failedBatches: add((d) => d.recovery.failedBatches),
      staleReturns: add((d) => d.recovery.staleReturns),
      extraSyncs: add((d) => d.recovery.extraSyncs),
      fences: add((d) => d.recovery.fences),
      fenceLatencyNs: all.flatMap((d) => d.recovery.fenceLatencyNs),
    },
    issuedByOpcode: sumCounts(all.map((d) => d.issuedByOpcode)),
    unconfirmedByOpcode: sumCounts(all.map((d) => d.unconfirmedByOpcode)),
    pendingByOpcode: sumCounts(all.map((d) => d.pendingByOpcode)),
    gerrors: sumCounts(all.map((d) => d.gerrors)),
    issued: add((d) => d.issued),
    syncs: add((d) => d.syncs),
    syncTimeouts: add((d) => d.syncTimeouts),
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Commands the workload steps issued outside the IOMMU layer (cmdq-stress), and steps whose count is unknown. */
interface StepIssued {
  issued: Record<string, number>;
  unknown: number;
}

/** Runs one step on its CPU; returns what went wrong in it (nothing: []). */
async function runStep(m: ScenarioMachine, topology: Topology, st: Step, acct: StepIssued): Promise<string[]> {
  const cpu = m.cpu(st.cpu ?? 0);
  switch (st.do) {
    case 'ats-dma': {
      const r = await cpu.op('atsDmaWorkload', {
        iommuMap: iommuMap(topology),
        ...(st.rounds !== undefined ? { rounds: st.rounds } : {}),
        ...(st.durationMs !== undefined ? { durationNs: Math.round(st.durationMs * NS_PER_MS) } : {}),
        pages: st.pages ?? 1,
        transfersPerMap: st.transfersPerMap ?? 2,
        sharedDomain: st.sharedDomain ?? true,
        timeoutNs: Math.round((st.copyTimeoutMs ?? 10) * NS_PER_MS),
      });
      const out: string[] = [];
      if (r.errors.length) out.push(`${r.errors.length} error(s) in ${r.transfers} copies (first: ${r.errors[0]})`);
      if (r.verifyFailures) out.push(`${r.verifyFailures} destination buffers did not match their source`);
      return out;
    }
    case 'reset': {
      const r = await cpu.op('pciReset', { bdf: st.bdf, ...(st.method ? { method: st.method } : {}) });
      return r.ok ? [] : [`reset ${st.bdf}${st.method ? ` (${st.method})` : ''}: ${errName(r.rc)}`];
    }
    case 'aer-recover': {
      const r = await cpu.op('pciAerRecover', { bdf: st.bdf });
      return r === null || r.result === 'RECOVERED' ? [] : [`aer recovery of ${st.bdf}: ${r.result}`];
    }
    case 'cmdq-stress': {
      // (A workload that ends in an error or a hang does not say what it issued.)
      acct.unknown++;
      const r = await cpu.op('workload', { batch: st.batch ?? 4, iterations: st.iterations });
      acct.unknown--;
      for (const [op, n] of Object.entries(r.issuedByOpcode)) acct.issued[op] = (acct.issued[op] ?? 0) + n;
      return r.syncTimeouts ? [`${r.syncTimeouts} of ${r.batches} CMD_SYNC(s) timed out`] : [];
    }
    case 'sleep':
      await cpu.op('sleep', { ns: Math.round(st.ms * NS_PER_MS) });
      return [];
    case 'inject':
      await m.inject(st.fault);
      return [];
  }
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) !== 0) out[k] = v - (before[k] ?? 0);
  return out;
}

/**
 * Commands lost and duplicated: per opcode, what the driver issued against what the hardware
 * executed, allowing for what the driver was told had failed (batches whose CMD_SYNC failed: they may
 * or may not have run) and what a fault corrupted in queue memory (reported as CERROR_ILL; for each one it handled, the driver
 * put a CMD_SYNC in its place, so that many SYNCs more ran than were issued). After GERROR.SFM_ERR
 * (`stopped`) the SMMU runs nothing more, and that error is the report of every command it left.
 */
export function commandAccounting(issued: Record<string, number>, executed: Record<string, number>, unconfirmed: Record<string, number>, corrupted: Record<string, number>, skipped: number, stopped: boolean) {
  let lost = 0;
  let duplicated = 0;
  const lines: string[] = [];
  for (const op of new Set([...Object.keys(issued), ...Object.keys(executed)])) {
    const i = issued[op] ?? 0;
    const e = (executed[op] ?? 0) - (op === 'SYNC' ? skipped : 0);
    const excused = (unconfirmed[op] ?? 0) + (corrupted[op] ?? 0);
    if (e > i) {
      duplicated += e - i;
      lines.push(`${op}: executed ${e}, issued ${i}`);
    } else if (i - e > excused && !stopped) {
      lost += i - e - excused;
      lines.push(`${op}: issued ${i}, executed ${e}, reported failed ${excused}`);
    }
  }
  return { lost, duplicated, lines };
}

/** Runs a checked scenario; `name` is what reports call it. Throws InputError for what the checker could not see (files, profiles). */
export async function runScenario(s: Scenario, name: string, o: ScenarioRunOptions = {}): Promise<ScenarioReport> {
  const h0 = performance.now();
  const seed = o.seed ?? s.seed ?? 1;
  const topology = topologyOf(s, o.baseDir ?? process.cwd());
  const budget = (s.watchdogMs ?? WATCHDOG_MS) * NS_PER_MS;
  const m = await bootMachine(modeOf(s, o), {
    features: featuresOf(s),
    memBytes: (s.memMiB ?? 16) << 20,
    topology,
    seed,
    watchdogNs: budget,
    ...(s.smmu?.atcTimeoutUs !== undefined ? { atcTimeoutNs: s.smmu.atcTimeoutUs * NS_PER_US } : {}),
    ...(o.trace && o.onTrace ? { trace: o.trace, onTrace: (r: RawTraceRecord[]) => o.onTrace!(r, m.traceLost()) } : {}),
  });
  try {
    return await runOn(m, s, name, seed, topology, budget, o, h0);
  } finally {
    await m.dispose();
  }
}

async function runOn(m: ScenarioMachine, s: Scenario, name: string, seed: number, topology: Topology, budget: number, o: ScenarioRunOptions, h0: number): Promise<ScenarioReport> {
  const cpu = m.cpu(0);
  const atcRecovery = o.atcRecovery ?? s.driver?.atcRecovery ?? DEFAULT_ATC_RECOVERY;
  const bug = o.bug ?? s.driver?.bug;
  await m.boot({ atcRecovery, ...(bug ? { bug } : {}), ...(s.driver?.pollTimeoutMs !== undefined ? { pollTimeoutNs: Math.round(s.driver.pollTimeoutMs * NS_PER_MS) } : {}) }, s.driver?.strict ?? true);
  for (let c = 0; c < m.ncpus; c++) await m.cpu(c).op('dmesg');
  const bootHostMs = performance.now() - h0;

  const stats0 = m.stats();
  const driverStats = () => Promise.all(range(m.ncpus).map((c) => m.cpu(c).op('driverStats')));
  const d0s = await driverStats();
  const hw0: HwReport = await m.report();
  const tree0 = await cpu.op('pciTree');
  const failPoints = new FailPoints(m.views);
  const hits0 = FAIL_POINTS.map((p) => failPoints.hits(p));
  const t0 = m.now();
  for (const f of s.faults ?? []) await m.inject(f);

  const errors: string[] = [];
  const problems: string[] = [];
  let hangs = 0;
  const workload: StepIssued = { issued: {}, unknown: 0 };
  /** Runs one step under what is left of the watchdog's budget; false when it hung. */
  const step = async (what: string, run: () => Promise<string[]>): Promise<boolean> => {
    m.setWatchdog(budget - (m.now() - t0), what);
    try {
      errors.push(...(await run()).map((e) => `${what}: ${e}`));
    } catch (e) {
      if (!m.isHang(e)) {
        errors.push(`${what}: ${(e as Error).message}`);
        return true;
      }
      hangs++;
      problems.push(`hang: ${(e as Error).message}`);
      return false;
    }
    return true;
  };
  // Each CPU runs its steps in order, the CPUs at the same time; a CPU stops at its first hang.
  const perCpu = range(m.ncpus).map((c) => s.workload.map((st, i) => ({ st, i })).filter(({ st }) => (st.cpu ?? 0) === c));
  await Promise.all(
    perCpu.map(async (steps) => {
      for (const { st, i } of steps) if (!(await step(`workload[${i}] (${st.do})`, () => runStep(m, topology, st, workload)))) return;
    }),
  );
  if (hangs === 0) await step('settling after the workload', async () => (await cpu.op('sleep', { ns: SETTLE_NS }), []));
  m.setWatchdog(null, '');

  const stats1 = m.stats();
  const d1s = await driverStats();
  // The command queue is shared, its issuers per CPU: what every CPU's driver did, summed.
  const d0 = sumDriverStats(d0s);
  const d1 = sumDriverStats(d1s);
  const since = <T>(list: (d: DriverStats) => T[]) => d1s.flatMap((d, c) => list(d).slice(list(d0s[c]!).length));
  const hw1: HwReport = await m.report();
  const hits1 = FAIL_POINTS.map((p) => failPoints.hits(p));
  const tree = await cpu.op('pciTree');
  const log = (await Promise.all(range(m.ncpus).map((c) => m.cpu(c).op('dmesg')))).flat().sort((a, b) => a.t - b.t).map(formatLog);
  o.onTrace?.(m.trace(), m.traceLost());
  const lockstep = m.lockstep();
  await o.onMachine?.(m);

  // Invariant: every command executed once, or reported.
  const cerrors = cerrorsByName(stats0, stats1);
  const unconfirmed = diff(d1.unconfirmedByOpcode, d0.unconfirmedByOpcode);
  const executed = executedByOpcode(stats0, stats1);
  const acct = commandAccounting(
    sumCounts([diff(d1.issuedByOpcode, d0.issuedByOpcode), workload.issued]),
    executed,
    // Commands still waiting for a CMD_SYNC at the end (a queue that stopped for good holds them) are
    // reported too: not known to have run.
    sumCounts([unconfirmed, d1.pendingByOpcode]),
    diff(hw1.corrupted, hw0.corrupted),
    since((d) => d.cmdqErrors).filter((x) => x.code === CERROR.ILL).length,
    (d1.gerrors.SFM_ERR ?? 0) > (d0.gerrors.SFM_ERR ?? 0),
  );
  // Without every step's count, lost and duplicated cannot be told: say so instead.
  if (workload.unknown) problems.push(`command count: unknown (${workload.unknown} cmdq-stress step(s) ended without saying what they issued)`);
  else for (const l of acct.lines) problems.push(`command count: ${l}`);

  // Devices: the driver's conclusions, the hardware's resets.
  const devices: DeviceReport[] = hw1.devices.map((hd) => {
    const info = tree.find((t) => t.bdf === hd.bdf);
    const before = hw0.devices.find((x) => x.bdf === hd.bdf)!;
    const state = !info || info.gone ? 'gone' : info.driver ? 'ok' : 'unbound';
    if (state === 'gone' && !hd.removed && !hd.inReset) problems.push(`${hd.bdf}: the driver calls it gone, but the function is present and not resetting`);
    const fenced = (info?.iommu?.blocked ?? false) || (info?.iommu?.fenced ?? false);
    const fences = (info?.iommu?.fences ?? 0) - (tree0.find((t) => t.bdf === hd.bdf)?.iommu?.fences ?? 0);
    return { bdf: hd.bdf, state, atsEnabled: info?.ats?.enabled ?? false, fenced, fences, resets: hd.resets - before.resets };
  });

  const uaf = hw1.uaf - hw0.uaf;
  const exp = s.expect ?? {};
  if (exp.violations === 'none' && uaf > 0) problems.push(`expected no DMA use-after-free, saw ${uaf}`);
  if (exp.violations === 'some' && uaf === 0) problems.push('expected DMA use-after-free, saw none');
  if (exp.errors === 'none' && errors.length) problems.push(`expected no step errors, saw ${errors.length} (first: ${errors[0]})`);
  if (exp.errors === 'some' && errors.length === 0) problems.push('expected step errors, saw none');
  for (const want of exp.devices ?? []) {
    const got = devices.find((d) => d.bdf === want.bdf);
    if (!got) {
      problems.push(`expected ${want.bdf}: no such function`);
      continue;
    }
    for (const k of ['state', 'atsEnabled', 'fenced', 'resets'] as const) {
      if (want[k] !== undefined && want[k] !== got[k]) problems.push(`expected ${want.bdf} ${k} ${JSON.stringify(want[k])}, got ${JSON.stringify(got[k])}`);
    }
  }

  const faultsByKind: Record<string, number> = diff(hw1.faultsFired, hw0.faultsFired);
  FAIL_POINTS.forEach((p, i) => {
    const n = hits1[i]! - hits0[i]!;
    if (n > 0) faultsByKind[FAULT_OF_POINT[p]] = (faultsByKind[FAULT_OF_POINT[p]] ?? 0) + n;
  });
  const r0 = d0.recovery;
  const r1 = d1.recovery;
  return {
    scenario: name,
    seed,
    atcRecovery,
    recovery: {
      failedBatches: r1.failedBatches - r0.failedBatches,
      staleReturns: r1.staleReturns - r0.staleReturns,
      extraSyncs: r1.extraSyncs - r0.extraSyncs,
      fences: r1.fences - r0.fences,
      fenceLatencyNs: since((d) => d.recovery.fenceLatencyNs),
    },
    faultsInjected: Object.values(faultsByKind).reduce((a, b) => a + b, 0),
    faultsByKind,
    dmaUseAfterFree: uaf,
    lazyWindowAccesses: hw1.lazyWindow - hw0.lazyWindow,
    lostCommands: workload.unknown ? 0 : acct.lost,
    duplicatedCommands: workload.unknown ? 0 : acct.duplicated,
    executedByOpcode: executed,
    commandErrors: { cerrors, syncFailures: unconfirmed.SYNC ?? 0 },
    hangs,
    devices,
    violations: hw1.records.slice(hw0.records.length),
    errors,
    problems,
    ok: problems.length === 0,
    log: log.slice(-LOG_LINES),
    ...(lockstep ? { lockstep } : {}),
    platformMs: (m.now() - t0) / NS_PER_MS,
    hostMs: performance.now() - h0,
    bootHostMs,
  };
}

/** The directory a scenario file's relative paths start from. */
export function scenarioDir(file: string): string {
  return dirname(resolve(file));
}
