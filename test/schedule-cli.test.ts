// Recording and replaying a schedule through the CLI, as a user does: `run --scenario FILE --threaded
// --record SCHED` writes what the threaded run did (the writer sequence, the scenario, the outcome);
// `run --schedule SCHED` replays it in lockstep and must reach the same outcome, the same way every
// time; bad input exits 2 with one line naming what is wrong.

import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './fixtures/run-cli.ts';
import { tempDirs } from './fixtures/temp-dir.ts';
import { countWrites, type ScheduleRecord } from '../src/protocol/schedule.ts';
import type { LockstepStats, ReplayStats } from '../src/protocol/lockstep.ts';

const dir = tempDirs('smmulab-schedule-cli-');

/**
 * Two CPUs contend in the command queue, then CPU 0 runs ATS DMA rounds, in which one command is
 * corrupted (CERROR_ILL, skipped by the driver). The corruption comes after both stresses' CMD_SYNCs
 * (20 of the 47), so one CPU alone waits behind it: with two waiting, which one's 1 s poll timeout
 * ends first is host timing in a threaded run, and the outcome with it. The copy timeout is long for
 * the same reason: threaded, platform time is host time.
 */
const SCENARIO = {
  summary: 'two CPUs in the command queue, then ATS DMA on CPU 0 with one command corrupted',
  cpus: 2,
  workload: [
    { do: 'cmdq-stress', cpu: 0, batch: 4, iterations: 10 },
    { do: 'ats-dma', cpu: 0, rounds: 2, copyTimeoutMs: 2000 },
    { do: 'cmdq-stress', cpu: 1, batch: 4, iterations: 10 },
  ],
  faults: [{ kind: 'cmd-illegal', trigger: { after: { event: 'cmd-sync', nth: 35 } } }],
  expect: { errors: 'none', violations: 'none' },
};

interface ReplayJson {
  ok: boolean;
  lockstep: LockstepStats;
  schedule: { file: string; followed: ReplayStats | null; differences: string[] };
}

