// Schedules: the order in which the hardware saw what the CPUs did, recorded by a run booted with
// `record: true` (hw/schedule-recorder.ts) and replayed in lockstep by the `schedule` strategy
// (src/protocol/lockstep.ts), which steers the CPUs so that the MMIO writes reach the hardware by the
// same CPUs in the same order.
//
// The record's key is the writer-CPU sequence: which CPU made each MMIO write, in the order the hardware
// applied them, run-length encoded ([cpu, count] runs: a probe is one long run). Everything else is
// positioned by the number of writes the hardware had applied when it happened (the write being
// applied included): the interrupts it delivered, the injected faults that fired, the timers its
// scheduler ran. The writes themselves (PA, size, value) are kept as one 64-bit hash, the one lockstepStats()
// reports as writeHash, so a replay that saw exactly the same writes is told by comparing two strings.
//
// The file format is the record as JSON: {format: 'smmulab-schedule', version: 1, cpus, writes, irqs,
// faults, timers, totals, writeHash}, plus `outcome` and `scenario` objects that whoever writes the file
// may add (what the run ended with, what it ran) and that checking only requires to be objects.

import { InputError, arr, int, obj, oneOf, opt, sameSchema, show, withSchema, type Check, type Infer } from './check.ts';
import { FAULT_KINDS } from './faults.ts';
import { MAX_CPUS } from '../machine/layout.ts';
import { IRQ_VECTORS } from '../arch/platform.ts';

export const SCHEDULE_FORMAT = 'smmulab-schedule';
export const SCHEDULE_VERSION = 1;

/** Most runs of a writer sequence, and most writes one run may count: the total stays a safe integer. */
const MAX_RUNS = 2 ** 24;
const MAX_RUN = 2 ** 28;

/** A pair of integers [a, b] within the given ranges (paths `path[0]`, `path[1]`). */
function intPair(a: Check<number>, b: Check<number>): Check<[number, number]> {
  return withSchema(
    (v, path) => {
      if (!Array.isArray(v) || v.length !== 2) throw new InputError(`${path}: must be a pair of integers (got ${show(v)})`);
      return [a(v[0], `${path}[0]`), b(v[1], `${path}[1]`)];
    },
    { type: 'array', prefixItems: [a.schema, b.schema], minItems: 2, maxItems: 2 },
  );
}

