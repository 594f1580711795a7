// One campaign seed: the schedule it stands for (or a named scenario run with it), run in lockstep and
// judged. What the pool workers and the shrinker both call.

import { loadScenario } from '../scenario/catalogue.ts';
import { runScenario } from '../scenario/run.ts';
import { judgeSchedule, scheduleOf, toScenario, type ScheduleSpec } from './schedule.ts';
import type { Scenario, ScenarioReport } from '../../protocol/scenario.ts';
import type { AtcRecovery } from '../../protocol/ops/smmu.ts';

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
  /** Named scenarios to run instead of generated schedules (the seed picks one). */
  scenarios: string[];
  noViolations: boolean;
  atcRecovery: AtcRecovery;
  /** Fault kinds generated schedules draw from (empty: every kind). */
  faults: string[];
}

/** The scenario a seed runs. */
export function scenarioFor(job: SeedJob): { scenario: Scenario; name: string; baseDir?: string } {
  if (job.scenarios.length === 0) {
    const s = toScenario(scheduleOf(job.seed, job.faults.length ? job.faults : undefined), job.seed, job.atcRecovery);
    return { scenario: s, name: s.name! };
  }
  const l = loadScenario(job.scenarios[job.seed % job.scenarios.length]!);
  return { scenario: l.scenario, name: l.name, baseDir: l.baseDir };
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
    r = await runScenario(scenario, name, { seed: job.seed, atcRecovery: job.atcRecovery, ...(baseDir ? { baseDir } : {}) });
  } catch (e) {
    // A run that throws (a model or driver bug) is a failure of that seed, reported with its message.
    return { seed: job.seed, scenario: name, summary: scenario.summary ?? '', ok: false, problems: [`run failed: ${(e as Error).message}`], faultsByKind: {}, dmaUseAfterFree: 0, lazyWindowAccesses: 0, lostCommands: 0, duplicatedCommands: 0, hangs: 0, staleReturns: 0, extraSyncs: 0, fences: 0, functions: 0, hostMs: 0, bootHostMs: 0 };
  }
  const problems = verdict(r, job.scenarios.length > 0, job.noViolations);
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
export async function scheduleFails(s: ScheduleSpec, seed: number, noViolations: boolean, atcRecovery: AtcRecovery): Promise<boolean> {
  try {
    const r = await runScenario(toScenario(s, seed, atcRecovery), `campaign-${seed}`, { seed });
    return judgeSchedule(r, noViolations).length > 0;
  } catch {
    return true;
  }
}
