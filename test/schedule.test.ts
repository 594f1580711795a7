// Record and replay of schedules (src/protocol/schedule.ts, hw/schedule-recorder.ts, the `schedule`
// lockstep strategy of src/protocol/lockstep.ts): a threaded run booted with `record: true` gives the
// order in which the hardware saw the MMIO writes and what happened between them; a lockstep replay of
// the same work under that record reaches the same outcome, and repeats exactly.
// Every run probes (CPU 1 takes the GERROR interrupt), makes the next command fetched illegal and runs a
// workload on CPU 0 alone, whose first command CPU 1's GERROR handler skips; then both CPUs run a
// workload:
//   (a) one after the other: the replay follows the record write for write, and the hardware sees
//       exactly the same writes (same hash);
//   (b) at once: the same outcome, and divergences only where the two runs cut the command batches into
//       CMDQ_PROD writes differently (see the bound below); a second replay is identical.
// (The illegal command comes while CPU 1 is idle: with both CPUs polling their CMD_SYNCs with interrupts
// off, the error would wait for their 1 s poll timeouts, and which CPU's expires first, handling it, is
// up to the host's timing, which no record of the writes can replay.)
// Then the file format (a malformed schedule is refused naming the field) and the strategy's choices.

import { describe, expect, it } from 'vitest';
import { lockstepStats } from '../src/host/lockstep-n.ts';
import { cerrorsByName, executedByOpcode } from '../src/host/stats.ts';
import { checkScheduleRecord, countWrites, diffSchedules, type ScheduleRecord } from '../src/protocol/schedule.ts';
import { ScheduleReplay, createStrategy, lockstepConfig } from '../src/protocol/lockstep.ts';
import { STAT } from '../src/machine/layout.ts';
import type { SystemOptions } from '../src/host/system.ts';
import { withSystem, type TestSystem } from './helpers/system.ts';

const WORK = { batch: 8, iterations: 12 };

/** The work of every run: probe, an illegal command in CPU 0's workload, then both CPUs' workloads. */
async function work(s: TestSystem, concurrent: boolean) {
  await s.sys.probe({ irqCpu: 1 });
  const probeWrites = s.stat(STAT.MMIO_WRITES);
  const before = s.sys.stats();
  await s.sys.inject({ kind: 'cmd-illegal' });
  const first = await s.workload(0, WORK);
  const runs = concurrent ? await Promise.all([0, 1].map((cpu) => s.workload(cpu, WORK))) : [await s.workload(1, WORK), await s.workload(0, WORK)];
  const after = s.sys.stats();
  const report = await s.sys.hw.op('report');
  const drivers = await Promise.all([0, 1].map((cpu) => s.driverStats(cpu)));
  return {
    probeWrites,
    outcome: {
      executed: executedByOpcode(before, after),
      cerrors: cerrorsByName(before, after),
      issued: [first, ...runs].map((r) => r.issuedByOpcode),
      syncTimeouts: [first, ...runs].map((r) => r.syncTimeouts),
      faultsFired: report.faultsFired,
      corrupted: report.corrupted,
      uaf: report.uaf,
      drivers: drivers.map((d) => ({ issued: d.issued, syncs: d.syncs, gerrors: d.gerrors, cmdqErrors: d.cmdqErrors.map((e) => e.code) })),
      regs: { prod: s.reg('CMDQ_PROD'), cons: s.reg('CMDQ_CONS'), gerror: s.reg('GERROR'), gerrorn: s.reg('GERRORN') },
    },
  };
}

/** A threaded run, recorded. */
async function recorded(concurrent: boolean) {
  return withSystem({ cpus: 2, record: true }, async (s) => {
    const r = await work(s, concurrent);
    const schedule = await s.sys.schedule();
    return { ...r, schedule, mmioWrites: s.stat(STAT.MMIO_WRITES) };
  });
}

/** A lockstep replay of `record` (itself recorded, to compare interrupts and faults). */
async function replay(record: ScheduleRecord, concurrent: boolean, opts: SystemOptions = {}) {
  return withSystem({ cpus: 2, record: true, lockstep: { strategy: 'schedule', writers: record.writes }, ...opts }, async (s) => {
    const r = await work(s, concurrent);
    const schedule = await s.sys.schedule();
    return { ...r, schedule, mmioWrites: s.stat(STAT.MMIO_WRITES), ls: lockstepStats(s.sys)! };
  });
}

