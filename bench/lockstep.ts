// Lockstep-N benchmark (npm run bench:lockstep [-- --quick]): what a token switch costs.
//
// A lockstep-N system (System.boot({ cpus, lockstep })) hands one token between the CPU workers and the
// coordinator in the hardware worker at every yield point of the driver's platform. Each case boots N
// CPUs under a strategy, probes, and runs the tlbi workload (batches of 8 TLBI_NH_VA + CMD_SYNC) on
// every CPU for --virtual-us of platform time per trial; it reports, as medians over --trials:
//   grantsPerSec    token grants per host second: each one a CPU giving the token back at a yield point,
//                   the coordinator applying its MMIO writes, running the hardware and deciding, and the
//                   chosen CPU resuming (one grant = one scheduling decision)
//   switchesPerSec  grants that went to another CPU than the previous one (a context switch)
//   usPerGrant      host microseconds per grant (1e6 / grantsPerSec)
//   platformNsPerHostS  how fast virtual time moves
// Every trial checks that the SMMU executed exactly what the CPUs issued.
//
// Options: --quick (2 and 4 CPUs, round-robin and pct, 3 trials), --trials N (default 5),
// --virtual-us N (default 20), --out FILE (default bench/results/lockstep.json).

import { cpus as hostCpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { System } from '../src/host/system.ts';
import { lockstepStats } from '../src/host/lockstep-n.ts';
import { executedByOpcode } from '../src/host/stats.ts';
import { sumCounts } from '../src/host/cli/workload-api.ts';
import { parseScriptArgs, intOpt, type OptSpec } from '../src/host/cli/args.ts';
import { PROFILES } from '../src/arch/smmu/features.ts';
import type { LockstepNOptions } from '../src/protocol/lockstep.ts';
import { median } from './stats.ts';

const SPEC: Record<string, OptSpec> = {
  quick: { type: 'boolean', help: '2 and 4 CPUs, round-robin and pct, 3 trials' },
  trials: { type: 'number', help: 'trials per case (the median is reported)', default: 5 },
  'virtual-us': { type: 'number', help: 'platform microseconds of workload per trial', default: 20 },
  out: { type: 'string', help: 'where to write the JSON results', default: 'bench/results/lockstep.json' },
};

interface CaseResult {
  cpus: number;
  strategy: string;
  grantsPerSec: number;
  switchesPerSec: number;
  usPerGrant: number;
  platformNsPerHostS: number;
  grantsPerTrial: number;
}

async function runCase(cpus: number, lockstep: LockstepNOptions, trials: number, virtualNs: number): Promise<CaseResult> {
  const sys = await System.boot({ cpus, features: PROFILES['v3.1-minimal']!, lockstep });
  try {
    await sys.probe();
    const g: number[] = [];
    const sw: number[] = [];
    const vt: number[] = [];
    const per: number[] = [];
    for (let t = 0; t < trials; t++) {
      const s0 = lockstepStats(sys)!;
      const before = sys.stats();
      const h0 = performance.now();
      const rs = await Promise.all(sys.cpus.map((c) => c.op('workload', { batch: 8, durationNs: virtualNs }, 600_000)));
      const secs = (performance.now() - h0) / 1000;
      const s1 = lockstepStats(sys)!;
      const issued = sumCounts(rs.map((r) => r.issuedByOpcode));
      const executed = executedByOpcode(before, sys.stats());
      if (JSON.stringify(Object.entries(issued).sort()) !== JSON.stringify(Object.entries(executed).sort())) {
        throw new Error(`${cpus} CPUs ${lockstep.strategy}: issued ${JSON.stringify(issued)} but executed ${JSON.stringify(executed)}`);
      }
      g.push((s1.grants - s0.grants) / secs);
      sw.push((s1.switches - s0.switches) / secs);
      vt.push((s1.platformNs - s0.platformNs) / secs);
      per.push(s1.grants - s0.grants);
    }
    const grantsPerSec = median(g);
    return {
      cpus,
      strategy: lockstepStats(sys)!.strategy,
      grantsPerSec: Math.round(grantsPerSec),
      switchesPerSec: Math.round(median(sw)),
      usPerGrant: Number((1e6 / grantsPerSec).toFixed(1)),
      platformNsPerHostS: Math.round(median(vt)),
      grantsPerTrial: Math.round(median(per)),
    };
  } finally {
    await sys.shutdown();
  }
}

async function main(): Promise<void> {
  const p = parseScriptArgs(process.argv.slice(2), SPEC, 'bench:lockstep');
  const quick = p.opts.quick === true;
  const trials = quick ? 3 : intOpt(p, 'trials', 1, 101, 'bench:lockstep');
  const virtualNs = intOpt(p, 'virtual-us', 1, 1e6, 'bench:lockstep') * 1000;
  const env = { cpus: hostCpus().length, model: hostCpus()[0]?.model ?? '?', load: loadavg().map((x) => x.toFixed(2)), node: process.version };
  console.log(`host: ${env.cpus} CPUs (${env.model}), load ${env.load.join(' ')}, node ${env.node}`);
  const cpuCounts = quick ? [2, 4] : [1, 2, 4];
  const strategies: LockstepNOptions[] = quick ? [{ strategy: 'round-robin' }, { strategy: 'pct', seed: 1 }] : [{ strategy: 'round-robin' }, { strategy: 'random', seed: 1 }, { strategy: 'pct', seed: 1 }];
  const results: CaseResult[] = [];
  console.log(`${'cpus'.padStart(4)}  ${'strategy'.padEnd(14)}${'grants/s'.padStart(10)}${'switches/s'.padStart(12)}${'us/grant'.padStart(10)}${'platform ns/s'.padStart(15)}`);
  for (const cpus of cpuCounts) {
    for (const s of strategies) {
      const r = await runCase(cpus, s, trials, virtualNs);
      results.push(r);
      console.log(`${String(r.cpus).padStart(4)}  ${r.strategy.padEnd(14)}${String(r.grantsPerSec).padStart(10)}${String(r.switchesPerSec).padStart(12)}${String(r.usPerGrant).padStart(10)}${String(r.platformNsPerHostS).padStart(15)}`);
    }
  }
  const out = String(p.opts.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), env, trials, virtualUs: virtualNs / 1000, results }, null, 2) + '\n');
  console.log(`wrote ${out}`);
}

await main();
