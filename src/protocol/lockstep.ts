// Lockstep with N CPUs: the options a system boots with (System.boot({ cpus, lockstep })) and the
// scheduling strategies that choose, at every yield point, which runnable CPU runs next.
//
// The strategies are pure and seeded: given the same sequence of runnable sets they make the same
// choices, which (with the hardware's own determinism) is what makes a run repeat exactly.
//   round-robin  the next runnable CPU after the one that ran last, in CPU order
//   random       a uniformly random runnable CPU, from the seed
//   pct          Probabilistic Concurrency Testing with depth d (Burckhardt, Kothari, Musuvathi,
//                Nagarakatte, ASPLOS 2010): each CPU gets a random distinct priority from d .. d+n-1;
//                d-1 change points are drawn uniformly over the expected number of steps; the
//                runnable CPU with the highest priority runs; at step k_i (the i-th change point) the CPU about
//                to run drops to priority d-i, below every initial one, and the choice is made again. A bug of
//                depth d is found with probability at least 1/(n k^(d-1)) per run.

import { InputError, int, num, obj, oneOf, opt, type Infer } from './check.ts';
import { rng } from './random.ts';

export const LOCKSTEP_STRATEGIES = ['round-robin', 'random', 'pct'] as const;
export type LockstepStrategyName = (typeof LOCKSTEP_STRATEGIES)[number];

/** Defaults of the options below. */
export const LOCKSTEP_DEFAULTS = {
  seed: 1,
  depth: 3,
  steps: 10_000,
  mmioNs: 100,
  watchdogNs: 600e9,
  stuckSteps: 1_000_000,
  hostWatchdogMs: 60_000,
} as const;

export const checkLockstepOptions = obj({
  strategy: oneOf(LOCKSTEP_STRATEGIES),
  /** Seed of `random` and `pct` (default 1). */
  seed: opt(int(0, 0xffffffff)),
  /** pct: the bug depth d (default 3): d-1 priority change points. */
  depth: opt(int(1, 64)),
  /** pct: the expected number of steps k the change points are drawn over (default 10000). */
  steps: opt(int(1, 1e9)),
  /** Platform ns one MMIO access (read or write) takes (default 100), so a busy CPU moves time. */
  mmioNs: opt(num(0, 1e6)),
  /** Platform-time watchdog: ns one busy period (some CPU in an operation) may last (default 600 s). */
  watchdogNs: opt(num(1, 1e15)),
  /** Steps without platform time passing before the CPUs are declared livelocked (default 1e6). */
  stuckSteps: opt(int(1, 1e12)),
  /** Host-time watchdog of every token wait, in host ms (default 60000). */
  hostWatchdogMs: opt(num(1, 1e9)),
});

export type LockstepNOptions = Infer<typeof checkLockstepOptions>;

/** The options with every default filled in. */
export type LockstepNConfig = Required<LockstepNOptions>;

export function lockstepConfig(o: LockstepNOptions): LockstepNConfig {
  const c = checkLockstepOptions(o, 'lockstep');
  return {
    strategy: c.strategy,
    seed: c.seed ?? LOCKSTEP_DEFAULTS.seed,
    depth: c.depth ?? LOCKSTEP_DEFAULTS.depth,
    steps: c.steps ?? LOCKSTEP_DEFAULTS.steps,
    mmioNs: c.mmioNs ?? LOCKSTEP_DEFAULTS.mmioNs,
    watchdogNs: c.watchdogNs ?? LOCKSTEP_DEFAULTS.watchdogNs,
    stuckSteps: c.stuckSteps ?? LOCKSTEP_DEFAULTS.stuckSteps,
    hostWatchdogMs: c.hostWatchdogMs ?? LOCKSTEP_DEFAULTS.hostWatchdogMs,
  };
}

/**
 * Parses a command-line strategy: `round-robin`, `random`, `pct` or `pct:D` (depth D), `pct:D:K` (and
 * K expected steps). Throws InputError naming what is wrong.
 */