describe('schedules: record a threaded run, replay it in lockstep', () => {
  it('sequential work: the replay follows the record write for write, and the hardware sees the same writes', async () => {
    const t = await recorded(false);
    expect(t.schedule.totals.writes).toBe(t.mmioWrites);
    expect(checkScheduleRecord(JSON.parse(JSON.stringify(t.schedule)), 'schedule')).toEqual(t.schedule);
    expect(t.outcome.cerrors).toEqual({ CERROR_ILL: 1 });
    // CPU 0 wrote, CPU 1 acknowledged the error (GERRORN), CPU 1 wrote; the fault fired after a write.
    expect(new Set(t.schedule.writes.map(([cpu]) => cpu))).toEqual(new Set([0, 1]));
    expect(t.schedule.faults).toEqual([{ afterWrites: expect.any(Number), kind: 'cmd-illegal' }]);
    expect(t.schedule.irqs.some((e) => e.cpu === 1)).toBe(true);

    const r = await replay(t.schedule, false);
    expect(r.ls.replay).toEqual({ recordedWrites: t.schedule.totals.writes, matched: t.schedule.totals.writes, diverged: 0, firstDivergence: null });
    expect(r.outcome).toEqual(t.outcome);
    expect(r.ls.writeHash).toBe(t.schedule.writeHash);
    const d = diffSchedules(t.schedule, r.schedule);
    expect(d.firstWriterDiff).toBeNull();
    expect(d.sameWrites).toBe(true);
    expect(d.faults).toEqual({ recorded: 1, replayed: 1, sameOrder: true, firstDiff: null });
    expect(d.irqs.sameOrder).toBe(true);
  }, 60_000);

  it('both CPUs at once: the same outcome, bounded divergence; a second replay is identical', async () => {
    const t = await recorded(true);
    expect(t.schedule.totals.writes).toBe(t.mmioWrites);
    const writers = new Map<number, number>();
    for (const [cpu, n] of t.schedule.writes) writers.set(cpu, (writers.get(cpu) ?? 0) + n);
    expect([...writers.keys()].sort()).toEqual([0, 1]);

    const r = await replay(t.schedule, true);
    expect(r.outcome).toEqual(t.outcome);
    const rep = r.ls.replay!;
    expect(rep.recordedWrites).toBe(t.schedule.totals.writes);
    expect(rep.matched + rep.diverged).toBe(r.mmioWrites);
    // The bound. The record orders the CMDQ_PROD writes, not which batches each one publishes: a CPU
    // that reserves queue space while another is the owner has its batch published by the owner's
    // write (Linux's gathering), and only the threads' timing decides when that happens. The replay
    // gathers only where the record does not let it keep the CPUs apart, so each batch the two runs
    // publish differently costs a write one run has and the other not: one divergence when the
    // replay has the extra write, at most two when the record has it (the second stray write resyncs).
    // Without gathering, every batch and every acknowledged error is one write.
    const ungathered = t.probeWrites + 3 * WORK.iterations + t.outcome.cerrors.CERROR_ILL!;
    const gathered = ungathered - t.mmioWrites + (ungathered - r.mmioWrites);
    expect(rep.diverged).toBeLessThanOrEqual(2 * gathered);
    expect(rep.matched).toBeGreaterThanOrEqual(t.schedule.totals.writes - 2 * gathered);
    const d = diffSchedules(t.schedule, r.schedule);
    expect(d.faults.sameOrder).toBe(true);
    expect(d.irqs.sameOrder).toBe(true);

    const again = await replay(t.schedule, true);
    expect(again.ls.writeHash).toBe(r.ls.writeHash);
    expect(again.ls.replay).toEqual(r.ls.replay);
    expect(again.ls.platformNs).toBe(r.ls.platformNs);
    expect(again.schedule).toEqual(r.schedule);
    expect(again.outcome).toEqual(r.outcome);
  }, 60_000);

  it('System.schedule() without record: true says so', async () => {
    await withSystem({ cpus: 1 }, async (s) => {
      await expect(s.sys.schedule()).rejects.toThrow(/nothing recorded \(boot the system with record: true\)/);
    });
  });
});

