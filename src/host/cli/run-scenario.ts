// `smmulab run --scenario NAME|FILE [--seed N] [--inject JSON|FILE ...] [--json]`: one scenario in
// lockstep (src/host/scenario/run.ts): on one CPU, or on N (--cpus, the scenario's cpus) interleaved by
// a strategy (--lockstep) from the seed; or threaded (--threaded). Exit 0 when its expectation and the
// invariants hold, 1 when not (the report says which), 2 for bad input. --trace prints trace records on stderr as the run drains
// them, --trace-out writes them as Chrome trace-event JSON (trace-options.ts).

import { parseArgs, noArguments, intOpt, HELP_SPEC, usage, UsageError, type OptSpec } from './args.ts';
import { driverBugOption, lockstepOptionValue } from './lockstep-option.ts';
import { parseLockstepSpec } from '../../protocol/lockstep.ts';
import { SCENARIO_MAX_CPUS, withCpus } from '../../protocol/scenario.ts';
import { loadScenario, parseInjectOption } from '../scenario/catalogue.ts';
import { runScenario } from '../scenario/run.ts';
import { textReport } from '../scenario/report.ts';
import { InputError } from '../../protocol/check.ts';
import { ATC_RECOVERY, DRIVER_BUGS } from '../../protocol/ops/smmu.ts';
import { atcRecoveryOption } from './timeout-options.ts';
import type { ScenarioReport } from '../../protocol/scenario.ts';
import type { ScheduleRecord } from '../../protocol/schedule.ts';
import type { ScenarioMachine } from '../scenario/machine.ts';
import { compareOutcomes, outcomeOf, readScheduleFile, writeScheduleFile } from '../scenario/schedule-file.ts';
import { resolve } from 'node:path';
import { TRACE_SPEC } from './boot.ts';
import type { RawTraceRecord } from '../../machine/trace-ring.ts';
import { TRACE_OUT_SPEC, outFile, tracePlan, writeTraceOut } from './trace-options.ts';

const NAME = 'run --scenario';

export const SCENARIO_SPEC: Record<string, OptSpec> = {
  scenario: { type: 'string', help: 'a built-in scenario (smmulab scenarios) or a scenario file' },
  seed: { type: 'number', help: "seed of the fault draws (default: the scenario's)" },
  'atc-recovery': { type: 'string', help: `override the scenario's ATC invalidation timeout recovery (${ATC_RECOVERY.join(', ')})` },
  inject: { type: 'string', repeatable: true, help: 'one more fault: JSON, or a file with a fault or a list of them' },
  cpus: { type: 'number', help: "driver CPUs; those beyond the scenario's own run a command-queue stress alongside it" },
  lockstep: { type: 'string', help: "how the CPUs interleave: round-robin, random, pct, pct:D, pct:D:K (default: the scenario's, else random), seeded by --seed" },
  threaded: { type: 'boolean', help: 'run the CPUs threaded, at once on the host (real concurrency; not repeatable)' },
  'driver-bug': { type: 'string', help: `run a known-broken driver variant (${DRIVER_BUGS.join(', ')}), for testing smmulab itself` },
  record: { type: 'string', help: 'with --threaded: write the order in which the hardware saw the CPUs\' writes, interrupts and faults to FILE' },
  schedule: { type: 'string', help: 'replay a schedule --record wrote: the same scenario in lockstep, the same writes in the same order; exit 1 unless the outcome is the same' },
  json: { type: 'boolean', help: 'print the report as one JSON object' },
  trace: TRACE_SPEC,
  'trace-out': TRACE_OUT_SPEC,
  help: HELP_SPEC,
};

