// What a campaign seed stands for: a schedule — a topology of 1 to 64 ATS functions, a workload mix,
// faults with triggers and timing — drawn by fast-check from the seed, so that a failing schedule
// shrinks (fewer functions, faults, steps, rounds) to the smallest one that still fails. A schedule is
// plain data; toScenario() makes the scenario (src/protocol/scenario.ts) that runs it, and the same
// seed always gives the same schedule (fc.sample and fc.check draw the first value alike).
//
// What a schedule must satisfy besides the invariants every run keeps: by default a DMA
// use-after-free is allowed only where an invalidation was lost for a reason no ATC policy covers (a
// command skipped as illegal, a CMD_SYNC that never completed), where an ATC invalidation timed out
// and the policy does not recover (none, reset: the weakness the threads describe), or with the
// deliberate skip-invalidation bug; with `noViolations` none is allowed at all.

import fc from 'fast-check';
import { IDS } from '../../arch/pcie/ids.ts';
import { checkScenario, type Scenario, type ScenarioReport } from '../../protocol/scenario.ts';
import type { Fault } from '../../protocol/faults.ts';
import type { Step } from '../../protocol/scenario.ts';
import type { AtcRecovery } from '../../protocol/ops/smmu.ts';

/** Functions of a schedule's topology, by port and function number. */
export interface ScheduleSpec {
  ports: number;
  fnsPerPort: number;
  /** Device ID of each port's functions: plain, or one of the quirks with device-specific resets. */
  deviceIds: number[];
  strict: boolean;
  faults: FaultSpec[];
  steps: StepSpec[];
}

/** A fault before its device is known: `dev` indexes the schedule's functions (modulo their count). */
export type FaultSpec = { dev: number; f: (bdf: string) => Fault; label: string };
export type StepSpec = { dev: number; s: (bdf: string) => Step; label: string };

const MAX_FUNCTIONS = 64;
const WATCHDOG_BASE_MS = 1_800_000;
const WATCHDOG_PER_FUNCTION_ROUND_MS = 20_000;

/** DMA rounds a schedule's steps run, in all. */
function rounds(s: ScheduleSpec): number {
  return s.steps.reduce((n, x) => {
    const st = x.s('00:00.0');
    return n + (st.do === 'ats-dma' ? (st.rounds ?? 1) : 0);
  }, 0);
}
const dev = fc.nat({ max: 63 });
const nth = (max: number) => fc.integer({ min: 1, max });
const maybeProbability = fc.option(fc.constantFrom(0.25, 0.5, 0.9), { nil: undefined });