describe('schedules: the file format', () => {
  const good: ScheduleRecord = {
    format: 'smmulab-schedule',
    version: 1,
    cpus: 2,
    writes: [[0, 3], [1, 2]],
    irqs: [{ afterWrites: 2, cpu: 1, line: 65 }],
    faults: [{ afterWrites: 4, kind: 'cmd-illegal' }],
    timers: [[5, 2]],
    totals: { writes: 5, irqs: 1, faults: 1, timers: 2 },
    writeHash: '0123456789abcdef',
  };
  const check = (v: unknown) => checkScheduleRecord(v, 'schedule');
  const bad = (patch: object) => check({ ...good, ...patch });

  it('a well-formed record passes, outcome and scenario objects through', () => {
    expect(check(good)).toEqual(good);
    const extra = { ...good, outcome: { executed: { SYNC: 3 } }, scenario: { name: 'x' } };
    expect(check(extra)).toEqual(extra);
    expect(countWrites(good.writes)).toBe(5);
  });

  it('a malformed record is refused naming the field', () => {
    expect(() => bad({ format: 'other' })).toThrow(/^schedule\.format: must be one of smmulab-schedule/);
    expect(() => bad({ version: 2 })).toThrow(/^schedule\.version: version 2 is not one this smmulab reads \(1\)/);
    expect(() => bad({ writes: [[0, 3], [1]] })).toThrow(/^schedule\.writes\[1\]: must be a pair of integers/);
    expect(() => bad({ writes: [[0, 3], [1, 0]] })).toThrow(/^schedule\.writes\[1\]\[1\]: must be an integer from 1/);
    expect(() => bad({ writes: [[0, 3], [2, 2]] })).toThrow(/^schedule\.writes\[1\]\[0\]: cpu 2, but the system has 2 CPUs/);
    expect(() => bad({ totals: { ...good.totals, writes: 6 } })).toThrow(/^schedule\.totals\.writes: 6, but the writer sequence counts 5/);
    expect(() => bad({ irqs: [{ afterWrites: 9, cpu: 1, line: 65 }] })).toThrow(/^schedule\.irqs\[0\]: afterWrites 9 must be from 0/);
    expect(() => bad({ irqs: [{ afterWrites: 2, cpu: 1, line: 999 }] })).toThrow(/^schedule\.irqs\[0\]\.line: must be an integer from 0 to 255/);
    expect(() => bad({ faults: [{ afterWrites: 4, kind: 'nope' }] })).toThrow(/^schedule\.faults\[0\]\.kind: must be one of/);
    expect(() => bad({ writeHash: 'xyz' })).toThrow(/^schedule\.writeHash: must be 16 lower-case hex digits/);
    expect(() => bad({ outcome: [1] })).toThrow(/^schedule\.outcome: must be an object/);
    expect(() => bad({ extra: 1 })).toThrow(/^schedule\.extra: unknown field/);
  });

  it('the lockstep options take a writer sequence for the schedule strategy only, naming CPUs that exist', () => {
    expect(lockstepConfig({ strategy: 'schedule', writers: good.writes }, 2).writers).toEqual(good.writes);
    expect(() => lockstepConfig({ strategy: 'schedule' })).toThrow(/^lockstep\.writers: missing/);
    expect(() => lockstepConfig({ strategy: 'random', writers: good.writes })).toThrow(/^lockstep\.writers: only the schedule strategy/);
    expect(() => lockstepConfig({ strategy: 'schedule', writers: good.writes }, 1)).toThrow(/^lockstep\.writers\[1\]\[0\]: cpu 1, but the system has 1 CPU$/);
  });
});

describe('schedules: the schedule strategy', () => {
  const replayOf = (writers: [number, number][]) => createStrategy(lockstepConfig({ strategy: 'schedule', writers }, 2), 2) as ScheduleReplay;

  it('runs the expected writer when it can, else round-robin; has the others wait for it a little', () => {
    const s = replayOf([[1, 1], [0, 1]]);
    expect(s.pick([0, 1], 1)).toBe(1);
    expect(s.pick([0], 1)).toBe(0);
    // CPU 1 will be runnable 50 ns from now: the others wait; at 5 us, too far: one of them runs, and
    // the next wait starts afresh.
    expect(s.deferUntil([0], 100, () => 150)).toBe(150);
    expect(s.deferUntil([0], 150, () => 5000)).toBe(-1);
    expect(s.deferUntil([0], 4500, () => 5000)).toBe(5000);
    expect(s.deferUntil([0, 1], 5000, () => 5000)).toBe(-1);
  });

  it('lets the other CPUs through in turn, whoever ran in between (no CPU starves while the expected writer spins)', () => {
    const s = createStrategy(lockstepConfig({ strategy: 'schedule', writers: [[1, 1]] }, 4), 4) as ScheduleReplay;
    // CPU 1, the expected writer, spins on cpu_relax between these steps, so the CPU that ran last is
    // always 1; rotating after it would give every step to CPU 2 (and a replay of cmdq-contention hung
    // with CPU 0 and 3 never running again).
    expect(Array.from({ length: 6 }, () => s.pick([0, 2, 3], 1))).toEqual([0, 2, 3, 0, 2, 3]);
    expect(s.pick([0, 1, 2, 3], 0)).toBe(1);
  });

  it('counts a stray write and keeps the record; a second one in a row resumes after that CPU\'s next write', () => {
    const s = replayOf([[0, 2], [1, 1], [0, 1], [1, 2]]);
    s.wrote(0);
    s.wrote(1); // one the record does not have (yet): the record still expects CPU 0
    expect(s.expected()).toBe(0);
    s.wrote(0);
    s.wrote(1);
    expect({ matched: s.matched, diverged: s.diverged, firstDivergence: s.firstDivergence }).toEqual({ matched: 3, diverged: 1, firstDivergence: { write: 1, expectedCpu: 0, actualCpu: 1 } });
    s.wrote(1); // expected CPU 0: a stray
    s.wrote(1); // a second: CPU 0's write is not coming; resume after CPU 1's next one
    expect(s.expected()).toBe(1);
    s.wrote(1);
    expect(s.expected()).toBe(-1);
    s.wrote(0); // past the end of the record
    expect({ matched: s.matched, diverged: s.diverged, recordedWrites: s.recordedWrites }).toEqual({ matched: 4, diverged: 4, recordedWrites: 6 });
  });
});
