// Fault-injection benchmarks (npm run bench:faults [-- --quick]):
//
//   sanitizer   the DMA use-after-free sanitizer's cost: the ats-dma workload in lockstep (4 ATS
//               endpoints, 4-page buffers, 4 copies per mapping) with the sanitizer on and off,
//               trials interleaved on/off so both see the same host phases; copies per host second,
//               median of --trials each, and the ratio on/off (the goal: at least 0.95).
//   campaign    schedules per second of a campaign (`smmulab campaign`): --count seeds from seed 1 on
//               one worker per core, and where the time goes (boot and probe vs the run, per schedule).
//
// Options: --quick (fewer trials, a 1000-schedule campaign), --trials N, --count N (campaign size),
// --out FILE (default bench/results/faults.json).

import { availableParallelism, cpus as hostCpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseScriptArgs, intOpt, runScript, type OptSpec } from '../src/host/cli/args.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { iommuMap, parseTopology } from '../src/protocol/topology.ts';
import { runSeeds, type CampaignParams } from '../src/host/campaign/campaign.ts';
import { summarize } from '../src/host/campaign/summary.ts';
import { DEFAULT_ATC_RECOVERY } from '../src/protocol/ops/smmu.ts';
import { median } from './stats.ts';

const SPEC: Record<string, OptSpec> = {
  quick: { type: 'boolean', help: '5 trials, a 1000-schedule campaign' },
  trials: { type: 'number', help: 'sanitizer trials per setting (median reported)', default: 9 },
  count: { type: 'number', help: 'campaign schedules', default: 10000 },
  out: { type: 'string', help: 'where to write the JSON results', default: 'bench/results/faults.json' },
};

const TOPOLOGY = parseTopology({
  ports: [1, 2, 3, 4].map((i) => ({ bdf: `00:0${i}.0`, secondaryBus: i, functions: [{ bdf: `0${i}:00.0` }] })),
});

/** One trial: ats-dma rounds in lockstep; copies per host second. */
async function atsDmaTrial(sanitizer: boolean, rounds: number): Promise<number> {
  const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: 32 << 20, topology: TOPOLOGY, ackLatencyNs: 5_000, sanitizer });
  const cpu = ls.cpu(0);
  await cpu.op('probe', { opts: {}, initPages: true });
  await cpu.op('pciInit', { iommuMap: iommuMap(TOPOLOGY), strict: true });
  const t0 = performance.now();
  const r = await cpu.op('atsDmaWorkload', { iommuMap: iommuMap(TOPOLOGY), rounds, pages: 4, transfersPerMap: 4, sharedDomain: true });
  const s = (performance.now() - t0) / 1000;
  if (r.errors.length || r.verifyFailures) throw new Error(`ats-dma trial failed: ${r.errors[0] ?? `${r.verifyFailures} verify failures`}`);
  const rep = await ls.hw.op('report');
  if (rep.uaf) throw new Error(`ats-dma trial: ${rep.uaf} use-after-free accesses in a fault-free run`);
  ls.dispose();
  return r.transfers / s;
}

async function main(): Promise<void> {
  const p = parseScriptArgs(process.argv.slice(2), SPEC, 'bench:faults');
  const quick = p.opts.quick === true;
  const trials = quick ? 5 : intOpt(p, 'trials', 1, 101, 'bench:faults');
  const count = quick ? 1000 : intOpt(p, 'count', 1, 1e7, 'bench:faults');
  const rounds = 60;
  const env = { cpus: hostCpus().length, model: hostCpus()[0]?.model ?? '?', load: loadavg().map((x) => x.toFixed(2)), node: process.version };
  console.log(`host: ${env.cpus} CPUs (${env.model}), load ${env.load.join(' ')}, node ${env.node}`);

  // Warm up both paths, then interleave so host phases hit both settings alike.
  await atsDmaTrial(true, 10);
  await atsDmaTrial(false, 10);
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < trials; i++) {
    on.push(await atsDmaTrial(true, rounds));
    off.push(await atsDmaTrial(false, rounds));
  }
  const sanitizer = { copiesPerSecOn: Math.round(median(on)), copiesPerSecOff: Math.round(median(off)), ratio: Number((median(on) / median(off)).toFixed(3)), trialsOn: on.map(Math.round), trialsOff: off.map(Math.round) };
  console.log(`sanitizer: ats-dma ${sanitizer.copiesPerSecOn} copies/s on, ${sanitizer.copiesPerSecOff} off (median of ${trials}): ratio ${sanitizer.ratio}`);

  const params: CampaignParams = { count, seedStart: 1, scenarios: [], noViolations: false, atcRecovery: DEFAULT_ATC_RECOVERY, faults: [] };
  const workers = Math.max(1, availableParallelism());
  const t0 = performance.now();
  const seeds = Array.from({ length: count }, (_, i) => i + 1);
  const results = await runSeeds(params, seeds, workers, () => {});
  const s = summarize(params, results, (performance.now() - t0) / 1000);
  const campaign = { schedules: s.schedules, failed: s.failed, workers, ...s.timing };
  console.log(`campaign: ${s.schedules} schedules on ${workers} workers in ${s.timing.hostSeconds} s: ${s.timing.schedulesPerSec} schedules/s (per schedule: boot and probe ${s.timing.bootMsAvg} ms, the run ${s.timing.runMsAvg} ms); ${s.failed} failed`);

  const out = String(p.opts.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ env, sanitizer, campaign }, null, 2) + '\n');
  console.log(`results: ${out}`);
}

await runScript(main);
