// The emulated machine's hardware side: every device model, the physical-address decode of MMIO writes,
// and fault injection. Holds no worker-specific code: hw-worker.ts drives it from a worker thread,
// src/lockstep.ts from the driver's own thread.

import { PA, SMMU_BYTES, STAT, type SharedViews } from '../src/layout.ts';
import type { PortWrite } from '../src/mmio-port.ts';
import type { Clock } from '../src/time.ts';
import type { Fault } from '../src/faults.ts';
import type { SmmuFeatures } from '../src/smmu/features.ts';
import { HwContext } from './context.ts';
import { EventScheduler } from './scheduler.ts';
import { SmmuV3 } from './smmu/smmu.ts';

export interface MachineConfig {
  features: SmmuFeatures;
  /** Platform ns a CR0/IRQ_CTRL/GBPA Update takes. */
  ackLatencyNs?: number;
}

export class Machine {
  readonly sched: EventScheduler;
  readonly ctx: HwContext;
  readonly smmu: SmmuV3;
  /** While hung, the machine consumes no writes and runs nothing (fault 'hang'). */
  hung = false;

  constructor(
    readonly views: SharedViews,
    clock: Clock,
    cfg: MachineConfig,
  ) {
    this.sched = new EventScheduler(clock);
    this.ctx = new HwContext(views, this.sched);
    this.smmu = new SmmuV3(this.ctx, views.smmu, {
      features: cfg.features,
      ...(cfg.ackLatencyNs !== undefined ? { ackLatencyNs: cfg.ackLatencyNs } : {}),
    });
  }

  /** Applies one MMIO write from the write port to the device that decodes its address. */
  write(w: PortWrite): void {
    this.ctx.stats[STAT.MMIO_WRITES]!++;
    const off = w.pa - PA.SMMU_BASE;
    if (off >= 0 && off < SMMU_BYTES) {
      const outcome = this.smmu.regs.write(off, w.size, w.lo, w.hi);
      if (outcome !== 'applied') this.ctx.note(`cpu${w.cpu}: SMMU write of 0x${(w.lo >>> 0).toString(16)} at +0x${off.toString(16)} ${outcome}`);
      return;
    }
    this.ctx.note(`cpu${w.cpu}: write to PA 0x${w.pa.toString(16)} decodes to no device; dropped`);
  }

  /** Runs due hardware activity; returns how many tasks ran. */
  run(budget?: number): number {
    if (this.hung) return 0;
    return this.sched.run(budget);
  }

  inject(f: Fault): void {
    switch (f.kind) {
      case 'cmdq-fetch-abort':
        this.smmu.cmdq.injectFetchAborts(f.count);
        return;
      case 'hang':
        this.hung = true;
        return;
      case 'resume':
        this.hung = false;
        return;
      case 'ack-latency':
        this.smmu.setAckLatency(f.ns);
        return;
    }
  }
}
