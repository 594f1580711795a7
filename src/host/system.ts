// Booting the emulated system: one shared buffer, the hardware worker and one worker per simulated CPU.
//
//   main thread      orchestration only: boots workers, relays requests, reads statistics
//   hardware worker  hw/hw-worker.ts: every device model (SMMUv3, DMA test engines, PCIe functions)
//   CPU workers      drivers/cpu-worker.ts: the kernel driver, one worker per simulated CPU
//
// The workers talk to each other only through the shared buffer; messages carry control requests.

import { Worker } from 'node:worker_threads';
import { CTRL, DEFAULT_MEM_BYTES, SharedViews, computeLayout, type Layout } from '../machine/layout.ts';
import { OpClient, RpcClient } from '../protocol/rpc.ts';
import type { KernelOps } from '../protocol/ops/index.ts';
import type { HwOps } from '../protocol/ops/hw.ts';
import { checkFault, type Fault } from '../protocol/faults.ts';
import { routeFault } from './faults.ts';
import { statsSnapshot, type StatsSnapshot } from './stats.ts';
import { TraceCollector, enableTrace, traceRecords, type TraceOptions } from './trace.ts';
import type { RawTraceRecord } from '../machine/trace-ring.ts';
import { ScaledClock } from '../machine/clock.ts';
import { DEFAULT_FEATURES, type SmmuFeatures } from '../arch/smmu/features.ts';
import type { LogEntry } from '../protocol/log.ts';
import type { SmmuDriverOptions, SmmuShared } from '../protocol/ops/smmu.ts';
import type { MachineConfig } from '../../hw/machine.ts';
import { defaultTopology, ecamBuses, iommuMap, type Topology } from '../protocol/topology.ts';
import type { PciDeviceInfo } from '../protocol/ops/pci.ts';

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const HW_MODULE = new URL('../../hw/hw-worker.ts', import.meta.url).href;
const CPU_MODULE = new URL('../../drivers/cpu-worker.ts', import.meta.url).href;

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
}

export class System {
  private tracer: TraceCollector | null = null;

  private constructor(
    readonly views: SharedViews,
    readonly layout: Layout,
    readonly clock: ScaledClock,
    readonly hw: OpClient<HwOps>,
    readonly cpus: OpClient<KernelOps>[],
    private readonly workers: Worker[],
    readonly features: SmmuFeatures,
    readonly topology: Topology,
    readonly seed: number,
  ) {}

  static async boot(opts: SystemOptions = {}): Promise<System> {
    const ncpus = opts.cpus ?? 1;
    const features = opts.features ?? DEFAULT_FEATURES;
    const topology = opts.topology ?? defaultTopology();
    const layout = computeLayout({ memBytes: opts.memBytes ?? DEFAULT_MEM_BYTES, ncpus, traceRecords: traceRecords(opts.trace), ecamBuses: ecamBuses(topology), ...(opts.sanitizer === false ? { sanitizerOn: false } : {}) });
    const views = SharedViews.create(layout);
    enableTrace(views, opts.trace);
    const clock = ScaledClock.init(views.ctrlF64, opts.timeScale ?? 1);
    const bootMs = opts.bootTimeoutMs ?? 30_000;
    const workers: Worker[] = [];
    const start = (module: string, name: string, extra: object) => {
      const w = new Worker(ENTRY, { workerData: { module, sab: views.sab, layout, ...extra } });
      workers.push(w);
      const client = new RpcClient(w, name);
      const ready = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not start within ${bootMs} ms`)), bootMs);
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
      };
      const hw = start(HW_MODULE, 'hardware worker', { config });
      const cpus = Array.from({ length: ncpus }, (_, cpu) => start(CPU_MODULE, `cpu${cpu}`, { cpu, echo: !!opts.echoLog }));
      await Promise.all([hw.ready, ...cpus.map((c) => c.ready)]);
      return new System(views, layout, clock, new OpClient<HwOps>(hw.client), cpus.map((c) => new OpClient<KernelOps>(c.client)), workers, features, topology, opts.seed ?? 1);
    } catch (e) {
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

  /** Trace records every producer wrote since the last call, on one platform-time timeline. */
  trace(): RawTraceRecord[] {
    this.tracer ??= new TraceCollector(this.views);
    return this.tracer.drain();
  }

  /** Trace records overwritten before trace() read them. */
  traceLost(): number {
    return this.tracer?.lost ?? 0;
  }

  /** Kernel log lines every CPU printed since the last call, in time order. */
  async dmesg(): Promise<LogEntry[]> {
    const all = await Promise.all(this.cpus.map((c) => c.op('dmesg')));
    return all.flat().sort((a, b) => a.t - b.t);
  }

  stats(): StatsSnapshot {
    return statsSnapshot(this.views);
  }

  /** Hardware heartbeat (moves while the hardware loop runs). */
  heartbeat(): number {
    return Atomics.load(this.views.ctrl, CTRL.HW_HEARTBEAT);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.hw.op('stop', undefined, 5000), ...this.cpus.map((c) => c.op('stop', undefined, 5000))]);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
