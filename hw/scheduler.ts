// The hardware's event loop: tasks to run as soon as possible and timers in platform time.
//
// Every hardware activity is a task or a timer here (a CR0 update being acknowledged, the command
// queue consuming a slice of commands, an ATC invalidation completing after its latency), so a slow
// activity never blocks the others: it simply schedules its continuation. The same scheduler runs in
// the hardware worker (real clock) and in lockstep (virtual clock advanced by the driver thread).

import type { Clock } from '../src/machine/clock.ts';

export interface Timer {
  readonly at: number;
  cancelled: boolean;
}

interface TimerEntry extends Timer {
  fn: () => void;
  seq: number;
}

export class EventScheduler {
  /** Tasks to run, in order, at [readyHead, readyTail); the array is reused, never truncated. */
  private readonly ready: ((() => void) | undefined)[] = [];
  private readyHead = 0;
  private readyTail = 0;
  private readonly heap: TimerEntry[] = [];
  private seq = 0;
  /** Told every timer that runs (a schedule recorder's hook, schedule-recorder.ts); tasks are not timers. */
  onTimer: (() => void) | null = null;

  constructor(readonly clock: Clock) {}

  now(): number {
    return this.clock.now();
  }

  /** Runs fn as soon as the loop gets to it, before timers that are not yet due. */
  soon(fn: () => void): void {
    this.ready[this.readyTail++] = fn;
  }

  /** Runs fn once platform time reaches `at`. */
  at(at: number, fn: () => void): Timer {
    // A NaN deadline would never come due and break the heap's order: refuse it where it is made.
    if (Number.isNaN(at)) throw new RangeError('scheduler: timer at NaN platform ns (a delay computed from a bad value)');
    const t: TimerEntry = { at, fn, cancelled: false, seq: this.seq++ };
    this.push(t);
    return t;
  }

  after(ns: number, fn: () => void): Timer {
    return this.at(this.clock.now() + Math.max(0, ns), fn);
  }

  /** Earliest pending timer, or Infinity. */
  nextDeadline(): number {
    while (this.heap.length && this.heap[0]!.cancelled) this.pop();
    return this.heap.length ? this.heap[0]!.at : Infinity;
  }

  hasReady(): boolean {
    return this.readyHead < this.readyTail;
  }

  /** Runs ready tasks and due timers until none is left or `budget` ran; returns how many ran. */
  run(budget = Infinity): number {
    let n = 0;
    for (;;) {
      if (n >= budget) return n;
      if (this.readyHead < this.readyTail) {
        const fn = this.ready[this.readyHead]!;
        this.ready[this.readyHead++] = undefined;
        // Drained: start over at the front (no array truncation per task).
        if (this.readyHead === this.readyTail) this.readyHead = this.readyTail = 0;
        fn();
        n++;
        continue;
      }
      if (this.heap.length && this.nextDeadline() <= this.clock.now()) {
        const t = this.pop()!;
        this.onTimer?.();
        t.fn();
        n++;
        continue;
      }
      return n;
    }
  }

  private push(t: TimerEntry): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): TimerEntry | undefined {
    const h = this.heap;
    if (!h.length) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: TimerEntry, b: TimerEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
