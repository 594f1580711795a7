// Multi-producer stress: several CPU workers issue batches of random sizes (including > 64, which the
// driver flushes in chunks of 64 with only the last ending in a CMD_SYNC) at the same time through the
// lock-free command queue. Nothing may be lost or duplicated: the hardware's per-opcode counts equal
// what the CPUs issued, CONS reaches PROD, and the shared queue state (shadow prod, owner prod, lock,
// valid bitmap) is consistent with the number of entries written.

import { describe, expect, it } from 'vitest';
import { PA } from '../src/arch/platform.ts';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { W } from '../drivers/arm-smmu-v3/cmdq.ts';
import type { SmmuShared } from '../src/protocol/ops/smmu.ts';
import { rng } from '../src/protocol/random.ts';
import { withSystem, type TestSystem } from './helpers/system.ts';

const SIZES = [1, 2, 5, 16, 63, 64, 65, 100, 130, 200];

/** Runs a random plan of workload calls on every CPU at once; returns what each CPU says it issued. */
async function stress(s: TestSystem, seed: number, callsPerCpu: number): Promise<{ tlbi: number; syncs: number; timeouts: number }> {
  const rnd = rng(seed);
  const plans = s.sys.cpus.map(() =>
    Array.from({ length: callsPerCpu }, () => ({ batch: SIZES[Math.floor(rnd() * SIZES.length)]!, iterations: 2 + Math.floor(rnd() * 6) })),
  );
  const results = await Promise.all(
    plans.map(async (plan, cpu) => {
      let tlbi = 0;
      let syncs = 0;
      let timeouts = 0;
      for (const w of plan) {
        const r = await s.workload(cpu, w);
        expect(r.batches).toBe(w.iterations);
        tlbi += r.issuedByOpcode.TLBI_NH_VA!;
        syncs += r.issuedByOpcode.SYNC!;
        timeouts += r.syncTimeouts;
      }
      return { tlbi, syncs, timeouts };
    }),
  );
  return results.reduce((a, b) => ({ tlbi: a.tlbi + b.tlbi, syncs: a.syncs + b.syncs, timeouts: a.timeouts + b.timeouts }));
}

/** Checks counts and the shared queue state after a stress run. */
async function checkConsistent(s: TestSystem, shared: SmmuShared, before: { tlbi: number; sync: number }, issued: { tlbi: number; syncs: number }) {
  expect(s.exec('TLBI_NH_VA') - before.tlbi).toBe(issued.tlbi);
  expect(s.exec('SYNC') - before.sync).toBe(issued.syncs);
  const size = 1 << shared.cmdq.shift;
  const ptrMask = 2 * size - 1;
  // Every entry ever written to the queue: each CPU's commands (the probe's included) and CMD_SYNCs.
  let entries = 0;
  for (let cpu = 0; cpu < s.sys.cpus.length; cpu++) {
    const d = await s.driverStats(cpu);
    expect(d.cmdqErrors).toEqual([]);
    entries += d.issued + d.syncs;
  }
  expect(s.execTotal()).toBe(entries);
  expect(s.reg('CMDQ_PROD')).toBe(entries & ptrMask);
  expect(s.reg('CMDQ_CONS')).toBe(entries & ptrMask);
  const dram = s.sys.views.dram32;
  const st = (shared.cmdq.statePa - PA.DRAM_BASE) / 4;
  const llq = Atomics.load(dram, st + W.LLQ);
  expect(llq & 0x7fff).toBe(entries & ptrMask); // shadow prod (bits [14:0])
  expect(llq >>> 31).toBe(0); // no owner left gathering
  expect(Atomics.load(dram, st + W.OWNER_PROD) & ptrMask).toBe(entries & ptrMask);
  expect(Atomics.load(dram, st + W.LOCK)).toBe(0); // no shared or exclusive holder left
  // A slot's valid bit flips each time it is written: it holds the parity of its write count.
  const laps = Math.floor(entries / size);
  const rest = entries % size;
  const wrong: number[] = [];
  for (let i = 0; i < size; i++) {
    const bit = (Atomics.load(dram, st + W.VALID_MAP + (i >>> 5)) >>> (i & 31)) & 1;
    if (bit !== ((laps + (i < rest ? 1 : 0)) & 1)) wrong.push(i);
  }
  expect(wrong).toEqual([]);
}

const SMALL_QUEUE: SmmuFeatures = PROFILES['v3.1-minimal']!; // 256 entries: the queue fills and wraps

describe('multi-producer stress', () => {
  for (const [cpus, features, name, seed] of [
    [4, SMALL_QUEUE, 'v3.1-minimal, 256-entry queue', 0x5eed4],
    [2, DEFAULT_FEATURES, 'default, 16384-entry queue', 0x5eed2],
    [2, SMALL_QUEUE, 'v3.1-minimal, 256-entry queue', 0x5eed3],
  ] as const) {
    it(`${cpus} CPUs, ${name}: no command lost or duplicated (seed 0x${seed.toString(16)})`, async () => {
      await withSystem({ cpus, features }, async (s) => {
        const shared = await s.sys.probe();
        const before = { tlbi: s.exec('TLBI_NH_VA'), sync: s.exec('SYNC') };
        const issued = await stress(s, seed, 4);
        expect(issued.timeouts).toBe(0);
        await checkConsistent(s, shared, before, issued);
      });
    });
  }
});
