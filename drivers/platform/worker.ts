// The platform for a driver CPU running in its own worker thread: MMIO writes go through the shared
// write port, reads come straight from the register read views, time is the scaled platform clock,
// and waits spin for about one wake-up's worth before sleeping in Atomics.wait.

import { type LogEntry } from '../../src/protocol/log.ts';
import { CPUW, CTRL, type SharedViews } from '../../src/machine/layout.ts';
import { WritePortProducer } from '../../src/machine/mmio-port.ts';
import { PlatformBase } from './platform.ts';
import { ScaledClock } from '../../src/machine/clock.ts';
import { TIMEOUT } from '../../src/arch/time.ts';
import { waitWhileEqual } from '../../src/machine/wait.ts';

export class WorkerPlatform extends PlatformBase<ScaledClock> {
  private readonly port: WritePortProducer;
  private readonly wakeIdx: number;
  private readonly memWaiters: { view: Int32Array; index: number };
  private lastWake = 0;
  private lastSev: number;
  /** Set when a read gave up waiting for this CPU's writes (the hardware stopped answering). */
  private stale = false;

  constructor(views: SharedViews, cpu: number, echo?: (line: string, e: LogEntry) => void) {
    super(views, cpu, new ScaledClock(views.ctrlF64), echo);
    this.port = new WritePortProducer(views, cpu, this.clock, TIMEOUT.SMMU_POLL);
    this.wakeIdx = views.cpuWord(cpu, CPUW.WAKE);
    this.memWaiters = { view: views.ctrl, index: CTRL.MEM_WAITERS };
    this.lastSev = Atomics.load(views.ctrl, CTRL.SEV);
  }

  protected post(pa: number, size: number, lo: number, hi: number): void {
    this.port.post(pa, size, lo, hi);
  }

  protected beforeRead(): void {
    // Reads do not pass this CPU's posted writes (PCIe ordering). If the hardware has stopped
    // consuming them, say so once and read the registers as they stand.
    if (this.stale) {
      if (!this.port.drained()) return;
      this.stale = false;
    }
    if (!this.port.flushOwnWrites()) {
      this.stale = true;
      this.log('err', `cpu${this.cpu}: MMIO read: the hardware has not consumed this CPU's writes; reading stale registers`);
    }
  }

  /** Takes interrupts if on and one was raised for this CPU since we last looked (one load). */
  private checkIrqs(): void {
    if (!this.core.irqsEnabled()) return;
    const w = Atomics.load(this.views.cpus, this.wakeIdx);
    if (w === this.lastWake) return;
    this.lastWake = w;
    this.core.take();
  }

  cpuRelax(): void {
    this.checkIrqs();
  }

  delay(ns: number): void {
    if (Number.isNaN(ns)) throw new RangeError(`cpu${this.cpu}: delay of NaN ns (a delay computed from a bad value)`);
    const end = this.clock.now() + ns;
    while (this.clock.now() < end) this.checkIrqs();
  }

  sleep(ns: number): void {
    const end = this.clock.now() + ns;
    const waiting = { view: this.views.cpus, index: this.views.cpuWord(this.cpu, CPUW.WAITING) };
    for (;;) {
      this.core.schedule();
      const left = end - this.clock.now();
      if (left <= 0) return;
      const w = Atomics.load(this.views.cpus, this.wakeIdx);
      if (this.core.irqsEnabled() && this.irqc.anyPending(this.cpu)) continue;
      waitWhileEqual(this.views.cpus, this.wakeIdx, w, this.clock.hostMs(left), waiting);
    }
  }

  wfe(timeoutNs: number): void {
    // The event register: an SEV since the last WFE makes this one return at once.
    const ctrl = this.views.ctrl;
    const now = Atomics.load(ctrl, CTRL.SEV);
    if (now !== this.lastSev) {
      this.lastSev = now;
      return;
    }
    waitWhileEqual(ctrl, CTRL.SEV, now, this.clock.hostMs(timeoutNs), this.memWaiters);
    this.lastSev = Atomics.load(ctrl, CTRL.SEV);
  }

  waitMemWhileEqual(pa: number, expected: number, timeoutNs: number): boolean {
    return waitWhileEqual(this.mem.i32, this.mem.idx32(pa), expected, this.clock.hostMs(timeoutNs), this.memWaiters);
  }
}
