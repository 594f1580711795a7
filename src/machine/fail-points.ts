// The driver's should-fail points, in the shared buffer so that every CPU (and the host that arms
// them) sees one count: arming point p for n calls makes the next n calls of shouldFail(p), on any
// CPU, answer true, each exactly once (the count goes down with a compare-and-swap). -1 arms a point
// until it is disarmed. Which point is which slot is the protocol's FAIL_POINTS order.

import { FP, type SharedViews } from './layout.ts';

export class FailPoints {
  private readonly words: Int32Array;

  constructor(views: SharedViews) {
    this.words = views.failPoints;
  }

  private at(slot: number, word: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= FP.POINTS) throw new RangeError(`fail point slot ${slot}: must be 0..${FP.POINTS - 1}`);
    return slot * FP.WORDS + word;
  }

  /** Arms a point for the next `times` calls (-1: until disarmed; 0 disarms it). */
  arm(slot: number, times: number): void {
    if (!Number.isInteger(times) || times < -1 || times > 0x7fff_ffff) throw new RangeError(`fail point: ${times} must be -1 or a count from 0 to 2^31-1`);
    Atomics.store(this.words, this.at(slot, FP.REMAINING), times);
  }

  /** Whether this call should fail: consumes one of the armed calls. */
  shouldFail(slot: number): boolean {
    const i = this.at(slot, FP.REMAINING);
    for (;;) {
      const left = Atomics.load(this.words, i);
      if (left === 0) return false;
      if (left < 0 || Atomics.compareExchange(this.words, i, left, left - 1) === left) {
        Atomics.add(this.words, this.at(slot, FP.HITS), 1);
        return true;
      }
    }
  }

  /** Calls of a point that failed so far. */
  hits(slot: number): number {
    return Atomics.load(this.words, this.at(slot, FP.HITS));
  }
}
