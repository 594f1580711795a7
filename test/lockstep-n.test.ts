// Lockstep with N CPUs (src/host/lockstep-n.ts): the same driver code on N CPU workers, interleaved
// deterministically at the platform's yield points by a strategy (round-robin, seeded random, PCT),
// hardware and timers in virtual time.
//   (a) the multi-producer CMDQ stress of test/cmdq-stress.test.ts on 2 and 4 CPUs under each strategy:
//       nothing lost or duplicated, the shared queue state consistent;
//   (b) the same seed and strategy give the same run (counters, final platform time, kernel logs with
//       timestamps, the hash of the MMIO writes in the order the hardware saw them); another seed
//       another interleaving;
//   (c) the deterministic twin of cmdq-errors' "2 CPUs: CPU 1 takes the GERROR interrupt" case;
// then the watchdogs (platform time, host time), the strategies themselves, and `run --lockstep`.

import { fetchAbortsRetried, illegalHandledOnCpu1 } from './fixtures/illegal-command.ts';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { STAT } from '../src/machine/layout.ts';
import { Pct, createStrategy, lockstepConfig, parseLockstepSpec, type LockstepNOptions } from '../src/protocol/lockstep.ts';
import { lockstepStats } from '../src/host/lockstep-n.ts';
import { withSystem } from './helpers/system.ts';
import { checkConsistent, stress } from './fixtures/cmdq-state.ts';
import { runCli } from './fixtures/run-cli.ts';

const SMALL_QUEUE: SmmuFeatures = PROFILES['v3.1-minimal']!; // 256 entries: the queue fills and wraps

const STRATEGIES: LockstepNOptions[] = [
  { strategy: 'round-robin' },
  { strategy: 'random', seed: 0x5eed },
  { strategy: 'pct', depth: 3, steps: 2000, seed: 0x5eed },
];

describe('lockstep-N: multi-producer CMDQ stress', () => {
  for (const cpus of [2, 4]) {
    for (const lockstep of STRATEGIES) {
      it(`${cpus} CPUs, ${lockstep.strategy}: no command lost or duplicated, queue state consistent`, async () => {
        await withSystem({ cpus, features: SMALL_QUEUE, lockstep }, async (s) => {
          const shared = await s.sys.probe();
          const before = { tlbi: s.exec('TLBI_NH_VA'), sync: s.exec('SYNC') };
          const issued = await stress(s, 0x5eed0 + cpus, 3);
          expect(issued.timeouts).toBe(0);
          await checkConsistent(s, shared, before, issued);
          const ls = lockstepStats(s.sys)!;
          expect(ls.aborted).toBeNull();
          // The CPUs really were interleaved, and time is virtual: far less than a host run would take.
          expect(ls.switches).toBeGreaterThan(cpus * 10);
          expect(ls.platformNs).toBeGreaterThan(0);
          expect(ls.platformNs).toBeLessThan(1e9);
        });
      });
    }
  }
});

/** One whole run: boot, probe, stress; everything that must repeat. */
async function fingerprint(lockstep: LockstepNOptions) {
  return withSystem({ cpus: 3, features: SMALL_QUEUE, lockstep }, async (s) => {
    await s.sys.probe();
    const issued = await stress(s, 0xdec1de, 3);
    const ls = lockstepStats(s.sys)!;
    const stats = s.sys.stats();
    const log = (await s.log()).map((e) => `${e.t} cpu${e.cpu} ${e.msg}`);
    return {
      issued,
      exec: Array.from(s.sys.views.stats.slice(STAT.EXEC, STAT.EXEC + 256)),
      syncs: stats.syncs,
      msiWrites: s.stat(STAT.MSI_WRITES),
      mmio: s.stat(STAT.MMIO_WRITES),
      lockstep: { platformNs: ls.platformNs, grants: ls.grants, switches: ls.switches, advances: ls.advances, mmioWrites: ls.mmioWrites, writeHash: ls.writeHash },
      log,
    };
  });
}

