// What every simulated CPU has whichever platform runs it: an interrupt mask, handlers for the vectors
// routed to it, and a kernel log.
//
// Interrupts are taken only at interrupts-on points (the platform calls take() when it enters a
// delay, a sleep, an idle wait, or when interrupts are re-enabled), never in the middle of driver code:
// the equivalent of a CPU that only checks its interrupt line between instructions of a polling loop.
// A pending interrupt therefore waits while this CPU polls a CMD_SYNC with interrupts off, exactly the
// situation Linux is in.

import type { InterruptController } from '../../src/machine/irq.ts';
import type { Clock } from '../../src/machine/clock.ts';
import { LogRing, formatLog, type LogEntry, type LogLevel } from '../../src/protocol/log.ts';
import type { Tracer } from '../../src/protocol/tracer.ts';

export type IrqHandler = (vector: number) => void;

export class CpuCore {
  private readonly deferred: { work: () => boolean; at: number }[] = [];
  private inDeferred = false;
  private irqsOn = true;
  private inHandler = false;
  /** The interrupt controller's raisedSeq when this CPU last found nothing left pending. */
  private seenSeq = -1;
  private readonly handlers = new Map<number, { name: string; fn: IrqHandler }>();
  /** This CPU's kernel log: a bounded ring, so a CPU that prints without end cannot exhaust memory. */
  readonly logRing = new LogRing();
  /** Interrupts taken, by vector. */
  readonly irqCounts = new Map<number, number>();

  constructor(
    readonly cpu: number,
    private readonly irqc: InterruptController,
    private readonly clock: Clock,
    /** This CPU's trace points: `printk` receives every log line too; irq_handler_* bracket handlers. */
    private readonly trace: Tracer<'driver'>,
    /** Also echo log lines as they happen (e.g. to stderr in the CLI's verbose mode). */
    private readonly echo?: (line: string, e: LogEntry) => void,
  ) {}

  irqsEnabled(): boolean {
    return this.irqsOn;
  }

  localIrqSave(): boolean {
    const was = this.irqsOn;
    this.irqsOn = false;
    return was;
  }

  localIrqRestore(wasEnabled: boolean): void {
    this.irqsOn = wasEnabled;
    if (wasEnabled) this.take();
  }

  requestIrq(vector: number, name: string, fn: IrqHandler): void {
    if (this.handlers.has(vector)) throw new Error(`irq ${vector}: already requested by ${this.handlers.get(vector)!.name}`);
    this.handlers.set(vector, { name, fn });
    this.irqc.route(vector, this.cpu);
  }

  freeIrq(vector: number): void {
    this.handlers.delete(vector);
    this.irqc.disable(vector);
  }

  /** Runs handlers for pending interrupts if interrupts are on; handlers run with interrupts off. */
  /**
   * Work that runs at this CPU's interrupts-on points, from `delayNs` of platform time on, until it
   * returns true: a kernel thread or a workqueue item that is runnable but has not had the CPU yet
   * (the event thread that evtq-overflow stalls, a reset work item).
   */
  deferWork(work: () => boolean, delayNs = 0): void {
    this.deferred.push({ work, at: this.clock.now() + delayNs });
  }

  /** Platform time the earliest deferred work is due (Infinity: none); lockstep-N wakes a CPU for it. */
  nextDeferredAt(): number {
    let t = Infinity;
    for (const d of this.deferred) if (d.at < t) t = d.at;
    return t;
  }

  /**
   * A schedule point (the CPU sleeps: msleep, idle): interrupts are taken, then deferred work due now
   * runs. Only sleeps are schedule points, never a busy-wait or an irq-restore, so work never runs in
   * the middle of a code path that holds per-CPU state (a command batch being built, say).
   */
  schedule(): void {
    this.take();
    if (this.deferred.length && this.irqsOn && !this.inHandler) this.runDeferred();
  }

  take(): void {
    if (!this.irqsOn || this.inHandler) return;
    // Nothing raised since the last look emptied the pending bits: one load instead of the bitmap.
    const seq = this.irqc.raisedSeq(this.cpu);
    if (seq === this.seenSeq) return;
    if (!this.irqc.anyPending(this.cpu)) {
      this.seenSeq = seq;
      return;
    }
    this.inHandler = true;
    this.irqsOn = false;
    try {
      // Everything pending is taken; what is raised meanwhile moves the sequence past `seq`.
      for (let v = this.irqc.takeOne(this.cpu); v >= 0; v = this.irqc.takeOne(this.cpu)) {
        this.irqCounts.set(v, (this.irqCounts.get(v) ?? 0) + 1);
        const h = this.handlers.get(v);
        if (!h) {
          this.log('warn', `irq ${v}: nobody cared (no handler on cpu${this.cpu})`);
          continue;
        }
        this.trace.irq_handler_entry?.(v, h.name);
        h.fn(v);
        this.trace.irq_handler_exit?.(v);
      }
      this.seenSeq = seq;
    } finally {
      this.irqsOn = true;
      this.inHandler = false;
    }
  }

  /** Runs due deferred work, in process context (interrupts on), never nested in itself. */
  private runDeferred(): void {
    if (this.inDeferred) return;
    this.inDeferred = true;
    try {
      const now = this.clock.now();
      // Oldest first; work queued by work that runs now waits for the next point.
      for (const d of this.deferred.splice(0)) {
        if (d.at > now || !d.work()) this.deferred.push(d);
      }
    } finally {
      this.inDeferred = false;
    }
  }

  log(level: LogLevel, msg: string): void {
    const e: LogEntry = { t: this.clock.now(), cpu: this.cpu, level, msg };
    this.logRing.push(e);
    this.trace.printk?.(level, msg);
    this.echo?.(formatLog(e), e);
  }
}