export async function runScenarioCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, SCENARIO_SPEC, NAME);
  if (p.opts.help) {
    process.stdout.write(usage('run', '--scenario NAME|FILE [options] | --schedule FILE', SCENARIO_SPEC) + '\n');
    return 0;
  }
  noArguments(p, 'run');
  if (p.opts.schedule !== undefined) return replaySchedule(p);
  const loaded = loadScenario(String(p.opts.scenario));
  const seed = p.opts.seed === undefined ? undefined : intOpt(p, 'seed', 0, 0xffff_ffff, NAME);
  const extra = (p.lists.inject ?? []).flatMap((v, i) => parseInjectOption(v, i));
  const withFaults = extra.length ? { ...loaded.scenario, faults: [...(loaded.scenario.faults ?? []), ...extra] } : loaded.scenario;
  const cpus = p.opts.cpus === undefined ? undefined : intOpt(p, 'cpus', 1, SCENARIO_MAX_CPUS, NAME);
  if (cpus !== undefined && cpus < (withFaults.cpus ?? 1)) throw new UsageError(`${NAME}: --cpus ${cpus}: scenario ${loaded.name} already runs on ${withFaults.cpus} CPUs (--cpus adds CPUs)`);
  const scenario = cpus === undefined ? withFaults : withCpus(withFaults, cpus);
  if (p.opts.threaded && p.opts.lockstep !== undefined) throw new UsageError(`${NAME}: --threaded and --lockstep exclude each other`);
  const lockstep = p.opts.lockstep === undefined ? undefined : lockstepOptionValue(NAME, p.opts.lockstep);
  const bug = p.opts['driver-bug'] === undefined ? undefined : driverBugOption(NAME, p.opts['driver-bug']);
  const recordFile = p.opts.record === undefined ? undefined : outFile(NAME, String(p.opts.record), '--record');
  if (recordFile !== undefined && !p.opts.threaded) throw new UsageError(`${NAME}: --record records a threaded run: add --threaded (a lockstep run repeats from its seed alone)`);
  let recorded: ScheduleRecord | null = null;
  const runOpts = {
    ...(lockstep !== undefined ? { lockstep: parseLockstepSpec(lockstep) } : {}),
    ...(p.opts.threaded ? { threaded: { record: recordFile !== undefined } } : {}),
    ...(bug ? { bug } : {}),
    ...(recordFile !== undefined ? { onMachine: async (m: ScenarioMachine) => void (recorded = await m.system!.schedule()) } : {}),
  };
  const trace = tracePlan('run', { trace: p.opts.trace, traceOut: p.opts['trace-out'] });
  let r: ScenarioReport;
  try {
    const atcRecovery = p.opts['atc-recovery'] === undefined ? undefined : atcRecoveryOption('run', p.opts['atc-recovery']);
    const tracing = trace.options ? { trace: trace.options, onTrace: (recs: RawTraceRecord[], lost: number) => trace.sink.take(recs, lost) } : {};
    r = await runScenario(scenario, loaded.name, { ...(seed !== undefined ? { seed } : {}), ...(atcRecovery ? { atcRecovery } : {}), baseDir: loaded.baseDir, ...runOpts, ...tracing });
  } catch (e) {
    // What only a run can check (topology files, feature profiles) names the scenario file too.
    if (e instanceof InputError) throw new InputError(`${loaded.file}: ${e.message}`);
    throw e;
  }
  process.stdout.write(p.opts.json ? JSON.stringify(r) + '\n' : textReport(r));
  // (The files are written whatever the verdict: a failing run is the one worth looking at.)
  if (recordFile !== undefined && recorded) {
    writeScheduleFile(recordFile, recorded, { name: loaded.name, scenario, seed: r.seed, atcRecovery: r.atcRecovery, ...(bug ? { bug } : {}), baseDir: resolve(loaded.baseDir) }, r);
  }
  const traced = writeTraceOut('run', trace, `scenario ${r.scenario} seed ${r.seed}`);
  if (!r.ok) {
    process.stderr.write(`run: scenario ${r.scenario} (seed ${r.seed}) did not hold: ${r.problems[0]}${r.problems.length > 1 ? ` (+${r.problems.length - 1} more)` : ''}\n`);
    const again = [
      ...(p.opts.cpus !== undefined ? [`--cpus ${p.opts.cpus}`] : []),
      ...(lockstep !== undefined ? [`--lockstep ${lockstep}`] : []),
      ...(p.opts.threaded ? ['--threaded'] : []),
      ...(bug ? [`--driver-bug ${bug}`] : []),
      ...(p.lists.inject ?? []).map((v) => `--inject '${v}'`),
    ];
    process.stderr.write(`  reproduce: smmulab run --scenario ${loaded.file} --seed ${r.seed} --atc-recovery ${r.atcRecovery}${again.map((a) => ` ${a}`).join('')}\n`);
    return 1;
  }
  return traced;
}

/** Options a schedule replay takes from its file, and so refuses on the command line. */
const FROM_THE_FILE = ['scenario', 'seed', 'atc-recovery', 'inject', 'cpus', 'lockstep', 'threaded', 'driver-bug', 'record'] as const;

/**
 * `run --schedule FILE`: the recorded scenario in lockstep, steered by the `schedule` strategy to make
 * the recorded MMIO writes by the recorded CPUs in the recorded order; exit 0 when the outcome is the
 * recorded one, 1 when not (naming what differs), 2 for bad input.
 */
async function replaySchedule(p: ReturnType<typeof parseArgs>): Promise<number> {
  const given = FROM_THE_FILE.filter((k) => p.opts[k] !== undefined || (p.lists[k]?.length ?? 0) > 0);
  if (given.length) throw new UsageError(`${NAME}: --schedule replays what its file recorded: drop --${given.join(', --')}`);
  const file = String(p.opts.schedule);
  const { record, ran, outcome } = readScheduleFile(file);
  const trace = tracePlan('run', { trace: p.opts.trace, traceOut: p.opts['trace-out'] });
  const tracing = trace.options ? { trace: trace.options, onTrace: (recs: RawTraceRecord[], lost: number) => trace.sink.take(recs, lost) } : {};
  const r = await runScenario(ran.scenario, ran.name, {
    seed: ran.seed,
    atcRecovery: ran.atcRecovery,
    baseDir: ran.baseDir,
    lockstep: { strategy: 'schedule', writers: record.writes },
    ...(ran.bug ? { bug: ran.bug } : {}),
    ...tracing,
  });
  const differences = compareOutcomes(outcome, outcomeOf(r));
  const replay = r.lockstep?.replay;
  const followed = replay ? `${replay.matched} of ${replay.recordedWrites} recorded writes made by the recorded CPU, ${replay.diverged} by another` : 'no replay statistics';
  if (p.opts.json) process.stdout.write(JSON.stringify({ ...r, schedule: { file, followed: replay ?? null, differences } }) + '\n');
  else process.stdout.write(`${textReport(r)}\nschedule ${file}: ${followed}; outcome ${differences.length ? `differs:\n${differences.map((d) => `  ${d}`).join('\n')}` : 'the same as recorded'}\n`);
  const traced = writeTraceOut('run', trace, `schedule ${file}`);
  if (differences.length) {
    process.stderr.write(`run: the replay of ${file} did not reach the recorded outcome: ${differences[0]}${differences.length > 1 ? ` (+${differences.length - 1} more)` : ''}\n`);
    return 1;
  }
  return traced;
}
