// Multi-producer stress: several CPU workers issue batches of random sizes (including > 64, which the
// driver flushes in chunks of 64 with only the last ending in a CMD_SYNC) at the same time through the
// lock-free command queue. Nothing may be lost or duplicated: the hardware's per-opcode counts equal
// what the CPUs issued, CONS reaches PROD, and the shared queue state (shadow prod, owner prod, lock,
// valid bitmap) is consistent with the number of entries written.

import { describe, expect, it } from 'vitest';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { withSystem } from './helpers/system.ts';
import { checkConsistent, stress } from './fixtures/cmdq-state.ts';

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
