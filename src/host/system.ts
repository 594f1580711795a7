// Booting the emulated system: one shared buffer, the hardware worker and one worker per simulated CPU.
//
//   main thread      orchestration only: boots workers, relays requests, reads statistics
//   hardware worker  hw/hw-worker.ts: every device model (SMMUv3, DMA test engines, PCIe functions)
//   CPU workers      drivers/cpu-worker.ts: the kernel driver, one worker per simulated CPU
//
// The workers talk to each other only through the shared buffer; messages carry control requests.

import { Worker } from 'node:worker_threads';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CTRL, DEFAULT_MEM_BYTES, SharedViews, computeLayout, type Layout } from '../machine/layout.ts';
import { OpClient, RpcClient, type WorkerDeath } from '../protocol/rpc.ts';
import { RpcLimits } from './rpc-limit.ts';
import type { KernelOps } from '../protocol/ops/index.ts';
import type { HwOps } from '../protocol/ops/hw.ts';
import { checkFault, type Fault } from '../protocol/faults.ts';
import { routeFault } from './faults.ts';
import { statsSnapshot, type StatsSnapshot } from './stats.ts';
import { TraceCollector, enableTrace, traceRecords, type TraceOptions } from './trace.ts';
import type { RawTraceRecord } from '../machine/trace-ring.ts';
import { ScaledClock, type Clock } from '../machine/clock.ts';
import { LOCKSTEP_CPU_MODULE, LOCKSTEP_HW_MODULE, LockstepHost, type LockstepNOptions } from './lockstep-n.ts';
import { DEFAULT_FEATURES, type SmmuFeatures } from '../arch/smmu/features.ts';
import type { LogEntry } from '../protocol/log.ts';
import type { SmmuDriverOptions, SmmuShared } from '../protocol/ops/smmu.ts';
import type { MachineConfig } from '../../hw/machine.ts';
import { defaultTopology, ecamBuses, iommuMap, type Topology } from '../protocol/topology.ts';
import type { PciDeviceInfo } from '../protocol/ops/pci.ts';
import type { ScheduleRecord } from '../protocol/schedule.ts';

// From source (this file is .ts, run through tsx or vitest) a worker starts in worker-entry.mjs, which
// registers tsx and imports the worker's TypeScript module; in the built package (dist/, .js) a worker
// starts on the compiled module itself, with no loader.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const EXT = FROM_SOURCE ? '.ts' : '.js';
const ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const HW_MODULE = new URL(`../../hw/hw-worker${EXT}`, import.meta.url).href;
const CPU_MODULE = new URL(`../../drivers/cpu-worker${EXT}`, import.meta.url).href;

/** A module given as a URL, a file URL string or a file path, as the URL a worker imports. */
function moduleUrl(m: URL | string): string {
  if (m instanceof URL) return m.href;
  return /^(file|data):/.test(m) ? m : pathToFileURL(resolve(m)).href;
}

