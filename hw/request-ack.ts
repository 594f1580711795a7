// Request/acknowledge register pairs (SMMUv3 CR0 -> CR0ACK, IRQ_CTRL -> IRQ_CTRLACK; 6.3.9, 6.3.16).
//
// Software writes the wanted value to the request register; each field whose value differs from the
// acknowledge register starts an Update, which completes after a latency: the device's side effects
// run, then the acknowledge register shows the new value. Writing a field again while its Update is in
// flight is CONSTRAINED UNPREDICTABLE; from SMMUv3.2 the permitted behaviours are to ignore the new value
// (the first Update completes) or to abandon the Update when the new value equals the original. This
// model ignores the new value: the register reads back what was last written, the ACK what was first.

import type { RegisterFile } from './regfile.ts';
import type { HwContext } from './context.ts';

export class RequestAck<N extends string> {
  /** Bits currently in an Update, and the values they are moving to. */
  private inFlight = 0;
  private target = 0;
  private scheduled = false;

  constructor(
    private readonly ctx: HwContext,
    private readonly regs: RegisterFile<N>,
    private readonly req: N,
    private readonly ack: N,
    private readonly latencyNs: () => number,
    /** Runs when an Update completes, before the ACK register changes: (old ack, new ack). */
    private readonly apply: (oldAck: number, newAck: number) => void,
  ) {
    regs.onWrite(req, () => this.written());
  }

  private written(): void {
    const want = this.regs.get(this.req);
    const ack = this.regs.get(this.ack);
    const starting = (want ^ ack) & ~this.inFlight;
    const rewritten = (want ^ this.target) & this.inFlight;
    if (rewritten) this.ctx.tr.smmuv3_update_ignored?.(this.req, want, rewritten);
    if (!starting) return;
    this.inFlight |= starting;
    this.target = (this.target & ~starting) | (want & starting);
    if (!this.scheduled) {
      this.scheduled = true;
      this.ctx.sched.after(this.latencyNs(), () => this.complete());
    }
  }

  private complete(): void {
    this.scheduled = false;
    const old = this.regs.get(this.ack);
    const next = ((old & ~this.inFlight) | (this.target & this.inFlight)) >>> 0;
    this.inFlight = 0;
    this.apply(old, next);
    this.regs.set(this.ack, next);
  }
}
