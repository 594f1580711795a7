// One campaign seed: the schedule it stands for (or a named scenario run with it), run in lockstep and
// judged. What the pool workers and the shrinker both call.

import { loadScenario } from '../scenario/catalogue.ts';
import { runScenario, type ScenarioRunOptions } from '../scenario/run.ts';
import { parseLockstepSpec } from '../../protocol/lockstep.ts';
import { InputError } from '../../protocol/check.ts';
import type { CampaignParams } from './params.ts';
import { judgeSchedule, scheduleOf, toScenario, type ScheduleSpec } from './schedule.ts';
import { withCpus, type Scenario, type ScenarioReport } from '../../protocol/scenario.ts';

/** What a campaign keeps of one seed's run (one line of a shard's JSON Lines). */
export interface ScheduleResult {
  seed: number;
  /** The scenario run: a built-in's name, or campaign-SEED for a generated schedule. */
  scenario: string;
  summary: string;
  ok: boolean;
  /** What did not hold (empty when ok). */
  problems: string[];
  faultsByKind: Record<string, number>;
  dmaUseAfterFree: number;
  lazyWindowAccesses: number;
  lostCommands: number;
  duplicatedCommands: number;
  hangs: number;
  /** ATC recovery: invalidations returned with a stale ATC, recovery's extra CMD_SYNCs, fences. */
  staleReturns: number;
  extraSyncs: number;
  fences: number;
  functions: number;
  /** The smallest failing schedule shrinking found, as a scenario file (failures of generated schedules). */
  shrunk?: Scenario;
  hostMs: number;
  bootHostMs: number;
}

export interface SeedJob {
  seed: number;
  params: CampaignParams;
}

/** The scenario a seed runs (on the campaign's CPUs). */
export function scenarioFor(job: SeedJob): { scenario: Scenario; name: string; baseDir?: string } {
  const p = job.params;
  if (p.scenarios.length === 0) {
    const s = toScenario(scheduleOf(job.seed, p.faults.length ? p.faults : undefined), job.seed, p.atcRecovery);
    return { scenario: withCpus(s, p.cpus ?? 1), name: s.name! };
  }
  const l = loadScenario(p.scenarios[job.seed % p.scenarios.length]!);
  return { scenario: withCpus(l.scenario, p.cpus ?? 1), name: l.name, baseDir: l.baseDir };
}

/** How a campaign runs each seed's scenario: its policy, its strategy, its driver variant. */
function runOptions(seed: number, p: CampaignParams): ScenarioRunOptions {
  return { seed, atcRecovery: p.atcRecovery, ...(p.lockstep !== undefined ? { lockstep: parseLockstepSpec(p.lockstep) } : {}), ...(p.bug ? { bug: p.bug } : {}) };
}

/** Whether a run holds, with what did not. */
function verdict(r: ScenarioReport, named: boolean, noViolations: boolean): string[] {
  if (!named) return judgeSchedule(r, noViolations);
  return noViolations && r.dmaUseAfterFree ? [...r.problems, `DMA use-after-free: ${r.dmaUseAfterFree} access(es) (none allowed)`] : r.problems;
}

export async function runSeed(job: SeedJob): Promise<ScheduleResult> {
  const { scenario, name, baseDir } = scenarioFor(job);
  let r: ScenarioReport;
  try {
    r = await runScenario(scenario, name, { ...runOptions(job.seed, job.params), ...(baseDir ? { baseDir } : {}) });
  } catch (e) {
    // A run that throws (a model or driver bug) is a failure of that seed, reported with its message.
    return { seed: job.seed, scenario: name, summary: scenario.summary ?? '', ok: false, problems: [`run failed: ${(e as Error).message}`], faultsByKind: {}, dmaUseAfterFree: 0, lazyWindowAccesses: 0, lostCommands: 0, duplicatedCommands: 0, hangs: 0, staleReturns: 0, extraSyncs: 0, fences: 0, functions: 0, hostMs: 0, bootHostMs: 0 };
  }
  const problems = verdict(r, job.params.scenarios.length > 0, job.params.noViolations);
  return {
    seed: job.seed,
    scenario: name,
    summary: scenario.summary ?? '',
    ok: problems.length === 0,
    problems,
    faultsByKind: r.faultsByKind,
    dmaUseAfterFree: r.dmaUseAfterFree,
    lazyWindowAccesses: r.lazyWindowAccesses,
    lostCommands: r.lostCommands,
    duplicatedCommands: r.duplicatedCommands,
    hangs: r.hangs,
    staleReturns: r.recovery.staleReturns,
    extraSyncs: r.recovery.extraSyncs,
    fences: r.recovery.fences,
    functions: r.devices.length,
    hostMs: r.hostMs,
    bootHostMs: r.bootHostMs,
  };
}

/** Whether a schedule (not necessarily a seed's own) fails; for shrinking. */
export async function scheduleFails(s: ScheduleSpec, seed: number, p: CampaignParams): Promise<boolean> {
  try {
    const r = await runScenario(withCpus(toScenario(s, seed, p.atcRecovery), p.cpus ?? 1), `campaign-${seed}`, runOptions(seed, p));
    return judgeSchedule(r, p.noViolations).length > 0;
  } catch (e) {
    // A run that throws fails, but bad input is not a failure of the schedule.
    if (e instanceof InputError) throw e;
    return true;
  }
}
