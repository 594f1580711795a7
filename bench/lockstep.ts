// Lockstep benchmark (npm run bench:lockstep [-- --quick]): what lockstep costs against the threaded
// emulator, and what a token switch costs.
//
// commands  The same command workload, the driver's tlbi workload (`smmulab run`'s default: batches of 8
//           TLBI_NH_VA, each ending with a CMD_SYNC; the `workload` kernel op with a fixed `iterations`,
//           so every system does the same --batches batches), on one CPU of three systems booted once
//           with the default features and `run`'s memory:
//             threaded   System.boot({ cpus: 1, timeScale: 1 }): hardware worker + CPU worker, scaled
//                        host time (`run`'s default time scale)
//             lockstep1  createLockstep(): hardware and the CPU in this thread, virtual time
//             lockstepN  System.boot({ cpus: 1, lockstep: { strategy: 'round-robin' } }): the N-CPU
//                        lockstep with one CPU (token hand-offs between the CPU and hardware workers)
//           After one warm-up trial each, trials are interleaved (threaded, lockstep1, lockstepN, threaded,
//           ...) so host phases hit all three alike. cmdsPerSec counts every command the SMMU executed
//           in the trial (its per-opcode counters, CMD_SYNCs included, as `run` counts), per host second of
//           the workload call, and each trial checks the executed counts equal what the op says it issued
//           (issuedByOpcode). Reported: medians over --trials and the ratios lockstep1/threaded and
//           lockstepN/threaded of the medians.
// switches  A lockstep-N system (System.boot({ cpus, lockstep })) hands one token between the CPU
//           workers and the coordinator in the hardware worker at every yield point of the driver's
//           platform. Each case boots N CPUs under a strategy, probes, and runs the tlbi workload
//           (batches of 8 TLBI_NH_VA + CMD_SYNC) on every CPU for --virtual-us of platform time per trial;
//           it reports, as medians over --trials:
//   grantsPerSec    token grants per host second: each one a CPU giving the token back at a yield point,
//                   the coordinator applying its MMIO writes, running the hardware and deciding, and the
//                   chosen CPU resuming (one grant = one scheduling decision)
//   switchesPerSec  grants that went to another CPU than the previous one (a context switch)
//   usPerGrant      host microseconds per grant (1e6 / grantsPerSec)
//   platformNsPerHostS  how fast virtual time moves
// Every trial checks that the SMMU executed exactly what the CPUs issued.
//
// Options: --quick (commands: 2000 batches; switches: 2 and 4 CPUs, round-robin and pct; 3 trials),
// --trials N (default 5), --batches N (default 4000), --virtual-us N (default 20), --out FILE (default
// bench/results/lockstep.json).

import { cpus as hostCpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { System } from '../src/host/system.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { lockstepStats } from '../src/host/lockstep-n.ts';
import { executedByOpcode, type StatsSnapshot } from '../src/host/stats.ts';
import { sumCounts } from '../src/host/cli/workload-api.ts';
import { parseScriptArgs, intOpt, runScript, type OptSpec } from '../src/host/cli/args.ts';
import { DEFAULT_FEATURES, PROFILES } from '../src/arch/smmu/features.ts';
import type { TlbiResult, TlbiWorkload } from '../src/protocol/ops/smmu.ts';
import type { LockstepNOptions } from '../src/protocol/lockstep.ts';
import { median } from './stats.ts';

const SPEC: Record<string, OptSpec> = {
  quick: { type: 'boolean', help: '2000 batches; 2 and 4 CPUs, round-robin and pct; 3 trials' },
  trials: { type: 'number', help: 'trials per case (the median is reported)', default: 5 },
  batches: { type: 'number', help: 'batches of the command workload per trial (default 4000, 2000 with --quick)' },
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

/** The command workload: `run`'s default batch, a fixed number of batches. */
const BATCH = 8;
/** `run`'s default DMA-able memory. */
const MEM_BYTES = 64 << 20;
const CALL_MS = 600_000;

type SystemName = 'threaded' | 'lockstep1' | 'lockstepN';
const SYSTEMS: readonly SystemName[] = ['threaded', 'lockstep1', 'lockstepN'];

/** One of the three systems, probed: runs the workload on its one CPU and reads the SMMU's counters. */
interface Runner {
  run(w: TlbiWorkload): Promise<TlbiResult>;
  stats(): StatsSnapshot;
  close(): Promise<void>;
}

async function bootRunner(name: SystemName): Promise<Runner> {
  if (name === 'lockstep1') {
    const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: MEM_BYTES });
    const cpu = ls.cpu(0);
    await cpu.op('probe', { opts: { irqCpu: 0 }, initPages: true });
    return { run: (w) => cpu.op('workload', w), stats: () => ls.stats(), close: async () => ls.dispose() };
  }
  const sys = await System.boot({ cpus: 1, features: DEFAULT_FEATURES, memBytes: MEM_BYTES, ...(name === 'threaded' ? { timeScale: 1 } : { lockstep: { strategy: 'round-robin' } }) });
  try {
    await sys.probe();
  } catch (e) {
    await sys.shutdown();
    throw e;
  }
  return { run: (w) => sys.cpu(0).op('workload', w, CALL_MS), stats: () => sys.stats(), close: () => sys.shutdown() };
}

const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);