export interface SystemOptions {
  cpus?: number;
  features?: SmmuFeatures;
  memBytes?: number;
  /** False turns the DMA sanitizer off (benchmarks of its cost only). */
  sanitizer?: boolean;
  /** Platform time runs this many times faster than host time. */
  timeScale?: number;
  /** Platform ns a CR0/IRQ_CTRL/GBPA Update takes. */
  ackLatencyNs?: number;
  /** Echo kernel log lines to stderr as they happen. */
  echoLog?: boolean;
  /** Host ms to wait for a worker to start. */
  bootTimeoutMs?: number;
  /** DMA test engines (hw/testdev.ts) at PA.PLATDEV_BASE + i * 4 KiB; default 1. */
  testDevices?: number;
  /** PCIe topology (src/protocol/topology.ts); default: the default topology. */
  topology?: Topology;
  /** Platform ns the SMMU waits for an ATC Invalidate Completion (hw/smmu/ats.ts). */
  atcTimeoutNs?: number;
  /** Base seed of fault probability draws (default 1). */
  seed?: number;
  /** Trace points to record (src/protocol/trace-points.ts); read them with trace(). */
  trace?: TraceOptions;
  /**
   * Your own kernel code: a JavaScript module (URL, file URL or path) exporting `ops`, a table of
   * functions `(kernel, request) => result` that every CPU worker loads and serves next to the built-in
   * operations (drivers/extra-ops.ts); call them with extraOp().
   */
  extraOps?: URL | string;
  /**
   * Lockstep with N CPUs (src/host/lockstep-n.ts): the CPUs take turns at every yield point of their
   * platform, chosen by `strategy` ('round-robin', 'random', 'pct' with `depth`) from `seed`, with the
   * hardware in virtual time; the same options give the same run. timeScale does not apply.
   */
  lockstep?: LockstepNOptions;
  /**
   * Record the schedule: the order in which the hardware saw the CPUs' MMIO writes, and the interrupts,
   * fault firings and timers between them (src/protocol/schedule.ts); read it with schedule(), replay it
   * with `lockstep: { strategy: 'schedule', writers: record.writes }`.
   */
  record?: boolean;
}

export class System {
  private tracer: TraceCollector | null = null;
  /** Why the system stopped: the first worker that died, and what it was doing (null: none died). */
  private died: string | null = null;
  /** shutdown() began: workers exiting now are not deaths. */
  private closing = false;

  private constructor(
    readonly views: SharedViews,
    readonly layout: Layout,
    /** Platform time: scaled host time, or the virtual time of a lockstep system. */
    readonly clock: Clock,
    readonly hw: OpClient<HwOps>,
    readonly cpus: OpClient<KernelOps>[],
    private readonly workers: Worker[],
    readonly features: SmmuFeatures,
    readonly topology: Topology,
    readonly seed: number,
    private readonly limits: RpcLimits,
  ) {
    const clients = [hw.rpc, ...cpus.map((c) => c.rpc)];
    for (const c of clients) c.onDeath = (d) => this.workerDied(d, clients);
  }

  /**
   * A worker died (an uncaught error, an exit) while the system ran. The others cannot go on: a dead CPU
   * may hold slots of the command queue or its locks, and a dead hardware worker answers nothing. So
   * every other worker's operations fail at once with the reason (which worker died, and what it was
   * doing), instead of later with a misleading one of their own ("CMDQ full", CMD_SYNC timeouts), and
   * the workers are ended.
   */
  private workerDied(d: WorkerDeath, clients: RpcClient[]): void {
    if (this.closing || this.died !== null) return;
    this.died = `${d.name} died ${d.ops.length ? `during '${d.ops.join("', '")}'` : 'between operations'}: ${d.error.message}`;
    const reason = new Error(`stopped: ${this.died}`);
    for (const c of clients) c.stop(reason);
    void Promise.all(this.workers.map((w) => w.terminate()));
  }

  /** Why the system stopped (which worker died, doing what), or null while every worker lives. */
  deathReason(): string | null {
    return this.died;
  }

