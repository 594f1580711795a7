// A scenario: a machine, a driver, what the driver does, the faults it meets and what should come of
// it — the unit that `smmulab run --scenario`, the built-in catalogue (examples/scenarios) and every
// schedule of a campaign are made of. Written as JSON; checked here field by field (an error names the
// field by path: `faults[2].trigger.count: ...`), and the JSON Schema editors use
// (examples/scenario.schema.json) is generated from the same checkers (`smmulab schema`).
//
// What a run reports (ScenarioReport) is declared here too, so campaigns, shards and merges share it.

import { arr, bdf, bool, defsOf, doc, int, num, obj, oneOf, opt, sameSchema, schemaOf, show, str, tagged, literal, withSchema, InputError, type Check, type Infer, type JsonSchema } from './check.ts';
import { checkFault } from './faults.ts';
import { RESET_METHODS } from './ops/pci.ts';
import { ATC_RECOVERY, DEFAULT_ATC_RECOVERY, DRIVER_BUGS, type AtcRecovery, type RecoveryStats } from './ops/smmu.ts';
import { parseLockstepSpec, type LockstepStats } from './lockstep.ts';
import type { UafRecord } from './ops/hw.ts';

/** What a driver concluded about a function by the end of a run. */
export const DEVICE_STATES = ['ok', 'gone', 'unbound'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/** A topology inline (src/protocol/topology.ts checks it) or the path of a topology file. */
const topologyRef: Check<string | object> = withSchema(
  (v, path) => {
    if (typeof v === 'string' && v.length > 0 && v.length <= 4096) return v;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v;
    throw new InputError(`${path}: must be a topology object or the path of a topology file (got ${show(v)})`);
  },
  {
    description: 'PCIe topology: an object { "ports": [...] } as `--topology` takes, or the path of such a file (relative to the scenario file)',
    anyOf: [{ type: 'string', minLength: 1 }, { type: 'object', required: ['ports'], properties: { ports: { type: 'array' } } }],
  },
);

/** Most driver CPUs a scenario runs. */
export const SCENARIO_MAX_CPUS = 8;
/** Steps that use the PCI core, which lives on CPU 0 (the CPU that enumerated PCI). */
const PCI_STEPS: readonly string[] = ['ats-dma', 'reset', 'aer-recover'];
const cpu = opt(doc(int(0, SCENARIO_MAX_CPUS - 1), 'the CPU that runs this step (default 0); each CPU runs its steps in order, the CPUs at the same time'));

/** One step of what the driver does: each CPU runs its steps in order. */
const checkStep = tagged('do', {
  'ats-dma': obj({
    do: literal('ats-dma'),
    cpu,
    rounds: opt(doc(int(1, 1e6), 'map, copy on every ATS endpoint, unmap: this many times')),
    durationMs: opt(doc(num(0.001, 1e6), '...or for this long (platform ms)')),
    pages: opt(doc(int(1, 64), 'pages per buffer (default 1)')),
    transfersPerMap: opt(doc(int(1, 1024), 'copies per mapping (default 2)')),
    sharedDomain: opt(doc(bool, 'all endpoints in one paging domain, so one CMD_SYNC covers every ATC invalidation (default true)')),
    copyTimeoutMs: opt(doc(num(0.001, 1e6), 'how long the driver waits for one copy (default 10 ms)')),
  }),
  reset: obj({ do: literal('reset'), cpu, bdf, method: opt(oneOf(RESET_METHODS)) }),
  'aer-recover': obj({ do: literal('aer-recover'), cpu, bdf }),
  'cmdq-stress': obj({
    do: literal('cmdq-stress'),
    cpu,
    batch: opt(doc(int(1, 256), 'TLBI commands per CMD_SYNC (default 4)')),
    iterations: doc(int(1, 1e6), 'batches, each ending with a CMD_SYNC the CPU waits for'),
  }),
  sleep: obj({ do: literal('sleep'), cpu, ms: num(0, 1e6) }),
  inject: obj({ do: literal('inject'), cpu, fault: checkFault }),
});
export type Step = Infer<typeof checkStep>;

const checkDeviceExpectation = obj({
  bdf,
  state: opt(oneOf(DEVICE_STATES)),
  atsEnabled: opt(bool),
  fenced: opt(doc(bool, 'the driver blocked the function from ATS to protect memory')),
  resets: opt(doc(int(0, 1e6), 'resets the function completed')),
});

const checkExpectation = obj({
  violations: opt(doc(oneOf(['none', 'some'] as const), 'DMA use-after-free accesses the sanitizer must (not) see')),
  errors: opt(doc(oneOf(['none', 'some'] as const), 'workload steps that must (not) end in an error')),
  devices: opt(arr(checkDeviceExpectation, 64)),
});
export type Expectation = Infer<typeof checkExpectation>;

const scenarioShape = obj({
  $schema: opt(str(4096)),
  name: opt(doc(str(64), 'default: the file name without .json')),
  summary: opt(doc(str(200), 'one line for `smmulab scenarios`')),
  topology: opt(topologyRef),
  cpus: opt(doc(int(1, SCENARIO_MAX_CPUS), 'driver CPUs (default 1); more than one run in lockstep with N CPUs, interleaved by `lockstep`')),
  lockstep: opt(
    doc(
      withSchema(
        (v, path) => {
          const spec = str(40)(v, path);
          parseLockstepSpec(spec, path);
          return spec;
        },
        { type: 'string', maxLength: 40 },
      ),
      'how N CPUs interleave: round-robin, random, pct, pct:D or pct:D:K (default random); the seed drives random and pct',
    ),
  ),
  seed: opt(doc(int(0, 0xffff_ffff), 'seeds fault probabilities (default 1; --seed overrides)')),
  memMiB: opt(doc(int(4, 1024), 'DMA-able memory (default 16)')),
  smmu: opt(
    obj({
      features: opt(doc(str(200), 'a --features profile with +/- toggles')),
      atcTimeoutUs: opt(doc(int(1, 1e9), 'how long the SMMU waits for an ATC Invalidate Completion')),
      eventqLog2: opt(doc(int(1, 19), 'log2 of the largest event queue the SMMU offers (IDR1.EVENTQS)')),
    }),
  ),
  driver: opt(
    obj({
      strict: opt(doc(bool, 'strict DMA unmap (iommu.strict=1, default) or a lazy flush queue')),
      pollTimeoutMs: opt(doc(num(0.001, 1e6), "the driver's CMD_SYNC poll timeout")),
      atcRecovery: opt(doc(oneOf(ATC_RECOVERY), `what the driver does when an ATC invalidation times out (default ${DEFAULT_ATC_RECOVERY})`)),
      bug: opt(doc(oneOf(DRIVER_BUGS), 'a known-broken variant of the driver, for testing smmulab itself')),
    }),
  ),
  workload: doc(arr(checkStep, 256), 'what the driver does, in order'),
  faults: opt(doc(arr(checkFault, 64), 'injected after the driver probed and bound everything, before the workload')),
  expect: opt(checkExpectation),
  watchdogMs: opt(doc(num(1, 1e9), 'platform ms the whole workload may take before it counts as a hang (default 600000)')),
});

/** Checks a scenario; a scenario needs a workload of at least one step. */
export const checkScenario: Check<Infer<typeof scenarioShape>> = sameSchema((v, path) => {
  const s = scenarioShape(v, path);
  if (s.workload.length === 0) throw new InputError(`${path}.workload: needs at least one step`);
  const cpus = s.cpus ?? 1;
  s.workload.forEach((st, i) => {
    if (st.do === 'ats-dma' && st.rounds === undefined && st.durationMs === undefined) throw new InputError(`${path}.workload[${i}]: give rounds or durationMs`);
    if (st.cpu !== undefined && st.cpu >= cpus) throw new InputError(`${path}.workload[${i}].cpu: CPU ${st.cpu}, but the scenario has ${cpus} CPU(s) (cpus)`);
    if (st.cpu && PCI_STEPS.includes(st.do)) throw new InputError(`${path}.workload[${i}].cpu: ${st.do} runs on CPU 0, the CPU that owns the PCI core`);
  });
  return s;
}, scenarioShape);
export type Scenario = Infer<typeof checkScenario>;

/** Batches of the command-queue stress each CPU added by withCpus() runs. */
export const BACKGROUND_STRESS_ITERATIONS = 60;

/**
 * The scenario on `cpus` CPUs: every CPU beyond its own runs a command-queue stress (TLBI batches,
 * each with its CMD_SYNC) alongside its workload, so that its commands contend with theirs.
 */
export function withCpus(s: Scenario, cpus: number): Scenario {
  const own = s.cpus ?? 1;
  if (cpus <= own) return s;
  const extra = Array.from({ length: cpus - own }, (_, i): Step => ({ do: 'cmdq-stress', cpu: own + i, iterations: BACKGROUND_STRESS_ITERATIONS }));
  return { ...s, cpus, workload: [...s.workload, ...extra] };
}

/** The JSON Schema of scenario files (examples/scenario.schema.json is this, written out). */
export function scenarioSchema(): JsonSchema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://smmulab.invalid/scenario.schema.json',
    title: 'smmulab scenario',
    description: 'A machine, a driver, a workload, the faults it meets and the expected outcome (src/protocol/scenario.ts).',
    ...schemaOf(checkScenario),
    $defs: defsOf(checkScenario),
  };
}

