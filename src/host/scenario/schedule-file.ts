// Recorded schedules of scenario runs: `run --scenario X --threaded --record FILE` writes the order in
// which the hardware saw what the CPUs did (src/protocol/schedule.ts), with the scenario it ran and the
// outcome it reached; `run --schedule FILE` runs the same scenario in lockstep, steered by the
// `schedule` strategy to make the same writes in the same order, and compares the outcomes: the same
// command counts and errors, the same faults fired, the same violations, the same final device states.

import { writeFileSync } from 'node:fs';
import { INPUT_LIMITS, readJsonFile } from '../input-file.ts';
import { InputError, obj, oneOf, opt, int, str, type Infer } from '../../protocol/check.ts';
import { checkScheduleRecord, type ScheduleRecord } from '../../protocol/schedule.ts';
import { checkScenario, type ScenarioReport } from '../../protocol/scenario.ts';
import { ATC_RECOVERY, DRIVER_BUGS } from '../../protocol/ops/smmu.ts';

/** What a schedule file says its run ran: the scenario (checked again on reading) and how. */
const checkRan = obj({
  name: str(64),
  scenario: checkScenario,
  seed: int(0, 0xffff_ffff),
  atcRecovery: oneOf(ATC_RECOVERY),
  bug: opt(oneOf(DRIVER_BUGS)),
  /** Absolute directory a topology file of the scenario is relative to. */
  baseDir: str(4096),
});
export type RanScenario = Infer<typeof checkRan>;

/** The part of a report a replay must reach again. */
export function outcomeOf(r: ScenarioReport) {
  return {
    executedByOpcode: r.executedByOpcode,
    lostCommands: r.lostCommands,
    duplicatedCommands: r.duplicatedCommands,
    commandErrors: r.commandErrors,
    faultsByKind: r.faultsByKind,
    dmaUseAfterFree: r.dmaUseAfterFree,
    lazyWindowAccesses: r.lazyWindowAccesses,
    // (When is platform time: threaded it follows the host, in lockstep it is virtual.)
    violations: r.violations.map(({ t: _t, ...v }) => v),
    hangs: r.hangs,
    devices: r.devices,
    errors: r.errors.length,
    ok: r.ok,
  };
}
export type Outcome = ReturnType<typeof outcomeOf>;
const OUTCOME_KEYS = ['executedByOpcode', 'lostCommands', 'duplicatedCommands', 'commandErrors', 'faultsByKind', 'dmaUseAfterFree', 'lazyWindowAccesses', 'violations', 'hangs', 'devices', 'errors', 'ok'] as const satisfies readonly (keyof Outcome)[];

/** Writes a recorded run: the record, what ran, and the outcome. */
export function writeScheduleFile(file: string, record: ScheduleRecord, ran: RanScenario, r: ScenarioReport): void {
  writeFileSync(file, JSON.stringify({ ...record, scenario: ran, outcome: outcomeOf(r) }) + '\n');
}

/** Reads a schedule file of a scenario run (InputError naming the file and field on anything wrong). */
export function readScheduleFile(file: string): { record: ScheduleRecord; ran: RanScenario; outcome: Outcome } {
  const record = checkScheduleRecord(readJsonFile(file, 'schedule file', INPUT_LIMITS.schedule), file);
  if (!record.scenario) throw new InputError(`${file}: no scenario (a schedule recorded by run --scenario ... --threaded --record holds one)`);
  if (!record.outcome) throw new InputError(`${file}: no outcome (a schedule recorded by run --scenario ... --threaded --record holds one)`);
  const ran = checkRan(record.scenario, `${file}: scenario`);
  for (const k of OUTCOME_KEYS) if (!Object.hasOwn(record.outcome, k)) throw new InputError(`${file}: outcome.${k}: missing`);
  if ((ran.scenario.cpus ?? 1) !== record.cpus) throw new InputError(`${file}: scenario.scenario.cpus: ${ran.scenario.cpus ?? 1}, but the schedule has ${record.cpus} CPUs`);
  return { record, ran, outcome: record.outcome as Outcome };
}

/** Where a replay's outcome differs from the recorded one, one line per field (nothing: the same). */
export function compareOutcomes(recorded: Outcome, replayed: Outcome): string[] {
  const out: string[] = [];
  for (const k of Object.keys(replayed) as (keyof Outcome)[]) {
    const a = stable(recorded[k]);
    const b = stable(replayed[k]);
    if (a !== b) out.push(`${k}: recorded ${a.slice(0, 200)}, replayed ${b.slice(0, 200)}`);
  }
  return out;
}

/** JSON with object keys sorted, so that the same counts in another order compare equal. */
function stable(v: unknown): string {
  return String(JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x)));
}
