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
//                depth d is found with probability at least 1/(n k^(d-1)) per run. In virtual time the
//                lowered CPU is also held off for preemptNs (100 us), or the others' yield points, which
//                all take time, would hand it back the token at once.
//   (The coordinator, hw/lockstep-coordinator.ts, asks a strategy which CPU runs and whether one is
//   held off; invariant 3 there is what a hold bends: a CPU that could run now may wait, boundedly.)
//   schedule     replays a recorded run's writer sequence (src/protocol/schedule.ts; ScheduleReplay below):
//                the CPU whose MMIO write comes next in the record runs when it can, the others wait for
//                it a little, then go round-robin.

import { InputError, int, num, obj, oneOf, opt, type Infer } from './check.ts';
import { rng } from './random.ts';
import { checkWriterRuns, checkWritersFit, countWrites, type WriterRun } from './schedule.ts';

export const LOCKSTEP_STRATEGIES = ['round-robin', 'random', 'pct', 'schedule'] as const;
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
  preemptNs: 100_000,
} as const;

export const checkLockstepOptions = obj({
  strategy: oneOf(LOCKSTEP_STRATEGIES),
  /** Seed of `random` and `pct` (default 1). */
  seed: opt(int(0, 0xffffffff)),
  /** pct: the bug depth d (default 3): d-1 priority change points. */
  depth: opt(int(1, 64)),
  /** pct: the expected number of steps k the change points are drawn over (default 10000). */
  steps: opt(int(1, 1e9)),
  /** schedule (and only it): the writer sequence to replay, a recorded ScheduleRecord's `writes`. */
  writers: opt(checkWriterRuns),
  /** Platform ns one MMIO access (read or write) takes (default 100), so a busy CPU moves time. */
  mmioNs: opt(num(0, 1e6)),
  /** Platform-time watchdog: ns one busy period (some CPU in an operation) may last (default 600 s). */
  watchdogNs: opt(num(1, 1e15)),
  /** Steps without platform time passing before the CPUs are declared livelocked (default 1e6). */
  stuckSteps: opt(int(1, 1e12)),
  /** Host-time watchdog of every token wait, in host ms (default 60000). */
  hostWatchdogMs: opt(num(1, 1e9)),
  /** pct: platform ns a change point holds the CPU it lowers off, though it could run (default 100 us; 0: none). */
  preemptNs: opt(num(0, 1e9)),
});

export type LockstepNOptions = Infer<typeof checkLockstepOptions>;

/** The options with every default filled in. */
export type LockstepNConfig = Required<LockstepNOptions>;

/**
 * Checks the options (InputError naming the field) and fills in the defaults; with `ncpus`, also that
 * a writer sequence names only CPUs the system has.
 */
