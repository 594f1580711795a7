// Running one scenario (src/protocol/scenario.ts) in lockstep, where every run of a seed is the same:
// boot the machine, probe the SMMU and bind every PCI function, inject the faults, run the workload
// steps under a watchdog, then judge.
//
// Judging, in this order:
// - invariants, which every run must keep whatever its faults: no command lost or executed twice (the
//   hardware's per-opcode counts against what the driver issued, less what the driver was told failed
//   and what a fault corrupted in queue memory), no wait that the watchdog had to end, and device
//   states the hardware agrees with (a function the driver calls gone is removed, or stuck in a reset);
// - the scenario's expectation: violations none or some, step errors none or some, per-device state.

import { dirname, resolve } from 'node:path';
import { createLockstep, Hang, type LockstepSystem } from '../lockstep.ts';
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

/** Runs one step on CPU 0; returns what went wrong in it (nothing: []). */
async function runStep(ls: LockstepSystem, topology: Topology, st: Step): Promise<string[]> {
  const cpu = ls.cpu(0);
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
    case 'sleep':
      await cpu.op('sleep', { ns: Math.round(st.ms * NS_PER_MS) });
      return [];
    case 'inject':
      ls.inject(st.fault);
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
  const ls = createLockstep({
    features: featuresOf(s),
    memBytes: (s.memMiB ?? 16) << 20,
    topology,
    seed,
    ackLatencyNs: 5_000,
    ...(s.smmu?.atcTimeoutUs !== undefined ? { atcTimeoutNs: s.smmu.atcTimeoutUs * NS_PER_US } : {}),
    ...(o.trace && o.onTrace ? { trace: o.trace, onTrace: (r: RawTraceRecord[]) => o.onTrace!(r, ls.traceLost()) } : {}),
  });
  const cpu = ls.cpu(0);
  const atcRecovery = o.atcRecovery ?? s.driver?.atcRecovery ?? DEFAULT_ATC_RECOVERY;
  await cpu.op('probe', { opts: { atcRecovery, ...(s.driver?.pollTimeoutMs !== undefined ? { pollTimeoutNs: Math.round(s.driver.pollTimeoutMs * NS_PER_MS) } : {}) }, initPages: true });
  await cpu.op('pciInit', { iommuMap: iommuMap(topology), strict: s.driver?.strict ?? true });
  await cpu.op('dmesg');
  const bootHostMs = performance.now() - h0;

  const stats0 = ls.stats();
  const d0: DriverStats = await cpu.op('driverStats');
  const hw0: HwReport = await ls.hw.op('report');
  const tree0 = await cpu.op('pciTree');
  const failPoints = new FailPoints(ls.views);
  const hits0 = FAIL_POINTS.map((p) => failPoints.hits(p));
  const t0 = ls.platform.clock.now();
  s.faults?.forEach((f) => ls.inject(f));

  const errors: string[] = [];
  const problems: string[] = [];
  let hangs = 0;
  const budget = (s.watchdogMs ?? WATCHDOG_MS) * NS_PER_MS;
  const steps = [...s.workload.map((st, i) => ({ what: `workload[${i}] (${st.do})`, run: () => runStep(ls, topology, st) })), { what: 'settling after the workload', run: async () => (await cpu.op('sleep', { ns: SETTLE_NS }), []) }];
  for (const step of steps) {
    ls.platform.setWatchdog(budget - (ls.platform.clock.now() - t0), step.what);
    try {
      errors.push(...(await step.run()).map((e) => `${step.what}: ${e}`));
    } catch (e) {
      if (e instanceof Hang) {
        hangs++;
        problems.push(`hang: ${e.message}`);
        break;
      }
      errors.push(`${step.what}: ${(e as Error).message}`);
    }
  }
  ls.platform.setWatchdog(null);

  const stats1 = ls.stats();
  const d1: DriverStats = await cpu.op('driverStats');
  const hw1: HwReport = await ls.hw.op('report');
  const hits1 = FAIL_POINTS.map((p) => failPoints.hits(p));
  const tree = await cpu.op('pciTree');
  const log = (await cpu.op('dmesg')).map(formatLog);
  o.onTrace?.(ls.trace(), ls.traceLost());
  ls.dispose();

  // Invariant: every command executed once, or reported.
  const cerrors = cerrorsByName(stats0, stats1);
  const unconfirmed = diff(d1.unconfirmedByOpcode, d0.unconfirmedByOpcode);
  const acct = commandAccounting(
    diff(d1.issuedByOpcode, d0.issuedByOpcode),
    executedByOpcode(stats0, stats1),
    // Commands still waiting for a CMD_SYNC at the end (a queue that stopped for good holds them) are
    // reported too: not known to have run.
    sumCounts([unconfirmed, d1.pendingByOpcode]),
    diff(hw1.corrupted, hw0.corrupted),
    d1.cmdqErrors.slice(d0.cmdqErrors.length).filter((x) => x.code === CERROR.ILL).length,
    (d1.gerrors.SFM_ERR ?? 0) > (d0.gerrors.SFM_ERR ?? 0),
  );
  for (const l of acct.lines) problems.push(`command count: ${l}`);

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
  if (exp.errors === 'none' && errors.length) problems.push(`expected no step errors, saw ${errors.length}`);
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
      fenceLatencyNs: r1.fenceLatencyNs.slice(r0.fenceLatencyNs.length),
    },
    faultsInjected: Object.values(faultsByKind).reduce((a, b) => a + b, 0),
    faultsByKind,
    dmaUseAfterFree: uaf,
    lazyWindowAccesses: hw1.lazyWindow - hw0.lazyWindow,
    lostCommands: acct.lost,
    duplicatedCommands: acct.duplicated,
    commandErrors: { cerrors, syncFailures: unconfirmed.SYNC ?? 0 },
    hangs,
    devices,
    violations: hw1.records.slice(hw0.records.length),
    errors,
    problems,
    ok: problems.length === 0,
    log: log.slice(-LOG_LINES),
    platformMs: (ls.platform.clock.now() - t0) / NS_PER_MS,
    hostMs: performance.now() - h0,
    bootHostMs,
  };
}

/** The directory a scenario file's relative paths start from. */
export function scenarioDir(file: string): string {
  return dirname(resolve(file));
}
