// Lockstep: the hardware models and one driver CPU in a single thread, with virtual time.
//
// MMIO writes are applied the moment they are posted and the hardware then runs until it has nothing
// left to do now (a doorbell dispatches the command queue synchronously). Time moves only when the
// driver delays, sleeps or waits; then the virtual clock jumps from one hardware timer to the next, so
// a run is exactly repeatable and a 1 s platform timeout costs no host time.

import { Machine, type MachineConfig } from '../../hw/machine.ts';
import { checkFault, type Fault } from '../protocol/faults.ts';
import { routeFault } from './faults.ts';
import { defaultTopology, ecamBuses } from '../protocol/topology.ts';
import { TraceCollector, enableTrace, traceRecords, type TraceOptions } from './trace.ts';
import type { RawTraceRecord } from '../machine/trace-ring.ts';
import { type LogEntry } from '../protocol/log.ts';
import { CTRL, DEFAULT_MEM_BYTES, SharedViews, computeLayout } from '../machine/layout.ts';
import { PlatformBase } from '../../drivers/platform/platform.ts';
import type { IrqHandler } from '../../drivers/platform/cpu.ts';
import { VirtualClock } from '../machine/clock.ts';
import { DirectOps, type OpCaller } from '../protocol/rpc.ts';
import { KERNEL_OPS, type KernelOps } from '../protocol/ops/index.ts';
import { HW_OPS, type HwOps } from '../protocol/ops/hw.ts';
import { Kernel } from '../../drivers/kernel.ts';
import { KERNEL_IMPLS } from '../../drivers/ops/index.ts';
import { hwOps } from '../../hw/ops.ts';
import { statsSnapshot, type StatsSnapshot } from './stats.ts';

/** Virtual ns one cpu_relax() takes. */
const RELAX_NS = 10;
/**
 * Interrupts taken at one virtual instant that make an interrupt storm. A run takes a handful at a time
 * (an event, a GERROR); only a handler whose own work raises its interrupt again at once gets near this.
 */
const STORM_IRQS = 100_000;

/**
 * The watchdog of a lockstep run fired: platform time passed its limit, so something waits without
 * end (a wait with no timeout, or one that keeps being renewed); or time stood still while interrupts
 * kept coming (a storm). Names what was running.
 */
export class Hang extends Error {}

export class LockstepPlatform extends PlatformBase<VirtualClock> {
  private lastSev = 0;
  /** Platform ns past which time may not advance (the watchdog), and what runs meanwhile. */
  private watchdog: { limitNs: number; what: string } | null = null;
  /**
   * Called each time the hardware ran (after an MMIO write, at each timer): what drains the trace rings
   * while a long operation runs in this one thread, which no host timer can interrupt.
   */
  afterHardware: (() => void) | null = null;
  /** Interrupts taken at platform time `stillAt` (the storm detector's count). */
  private irqsStill = 0;
  private stillAt = -1;

  /** Arms the watchdog: time may advance by at most `ns` from now while `what` runs; null disarms it. */
  setWatchdog(ns: number | null, what = ''): void {
    this.watchdog = ns === null ? null : { limitNs: this.clock.now() + ns, what };
  }

  constructor(
    views: SharedViews,
    readonly machine: Machine,
    clock: VirtualClock,
    echo?: (line: string, e: LogEntry) => void,
  ) {
    super(views, 0, clock, echo);
  }

  protected post(pa: number, size: number, lo: number, hi: number): void {
    this.machine.write({ pa, size, lo, hi, cpu: 0 });
    this.machine.run();
    this.afterHardware?.();
  }

  protected beforeRead(): void {
    // Writes were applied synchronously; nothing to wait for.
  }

  /**
   * Taking an interrupt costs no virtual time here, and the hardware answers a handler's register
   * writes at once: a handler whose work raises its interrupt again (a storm: Linux's skip_err retrying
   * a fetch that always aborts was one) would loop for ever at one instant, where the watchdog, which
   * needs time to pass, never fires. So interrupts are counted per instant, and a storm is a hang.
   */
  override requestIrq(vector: number, name: string, handler: IrqHandler): void {
    super.requestIrq(vector, name, (v) => {
      const now = this.clock.now();
      if (now !== this.stillAt) {
        this.stillAt = now;
        this.irqsStill = 0;
      } else if (++this.irqsStill >= STORM_IRQS) {
        this.irqsStill = 0;
        const w = this.watchdog ? ` while ${this.watchdog.what}` : '';
        throw new Hang(`interrupt storm: ${STORM_IRQS} interrupts taken at platform time ${(now / 1e9).toFixed(6)} s without time advancing (the last: vector ${v}, ${name})${w}`);
      }
      handler(v);
    });
  }

  /** Advances virtual time to `t`, running every hardware timer due on the way, in order. */
  private advanceTo(t: number): void {
    // NaN compares false with every deadline: the loop below would never end.
    if (Number.isNaN(t)) throw new RangeError('lockstep: advance to NaN platform ns (a delay computed from a bad value)');
    const w = this.watchdog;
    if (w && t > w.limitNs) {
      this.clock.advanceTo(w.limitNs);
      this.watchdog = null;
      throw new Hang(`watchdog: ${w.what} still running at platform time ${(w.limitNs / 1e9).toFixed(3)} s`);
    }
    for (;;) {
      const next = this.machine.nextDeadline();
      if (next > t) break;
      this.clock.advanceTo(next);
      this.machine.run();
      this.afterHardware?.();
    }
    this.clock.advanceTo(t);
    this.machine.run();
    this.afterHardware?.();
  }