export function lockstepConfig(o: LockstepNOptions, ncpus?: number): LockstepNConfig {
  const c = checkLockstepOptions(o, 'lockstep');
  if (c.strategy === 'schedule' && !c.writers) throw new InputError(`lockstep.writers: missing (the schedule strategy replays a recorded writer sequence, a ScheduleRecord's writes)`);
  // (An empty sequence is what a filled-in configuration of another strategy carries to the workers.)
  if (c.strategy !== 'schedule' && c.writers?.length) throw new InputError(`lockstep.writers: only the schedule strategy takes a writer sequence (strategy is ${c.strategy})`);
  if (c.writers && ncpus !== undefined) checkWritersFit(c.writers, ncpus, 'lockstep.writers');
  return {
    strategy: c.strategy,
    seed: c.seed ?? LOCKSTEP_DEFAULTS.seed,
    depth: c.depth ?? LOCKSTEP_DEFAULTS.depth,
    steps: c.steps ?? LOCKSTEP_DEFAULTS.steps,
    writers: c.writers ?? [],
    mmioNs: c.mmioNs ?? LOCKSTEP_DEFAULTS.mmioNs,
    watchdogNs: c.watchdogNs ?? LOCKSTEP_DEFAULTS.watchdogNs,
    stuckSteps: c.stuckSteps ?? LOCKSTEP_DEFAULTS.stuckSteps,
    hostWatchdogMs: c.hostWatchdogMs ?? LOCKSTEP_DEFAULTS.hostWatchdogMs,
    preemptNs: c.preemptNs ?? LOCKSTEP_DEFAULTS.preemptNs,
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
   * previous step (-1 at first); `now`: platform ns. Returns one of `runnable`, or -1 when the strategy
   * just held off the only one (heldUntil) and the coordinator must look again.
   */
  pick(runnable: readonly number[], last: number, now?: number): number;
  /** Platform ns until which CPU k is held off though it could run: a preemption the strategy chose (0: none). */
  heldUntil?(cpu: number): number;
  /**
   * Before pick(), with some CPU in an operation: a platform time for the coordinator to advance to
   * instead of running any of `runnable` now, or -1 to run one. `readyAt(k)`: the next time CPU k may
   * become runnable without another CPU running (its wake time, or the hardware's next deadline if
   * sooner; Infinity: none).
   */
  deferUntil?(runnable: readonly number[], now: number, readyAt: (cpu: number) => number): number;
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
  private readonly held: number[];

  constructor(
    ncpus: number,
    depth: number,
    steps: number,
    seed: number,
    /** Platform ns a change point holds off the CPU it lowers. */
    private readonly preemptNs = 0,
  ) {
    this.held = new Array<number>(ncpus).fill(0);
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

  pick(runnable: readonly number[], _last = -1, now = 0): number {
    this.step++;
    const best = this.highest(runnable);
    const lowered = this.changes.get(this.step);
    if (lowered === undefined) return best;
    // A change point preempts: the CPU about to run drops below the others, who may run instead. In
    // virtual time a lower priority alone would rarely keep it from running (every yield point of the
    // others takes time, and a CPU that can run now runs before time moves), so it is also held off for
    // preemptNs, as a vCPU descheduled or a CPU in an SMI: what lets the others overtake it by far.
    this.prio[best] = lowered;
    if (this.preemptNs <= 0) return this.highest(runnable);
    this.held[best] = now + this.preemptNs;
    const others = runnable.filter((c) => c !== best);
    return others.length ? this.highest(others) : -1;
  }

  heldUntil(cpu: number): number {
    return this.held[cpu]!;
  }

  private highest(runnable: readonly number[]): number {
    let best = runnable[0]!;
    for (const c of runnable) if (this.prio[c]! > this.prio[best]!) best = c;
    return best;
  }
}

/** Where a replay first left its record: the write (0-based), the CPU the record has there (null: past its end), the CPU that wrote. */
export interface ReplayDivergence {
  write: number;
  expectedCpu: number | null;
  actualCpu: number;
}

/**
 * Platform ns the other runnable CPUs wait for the expected writer when it cannot run now (schedule
 * strategy): far more than a CPU takes between two steps of its own (an MMIO access is 100 ns, a
 * cpu_relax 10 ns, a whole 64-command batch from its CMD_SYNC completing to its next CMDQ_PROD write
 * about 100 ns), far less than any timeout of the driver or the hardware (ms to s), so a wait never
 * makes one expire.
 */
const REPLAY_WAIT_NS = 1000;

/**
 * How far ahead in the record, in writes, the replay looks for the writer of a second unexpected write
 * in a row, to resume after its write there.
 */
const RESYNC_WINDOW = 16;

/**
 * Replays a writer sequence (schedule strategy): the CPU whose MMIO write comes next in the record (the
 * expected writer) runs whenever it is runnable, so the others do not reach their writes before it.
 * When it is not runnable but will be by time alone within REPLAY_WAIT_NS (an MMIO access or a
 * cpu_relax in progress, a hardware timer about to fire), the others wait (deferUntil); otherwise, or
 * once that time is spent, one runnable CPU takes one step, and the expected writer gets a new
 * REPLAY_WAIT_NS. The CPUs so let through go round-robin among themselves (from the last one let
 * through, whatever ran in between), so that each CPU runnable when a wait ends gets a step within n-1
 * waits, none starved. The others must be let through: the expected writer may wait for another
 * CPU (the previous command-queue owner to publish, a lock, an interrupt handler's acknowledgement) or
 * on a long timeout, and holding everyone back would stall the run or move time past timeouts the
 * recorded run never reached.
 *
 * The coordinator tells it every write as the hardware applies it (wrote()): a write by the expected
 * writer matches and the record moves on; one by another CPU is a divergence, counted (the first one
 * kept). A single stray write is taken as one the record does not have (a CMDQ_PROD write of a batch
 * the recorded run published in another CPU's write) and the record stays where it is; a second in a
 * row means the expected write is not coming (this run published it otherwise), and the record
 * resumes after that CPU's next write within RESYNC_WINDOW, if there is one. Like the other strategies
 * it is pure: the same record and the same writes and wake times give the same choices.
 */
export class ScheduleReplay implements LockstepStrategy {
  readonly recordedWrites: number;
  matched = 0;
  diverged = 0;
  firstDivergence: ReplayDivergence | null = null;
  /** The next expected write: its run in the record and how much of the run is done. */
  private run = 0;
  private used = 0;
  /** Writes the hardware applied so far, and unexpected ones in a row. */
  private applied = 0;
  private strays = 0;
  /** Until when the others wait for the expected writer, and for which write (-1: no wait started). */
  private waitEnd = 0;
  private waitFor = -1;
  /** The CPUs let through go round-robin from the last one (-1: none yet). */
  private lastOther = -1;
  private readonly rr = new RoundRobin();

  constructor(private readonly runs: readonly WriterRun[]) {
    this.recordedWrites = countWrites(runs);
  }

  /** The CPU whose write comes next in the record (-1: the record is done). */
  expected(): number {
    return this.run < this.runs.length ? this.runs[this.run]![0] : -1;
  }

  deferUntil(runnable: readonly number[], now: number, readyAt: (cpu: number) => number): number {
    const want = this.expected();
    if (want < 0 || runnable.includes(want)) return -1;
    if (this.waitFor !== this.applied) {
      this.waitFor = this.applied;
      this.waitEnd = now + REPLAY_WAIT_NS;
    }
    const t = readyAt(want);
    if (t <= this.waitEnd) return t;
    // One step of another CPU, then the expected writer gets a new wait.
    this.waitFor = -1;
    return -1;
  }

  pick(runnable: readonly number[], _last = -1): number {
    const want = this.expected();
    if (want >= 0 && runnable.includes(want)) return want;
    // Round-robin from the last CPU let through here, not from the last that ran: that is mostly the
    // expected writer (it runs between these steps), and rotating from it would hand every step to the
    // same next CPU and starve the rest, e.g. the lock holder the expected writer spins on.
    this.lastOther = this.rr.pick(runnable, this.lastOther);
    return this.lastOther;
  }

  wrote(cpu: number): void {
    const write = this.applied++;
    const want = this.expected();
    if (cpu === want) {
      this.matched++;
      this.strays = 0;
      this.advance();
      return;
    }
    this.diverged++;
    this.firstDivergence ??= { write, expectedCpu: want < 0 ? null : want, actualCpu: cpu };
    if (++this.strays < 2) return;
    // Look for this CPU's next write within the window, run by run (a run is one CPU's).
    let ahead = this.runs[this.run] ? this.runs[this.run]![1] - this.used : 0;
    for (let r = this.run + 1; r < this.runs.length && ahead < RESYNC_WINDOW; r++) {
      const [c, n] = this.runs[r]!;
      if (c === cpu) {
        this.run = r;
        this.used = 0;
        this.strays = 0;
        this.advance();
        return;
      }
      ahead += n;
    }
  }

  private advance(): void {
    if (++this.used === this.runs[this.run]![1]) {
      this.run++;
      this.used = 0;
    }
  }
}

export function createStrategy(c: LockstepNConfig, ncpus: number): LockstepStrategy {
  switch (c.strategy) {
    case 'round-robin':
      return new RoundRobin();
    case 'random':
      return new Random(c.seed);
    case 'pct':
      return new Pct(ncpus, c.depth, c.steps, c.seed, c.preemptNs);
    case 'schedule':
      return new ScheduleReplay(c.writers);
  }
}

/** What a lockstep-N run did so far (lockstepStats). */
export interface LockstepStats {
  /** The strategy as `--lockstep` names it (`round-robin`, `random`, `pct:D:K`), and its seed. */
  strategy: string;
  seed: number;
  /** Platform ns of virtual time now. */
  platformNs: number;
  /** Token grants (each a decision of the strategy), and those that went to another CPU than the last. */
  grants: number;
  switches: number;
  /** Times virtual time advanced because no CPU could run. */
  advances: number;
  /** MMIO writes the hardware saw, and a 64-bit hash of (cpu, pa, size, value) of each, in order. */
  mmioWrites: number;
  writeHash: string;
  /** Set when a host-time watchdog aborted the run: what it found. */
  aborted: string | null;
  /** The schedule strategy's replay so far (null for the other strategies). */
  replay: ReplayStats | null;
}

/** How a schedule replay follows its record (src/protocol/lockstep.ts, ScheduleReplay). */
export interface ReplayStats {
  /** Writes in the record. */
  recordedWrites: number;
  /** Writes made by the CPU the record has there, and by another one. */
  matched: number;
  diverged: number;
  /** The first write made by another CPU than recorded (null: none so far). */
  firstDivergence: ReplayDivergence | null;
}
