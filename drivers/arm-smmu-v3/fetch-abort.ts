// skip_err's retry of a command fetch that aborted (CERROR_ABT), paced and bounded in platform time.
//
// Linux (__arm_smmu_cmdq_skip_err) acknowledges CERROR_ABT at once and lets the SMMU fetch again, with
// no limit. A fetch that never succeeds (CMDQ_BASE outside memory, an interconnect that keeps aborting)
// is then an interrupt storm with a log block per retry, for ever, and in lockstep a loop at one
// virtual instant. Here the retry is paced the way queue_poll() paces a wait:
//   - the first POLL_SPIN_COUNT retries of the fetch at one CONS go at once, so a transient abort
//     recovers exactly as in Linux;
//   - then each retry waits a delay that doubles from 1 us (queue_poll's udelay back-off): the handler
//     leaves the error active and the retry runs later as deferred work;
//   - once the fetch at that CONS has been aborting for longer than the poll timeout, the driver gives
//     up, says so once, and leaves the error active: the queue stays stopped, so every CMD_SYNC behind
//     it times out and is reported (-ETIMEDOUT to its issuer, its batch counted unconfirmed). A CMD_SYNC
//     whose poll times out still retries, at most once per poll timeout, so a queue whose abort went
//     away starts again.
//
// The state is shared by every CPU (whichever takes the GERROR interrupt or finds the error after its
// own SYNC timed out), in the command queue's state page (cmdq.ts W.ABT, the ERR_LOCK line), and is
// only touched under ERR_LOCK, like Linux's struct arm_smmu_cmdq fields under its locks.

import type { PhysMem } from '../../src/machine/dma.ts';

/** First back-off delay, doubled at each retry (queue_poll: qp->delay starts at 1 us). */
const FIRST_DELAY_NS = 1_000;

/** Int32 words of the state: the streak's CONS + 1 (0: none), its retries, gave-up flag, the abort left active. */
const I = { CONS: 0, RETRIES: 1, GAVE_UP: 2, LEFT: 3 } as const;
/** Int64 words after them (8-byte aligned): platform ns of the first abort, of the next allowed retry, of the last retry; the delay. */
const T = { SINCE: 0, NEXT_AT: 1, LAST: 2, DELAY: 3 } as const;
/** Bytes of the state: 4 int32 words, then 4 int64 words. */
export const FETCH_ABORT_STATE_BYTES = 16 + 32;

export type FetchAbortDecision =
  /** Acknowledge the error now: the SMMU fetches again. */
  | { kind: 'retry'; retries: number }
  /** Leave it active; retry in `inNs` (deferred work). */
  | { kind: 'later'; inNs: number }
  /** Leave it active for good: the fetch has been aborting for longer than the poll timeout. */
  | { kind: 'give-up'; retries: number; forNs: number }
  /** Given up before and retried less than a poll timeout ago: leave it active. */
  | { kind: 'stopped' };

export class FetchAbortRetry {
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  private readonly w: number;
  private readonly t: number;

  constructor(
    mem: PhysMem,
    /** Physical address of the state (FETCH_ABORT_STATE_BYTES, 8-byte aligned, zeroed at probe). */
    pa: number,
    private readonly pollTimeoutNs: number,
    /** Retries that go at once (ARM_SMMU_POLL_SPIN_COUNT). */
    private readonly spinCount: number,
  ) {
    this.i32 = mem.i32;
    this.i64 = mem.i64;
    this.w = mem.idx32(pa);
    this.t = mem.idx64(pa + 16);
  }

  private time(k: number): number {
    return Number(this.i64[this.t + k]!);
  }

  private setTime(k: number, ns: number): void {
    this.i64[this.t + k] = BigInt(Math.round(ns));
  }

  /**
   * Whether the command error now active (CONS.RD `rd`, GERROR.CMDQ_ERR toggle `toggle`) is the abort
   * this policy left active: already reported when it was raised, so not a new error.
   */
  isLeft(rd: number, toggle: number): boolean {
    return this.i32[this.w + I.LEFT] === leftMark(rd, toggle);
  }

  /** What to do about the abort of the fetch at `rd` (GERROR.CMDQ_ERR toggle `toggle`) at platform time `now`. */
  decide(rd: number, toggle: number, now: number): FetchAbortDecision {
    const w = this.w;
    const i = this.i32;
    if (i[w + I.CONS] !== rd + 1) {
      // A new streak: the fetch at another CONS aborted (the last one went through).
      i[w + I.CONS] = rd + 1;
      i[w + I.RETRIES] = 0;
      i[w + I.GAVE_UP] = 0;
      this.setTime(T.SINCE, now);
      this.setTime(T.NEXT_AT, now);
      this.setTime(T.DELAY, FIRST_DELAY_NS);
    }
    const d = this.choose(now);
    i[w + I.LEFT] = d.kind === 'retry' ? 0 : leftMark(rd, toggle);
    if (d.kind === 'retry') {
      i[w + I.RETRIES]++;
      this.setTime(T.LAST, now);
    }
    return d;
  }

  private choose(now: number): FetchAbortDecision {
    const w = this.w;
    const i = this.i32;
    const retries = i[w + I.RETRIES]!;
    if (i[w + I.GAVE_UP]) return now - this.time(T.LAST) > this.pollTimeoutNs ? { kind: 'retry', retries } : { kind: 'stopped' };
    if (retries < this.spinCount) return { kind: 'retry', retries };
    const forNs = now - this.time(T.SINCE);
    if (forNs > this.pollTimeoutNs) {
      i[w + I.GAVE_UP] = 1;
      return { kind: 'give-up', retries, forNs };
    }
    const at = this.time(T.NEXT_AT);
    if (now < at) return { kind: 'later', inNs: at - now };
    const delay = this.time(T.DELAY);
    this.setTime(T.NEXT_AT, now + delay);
    this.setTime(T.DELAY, delay * 2);
    return { kind: 'retry', retries };
  }
}

/** The LEFT word for an abort at `rd` with GERROR.CMDQ_ERR toggle `toggle`: each new error flips the toggle. */
function leftMark(rd: number, toggle: number): number {
  return ((rd << 1) | (toggle ? 1 : 0)) + 1;
}