  cpuRelax(): void {
    this.advanceTo(this.clock.now() + RELAX_NS);
    if (this.core.irqsEnabled()) this.core.take();
  }

  delay(ns: number): void {
    this.advanceTo(this.clock.now() + ns);
    if (this.core.irqsEnabled()) this.core.take();
  }

  sleep(ns: number): void {
    if (Number.isNaN(ns)) throw new RangeError('lockstep: sleep for NaN platform ns (a delay computed from a bad value)');
    const end = this.clock.now() + ns;
    this.core.schedule();
    while (this.clock.now() < end) {
      this.advanceTo(Math.min(end, this.machine.nextDeadline()));
      this.core.schedule();
    }
  }

  wfe(timeoutNs: number): void {
    const sev = Atomics.load(this.views.ctrl, CTRL.SEV);
    if (sev === this.lastSev) this.advanceTo(Math.min(this.clock.now() + timeoutNs, this.machine.nextDeadline()));
    this.lastSev = Atomics.load(this.views.ctrl, CTRL.SEV);
  }

  waitMemWhileEqual(pa: number, expected: number, timeoutNs: number): boolean {
    const i = this.mem.idx32(pa);
    const end = this.clock.now() + timeoutNs;
    for (;;) {
      if (Atomics.load(this.mem.i32, i) !== expected) return true;
      if (this.clock.now() >= end) return false;
      this.advanceTo(Math.min(end, this.machine.nextDeadline()));
    }
  }
}

export interface LockstepOptions extends MachineConfig {
  memBytes?: number;
  /** False turns the DMA sanitizer off (benchmarks of its cost only). */
  sanitizer?: boolean;
  /** Trace points to record; read them with the system's trace(). */
  trace?: TraceOptions;
  /**
   * Receives trace records as the run goes, before a ring fills (a one-thread run cannot be drained
   * from outside while an operation runs); trace() then returns only what came after the last call.
   */
  onTrace?: (records: RawTraceRecord[]) => void;
  echo?: (line: string, e: LogEntry) => void;
}

export interface LockstepSystem {
  views: SharedViews;
  machine: Machine;
  platform: LockstepPlatform;
  /** The kernel of CPU 0, and its operations as a worker would serve them (checked requests). */
  kernel: Kernel;
  cpu(n: number): OpCaller<KernelOps>;
  /** The hardware's operations (inject, report), called in this thread. */
  hw: OpCaller<HwOps>;
  /** Applies a fault (checked first): to the hardware at once, or by arming a driver should-fail point. */
  inject(fault: Fault): void;
  /** Trace records written since the last call, on one platform-time timeline. */
  trace(): RawTraceRecord[];
  /** Trace records overwritten before they were read. */
  traceLost(): number;
  /** The hardware's counters now. */
  stats(): StatsSnapshot;
  /** Ends the system: nothing may use it afterwards, and its buffer serves the next one in this thread. */
  dispose(): void;
}

/** Builds a one-thread system: shared buffer, hardware, and the platform for CPU 0. */
export function createLockstep(opts: LockstepOptions): LockstepSystem {
  const layout = computeLayout({ memBytes: opts.memBytes ?? DEFAULT_MEM_BYTES, ncpus: 1, traceRecords: traceRecords(opts.trace), ecamBuses: ecamBuses(opts.topology ?? defaultTopology()), ...(opts.sanitizer === false ? { sanitizerOn: false } : {}) });
  const views = SharedViews.create(layout);
  enableTrace(views, opts.trace);
  const clock = new VirtualClock();
  const machine = new Machine(views, clock, opts);
  const platform = new LockstepPlatform(views, machine, clock, opts.echo);
  platform.pages.init();
  const inject = (fault: Fault) => {
    routeFault(views, opts.seed ?? 1, clock.now(), checkFault(fault, 'fault'), (f) => machine.inject(f));
  };
  const collector = new TraceCollector(views);
  const sink = opts.onTrace;
  if (sink && opts.trace) {
    // Drained at a quarter of a ring: a single hardware run (one MMIO write, one timer) writes far fewer.
    const threshold = (views.layout.traceRecords ?? 0) / 4;
    platform.afterHardware = () => {
      if (collector.backlog >= threshold) sink(collector.drain());
    };
  }
  const kernel = new Kernel(platform);
  const cpu0 = new DirectOps(KERNEL_OPS, KERNEL_IMPLS, kernel);
  const cpu = (n: number) => {
    if (n !== 0) throw new Error(`cpu ${n}: no such CPU (lockstep runs 1 CPU)`);
    return cpu0;
  };
  const hw = new DirectOps(HW_OPS, hwOps(machine, () => {}), null);
  return { views, machine, platform, kernel, cpu, hw, inject, trace: () => collector.drain(), traceLost: () => collector.lost, stats: () => statsSnapshot(views), dispose: () => views.recycle() };
}
