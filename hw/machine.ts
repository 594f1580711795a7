// The emulated machine's hardware side: every device model, the physical-address decode of MMIO writes,
// and fault injection. Holds no worker-specific code: hw-worker.ts drives it from a worker thread,
// src/host/lockstep.ts from the driver's own thread.

import { commandName } from '../src/arch/smmu/commands.ts';
import { STAT, type SharedViews } from '../src/machine/layout.ts';
import { PA, PLATDEV_BYTES, SMMU_BYTES } from '../src/arch/platform.ts';
import type { PortWrite } from '../src/machine/mmio-port.ts';
import type { Clock } from '../src/machine/clock.ts';
import type { SmmuFeatures } from '../src/arch/smmu/features.ts';
import { HwContext, type MmioWindow } from './context.ts';
import { FailPoints } from '../src/protocol/fail-points.ts';
import type { HwFault } from '../src/protocol/faults.ts';
import type { HwReport } from '../src/protocol/ops/hw.ts';
import { EventScheduler } from './scheduler.ts';
import { SmmuV3 } from './smmu/smmu.ts';
import { TestDma } from './testdev.ts';
import { TESTDEV_BYTES, testdevBase } from '../src/arch/testdev.ts';
import { defaultTopology, type Topology } from '../src/protocol/topology.ts';
import { PcieHost } from './pcie/host.ts';
import { ScheduleRecorder } from './schedule-recorder.ts';
import type { ScheduleRecord } from '../src/protocol/schedule.ts';

export interface MachineConfig {
  features: SmmuFeatures;
  /** Platform ns a CR0/IRQ_CTRL/GBPA Update takes. */
  ackLatencyNs?: number;
  /** DMA test engines (hw/testdev.ts) at PA.PLATDEV_BASE + i * 4 KiB; default 1. */
  testDevices?: number;
  /** PCIe Root Ports and endpoint functions (src/protocol/topology.ts); default: the default topology. */
  topology?: Topology;
  /** Platform ns the SMMU waits for an ATC Invalidate Completion (hw/smmu/ats.ts). */
  atcTimeoutNs?: number;
  /** Base seed of fault probability draws (default 1). */
  seed?: number;
  /** Record the schedule (schedule-recorder.ts): who wrote each MMIO write, what happened between them. */
  record?: boolean;
}

export class Machine {
  readonly sched: EventScheduler;
  readonly ctx: HwContext;
  readonly smmu: SmmuV3;
  readonly testdevs: TestDma[] = [];
  readonly pcie: PcieHost;
  /** Platform time a hang ends (Infinity: until resumed), or -1 when not hung. */
  private hungUntil = -1;
  /** MMIO writes posted while hung, applied when the hang ends. */
  private readonly heldWrites: PortWrite[] = [];
  private readonly failPoints: FailPoints;
  private recoveriesSeen = 0;
  private readonly mmio: MmioWindow[] = [];
  /** The schedule recorder when the machine records (MachineConfig.record), else null. */
  private readonly recorder: ScheduleRecorder | null;