/** One arbitrary per catalogue fault a schedule may carry (clear and resume only make sense in scripts). */
const FAULTS: fc.Arbitrary<FaultSpec>[] = [
  fc.record({ dev, n: nth(8), count: fc.constantFrom<1 | 'until-reset' | 'forever'>(1, 'until-reset', 'forever'), p: maybeProbability }).map(({ dev, n, count, p }) => ({
    dev,
    label: 'atc-inv-no-answer',
    f: (bdf: string): Fault => ({ kind: 'atc-inv-no-answer', bdf, trigger: { count, after: { event: 'atc-inv', nth: n }, ...(p ? { probability: p } : {}) } }),
  })),
  fc.record({ dev, lateUs: fc.integer({ min: 100, max: 3000 }), n: nth(8) }).map(({ dev, lateUs, n }) => ({ dev, label: 'atc-inv-late', f: (bdf: string): Fault => ({ kind: 'atc-inv-late', bdf, lateUs, trigger: { after: { event: 'atc-inv', nth: n } } }) })),
  fc.record({ dev, delayUs: fc.integer({ min: 10, max: 800 }) }).map(({ dev, delayUs }) => ({ dev, label: 'atc-inv-slow', f: (bdf: string): Fault => ({ kind: 'atc-inv-slow', bdf, delayUs, trigger: { count: 'forever' } }) })),
  dev.map((dev) => ({ dev, label: 'flr-never-ready', f: (bdf: string): Fault => ({ kind: 'flr-never-ready', bdf }) })),
  fc.record({ dev, ms: fc.integer({ min: 100, max: 3000 }) }).map(({ dev, ms }) => ({ dev, label: 'flr-slow', f: (bdf: string): Fault => ({ kind: 'flr-slow', bdf, ms }) })),
  dev.map((dev) => ({ dev, label: 'transactions-pending-stuck', f: (bdf: string): Fault => ({ kind: 'transactions-pending-stuck', bdf }) })),
  nth(40).map((n) => ({ dev: 0, label: 'cmd-illegal', f: (): Fault => ({ kind: 'cmd-illegal', trigger: { after: { event: 'cmd-sync', nth: n } } }) })),
  nth(3).map((count) => ({ dev: 0, label: 'cmd-fetch-abort', f: (): Fault => ({ kind: 'cmd-fetch-abort', trigger: { count } }) })),
  fc.constantFrom('ste', 'cd', 'walk', 'evtq' as const).map((what) => ({ dev: 0, label: 'smmu-fetch-abort', f: (): Fault => ({ kind: 'smmu-fetch-abort', what, trigger: { count: 1 } }) })),
  fc.constantFrom('cmdq', 'evtq', 'gerror' as const).map((source) => ({ dev: 0, label: 'msi-abort', f: (): Fault => ({ kind: 'msi-abort', source, trigger: { count: 1 } }) })),
  nth(40).map((n) => ({ dev: 0, label: 'sfm', f: (): Fault => ({ kind: 'sfm', trigger: { after: { event: 'cmd-sync', nth: n } } }) })),
  fc.record({ dev, n: nth(8), recovery: fc.boolean() }).map(({ dev, n, recovery }) => ({
    dev,
    label: 'surprise-removal',
    f: (bdf: string): Fault => ({ kind: 'surprise-removal', bdf, trigger: { after: recovery ? { event: 'recovery' } : { event: 'atc-inv', nth: n } } }),
  })),
  fc.record({ dev, error: fc.constantFrom('MALF_TLP', 'COMP_TIME', 'BAD_TLP') }).map(({ dev, error }) => ({ dev, label: 'aer', f: (bdf: string): Fault => ({ kind: 'aer', bdf, error }) })),
  fc.integer({ min: 1, max: 3000 }).map((ms) => ({ dev: 0, label: 'cmd-sync-irq-masked', f: (): Fault => ({ kind: 'cmd-sync-irq-masked', holdNs: ms * 1e6, trigger: { count: 1 } }) })),
  fc.record({ ms: fc.integer({ min: 1, max: 3000 }), n: nth(40) }).map(({ ms, n }) => ({ dev: 0, label: 'hang', f: (): Fault => ({ kind: 'hang', forNs: ms * 1e6, trigger: { after: { event: 'cmd-sync', nth: n } } }) })),
  fc.integer({ min: 0, max: 2000 }).map((us) => ({ dev: 0, label: 'ack-latency', f: (): Fault => ({ kind: 'ack-latency', ns: us * 1000 }) })),
  fc.constant({ dev: 0, label: 'fail-blocking-attach', f: (): Fault => ({ kind: 'fail-blocking-attach', trigger: { count: 1 } }) }),
  nth(3).map((count) => ({ dev: 0, label: 'fail-page-alloc', f: (): Fault => ({ kind: 'fail-page-alloc', trigger: { count } }) })),
  fc.constant({ dev: 0, label: 'fail-iova-alloc', f: (): Fault => ({ kind: 'fail-iova-alloc', trigger: { count: 1 } }) }),
  nth(30).map((n) => ({ dev: 0, label: 'fail-nth', f: (): Fault => ({ kind: 'fail-nth', nth: n }) })),
  nth(4).map((count) => ({ dev: 0, label: 'skip-invalidation', f: (): Fault => ({ kind: 'skip-invalidation', trigger: { count } }) })),
  fc.constant({ dev: 0, label: 'evtq-overflow', f: (): Fault => ({ kind: 'evtq-overflow' }) }),
];

const STEPS: fc.Arbitrary<StepSpec>[] = [
  fc.record({ rounds: fc.integer({ min: 1, max: 3 }), pages: fc.integer({ min: 1, max: 2 }), transfers: fc.integer({ min: 1, max: 2 }), shared: fc.boolean() }).map(({ rounds, pages, transfers, shared }) => ({
    dev: 0,
    label: 'ats-dma',
    s: (): Step => ({ do: 'ats-dma', rounds, pages, transfersPerMap: transfers, sharedDomain: shared }),
  })),
  fc.record({ dev, method: fc.constantFrom(undefined, 'flr' as const, 'device_specific' as const, 'bus' as const) }).map(({ dev, method }) => ({
    dev,
    label: 'reset',
    s: (bdf: string): Step => ({ do: 'reset', bdf, ...(method ? { method } : {}) }),
  })),
  dev.map((dev) => ({ dev, label: 'aer-recover', s: (bdf: string): Step => ({ do: 'aer-recover', bdf }) })),
  fc.integer({ min: 1, max: 50 }).map((ms) => ({ dev: 0, label: 'sleep', s: (): Step => ({ do: 'sleep', ms }) })),
];

/** The fault kinds a schedule may draw from (every kind FAULTS has an arbitrary for). */
export const SCHEDULE_FAULTS: readonly string[] = [...new Set(FAULTS.map((a) => fc.sample(a, { seed: 1, numRuns: 1 })[0]!.label))];

const arbs = new Map<string, fc.Arbitrary<ScheduleSpec>>();

/**
 * Every schedule drawing faults from `kinds` (default: all of SCHEDULE_FAULTS): the topology first
 * (it shrinks toward one function), then faults and steps.
 */
