// The machine a scenario runs on, in one of three modes:
//   lockstep (one CPU)  the one-thread system (src/host/lockstep.ts): hardware and CPU 0 in this thread,
//                       virtual time; the fastest, what campaigns of one-CPU scenarios run
//   lockstep (N CPUs)   a System of worker threads whose CPUs take turns at their yield points
//                       (src/host/lockstep-n.ts), chosen by a strategy from the run's seed: every run
//                       of a seed is the same
//   threaded            a System of worker threads running at once, on the host's scheduler (real
//                       concurrency, platform time scaled from host time); --record keeps the order of
//                       what the hardware saw, for a lockstep replay (--schedule)
// The runner (run.ts) sees one interface: operations per CPU, faults, counters, the hardware's report.

import { createLockstep, Hang, type LockstepSystem } from '../lockstep.ts';
import { System } from '../system.ts';
import { lockstepStats, type LockstepStats } from '../lockstep-n.ts';
import { RpcTimeout, type OpCaller } from '../../protocol/rpc.ts';
import { iommuMap, type Topology } from '../../protocol/topology.ts';
import type { KernelOps } from '../../protocol/ops/index.ts';
import type { HwReport } from '../../protocol/ops/hw.ts';
import type { Fault } from '../../protocol/faults.ts';
import type { LockstepNOptions } from '../../protocol/lockstep.ts';
import type { SmmuDriverOptions } from '../../protocol/ops/smmu.ts';
import type { SmmuFeatures } from '../../arch/smmu/features.ts';
import type { SharedViews } from '../../machine/layout.ts';
import type { StatsSnapshot } from '../stats.ts';
import type { TraceOptions } from '../trace.ts';
import type { RawTraceRecord } from '../../machine/trace-ring.ts';

export type ScenarioMode = { kind: 'lockstep'; cpus: 1 } | { kind: 'lockstep'; cpus: number; strategy: LockstepNOptions } | { kind: 'threaded'; cpus: number; record: boolean };

export interface MachineSpec {
  features: SmmuFeatures;
  memBytes: number;
  topology: Topology;
  seed: number;
  atcTimeoutNs?: number;
  /** Platform ns the whole workload may take (the N-CPU lockstep watchdog of one busy period). */
  watchdogNs: number;
  trace?: TraceOptions;
  /** Receives trace records as the run goes (the one-thread system cannot be drained from outside). */
  onTrace?: (records: RawTraceRecord[]) => void;
}

/** What a scenario run needs of its machine. */
export interface ScenarioMachine {
  readonly ncpus: number;
  readonly views: SharedViews;
  cpu(n: number): OpCaller<KernelOps>;
  /** Probes the SMMU on CPU 0 (every other CPU joins it), enumerates PCI and binds its drivers. */
  boot(opts: SmmuDriverOptions, strict: boolean): Promise<void>;
  report(): Promise<HwReport>;
  inject(f: Fault): Promise<void>;
  stats(): StatsSnapshot;
  /** Platform ns now. */
  now(): number;
  /** Bounds the platform time of what runs next, naming it (the one-thread system; N CPUs bound it at boot). */
  setWatchdog(ns: number | null, what: string): void;
  /** Whether an operation's error is a wait the watchdog ended (a hang), rather than a failure of its own. */
  isHang(e: unknown): boolean;
  trace(): RawTraceRecord[];
  traceLost(): number;
  lockstep(): LockstepStats | null;
  /** The System underneath (N CPUs, threaded), for what only it offers (the schedule record). */
  readonly system: System | null;
  dispose(): Promise<void>;
}

/** What N-CPU lockstep's watchdogs throw at a CPU's yield point (hw/lockstep-coordinator.ts, invariant 5). */
const LOCKSTEP_HANG = /watchdog: platform time reached|lockstep: (deadlock|livelock)/;

class OneThread implements ScenarioMachine {
  readonly ncpus = 1;
  readonly system = null;
  constructor(
    private readonly ls: LockstepSystem,
    private readonly topology: Topology,
  ) {}
  get views(): SharedViews {
    return this.ls.views;
  }
  cpu(n: number): OpCaller<KernelOps> {
    return this.ls.cpu(n);
  }
  async boot(opts: SmmuDriverOptions, strict: boolean): Promise<void> {
    await this.ls.cpu(0).op('probe', { opts, initPages: true });
    await this.ls.cpu(0).op('pciInit', { iommuMap: iommuMap(this.topology), strict });
  }
  report(): Promise<HwReport> {
    return this.ls.hw.op('report');
  }
  async inject(f: Fault): Promise<void> {
    this.ls.inject(f);
  }
  stats(): StatsSnapshot {
    return this.ls.stats();
  }
  now(): number {
    return this.ls.platform.clock.now();
  }
  setWatchdog(ns: number | null, what: string): void {
    this.ls.platform.setWatchdog(ns, what);
  }
  isHang(e: unknown): boolean {
    return e instanceof Hang;
  }
  trace(): RawTraceRecord[] {
    return this.ls.trace();
  }
  traceLost(): number {
    return this.ls.traceLost();
  }
  lockstep(): LockstepStats | null {
    return null;
  }
  async dispose(): Promise<void> {
    this.ls.dispose();
  }
}

class Workers implements ScenarioMachine {
  constructor(readonly system: System) {}
  get ncpus(): number {
    return this.system.cpus.length;
  }
  get views(): SharedViews {
    return this.system.views;
  }
  cpu(n: number): OpCaller<KernelOps> {
    return this.system.cpu(n);
  }
  async boot(opts: SmmuDriverOptions, strict: boolean): Promise<void> {
    await this.system.probe(opts);
    await this.system.pciInit({ strict });
  }
  report(): Promise<HwReport> {
    return this.system.hw.op('report');
  }
  inject(f: Fault): Promise<void> {
    return this.system.inject(f);
  }
  stats(): StatsSnapshot {
    return this.system.stats();
  }
  now(): number {
    return this.system.clock.now();
  }
  setWatchdog(): void {}
  isHang(e: unknown): boolean {
    return e instanceof RpcTimeout || (e instanceof Error && LOCKSTEP_HANG.test(e.message));
  }
  trace(): RawTraceRecord[] {
    return this.system.trace();
  }
  traceLost(): number {
    return this.system.traceLost();
  }
  lockstep(): LockstepStats | null {
    return lockstepStats(this.system);
  }
  dispose(): Promise<void> {
    return this.system.shutdown();
  }
}

export async function bootMachine(mode: ScenarioMode, spec: MachineSpec): Promise<ScenarioMachine> {
  const base = {
    features: spec.features,
    memBytes: spec.memBytes,
    topology: spec.topology,
    seed: spec.seed,
    ackLatencyNs: 5_000,
    ...(spec.atcTimeoutNs !== undefined ? { atcTimeoutNs: spec.atcTimeoutNs } : {}),
    ...(spec.trace ? { trace: spec.trace } : {}),
  };
  if (mode.kind === 'lockstep' && !('strategy' in mode)) {
    return new OneThread(createLockstep({ ...base, ...(spec.trace && spec.onTrace ? { onTrace: spec.onTrace } : {}) }), spec.topology);
  }
  const sys = await System.boot({
    ...base,
    cpus: mode.cpus,
    ...(mode.kind === 'lockstep' ? { lockstep: { watchdogNs: spec.watchdogNs, ...mode.strategy } } : { record: mode.record }),
  });
  return new Workers(sys);
}