  constructor(
    readonly views: SharedViews,
    clock: Clock,
    cfg: MachineConfig,
  ) {
    for (const k of ['ackLatencyNs', 'atcTimeoutNs'] as const) {
      const v = cfg[k];
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`${k}: ${v} must be a non-negative number of platform ns`);
    }
    this.sched = new EventScheduler(clock);
    this.ctx = new HwContext(views, this.sched, cfg.seed ?? 1);
    this.failPoints = new FailPoints(views);
    this.recorder = cfg.record ? new ScheduleRecorder(views.layout.ncpus, this.ctx) : null;
    this.smmu = new SmmuV3(this.ctx, views.smmu, {
      features: cfg.features,
      ...(cfg.ackLatencyNs !== undefined ? { ackLatencyNs: cfg.ackLatencyNs } : {}),
      ...(cfg.atcTimeoutNs !== undefined ? { atcTimeoutNs: cfg.atcTimeoutNs } : {}),
    });
    const regs = this.smmu.regs;
    this.addMmio({ name: 'smmu', base: PA.SMMU_BASE, size: SMMU_BYTES, write: (off, size, lo, hi) => regs.write(off, size, lo, hi) });
    const ntest = cfg.testDevices ?? 1;
    if (!Number.isInteger(ntest) || ntest < 0 || ntest * TESTDEV_BYTES > PLATDEV_BYTES) {
      throw new Error(`testDevices: ${ntest} must be 0..${PLATDEV_BYTES / TESTDEV_BYTES}`);
    }
    for (let i = 0; i < ntest; i++) {
      const words = TESTDEV_BYTES / 4;
      const dev = new TestDma(this.ctx, views.platdev.subarray(i * words, (i + 1) * words), this.smmu.services, `testdev${i}`);
      this.testdevs.push(dev);
      this.addMmio({ name: dev.name, base: testdevBase(i), size: TESTDEV_BYTES, write: (off, size, lo, hi) => dev.regs.write(off, size, lo, hi) });
    }
    this.pcie = new PcieHost(this.ctx, views, cfg.topology ?? defaultTopology(), this.smmu.services);
    this.addMmio(this.pcie.ecamWindow());
    this.addMmio(this.pcie.barWindow());
    this.ctx.faults.target = {
      hang: (until) => {
        this.hungUntil = until;
      },
      resume: () => {
        this.hungUntil = -1;
      },
      setAckLatency: (ns) => this.smmu.setAckLatency(ns),
      serviceFailure: () => this.smmu.serviceFailure(),
      endpoint: (bdf) => this.pcie.endpoint(bdf),
    };
  }

  /** Whether the hardware is hung (fault 'hang'): it consumes no writes and runs nothing. */
  get hung(): boolean {
    if (this.hungUntil >= 0 && this.sched.now() >= this.hungUntil) this.hungUntil = -1;
    return this.hungUntil >= 0;
  }

  /** When the hardware next has something to do (a hang that ends is such a time). */
  nextDeadline(): number {
    return this.hung ? this.hungUntil : this.sched.nextDeadline();
  }

  /** Applies a hardware fault (src/protocol/faults.ts) through the fault engine. */
  inject(f: HwFault): void {
    this.ctx.faults.inject(f);
  }

  /** What the hardware saw of faults and of the sanitizer. */
  report(): HwReport {
    const s = this.ctx.stats;
    return {
      uaf: s[STAT.SAN_UAF]!,
      lazyWindow: s[STAT.SAN_LAZY]!,
      records: this.ctx.uaf.records.slice(),
      faultsFired: this.ctx.faults.fired(),
      corrupted: Object.fromEntries([...this.ctx.faults.corrupted].map(([op, n]) => [commandName(op), n])),
      devices: this.pcie.endpoints.map((e) => ({ bdf: e.bdf, resets: e.resetsDone, removed: e.isRemoved, inReset: e.inReset })),
    };
  }

  /** The schedule recorded since boot (src/protocol/schedule.ts). */
  schedule(): ScheduleRecord {
    if (!this.recorder) throw new Error('schedule: nothing recorded (boot the system with record: true)');
    return this.recorder.record();
  }

  /** Adds a device's MMIO window to the address decode. */
  addMmio(m: MmioWindow): void {
    for (const o of this.mmio) {
      if (m.base < o.base + o.size && o.base < m.base + m.size) throw new Error(`MMIO window ${m.name} overlaps ${o.name}`);
    }
    this.mmio.push(m);
  }

  /**
   * Applies one MMIO write from the write port to the device that decodes its address. A hung machine
   * takes none: they wait, in order, for the hang to end (the hardware worker does not even drain its
   * write port meanwhile; lockstep posts every write here at once).
   */
  write(w: PortWrite): void {
    if (this.hung) {
      this.heldWrites.push({ ...w });
      return;
    }
    this.ctx.stats[STAT.MMIO_WRITES]!++;
    if (this.recorder !== null) this.recorder.write(w);
    for (const m of this.mmio) {
      const off = w.pa - m.base;
      if (off < 0 || off >= m.size) continue;
      const outcome = m.write(off, w.size, w.lo, w.hi);
      if (outcome !== 'applied') this.ctx.tr.mmio_write_dropped?.(w.cpu, m.name, off, w.lo >>> 0, outcome);
      return;
    }
    this.ctx.tr.mmio_write_unassigned?.(w.cpu, w.pa);
  }

  /** Runs due hardware activity (after noticing the driver's recovery events); returns how many tasks ran. */
  run(budget?: number): number {
    const r = this.failPoints.recoveries();
    if (r.count !== this.recoveriesSeen) {
      this.recoveriesSeen = r.count;
      this.ctx.faults.event('recovery', r.rid);
    }
    if (this.hung) return 0;
    const held = this.heldWrites.splice(0);
    for (const w of held) this.write(w);
    return held.length + this.sched.run(budget);
  }
}