export function scheduleArb(kinds: readonly string[] = SCHEDULE_FAULTS): fc.Arbitrary<ScheduleSpec> {
  const key = [...kinds].sort().join(',');
  let a = arbs.get(key);
  if (!a) {
    const pool = FAULTS.filter((f) => kinds.includes(fc.sample(f, { seed: 1, numRuns: 1 })[0]!.label));
    if (pool.length === 0) throw new RangeError(`schedule: no fault kind among ${kinds.join(', ')} (known: ${SCHEDULE_FAULTS.join(', ')})`);
    a = makeArb(pool);
    arbs.set(key, a);
  }
  return a;
}

function makeArb(faults: readonly fc.Arbitrary<FaultSpec>[]): fc.Arbitrary<ScheduleSpec> {
  return fc
  .record({
    ports: fc.integer({ min: 1, max: 8 }),
    fnsPerPort: fc.integer({ min: 1, max: 8 }),
    deviceIds: fc.array(fc.constantFrom(IDS.EP_PLAIN, IDS.EP_FW_ACK, IDS.EP_FLR_IGNORE), { minLength: 8, maxLength: 8 }),
    strict: fc.boolean(),
    faults: fc.array(fc.oneof(...faults), { minLength: 0, maxLength: 3 }),
    // The workload always starts with DMA, so every fault has traffic to meet.
    first: STEPS[0]!,
    more: fc.array(fc.oneof(...STEPS), { maxLength: 3 }),
  })
  .map(({ first, more, ...rest }) => ({ ...rest, fnsPerPort: Math.min(rest.fnsPerPort, Math.floor(MAX_FUNCTIONS / rest.ports)), steps: [first, ...more] }));
}

/** The schedule a seed stands for (drawing faults from `kinds`). */
export function scheduleOf(seed: number, kinds?: readonly string[]): ScheduleSpec {
  return fc.sample(scheduleArb(kinds), { seed, numRuns: 1 })[0]!;
}

/** The BDFs of a schedule's functions: port i's device on bus i+1, functions 0..fnsPerPort-1. */
export function functionsOf(s: ScheduleSpec): string[] {
  const out: string[] = [];
  for (let p = 0; p < s.ports; p++) for (let f = 0; f < s.fnsPerPort; f++) out.push(`${(p + 1).toString(16).padStart(2, '0')}:00.${f}`);
  return out;
}

/** The scenario that runs a schedule (named after its seed), with the driver's ATC recovery policy if given. */
export function toScenario(s: ScheduleSpec, seed: number, atcRecovery?: AtcRecovery): Scenario {
  const fns = functionsOf(s);
  const pick = (i: number) => fns[i % fns.length]!;
  return checkScenario(
    {
      name: `campaign-${seed}`,
      summary: `campaign schedule of seed ${seed}: ${s.faults.map((f) => f.label).join(', ') || 'no faults'}; ${s.steps.map((x) => x.label).join(', ')}`,
      seed,
      memMiB: 8,
      topology: {
        ports: Array.from({ length: s.ports }, (_, p) => ({
          bdf: `00:${(p + 1).toString(16).padStart(2, '0')}.0`,
          secondaryBus: p + 1,
          functions: Array.from({ length: s.fnsPerPort }, (_, f) => ({ bdf: `${(p + 1).toString(16).padStart(2, '0')}:00.${f}`, deviceId: s.deviceIds[p]! })),
        })),
      },
      smmu: { atcTimeoutUs: 1000 },
      driver: { strict: s.strict, ...(atcRecovery ? { atcRecovery } : {}) },
      workload: s.steps.map((x) => x.s(pick(x.dev))),
      faults: s.faults.map((f) => f.f(pick(f.dev))),
      // Every wait ends by its timeout, but a dead SMMU makes each CMD_SYNC wait its full second:
      // allow that for every function in every round, on top of a fixed half hour.
      watchdogMs: WATCHDOG_BASE_MS + fns.length * rounds(s) * WATCHDOG_PER_FUNCTION_ROUND_MS,
    },
    'schedule',
  );
}

/**
 * Whether a run meets what its schedule allows beyond the invariants; returns what did not hold.
 * The invariants themselves (commands, hangs, device states) are the report's own problems.
 */
export function judgeSchedule(r: ScenarioReport, noViolations: boolean): string[] {
  const out = [...r.problems];
  if (r.dmaUseAfterFree === 0) return out;
  const { CERROR_ATC_INV_SYNC: atc = 0, ...others } = r.commandErrors.cerrors;
  // Commands lost outright (an illegal one skipped) or a CMD_SYNC that never completed: no ATC policy
  // covers those. An ATC invalidation timeout excuses a use-after-free only without recovery.
  const lostInvalidation = Object.keys(others).length > 0 || r.commandErrors.syncFailures > 0;
  const unrecovered = atc > 0 && (r.atcRecovery === 'none' || r.atcRecovery === 'reset');
  const bug = (r.faultsByKind['skip-invalidation'] ?? 0) > 0;
  if (noViolations) out.push(`DMA use-after-free: ${r.dmaUseAfterFree} access(es) (none allowed)`);
  else if (!lostInvalidation && !unrecovered && !bug) out.push(`DMA use-after-free: ${r.dmaUseAfterFree} access(es) with no command failure that ${r.atcRecovery} leaves unrecovered`);
  return out;
}
