// Recording a schedule (System.boot({ record: true }); the format is src/protocol/schedule.ts): the
// order in which the hardware saw what the CPUs did. The machine tells the recorder every MMIO write it
// applies, and the recorder hooks the hardware's interrupt controller, fault engine and scheduler, so
// that each interrupt raised, fault fired and timer run is positioned by the writes applied before it.
// Nothing here runs when recording is off: the machine checks for a recorder once per write, the hooks
// are null.

import type { PortWrite } from '../src/machine/mmio-port.ts';
import type { FaultKind } from '../src/protocol/faults.ts';
import { SCHEDULE_FORMAT, SCHEDULE_VERSION, countWrites, type ScheduleFault, type ScheduleRecord, type WriterRun } from '../src/protocol/schedule.ts';
import type { HwContext } from './context.ts';
import { WriteHash } from './write-hash.ts';

export class ScheduleRecorder {
  private writes = 0;
  /** The writer sequence: [cpu, count] runs, the last one growing. */
  private readonly runs: WriterRun[] = [];
  private readonly hash = new WriteHash();
  /** Interrupts raised, flat: afterWrites, cpu, vector. */
  private readonly irqs: number[] = [];
  private readonly faults: ScheduleFault[] = [];
  /** Timers run: [afterWrites, count], the last one growing while no write comes. */
  private readonly timers: [number, number][] = [];

  constructor(
    private readonly cpus: number,
    ctx: HwContext,
  ) {
    ctx.irqc.onRaise = (line, cpu) => {
      this.irqs.push(this.writes, cpu, line);
    };
    ctx.faults.onFire = (kind: FaultKind) => {
      this.faults.push({ afterWrites: this.writes, kind });
    };
    ctx.sched.onTimer = () => {
      const last = this.timers[this.timers.length - 1];
      if (last && last[0] === this.writes) last[1]++;
      else this.timers.push([this.writes, 1]);
    };
  }

  /** An MMIO write the hardware applies now (what it does in consequence comes after it). */
  write(w: PortWrite): void {
    this.writes++;
    this.hash.add(w);
    const last = this.runs[this.runs.length - 1];
    if (last && last[0] === w.cpu) last[1]++;
    else this.runs.push([w.cpu, 1]);
  }

  /** What was recorded so far (a copy). */
  record(): ScheduleRecord {
    const irqs: ScheduleRecord['irqs'] = [];
    for (let i = 0; i < this.irqs.length; i += 3) irqs.push({ afterWrites: this.irqs[i]!, cpu: this.irqs[i + 1]!, line: this.irqs[i + 2]! });
    return {
      format: SCHEDULE_FORMAT,
      version: SCHEDULE_VERSION,
      cpus: this.cpus,
      writes: this.runs.map(([cpu, n]) => [cpu, n]),
      irqs,
      faults: this.faults.map((f) => ({ ...f })),
      timers: this.timers.map(([at, n]) => [at, n]),
      totals: { writes: this.writes, irqs: irqs.length, faults: this.faults.length, timers: countWrites(this.timers) },
      writeHash: this.hash.hex(),
    };
  }
}