/** A function at the end of a run: what the driver concluded and what the hardware did. */
export interface DeviceReport {
  bdf: string;
  state: DeviceState;
  atsEnabled: boolean;
  /** Kept from ATS to protect memory: fenced after an ATC invalidation timeout, or blocked by a failed reset. */
  fenced: boolean;
  /** Times the IOMMU driver fenced it during the run. */
  fences: number;
  resets: number;
}

/** What one scenario run reports (`run --scenario --json`, one line of a campaign shard). */
export interface ScenarioReport {
  scenario: string;
  seed: number;
  /** The driver's ATC invalidation timeout recovery policy, and what it did during the workload. */
  atcRecovery: AtcRecovery;
  recovery: RecoveryStats;
  /** Fault firings: hardware faults by kind, driver should-fail points by point; total. */
  faultsInjected: number;
  faultsByKind: Record<string, number>;
  dmaUseAfterFree: number;
  lazyWindowAccesses: number;
  /** Commands issued and neither executed nor reported failed; executed more often than issued. */
  lostCommands: number;
  duplicatedCommands: number;
  /** Commands the SMMU executed during the workload, by opcode name. */
  executedByOpcode: Record<string, number>;
  /**
   * What the hardware and the driver reported about commands: command errors by CERROR name, and
   * CMD_SYNCs the driver was told failed (timed out).
   */
  commandErrors: { cerrors: Record<string, number>; syncFailures: number };
  /** Waits the watchdog had to end (each named in `problems`). */
  hangs: number;
  devices: DeviceReport[];
  violations: UafRecord[];
  /** What went wrong in workload steps (an error, failed copies, a failed reset): one line each. */
  errors: string[];
  /** Invariants or expectations that did not hold: one line each. */
  problems: string[];
  /** Whether the expectation and the invariants held. */
  ok: boolean;
  /** The kernel log of the run (the workload's part). */
  log: string[];
  /** N-CPU lockstep: what the strategy did (grants, switches, the MMIO write hash; replay: how it followed the record). */
  lockstep?: LockstepStats;
  /** Platform ms the workload took; host ms for the whole run, and of that for boot and probe. */
  platformMs: number;
  hostMs: number;
  bootHostMs: number;
}