/** Runs the CLI expecting exit 2 and one line on stderr, nothing on stdout; returns the line. */
async function usageError(args: string[]): Promise<string> {
  const r = await runCli(args);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

describe('run --threaded --record, then run --schedule (CLI)', () => {
  let file = '';
  let record: ScheduleRecord;

  it('records a threaded run of two CPUs: the writer sequence, the scenario and the outcome', async () => {
    const d = dir('record');
    const scenario = join(d, 'small.json');
    writeFileSync(scenario, JSON.stringify(SCENARIO));
    file = join(d, 'small.sched');
    const r = await runCli(['run', '--scenario', scenario, '--threaded', '--record', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, faultsByKind: { 'cmd-illegal': 1 } });

    record = JSON.parse(readFileSync(file, 'utf8')) as ScheduleRecord;
    expect(record).toMatchObject({ format: 'smmulab-schedule', version: 1, cpus: 2 });
    expect(record.totals.writes).toBeGreaterThan(0);
    expect(countWrites(record.writes)).toBe(record.totals.writes);
    // Both CPUs wrote (the probe on CPU 0, CMDQ_PROD by both).
    expect(new Set(record.writes.map(([cpu]) => cpu))).toEqual(new Set([0, 1]));
    expect(record.writeHash).toMatch(/^[0-9a-f]{16}$/);
    expect(record.faults.map((f) => f.kind)).toEqual(['cmd-illegal']);
    expect(record.scenario).toMatchObject({ name: 'small', seed: 1, scenario: { cpus: 2, workload: SCENARIO.workload } });
    expect(record.outcome).toMatchObject({ ok: true, errors: 0, hangs: 0, lostCommands: 0, duplicatedCommands: 0, faultsByKind: { 'cmd-illegal': 1 }, commandErrors: { cerrors: { CERROR_ILL: 1 } } });
  });

  it('replays it in lockstep to the recorded outcome, the same way twice', async () => {
    expect(file, 'the recording test ran first').not.toBe('');
    const replay = async (): Promise<ReplayJson> => {
      const r = await runCli(['run', '--schedule', file, '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as ReplayJson;
    };
    const a = await replay();
    expect(a.schedule.file).toBe(file);
    expect(a.schedule.differences).toEqual([]);
    expect(a.ok).toBe(true);
    expect(a.lockstep.strategy).toBe('schedule');
    expect(a.lockstep.aborted).toBeNull();
    const f = a.schedule.followed!;
    expect(f).toEqual(a.lockstep.replay);
    expect(f.recordedWrites).toBe(record.totals.writes);
    // Every write the replay made is counted once, as the recorded CPU's or another's.
    expect(f.matched + f.diverged).toBe(a.lockstep.mmioWrites);
    expect(f.matched).toBeGreaterThan(0);
    expect(f.matched).toBeLessThanOrEqual(f.recordedWrites);

    const b = await replay();
    expect(b.schedule.differences).toEqual([]);
    expect(b.lockstep.writeHash).toBe(a.lockstep.writeHash);
    expect(b.lockstep.mmioWrites).toBe(a.lockstep.mmioWrites);
    expect(b.schedule.followed).toEqual(f);
  });

  it('four CPUs contending (cmdq-contention): the replay gets through the spins to the recorded outcome', async () => {
    // The expected writer often spins (cpu_relax) waiting for CPUs whose writes the record has after
    // its own; the replay must let every other CPU through in turn. It once let only the next one in
    // CPU order through, and the replay never ended ("cpu0 did not answer 'driverStats'").
    const sched = join(dir('contention'), 'cc.sched');
    const r = await runCli(['run', '--scenario', 'cmdq-contention', '--threaded', '--record', sched]);
    expect(r.code, r.stderr).toBe(0);
    const rec = JSON.parse(readFileSync(sched, 'utf8')) as ScheduleRecord;
    expect(rec.cpus).toBe(4);
    const p = await runCli(['run', '--schedule', sched, '--json'], 45_000);
    expect(p.code, p.stderr).toBe(0);
    const out = JSON.parse(p.stdout) as ReplayJson;
    expect(out.schedule.differences).toEqual([]);
    expect(out.schedule.followed!.matched + out.schedule.followed!.diverged).toBe(out.lockstep.mmioWrites);
    expect(out.schedule.followed!.matched).toBeGreaterThan(0);
  });
});

describe('run --record / --schedule: bad input exits 2 with one line', () => {
  it('--record without --threaded', async () => {
    const out = join(dir('no-threaded'), 'x.sched');
    expect(await usageError(['run', '--scenario', 'cmd-illegal', '--record', out])).toMatch(/--record records a threaded run: add --threaded/);
    expect(existsSync(out)).toBe(false);
  });

  it('--record into a directory that does not exist, and --cpus fewer than the scenario has: refused before anything runs', async () => {
    const out = join(dir('no-dir'), 'missing', 'x.sched');
    expect(await usageError(['run', '--scenario', 'cmd-illegal', '--threaded', '--record', out])).toMatch(/--record: directory '.*missing' does not exist/);
    expect(await usageError(['run', '--scenario', 'cmdq-contention', '--cpus', '2'])).toMatch(/--cpus 2: scenario cmdq-contention already runs on 4 CPUs/);
  });

  it('--schedule with an option its file gives (--seed)', async () => {
    const sched = join(dir('with-seed'), 'x.sched');
    writeFileSync(sched, '{}');
    expect(await usageError(['run', '--schedule', sched, '--seed', '3'])).toMatch(/--schedule replays what its file recorded: drop --seed$/);
  });

  it('a malformed schedule file, naming the field', async () => {
    const d = dir('malformed');
    const good = {
      format: 'smmulab-schedule',
      version: 1,
      cpus: 2,
      writes: [[0, 2], [1, 1]],
      irqs: [],
      faults: [],
      timers: [],
      totals: { writes: 3, irqs: 0, faults: 0, timers: 0 },
      writeHash: '0123456789abcdef',
      scenario: {},
      outcome: {},
    };
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['cpu', { writes: [[0, 2], [2, 1]] }, /\.writes\[1\]\[0\]: cpu 2, but the system has 2 CPUs$/],
      ['totals', { totals: { ...good.totals, writes: 4 } }, /\.totals\.writes: 4, but the writer sequence counts 3$/],
      ['hash', { writeHash: 'xyz' }, /\.writeHash: must be 16 lower-case hex digits/],
      ['ran', {}, /: scenario\.name: missing$/],
    ];
    for (const [name, change, message] of cases) {
      const sched = join(d, `${name}.sched`);
      writeFileSync(sched, JSON.stringify({ ...good, ...change }));
      const line = await usageError(['run', '--schedule', sched]);
      expect(line).toContain(sched);
      expect(line).toMatch(message);
    }
  });
});
