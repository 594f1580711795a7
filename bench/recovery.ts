// ATC invalidation timeout recovery benchmarks (npm run bench:recovery [-- --quick]):
//
//   success path  what the default policy costs when nothing fails: the ats-dma workload in lockstep
//                 (4 ATS endpoints in one domain, 4-page buffers, 4 copies per mapping) under the
//                 default policy and under `none` (mainline), trials interleaved so both see the same
//                 host phases; copies per host second, median of --trials each, and the median of
//                 the pairs' ratios default/none (the goal: at least 0.95).
//   fencing       one culprit among N = 1, 8 and 64 ATS functions sharing a domain (8 functions per
//                 device, one device per Root Port), one ats-dma round, the culprit ignoring ATC
//                 invalidations from the unmaps on: per policy (quarantine, quarantine-bisect), the
//                 CMD_SYNCs recovery added, platform time from the failed batch to the fence, and how
//                 many devices were fenced. Bisection's extra SYNCs grow with log2 N (at most
//                 2*ceil(log2 N) per failed batch, plus one per fence for the STE update); quarantine
//                 fences the whole batch.
//
// Options: --quick (5 trials), --trials N, --out FILE (default bench/results/recovery.json).

import { cpus as hostCpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseScriptArgs, intOpt, runScript, type OptSpec } from '../src/host/cli/args.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { iommuMap, parseTopology } from '../src/protocol/topology.ts';
import { runScenario } from '../src/host/scenario/run.ts';
import { checkScenario } from '../src/protocol/scenario.ts';
import { DEFAULT_ATC_RECOVERY, type AtcRecovery } from '../src/protocol/ops/smmu.ts';
import { median } from './stats.ts';

const NAME = 'bench:recovery';
const SPEC: Record<string, OptSpec> = {
  quick: { type: 'boolean', help: '5 trials' },
  trials: { type: 'number', help: 'success-path trials per policy (median reported)', default: 9 },
  out: { type: 'string', help: 'where to write the JSON results', default: 'bench/results/recovery.json' },
};

const FOUR = parseTopology({ ports: [1, 2, 3, 4].map((i) => ({ bdf: `00:0${i}.0`, secondaryBus: i, functions: [{ bdf: `0${i}:00.0` }] })) });

/** One success-path trial: ats-dma rounds under a policy, no faults; copies per host second. */
async function atsDmaTrial(atcRecovery: AtcRecovery, rounds: number): Promise<number> {
  const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: 32 << 20, topology: FOUR, ackLatencyNs: 5_000 });
  const cpu = ls.cpu(0);
  await cpu.op('probe', { opts: { atcRecovery }, initPages: true });
  await cpu.op('pciInit', { iommuMap: iommuMap(FOUR), strict: true });
  const t0 = performance.now();
  const r = await cpu.op('atsDmaWorkload', { iommuMap: iommuMap(FOUR), rounds, pages: 4, transfersPerMap: 4, sharedDomain: true });
  const s = (performance.now() - t0) / 1000;
  if (r.errors.length || r.verifyFailures) throw new Error(`ats-dma trial (${atcRecovery}) failed: ${r.errors[0] ?? `${r.verifyFailures} verify failures`}`);
  ls.dispose();
  return r.transfers / s;
}

/** N ATS functions: 8 per multi-function device, one device per Root Port. */
function topologyOf(n: number): unknown {
  const per = Math.min(n, 8);
  return {
    ports: Array.from({ length: n / per }, (_, p) => ({
      bdf: `00:${(p + 1).toString(16).padStart(2, '0')}.0`,
      secondaryBus: p + 1,
      functions: Array.from({ length: per }, (_, f) => ({ bdf: `${(p + 1).toString(16).padStart(2, '0')}:00.${f}` })),
    })),
  };
}

interface FenceRow {
  functions: number;
  policy: AtcRecovery;
  failedBatches: number;
  extraSyncs: number;
  fenced: number;
  /** Platform µs from issuing the failed batch to the culprit's fence (the longest). */
  fenceUs: number;
  violations: number;
}

