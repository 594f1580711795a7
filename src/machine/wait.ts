// Waiting on a shared word without burning a core for long, and waking without needless notifies.
//
// Measured on the 2-core target machine: a spin ping-pong between two workers takes ~110 ns (~400 ns
// when the host is in its slow phase) while an Atomics.wait/notify round trip takes ~55 us. So a
// waiter spins for at least one wake-up's worth (SPIN_MS) before it sleeps, and a waker only calls
// Atomics.notify when the waiter flag says somebody sleeps.

import { hostNowMs } from './clock.ts';

/** How long to spin before sleeping: one Atomics.wait wake-up (~55 us) and some margin. */
export const SPIN_MS = 0.075;

export interface WaiterFlag {
  view: Int32Array;
  index: number;
}

/**
 * Waits until view[index] differs from `expected` or timeoutMs (host time) passes; true when it
 * changed. Spins first, then sleeps in Atomics.wait with the waiter flag raised.
 */
export function waitWhileEqual(
  view: Int32Array,
  index: number,
  expected: number,
  timeoutMs: number,
  waiters: WaiterFlag,
  spinMs = SPIN_MS,
): boolean {
  // A NaN timeout would make both loops below run until the word changes, perhaps forever.
  if (Number.isNaN(timeoutMs)) throw new RangeError(`wait on word ${index}: timeout is NaN (a delay computed from a bad value)`);
  const start = hostNowMs();
  const spinUntil = start + Math.min(spinMs, timeoutMs);
  // Check the clock only every few iterations: performance.now() costs more than the load.
  for (let i = 0; ; i++) {
    if (Atomics.load(view, index) !== expected) return true;
    if ((i & 63) === 63 && hostNowMs() >= spinUntil) break;
  }
  const deadline = start + timeoutMs;
  for (;;) {
    const left = deadline - hostNowMs();
    if (left <= 0) return Atomics.load(view, index) !== expected;
    Atomics.add(waiters.view, waiters.index, 1);
    const r = Atomics.wait(view, index, expected, left);
    Atomics.sub(waiters.view, waiters.index, 1);
    if (r === 'not-equal' || Atomics.load(view, index) !== expected) return true;
  }
}

/** Bumps a wake word and notifies only if the waiter flag says somebody sleeps on it. */
export function wakeWord(view: Int32Array, index: number, waiters: WaiterFlag): void {
  Atomics.add(view, index, 1);
  if (Atomics.load(waiters.view, waiters.index) !== 0) Atomics.notify(view, index);
}