/** One trial: `batches` batches on one system; commands the SMMU executed per host second. */
async function commandsTrial(name: SystemName, r: Runner, batches: number): Promise<{ cmdsPerSec: number; commands: number; ms: number }> {
  const before = r.stats();
  const h0 = performance.now();
  const res = await r.run({ batch: BATCH, iterations: batches });
  const secs = (performance.now() - h0) / 1000;
  const executed = executedByOpcode(before, r.stats());
  const issued = res.issuedByOpcode;
  if (res.batches !== batches || res.syncTimeouts !== 0 || JSON.stringify(Object.entries(issued).sort()) !== JSON.stringify(Object.entries(executed).sort())) {
    throw new Error(`${name}: ${res.batches} of ${batches} batches, ${res.syncTimeouts} CMD_SYNC timeouts, issued ${JSON.stringify(issued)} but executed ${JSON.stringify(executed)}`);
  }
  const commands = total(executed);
  return { cmdsPerSec: commands / secs, commands, ms: secs * 1000 };
}

interface CommandsResult {
  batch: number;
  batchesPerTrial: number;
  /** Commands the SMMU executed per trial (every system: the same), CMD_SYNCs included. */
  commandsPerTrial: number;
  trials: number;
  /** Medians, commands per host second. */
  cmdsPerSec: Record<SystemName, number>;
  /** Median host ms of one trial's workload call. */
  trialMs: Record<SystemName, number>;
  /** Every trial's rate, in the order run. */
  trialCmdsPerSec: Record<SystemName, number[]>;
  ratios: { lockstep1OverThreaded: number; lockstepNOverThreaded: number };
}

async function runCommands(trials: number, batches: number): Promise<CommandsResult> {
  const runners = {} as Record<SystemName, Runner>;
  try {
    for (const n of SYSTEMS) runners[n] = await bootRunner(n);
    const rates: Record<SystemName, number[]> = { threaded: [], lockstep1: [], lockstepN: [] };
    const ms: Record<SystemName, number[]> = { threaded: [], lockstep1: [], lockstepN: [] };
    let commands = -1;
    // One warm-up trial each (JIT, workers hot), then ABCABC...
    for (const n of SYSTEMS) await commandsTrial(n, runners[n], batches);
    for (let t = 0; t < trials; t++) {
      for (const n of SYSTEMS) {
        const r = await commandsTrial(n, runners[n], batches);
        if (commands >= 0 && r.commands !== commands) throw new Error(`${n}: ${r.commands} commands executed, the others ${commands}`);
        commands = r.commands;
        rates[n].push(r.cmdsPerSec);
        ms[n].push(r.ms);
      }
    }
    const med = { threaded: median(rates.threaded), lockstep1: median(rates.lockstep1), lockstepN: median(rates.lockstepN) };
    return {
      batch: BATCH,
      batchesPerTrial: batches,
      commandsPerTrial: commands,
      trials,
      cmdsPerSec: { threaded: Math.round(med.threaded), lockstep1: Math.round(med.lockstep1), lockstepN: Math.round(med.lockstepN) },
      trialMs: { threaded: Number(median(ms.threaded).toFixed(1)), lockstep1: Number(median(ms.lockstep1).toFixed(1)), lockstepN: Number(median(ms.lockstepN).toFixed(1)) },
      trialCmdsPerSec: { threaded: rates.threaded.map(Math.round), lockstep1: rates.lockstep1.map(Math.round), lockstepN: rates.lockstepN.map(Math.round) },
      ratios: { lockstep1OverThreaded: Number((med.lockstep1 / med.threaded).toFixed(3)), lockstepNOverThreaded: Number((med.lockstepN / med.threaded).toFixed(3)) },
    };
  } finally {
    for (const n of SYSTEMS) await runners[n]?.close();
  }
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
  if (p.opts.batches === undefined) p.opts.batches = quick ? 2000 : 4000;
  const batches = intOpt(p, 'batches', 1, 1e7, 'bench:lockstep');
  const env = { cpus: hostCpus().length, model: hostCpus()[0]?.model ?? '?', load: loadavg().map((x) => x.toFixed(2)), node: process.version };
  console.log(`host: ${env.cpus} CPUs (${env.model}), load ${env.load.join(' ')}, node ${env.node}`);

  console.log(`commands: tlbi workload on 1 CPU, ${batches} batches of ${BATCH} TLBI_NH_VA + CMD_SYNC per trial, default features, trials interleaved, median of ${trials}`);
  const commands = await runCommands(trials, batches);
  const label: Record<SystemName, string> = { threaded: 'threaded (time scale 1)', lockstep1: 'lockstep, one thread', lockstepN: 'lockstep-N, 1 CPU (round-robin)' };
  console.log(`${'system'.padEnd(34)}${'cmds/s'.padStart(10)}${'x threaded'.padStart(12)}${'ms/trial'.padStart(10)}   trials (cmds/s)`);
  for (const n of SYSTEMS) {
    const x = n === 'threaded' ? 1 : n === 'lockstep1' ? commands.ratios.lockstep1OverThreaded : commands.ratios.lockstepNOverThreaded;
    console.log(`${label[n].padEnd(34)}${String(commands.cmdsPerSec[n]).padStart(10)}${x.toFixed(3).padStart(12)}${String(commands.trialMs[n]).padStart(10)}   ${commands.trialCmdsPerSec[n].join(' ')}`);
  }
  console.log(`(${commands.commandsPerTrial} commands executed per trial on each, CMD_SYNCs included; checked against issuedByOpcode)`);

  console.log('\nswitches: lockstep-N, the tlbi workload on every CPU for ' + virtualNs / 1000 + ' platform us per trial');
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
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), env, trials, virtualUs: virtualNs / 1000, results, commands }, null, 2) + '\n');
  console.log(`wrote ${out}`);
}

await runScript(main);
