// Platform time: one clock both sides read, in platform nanoseconds.
//
// Platform time runs `scale` times faster than the host's monotonic clock, so a test can run the
// architecture's and Linux's long timeouts (1 s CMD_SYNC poll, 100 ms FLR, 60 s ready poll) quickly by
// raising the scale, while every timeout stays written in platform time. In lockstep runs a
// VirtualClock replaces it: time moves only when the single thread delays or waits.

import { performance } from 'node:perf_hooks';
import { CTRL } from './layout.ts';

export interface Clock {
  /** Platform time in nanoseconds. */
  now(): number;
}

/**
 * Host monotonic time in ms, comparable across threads. performance.now() is cheap but relative to
 * this thread's start, so each thread calibrates it once against process.hrtime (CLOCK_MONOTONIC,
 * shared by all threads of the process).
 */
const threadOffsetMs = (() => {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 5; i++) {
    const a = performance.now();
    const h = Number(process.hrtime.bigint() / 1000n) / 1000;
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = h - (a + b) / 2;
    }
  }
  return offset;
})();

export function hostNowMs(): number {
  return performance.now() + threadOffsetMs;
}

export class ScaledClock implements Clock {
  readonly epochMs: number;
  readonly scale: number;
  private readonly nsPerHostMs: number;

  constructor(ctrlF64: Float64Array) {
    this.epochMs = ctrlF64[CTRL.F64_EPOCH_MS]!;
    this.scale = ctrlF64[CTRL.F64_SCALE]!;
    if (!(this.scale > 0)) throw new Error(`platform time scale ${this.scale} must be > 0`);
    this.nsPerHostMs = 1e6 * this.scale;
  }

  /** Starts platform time at 0 now, running `scale` times faster than the host. */
  static init(ctrlF64: Float64Array, scale: number): ScaledClock {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`--time-scale: ${scale} must be a positive number`);
    ctrlF64[CTRL.F64_EPOCH_MS] = hostNowMs();
    ctrlF64[CTRL.F64_SCALE] = scale;
    return new ScaledClock(ctrlF64);
  }

  now(): number {
    return (hostNowMs() - this.epochMs) * this.nsPerHostMs;
  }

  /** Host milliseconds that a span of platform time takes. */
  hostMs(platformNs: number): number {
    return platformNs / this.nsPerHostMs;
  }
}

/** Lockstep time: advances only when told. */
export class VirtualClock implements Clock {
  private t = 0;
  now(): number {
    return this.t;
  }
  advanceTo(ns: number): void {
    if (ns > this.t) this.t = ns;
  }
}