  static async boot(opts: SystemOptions = {}): Promise<System> {
    const ncpus = opts.cpus ?? 1;
    const features = opts.features ?? DEFAULT_FEATURES;
    const topology = opts.topology ?? defaultTopology();
    const layout = computeLayout({ memBytes: opts.memBytes ?? DEFAULT_MEM_BYTES, ncpus, traceRecords: traceRecords(opts.trace), ecamBuses: ecamBuses(topology), ...(opts.sanitizer === false ? { sanitizerOn: false } : {}) });
    const views = SharedViews.create(layout);
    enableTrace(views, opts.trace);
    // A lockstep run without a seed of its own draws from the system's.
    const lsn = opts.lockstep ? new LockstepHost(views, { ...(opts.seed !== undefined ? { seed: opts.seed } : {}), ...opts.lockstep }) : null;
    const clock = lsn ? lsn.clock : ScaledClock.init(views.ctrlF64, opts.timeScale ?? 1);
    const bootMs = opts.bootTimeoutMs ?? 30_000;
    const workers: Worker[] = [];
    // Every worker's boot timer, all cleared when one fails: a timer left running keeps the process
    // alive until it fires.
    const timers: NodeJS.Timeout[] = [];
    const start = (module: string, name: string, extra: object) => {
      const data = { sab: views.sab, layout, ...extra };
      const w = FROM_SOURCE ? new Worker(ENTRY, { workerData: { module, ...data } }) : new Worker(new URL(module), { workerData: data });
      workers.push(w);
      const client = new RpcClient(w, name);
      const ready = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not start within ${bootMs} ms`)), bootMs);
        timers.push(timer);
        w.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited with code ${code} before it was ready`));
        });
        w.on('message', (m: { type?: string }) => {
          if (m?.type === 'ready') {
            clearTimeout(timer);
            resolve();
          }
        });
        w.once('error', (e) => {
          clearTimeout(timer);
          reject(new Error(`${name} failed to start: ${e.message}`));
        });
      });
      return { client, ready };
    };
    try {
      const config: MachineConfig = {
        features,
        ...(opts.ackLatencyNs !== undefined ? { ackLatencyNs: opts.ackLatencyNs } : {}),
        ...(opts.testDevices !== undefined ? { testDevices: opts.testDevices } : {}),
        topology,
        ...(opts.atcTimeoutNs !== undefined ? { atcTimeoutNs: opts.atcTimeoutNs } : {}),
        seed: opts.seed ?? 1,
        ...(opts.record ? { record: true } : {}),
      };
      const ls = lsn ? { lockstep: lsn.config } : {};
      const hw = start(lsn ? LOCKSTEP_HW_MODULE : HW_MODULE, 'hardware worker', { config, ...ls });
      const cpus = Array.from({ length: ncpus }, (_, cpu) => start(lsn ? LOCKSTEP_CPU_MODULE : CPU_MODULE, `cpu${cpu}`, { cpu, echo: !!opts.echoLog, ...ls, ...(opts.extraOps !== undefined ? { extraOps: moduleUrl(opts.extraOps) } : {}) }));
      await Promise.all([hw.ready, ...cpus.map((c) => c.ready)]);
      if (lsn) {
        lsn.gateHw(hw.client);
        cpus.forEach((c, i) => lsn.gate(c.client, i));
      }
      // In lockstep an operation takes the host time its work takes, however long: what hangs there is
      // ended by the coordinator's watchdogs (platform time, a CPU holding the token too long), so no
      // host-speed limit may end it differently from one run of a seed to the next.
      const limits = new RpcLimits({ hostMs: (ns) => (clock instanceof ScaledClock ? clock.hostMs(ns) : Infinity) }, topology);
      if (opts.atcTimeoutNs !== undefined) limits.noteWait(opts.atcTimeoutNs);
      const hwOps = new OpClient<HwOps>(hw.client, limits.limitMs);
      return new System(views, layout, clock, hwOps, cpus.map((c) => new OpClient<KernelOps>(c.client, limits.limitMs)), workers, features, topology, opts.seed ?? 1, limits);
    } catch (e) {
      for (const t of timers) clearTimeout(t);
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
  }

  /**
   * Probes the SMMU on CPU 0 and lets every other CPU join it; the GERROR and event queue interrupts
   * go to `irqCpu`.
   */
  async probe(opts: SmmuDriverOptions = {}): Promise<SmmuShared> {
    const irqCpu = opts.irqCpu ?? 0;
    if (irqCpu < 0 || irqCpu >= this.cpus.length) throw new Error(`irqCpu ${irqCpu}: no such CPU (${this.cpus.length} CPUs)`);
    if (opts.pollTimeoutNs !== undefined) this.limits.noteWait(opts.pollTimeoutNs);
    const shared = await this.cpus[0]!.op('probe', { opts: { ...opts, irqCpu }, initPages: true });
    for (let c = 1; c < this.cpus.length; c++) await this.cpus[c]!.op('attach', shared);
    if (irqCpu !== 0) await this.cpus[irqCpu]!.op('requestIrqs');
    return shared;
  }

  /**
   * Enumerates PCI on CPU 0 (after probe(): its functions become SMMU masters with DMA domains) and
   * binds their drivers; returns what was found. The firmware's RID -> StreamID map comes from the
   * topology.
   */
  async pciInit(opts: { strict?: boolean } = {}): Promise<PciDeviceInfo[]> {
    return this.cpus[0]!.op('pciInit', { iommuMap: iommuMap(this.topology), strict: opts.strict ?? true });
  }

  /**
   * Applies a fault (checked first; an InputError names a bad field): a hardware fault in the hardware
   * worker, a driver fault by arming its should-fail point in the shared buffer.
   */
  async inject(fault: Fault): Promise<void> {
    const f = checkFault(fault, 'fault');
    await routeFault(this.views, this.seed, this.clock.now(), f, (hw) => this.hw.op('inject', hw));
  }

  /** The operations of one CPU's kernel, typed by the protocol (src/protocol/ops). */
  cpu(n: number): OpClient<KernelOps> {
    const c = this.cpus[n];
    if (!c) throw new Error(`cpu ${n}: no such CPU (${this.cpus.length} CPUs)`);
    return c;
  }

  /** The schedule the hardware recorded since boot (fails unless booted with `record: true`). */
  async schedule(): Promise<ScheduleRecord> {
    return this.hw.op('schedule');
  }

  /** Trace records every producer wrote since the last call, on one platform-time timeline. */
  trace(): RawTraceRecord[] {
    this.tracer ??= new TraceCollector(this.views);
    return this.tracer.drain();
  }

  /** Trace records overwritten before trace() read them. */
  traceLost(): number {
    return this.tracer?.lost ?? 0;
  }

  /**
   * Kernel log entries of every CPU, in time order: those printed since the last dmesg() (each CPU
   * keeps a cursor that this call moves), or with `{ all: true }` every entry since boot, leaving the
   * cursors where they are.
   */
  async dmesg(opts: { all?: boolean } = {}): Promise<LogEntry[]> {
    const all = await Promise.all(this.cpus.map((c) => c.op(opts.all ? 'dmesgAll' : 'dmesg')));
    return all.flat().sort((a, b) => a.t - b.t);
  }

  /**
   * Calls operation `name` of the extraOps module on CPU `cpu` with `request` (any structured-clonable
   * value); resolves to what the operation returned, rejects with what it threw.
   */
  async extraOp<R = unknown>(cpu: number, name: string, request?: unknown, timeoutMs?: number): Promise<R> {
    return (await this.cpu(cpu).rpc.call(name, request ?? null, timeoutMs)) as R;
  }

  /** Statistics counter `slot` of the shared buffer (STAT, XSTAT). */
  stat(slot: number): number {
    return this.views.stats[slot] ?? NaN;
  }

  /** An SMMU register (offset OFF.*, page 1 from SMMU_PAGE1) as the hardware exposes it, 32 bits. */
  reg(offset: number): number {
    return Atomics.load(this.views.smmu, offset >>> 2) >>> 0;
  }

  stats(): StatsSnapshot {
    return statsSnapshot(this.views);
  }

  /** Hardware heartbeat (moves while the hardware loop runs). */
  heartbeat(): number {
    return Atomics.load(this.views.ctrl, CTRL.HW_HEARTBEAT);
  }

  async shutdown(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([this.hw.op('stop', undefined, 5000), ...this.cpus.map((c) => c.op('stop', undefined, 5000))]);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