/** Any JSON object, passed through as it is (what the file's writer added). */
const anyObject: Check<Record<string, unknown>> = withSchema(
  (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${path}: must be an object (got ${show(v)})`);
    return v as Record<string, unknown>;
  },
  { type: 'object' },
);

const position = int(0, Number.MAX_SAFE_INTEGER);

/** [cpu, count]: `count` consecutive MMIO writes by CPU `cpu`. */
const checkWriterRun = intPair(int(0, MAX_CPUS - 1), int(1, MAX_RUN));
export const checkWriterRuns = arr(checkWriterRun, MAX_RUNS);
export type WriterRun = Infer<typeof checkWriterRun>;

const checkShape = obj({
  format: oneOf([SCHEDULE_FORMAT]),
  version: withSchema(
    (v, path) => {
      if (v !== SCHEDULE_VERSION) throw new InputError(`${path}: version ${show(v)} is not one this smmulab reads (${SCHEDULE_VERSION})`);
      return SCHEDULE_VERSION;
    },
    { const: SCHEDULE_VERSION },
  ),
  /** CPUs of the recorded system. */
  cpus: int(1, MAX_CPUS),
  /** The writer-CPU sequence, run-length encoded. */
  writes: checkWriterRuns,
  /** Interrupts the hardware delivered: the vector, and the CPU it was routed to. */
  irqs: arr(obj({ afterWrites: position, cpu: int(0, MAX_CPUS - 1), line: int(0, IRQ_VECTORS - 1) })),
  /** Injected hardware faults that fired (src/protocol/faults.ts). */
  faults: arr(obj({ afterWrites: position, kind: oneOf(FAULT_KINDS) })),
  /** Timers the hardware's scheduler ran: [afterWrites, how many]. */
  timers: arr(intPair(position, int(1, Number.MAX_SAFE_INTEGER))),
  totals: obj({ writes: position, irqs: position, faults: position, timers: position }),
  /** 16 hex digits: the hash of every write's (cpu, pa, size, value), in order, as lockstepStats' writeHash. */
  writeHash: withSchema(
    (v, path) => {
      if (typeof v !== 'string' || !/^[0-9a-f]{16}$/.test(v)) throw new InputError(`${path}: must be 16 lower-case hex digits (got ${show(v)})`);
      return v;
    },
    { type: 'string', pattern: '^[0-9a-f]{16}$' },
  ),
  /** What the run ended with (added by whoever writes the file). */
  outcome: opt(anyObject),
  /** What the run ran (added by whoever writes the file). */
  scenario: opt(anyObject),
});

export type ScheduleRecord = Infer<typeof checkShape>;
export type ScheduleFault = ScheduleRecord['faults'][number];

/** The number of writes a writer sequence holds (or of timers a timer list: the counts' sum). */
export function countWrites(runs: readonly (readonly [number, number])[]): number {
  let n = 0;
  for (const [, count] of runs) n += count;
  return n;
}

/** Fails naming `path` unless every CPU of the writer sequence exists in a system of `cpus` CPUs. */
export function checkWritersFit(runs: readonly WriterRun[], cpus: number, path: string): void {
  runs.forEach(([cpu], i) => {
    if (cpu >= cpus) throw new InputError(`${path}[${i}][0]: cpu ${cpu}, but the system has ${cpus} CPU${cpus === 1 ? '' : 's'}`);
  });
}

/**
 * Checks a schedule (a parsed file, or anything from outside): its shape, then the rules between fields
 * (CPUs that exist, totals that add up, positions in order and within the writes); throws an InputError
 * naming the field by path.
 */
export const checkScheduleRecord: Check<ScheduleRecord> = sameSchema((v, path) => {
  const s = checkShape(v, path);
  checkWritersFit(s.writes, s.cpus, `${path}.writes`);
  const writes = countWrites(s.writes);
  const total = (field: keyof ScheduleRecord['totals'], n: number, what: string) => {
    if (s.totals[field] !== n) throw new InputError(`${path}.totals.${field}: ${s.totals[field]}, but ${what} ${n}`);
  };
  total('writes', writes, 'the writer sequence counts');
  total('irqs', s.irqs.length, 'irqs lists');
  total('faults', s.faults.length, 'faults lists');
  total('timers', countWrites(s.timers), 'timers count');
  const inOrder = (field: string, positions: readonly number[]) => {
    let last = 0;
    positions.forEach((at, i) => {
      if (at < last || at > writes) throw new InputError(`${path}.${field}[${i}]: afterWrites ${at} must be from ${last} (the one before) to ${writes} (the writes)`);
      last = at;
    });
  };
  inOrder('irqs', s.irqs.map((e) => e.afterWrites));
  inOrder('faults', s.faults.map((e) => e.afterWrites));
  inOrder('timers', s.timers.map(([at]) => at));
  s.irqs.forEach((e, i) => {
    if (e.cpu >= s.cpus) throw new InputError(`${path}.irqs[${i}].cpu: ${e.cpu}, but the system has ${s.cpus} CPUs`);
  });
  return s;
}, checkShape);

/** Where two lists of events (interrupts, faults, timer runs) part. */
export interface EventsDiff {
  recorded: number;
  replayed: number;
  /** The same events in the same order, positions aside. */
  sameOrder: boolean;
  /** The first index where the events or their positions differ (null: none). */
  firstDiff: number | null;
}

/** How a replay's record compares with the record it replayed. */
export interface ScheduleDiff {
  /** The first write made by another CPU than recorded, or where one sequence ended (null: none). */
  firstWriterDiff: number | null;
  /** The hardware saw exactly the same writes (CPU, PA, size, value), in the same order. */
  sameWrites: boolean;
  irqs: EventsDiff;
  faults: EventsDiff;
  timers: EventsDiff;
}

/** Compares a replay's own record (booted with record: true) with the record it replayed. */
export function diffSchedules(recorded: ScheduleRecord, replayed: ScheduleRecord): ScheduleDiff {
  return {
    firstWriterDiff: firstWriterDiff(recorded.writes, replayed.writes),
    sameWrites: recorded.writeHash === replayed.writeHash && recorded.totals.writes === replayed.totals.writes,
    irqs: events(recorded.irqs, replayed.irqs, (a, b) => a.cpu === b.cpu && a.line === b.line, (e) => e.afterWrites),
    faults: events(recorded.faults, replayed.faults, (a, b) => a.kind === b.kind, (e) => e.afterWrites),
    timers: events(recorded.timers, replayed.timers, (a, b) => a[1] === b[1], (e) => e[0]),
  };
}

function events<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean, at: (x: T) => number): EventsDiff {
  return { recorded: a.length, replayed: b.length, sameOrder: a.length === b.length && firstDiff(a, b, same) === null, firstDiff: firstDiff(a, b, (x, y) => same(x, y) && at(x) === at(y)) };
}

function firstDiff<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (!same(a[i]!, b[i]!)) return i;
  return a.length === b.length ? null : n;
}

/** The first write at which two writer sequences differ, walking their runs side by side (they may be cut differently). */
function firstWriterDiff(a: readonly WriterRun[], b: readonly WriterRun[]): number | null {
  let i = 0;
  let j = 0;
  let usedA = 0;
  let usedB = 0;
  let at = 0;
  while (i < a.length && j < b.length) {
    const [cpuA, countA] = a[i]!;
    const [cpuB, countB] = b[j]!;
    if (cpuA !== cpuB) return at;
    const n = Math.min(countA - usedA, countB - usedB);
    at += n;
    usedA += n;
    usedB += n;
    if (usedA === countA) [i, usedA] = [i + 1, 0];
    if (usedB === countB) [j, usedB] = [j + 1, 0];
  }
  return i === a.length && j === b.length ? null : at;
}