async function fenceOne(n: number, policy: AtcRecovery): Promise<FenceRow> {
  // The culprit is the last function: bisection has to search the whole batch for it. Its first ATC
  // invalidation is the attach's flush (nth 1); it ignores those of the unmaps (nth 2 on).
  const culprit = topologyOf(n) as { ports: { functions: { bdf: string }[] }[] };
  const bdf = culprit.ports.at(-1)!.functions.at(-1)!.bdf;
  const s = checkScenario(
    {
      topology: topologyOf(n),
      smmu: { atcTimeoutUs: 1000 },
      driver: { atcRecovery: policy },
      workload: [{ do: 'ats-dma', rounds: 1, transfersPerMap: 1, sharedDomain: true }],
      faults: [{ kind: 'atc-inv-no-answer', bdf, trigger: { count: 'until-reset', after: { event: 'atc-inv', nth: 2 } } }],
    },
    `fence-1-of-${n}`,
  );
  const r = await runScenario(s, `fence-1-of-${n}`);
  if (r.lostCommands || r.duplicatedCommands || r.hangs) throw new Error(`fence-1-of-${n} (${policy}): ${r.problems.join('; ')}`);
  return {
    functions: n,
    policy,
    failedBatches: r.recovery.failedBatches,
    extraSyncs: r.recovery.extraSyncs,
    fenced: r.devices.filter((d) => d.fences > 0).length,
    fenceUs: Math.round(Math.max(0, ...r.recovery.fenceLatencyNs) / 1000),
    violations: r.dmaUseAfterFree,
  };
}

async function main(): Promise<void> {
  const p = parseScriptArgs(process.argv.slice(2), SPEC, NAME);
  const trials = p.opts.quick === true ? 5 : intOpt(p, 'trials', 1, 101, NAME);
  const rounds = 200;
  const env = { cpus: hostCpus().length, model: hostCpus()[0]?.model ?? '?', load: loadavg().map((x) => x.toFixed(2)), node: process.version };
  console.log(`host: ${env.cpus} CPUs (${env.model}), load ${env.load.join(' ')}, node ${env.node}`);

  await atsDmaTrial(DEFAULT_ATC_RECOVERY, 10);
  await atsDmaTrial('none', 10);
  const def: number[] = [];
  const none: number[] = [];
  // Pairs in alternating order (ABBA...), so neither policy always runs right after the other's garbage.
  for (let i = 0; i < trials; i++) {
    if (i % 2 === 0) {
      def.push(await atsDmaTrial(DEFAULT_ATC_RECOVERY, rounds));
      none.push(await atsDmaTrial('none', rounds));
    } else {
      none.push(await atsDmaTrial('none', rounds));
      def.push(await atsDmaTrial(DEFAULT_ATC_RECOVERY, rounds));
    }
  }
  const successPath = {
    policy: DEFAULT_ATC_RECOVERY,
    copiesPerSec: Math.round(median(def)),
    copiesPerSecNone: Math.round(median(none)),
    /** The median of the pairs' ratios: each pair ran back to back, in the same host phase. */
    ratio: Number(median(def.map((d, i) => d / none[i]!)).toFixed(3)),
    trials: def.map(Math.round),
    trialsNone: none.map(Math.round),
  };
  console.log(`success path: ats-dma ${successPath.copiesPerSec} copies/s under ${DEFAULT_ATC_RECOVERY}, ${successPath.copiesPerSecNone} under none (median of ${trials}): ratio ${successPath.ratio} (median of the pairs)`);

  const fencing: FenceRow[] = [];
  console.log('fencing one culprit among N functions sharing a domain:');
  console.log('    N  policy             failed batches  extra SYNCs  fenced  fence µs  violations');
  for (const n of [1, 8, 64]) {
    for (const policy of ['quarantine', 'quarantine-bisect'] as const) {
      const row = await fenceOne(n, policy);
      fencing.push(row);
      console.log(`${String(n).padStart(5)}  ${policy.padEnd(17)}  ${String(row.failedBatches).padStart(14)}  ${String(row.extraSyncs).padStart(11)}  ${String(row.fenced).padStart(6)}  ${String(row.fenceUs).padStart(8)}  ${String(row.violations).padStart(10)}`);
    }
  }

  const out = String(p.opts.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ env, successPath, fencing }, null, 2) + '\n');
  console.log(`results: ${out}`);
}

await runScript(main);