describe('lockstep-N: determinism', () => {
  for (const strategy of ['random', 'pct'] as const) {
    it(`${strategy}: the same seed repeats the run exactly; another seed interleaves differently`, async () => {
      const a = await fingerprint({ strategy, seed: 3 });
      const b = await fingerprint({ strategy, seed: 3 });
      expect(b).toEqual(a);
      const c = await fingerprint({ strategy, seed: 4 });
      expect(c.lockstep.writeHash).not.toBe(a.lockstep.writeHash);
      // Whatever the interleaving, nothing is lost: the same commands were executed.
      expect(c.issued.tlbi).toBe(a.issued.tlbi);
      expect(c.exec).toEqual(a.exec);
    });
  }
});


describe('lockstep-N: illegal command, deterministic twin of cmdq-errors', () => {
  async function twin(seed: number) {
    return withSystem({ cpus: 2, lockstep: { strategy: 'random', seed } }, async (s) => {
      await s.sys.probe({ irqCpu: 1 });
      const t0 = s.sys.clock.now();
      await illegalHandledOnCpu1(s);
      const replayNs = s.sys.clock.now() - t0;
      // CPU 1 handled the error while CPU 0 waited: far sooner than CPU 0's own 1 s poll timeout.
      expect(replayNs).toBeLessThan(1e6);

      const w = await fetchAbortsRetried(s);
      const ls = lockstepStats(s.sys)!;
      return { replayNs, elapsedNs: w.elapsedNs, log: (await s.log()).map((e) => `${e.t} cpu${e.cpu} ${e.msg}`), writeHash: ls.writeHash, platformNs: ls.platformNs };
    });
  }

  it('2 CPUs: CPU 1 takes the GERROR interrupt, so CPU 0 sees its CMD_SYNC complete in time; then a transient fetch abort; twice the same', async () => {
    const a = await twin(9);
    const b = await twin(9);
    expect(b).toEqual(a);
  });
});

describe('lockstep-N: watchdogs', () => {
  it('platform time: a busy period longer than watchdogNs ends with LockstepHang at the waiting CPU, and the system goes on', async () => {
    await withSystem({ cpus: 2, lockstep: { strategy: 'round-robin', watchdogNs: 1e9 } }, async (s) => {
      await expect(s.sys.cpu(1).op('sleep', { ns: 5e9 })).rejects.toThrow(/watchdog: platform time reached 1 s, 1 s into a busy period; cpu1 waits for sleep until 5 s \(operation 'sleep'\)/);
      expect(s.sys.clock.now()).toBe(1e9);
      await expect(s.sys.cpu(0).op('sleep', { ns: 1000 })).resolves.toBe(true);
      expect(s.sys.clock.now()).toBe(1e9 + 1000);
      expect(lockstepStats(s.sys)!.aborted).toBeNull();
    });
  });

  it('host time: a CPU holding the token past hostWatchdogMs aborts the run, naming it and what it ran', async () => {
    const extraOps = fileURLToPath(new URL('./fixtures/lockstep-ops.mjs', import.meta.url));
    await withSystem({ cpus: 2, extraOps, lockstep: { strategy: 'round-robin', hostWatchdogMs: 300 } }, async (s) => {
      const spin = s.sys.extraOp(0, 'spin', { ms: 1500 });
      const other = s.sys.cpu(1).op('sleep', { ns: 1000 });
      await expect(other).rejects.toThrow(/lockstep: cpu0 has held the token for \d+ ms of host time without reaching a yield point .*operation 'extra'/);
      await expect(spin).resolves.toBe(true);
      expect(lockstepStats(s.sys)!.aborted).toMatch(/cpu0 has held the token/);
      // Nothing runs any more: every CPU says why.
      await expect(s.sys.cpu(1).op('sleep', { ns: 1000 })).rejects.toThrow(/cpu0 has held the token/);
    });
  });
});