export function parseLockstepSpec(spec: string, path = '--lockstep'): LockstepNOptions {
  const [name, d, k, ...rest] = spec.split(':');
  const known = `known: round-robin, random, pct, pct:D, pct:D:K`;
  if (name === 'round-robin' || name === 'random') {
    if (d !== undefined) throw new InputError(`${path}: '${spec}': ${name} takes no parameter (${known})`);
    return { strategy: name };
  }
  if (name !== 'pct' || rest.length) throw new InputError(`${path}: '${spec}' is not a strategy (${known})`);
  const n = (s: string | undefined, what: string, max: number) => {
    if (s === undefined) return undefined;
    const v = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new InputError(`${path}: '${spec}': ${what} must be an integer from 1 to ${max}`);
    return v;
  };
  const depth = n(d, 'the depth D', 64);
  const steps = n(k, 'the expected steps K', 1e9);
  return { strategy: 'pct', ...(depth !== undefined ? { depth } : {}), ...(steps !== undefined ? { steps } : {}) };
}

/** Names a configuration as the command line would (`pct:3:10000`, `random`). */
export function lockstepSpec(c: LockstepNConfig): string {
  return c.strategy === 'pct' ? `pct:${c.depth}:${c.steps}` : c.strategy;
}

/** Chooses the next CPU to run among the runnable ones. */
export interface LockstepStrategy {
  /**
   * `runnable`: the runnable CPUs in ascending order (at least one); `last`: the CPU that ran the
   * previous step (-1 at first). Returns one of `runnable`.
   */
  pick(runnable: readonly number[], last: number): number;
}

class RoundRobin implements LockstepStrategy {
  pick(runnable: readonly number[], last: number): number {
    for (const c of runnable) if (c > last) return c;
    return runnable[0]!;
  }
}

class Random implements LockstepStrategy {
  private readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = rng(seed);
  }
  pick(runnable: readonly number[]): number {
    return runnable[Math.floor(this.rnd() * runnable.length)]!;
  }
}

export class Pct implements LockstepStrategy {
  /** Priority of each CPU: initial ones d..d+n-1, lowered ones d-1..1. */
  readonly prio: number[];
  /** Step numbers (1-based) of the d-1 change points, and the priority each one gives. */
  readonly changes = new Map<number, number>();
  private step = 0;

  constructor(ncpus: number, depth: number, steps: number, seed: number) {
    const rnd = rng(seed);
    // A random permutation of d..d+n-1 (Fisher-Yates).
    this.prio = Array.from({ length: ncpus }, (_, i) => depth + i);
    for (let i = ncpus - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [this.prio[i], this.prio[j]] = [this.prio[j]!, this.prio[i]!];
    }
    // d-1 distinct change points in 1..k (fewer when k < d-1).
    for (let i = 1; i < depth && this.changes.size < steps; i++) {
      let at: number;
      do at = 1 + Math.floor(rnd() * steps);
      while (this.changes.has(at));
      this.changes.set(at, depth - i);
    }
  }

  pick(runnable: readonly number[]): number {
    this.step++;
    const best = this.highest(runnable);
    const lowered = this.changes.get(this.step);
    if (lowered === undefined) return best;
    // A change point preempts: the CPU about to run drops below the others, who may run instead.
    this.prio[best] = lowered;
    return this.highest(runnable);
  }

  private highest(runnable: readonly number[]): number {
    let best = runnable[0]!;
    for (const c of runnable) if (this.prio[c]! > this.prio[best]!) best = c;
    return best;
  }
}

export function createStrategy(c: LockstepNConfig, ncpus: number): LockstepStrategy {
  switch (c.strategy) {
    case 'round-robin':
      return new RoundRobin();
    case 'random':
      return new Random(c.seed);
    case 'pct':
      return new Pct(ncpus, c.depth, c.steps, c.seed);
  }
}
