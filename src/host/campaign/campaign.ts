// A campaign: many seeds, each a schedule run in lockstep and judged (run-one.ts), spread over a pool
// of worker threads, optionally one shard of a campaign split over many machines.
//
// Invariants of the pool: every seed of the shard is handed to exactly one worker exactly once, and
// its result is kept exactly once (by seed); results are sorted by seed before anything is summed, so
// a campaign's summary does not depend on the number of workers, their speed, or how it was sharded
// (campaign merge sums the shards' results the same way). A worker that dies fails the campaign with
// the seed it was running.

import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { runSeed, scheduleFails, type ScheduleResult, type SeedJob } from './run-one.ts';
import { scheduleArb, scheduleOf, toScenario } from './schedule.ts';
import { InputError, clip } from '../../protocol/check.ts';
import { withCpus } from '../../protocol/scenario.ts';
import { DEFAULT_ATC_RECOVERY } from '../../protocol/ops/smmu.ts';
import type { CampaignParams } from './params.ts';

export type { CampaignParams } from './params.ts';

const ENTRY = new URL('../worker-entry.mjs', import.meta.url);
const WORKER_MODULE = new URL('./worker.ts', import.meta.url).href;
/** Schedules shrinking may run for one failure. */
const SHRINK_RUNS = 150;
/** Failures a campaign shrinks (the rest keep their seed and reproduce command). */
const SHRINK_FAILURES = 3;


export interface Shard {
  k: number;
  n: number;
}

/** Parses `K/N` (1 <= K <= N). */
export function parseShard(v: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const k = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || n < 1 || k < 1 || k > n || n > 1e6) throw new InputError(`--shard: '${clip(v)}' must be K/N with 1 <= K <= N (e.g. 2/8)`);
  return { k, n };
}

/** The seeds of a campaign, or of one shard of it: the i-th seed belongs to shard (i mod N) + 1. */
export function seedsOf(p: CampaignParams, shard?: Shard): number[] {
  const out: number[] = [];
  for (let i = 0; i < p.count; i++) if (!shard || i % shard.n === shard.k - 1) out.push((p.seedStart + i) >>> 0);
  return out;
}

/** The command that reruns one seed. */
export function reproduceCommand(p: CampaignParams, seed: number): string {
  const policy = p.atcRecovery === DEFAULT_ATC_RECOVERY ? '' : ` --atc-recovery ${p.atcRecovery}`;
  const faults = p.faults.length ? ` --faults ${p.faults.join(',')}` : '';
  const cpus = p.cpus !== undefined && p.cpus > 1 ? ` --cpus ${p.cpus}` : '';
  const lockstep = p.lockstep !== undefined ? ` --lockstep ${p.lockstep}` : '';
  const bug = p.bug !== undefined ? ` --driver-bug ${p.bug}` : '';
  return `smmulab campaign --seed-start ${seed} --count 1${p.scenarios.map((s) => ` --scenario ${s}`).join('')}${p.noViolations ? ' --no-violations' : ''}${policy}${faults}${cpus}${lockstep}${bug}`;
}

/** Runs seeds on `workers` threads (0: in this thread); calls onResult as each finishes. */
export async function runSeeds(p: CampaignParams, seeds: readonly number[], workers: number, onResult: (r: ScheduleResult) => void): Promise<ScheduleResult[]> {
  const job = (seed: number): SeedJob => ({ seed, params: p });
  const results = new Map<number, ScheduleResult>();
  const keep = (r: ScheduleResult) => {
    if (results.has(r.seed)) throw new Error(`campaign: seed ${r.seed} reported twice`);
    results.set(r.seed, r);
    onResult(r);
  };
  if (workers === 0) {
    for (const s of seeds) keep(await runSeed(job(s)));
  } else {
    let next = 0;
    const pool = Array.from({ length: Math.min(workers, seeds.length) }, () => new Worker(ENTRY, { workerData: { module: WORKER_MODULE } }));
    try {
      await Promise.all(
        pool.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              let running = -1;
              const feed = () => {
                if (next >= seeds.length) {
                  w.postMessage({ stop: true });
                  resolve();
                  return;
                }
                running = seeds[next++]!;
                w.postMessage(job(running));
              };
              w.on('message', (m: { ready?: true; seed?: number; result?: ScheduleResult }) => {
                if (m.result) keep(m.result);
                feed();
              });
              w.on('error', (e) => reject(new Error(`campaign worker died running seed ${running}: ${e.message}`)));
              w.on('exit', (code) => {
                if (next < seeds.length || results.size < seeds.length) reject(new Error(`campaign worker exited (code ${code}) running seed ${running}`));
              });
            }),
        ),
      );
    } finally {
      await Promise.all(pool.map((w) => w.terminate()));
    }
  }
  if (results.size !== seeds.length) throw new Error(`campaign: ${seeds.length} seeds handed out, ${results.size} results`);
  return [...results.values()].sort((a, b) => a.seed - b.seed);
}

/**
 * Shrinks a failing generated schedule with fast-check: the seed's own schedule is the first value it
 * draws, and its shrinker tries smaller ones (fewer functions, faults, steps, rounds), keeping each
 * that still fails. Returns the smallest failing scenario found, or null if the seed did not fail again.
 */
export async function shrinkSeed(seed: number, p: CampaignParams): Promise<ReturnType<typeof toScenario> | null> {
  let runs = 0;
  const out = await fc.check(
    fc.asyncProperty(scheduleArb(p.faults.length ? p.faults : undefined), async (s) => {
      if (runs++ > SHRINK_RUNS) return true;
      return !(await scheduleFails(s, seed, p));
    }),
    { seed, numRuns: 1, endOnFailure: false },
  );
  if (!out.failed || !out.counterexample) return null;
  const t = withCpus(toScenario(out.counterexample[0], seed, p.atcRecovery), p.cpus ?? 1);
  // What the campaign ran it with goes into the file, so that `run --scenario FILE` runs it alike.
  const s = { ...t, ...(p.lockstep !== undefined ? { lockstep: p.lockstep } : {}), ...(p.bug ? { driver: { ...t.driver, bug: p.bug } } : {}) };
  // Under --no-violations a use-after-free is the failure; say so, so `run --scenario` judges it too.
  return p.noViolations ? { ...s, expect: { violations: 'none' } } : s;
}

/**
 * Shrinks the first few failures (in seed order) of generated schedules in place: where a campaign's
 * results come together, the end of an unsharded run or a merge, so both shrink the same ones.
 */
export async function shrinkFailures(p: CampaignParams, results: ScheduleResult[], log: (line: string) => void): Promise<void> {
  if (p.scenarios.length) return;
  for (const r of results.filter((x) => !x.ok).slice(0, SHRINK_FAILURES)) {
    log(`campaign: shrinking the schedule of seed ${r.seed} (${scheduleOf(r.seed, p.faults.length ? p.faults : undefined).faults.length} faults, ${r.functions} functions)...`);
    const s = await shrinkSeed(r.seed, p);
    if (s) r.shrunk = s;
  }
}