describe('lockstep-N strategies', () => {
  it('round-robin takes the next runnable CPU after the last one', () => {
    const rr = createStrategy(lockstepConfig({ strategy: 'round-robin' }), 4);
    expect(rr.pick([0, 1, 2, 3], -1)).toBe(0);
    expect(rr.pick([0, 1, 2, 3], 0)).toBe(1);
    expect(rr.pick([0, 2, 3], 3)).toBe(0);
    expect(rr.pick([1, 3], 1)).toBe(3);
  });

  it('random repeats from its seed and spreads over the runnable CPUs', () => {
    const draw = (seed: number) => {
      const r = createStrategy(lockstepConfig({ strategy: 'random', seed }), 4);
      return Array.from({ length: 200 }, () => r.pick([0, 1, 2, 3], -1));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    expect(new Set(draw(7))).toEqual(new Set([0, 1, 2, 3]));
  });

  it('pct: distinct initial priorities d..d+n-1, d-1 change points in 1..k, the highest runnable priority runs', () => {
    for (let seed = 0; seed < 50; seed++) {
      const p = new Pct(4, 3, 100, seed);
      expect([...p.prio].sort((a, b) => a - b)).toEqual([3, 4, 5, 6]);
      expect(p.changes.size).toBe(2);
      for (const [at, prio] of p.changes) {
        expect(at).toBeGreaterThanOrEqual(1);
        expect(at).toBeLessThanOrEqual(100);
        expect([1, 2]).toContain(prio);
      }
      // Without change points before it, step 1 goes to the highest priority.
      if (!p.changes.has(1)) expect(p.pick([0, 1, 2, 3])).toBe(p.prio.indexOf(6));
    }
    // A change point preempts the CPU about to run: it drops below every initial priority.
    const p = new Pct(2, 2, 1, 1);
    expect([...p.changes]).toEqual([[1, 1]]);
    const top = p.prio.indexOf(3);
    expect(p.pick([0, 1])).toBe(1 - top);
    expect(p.prio[top]).toBe(1);
    expect(p.pick([0, 1])).toBe(1 - top);
    expect(p.pick([top])).toBe(top);
  });

  it('--lockstep specs: round-robin, random, pct, pct:D, pct:D:K; anything else is refused naming it', () => {
    expect(parseLockstepSpec('round-robin')).toEqual({ strategy: 'round-robin' });
    expect(parseLockstepSpec('random')).toEqual({ strategy: 'random' });
    expect(parseLockstepSpec('pct')).toEqual({ strategy: 'pct' });
    expect(parseLockstepSpec('pct:5')).toEqual({ strategy: 'pct', depth: 5 });
    expect(parseLockstepSpec('pct:2:500')).toEqual({ strategy: 'pct', depth: 2, steps: 500 });
    expect(() => parseLockstepSpec('pct:0')).toThrow(/--lockstep: 'pct:0': the depth D must be an integer from 1 to 64/);
    expect(() => parseLockstepSpec('random:3')).toThrow(/random takes no parameter/);
    expect(() => parseLockstepSpec('fifo')).toThrow(/'fifo' is not a strategy/);
    expect(() => lockstepConfig({ strategy: 'pct', depth: 0 })).toThrow(/lockstep.depth: must be an integer from 1 to 64/);
  });
});

describe('smmulab run --lockstep', () => {
  it('repeats exactly with the same --seed, and refuses a bad strategy', async () => {
    const args = ['run', '--json', '--cpus', '2', '--lockstep', 'pct:3', '--seed', '5', '--seconds', '0.00005', '--features', 'v3.1-minimal'];
    const [a, b] = [await runCli(args), await runCli(args)];
    expect(a.code).toBe(0);
    const ja = JSON.parse(a.stdout) as { check: string; executedByOpcode: Record<string, number>; perCpu: unknown[]; seconds: number; lockstep: { strategy: string; seed: number; writeHash: string; grants: number } };
    const jb = JSON.parse(b.stdout) as typeof ja;
    expect(ja.check).toBe('OK');
    expect(ja.lockstep.strategy).toBe('pct:3:10000');
    expect(ja.lockstep.seed).toBe(5);
    expect(ja.executedByOpcode.SYNC).toBeGreaterThan(0);
    expect({ e: jb.executedByOpcode, p: jb.perCpu, s: jb.seconds, l: jb.lockstep }).toEqual({ e: ja.executedByOpcode, p: ja.perCpu, s: ja.seconds, l: ja.lockstep });
    const bad = await runCli(['run', '--lockstep', 'pct:zero']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--lockstep: 'pct:zero': the depth D must be an integer/);
  });
});
