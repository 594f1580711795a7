// What every hardware model gets: memory, interrupts, the scheduler, statistics and the system-side
// effects of a bus write (MSI to the doorbell, a write into DRAM that may wake a polling CPU).

import { PhysMem } from '../src/machine/dma.ts';
import { InterruptController } from '../src/machine/irq.ts';
import { CTRL, type SharedViews } from '../src/machine/layout.ts';
import type { EventScheduler } from './scheduler.ts';
import { createTracer, type Tracer } from '../src/protocol/tracer.ts';
import type { WriteOutcome } from './regfile.ts';
import { FaultEngine } from './faults.ts';
import { UafMonitor } from './uaf.ts';

export class HwContext {
  readonly mem: PhysMem;
  readonly irqc: InterruptController;
  readonly stats: Float64Array;
  /** The hardware's trace points (src/protocol/trace-points.ts), into trace ring 0. */
  readonly tr: Tracer<'hw'>;
  /** The armed hardware faults and the chances the models offer them (faults.ts). */
  readonly faults: FaultEngine;
  /** The DMA use-after-free sanitizer's eye on the transfer path (uaf.ts). */
  readonly uaf: UafMonitor;

  constructor(
    readonly views: SharedViews,
    readonly sched: EventScheduler,
    /** Base seed of the faults' probability draws. */
    seed: number,
  ) {
    this.mem = new PhysMem(views);
    this.irqc = new InterruptController(views);
    this.stats = views.stats;
    this.tr = createTracer(views, 'hw', 0, this);
    this.faults = new FaultEngine(sched, seed, this.tr);
    this.uaf = new UafMonitor(views.sanitizer, views.stats, () => sched.now(), this.tr);
  }

  now(): number {
    return this.sched.now();
  }

  /**
   * A 32-bit MSI write from a device: to the doorbell it raises the vector, to DRAM it stores the
   * data (and wakes CPUs polling that word). Returns false when the write aborts (nothing there).
   */
  msiWrite(pa: number, data: number): boolean {
    if (this.irqc.isDoorbell(pa)) return this.irqc.msi(data >>> 0);
    if (this.mem.contains(pa, 4) && (pa & 3) === 0) {
      const i = this.mem.idx32(pa);
      Atomics.store(this.mem.i32, i, data | 0);
      if (Atomics.load(this.views.ctrl, CTRL.MEM_WAITERS) !== 0) Atomics.notify(this.mem.i32, i);
      return true;
    }
    return false;
  }

  /** Sends a wake-up event (SEV) to every CPU waiting in WFE. */
  sev(): void {
    const ctrl = this.views.ctrl;
    Atomics.add(ctrl, CTRL.SEV, 1);
    if (Atomics.load(ctrl, CTRL.MEM_WAITERS) !== 0) Atomics.notify(ctrl, CTRL.SEV);
  }
}

/** A device's MMIO window: writes at offsets inside it go to `write`. */
export interface MmioWindow {
  name: string;
  base: number;
  size: number;
  write(off: number, size: number, lo: number, hi: number): WriteOutcome;
}
