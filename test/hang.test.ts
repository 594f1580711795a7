// A hardware worker that stops answering (fault 'hang': it consumes no MMIO writes and runs nothing)
// must not hang the driver: every CMD_SYNC wait gives up after the 1 s poll timeout with Linux's
// "CMD_SYNC timeout" line, MMIO reads stop waiting for writes the hardware never consumes, and the
// workload reports the timeouts. After 'resume' the hardware catches up and every command issued
// meanwhile runs exactly once. Platform time runs 10x faster so each 1 s timeout is 100 ms of host time.

import { describe, expect, it } from 'vitest';
import { hex } from '../src/arch/bits.ts';
import { CTRL } from '../src/machine/layout.ts';
import { OP } from '../src/arch/smmu/commands.ts';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { withSystem } from './helpers/system.ts';

const DEV = 'arm-smmu-v3 9050000.smmuv3: ';

describe('hardware stops answering', () => {
  for (const [name, f, poll] of [
    ['default', DEFAULT_FEATURES, 'MSI-poll'],
    ['poll-only', PROFILES['poll-only']!, 'CONS-poll'],
  ] as [string, SmmuFeatures, string][]) {
    it(`${name} (${poll}): the driver reports CMD_SYNC timeouts instead of hanging, and recovers after resume`, async () => {
      await withSystem({ cpus: 1, features: f, timeScale: 10 }, async (s) => {
        const shared = await s.sys.probe();
        expect(shared.cmdq.msiPoll).toBe(poll === 'MSI-poll');
        const probeSyncs = s.exec('SYNC');
        const prod0 = s.reg('CMDQ_PROD');
        await s.sys.inject({ kind: 'hang' });
        const hung = await s.workload(0, { batch: 4, iterations: 2 });
        expect(hung.batches).toBe(2);
        expect(hung.syncTimeouts).toBe(2);
        expect((await s.driverStats(0)).syncTimeouts).toBe(2);
        // Nothing ran while hung; the PROD writes are still waiting in the write port.
        expect(s.exec('TLBI_NH_VA')).toBe(0);
        expect(s.reg('CMDQ_PROD')).toBe(prod0);
        const beat = Atomics.load(s.sys.views.ctrl, CTRL.HW_HEARTBEAT);
        const log = (await s.messages(0)).map((l) => l.replace(DEV, ''));
        const timeouts = log.filter((l) => l.startsWith('CMD_SYNC timeout at'));
        expect(timeouts).toHaveLength(2);
        // The registers as they stood: CONS never moved past the probe's commands.
        expect(timeouts[0]).toBe(`CMD_SYNC timeout at ${hex(prod0 + 4)} [hwprod ${hex(prod0)}, hwcons ${hex(prod0)}]`);
        expect(log.filter((l) => l.includes("the hardware has not consumed this CPU's writes"))).toHaveLength(1);

        await s.sys.inject({ kind: 'resume' });
        const ok = await s.workload(0, { batch: 4, iterations: 3 });
        expect(ok.syncTimeouts).toBe(0);
        expect(Atomics.load(s.sys.views.ctrl, CTRL.HW_HEARTBEAT)).toBeGreaterThan(beat);
        // Every command, those issued while hung included, ran exactly once.
        expect(s.exec('TLBI_NH_VA')).toBe(4 * 2 + 4 * 3);
        expect(s.exec('SYNC')).toBe(probeSyncs + 2 + 3);
        expect(s.reg('CMDQ_PROD')).toBe(prod0 + 5 * 5);
        expect(s.reg('CMDQ_CONS')).toBe(prod0 + 5 * 5);
        expect((await s.messages(0)).filter((l) => l.includes('timeout'))).toHaveLength(2);
      });
    });
  }

  it('a full queue on a hung SMMU: issuing fails with "CMDQ full" after the poll timeout instead of spinning forever', async () => {
    // 256 entries; the driver issues the file in chunks of 64, so the fifth chunk finds the queue full.
    await withSystem({ cpus: 1, features: PROFILES['v3.1-minimal']!, timeScale: 10 }, async (s) => {
      await s.sys.probe();
      const nsnh0 = s.exec('TLBI_NSNH_ALL');
      await s.sys.inject({ kind: 'hang' });
      const file = Array.from({ length: 300 }, () => [OP.TLBI_NSNH_ALL, 0, 0, 0]).flat();
      await expect(s.sys.cpu(0).op('replay', { words: file })).rejects.toThrow(/CMDQ full: no space for 44 entries, CONS stuck at 0x00000004/);
      expect(await s.messages(0)).toContain(`${DEV}CMDQ timeout`);
      await s.sys.inject({ kind: 'resume' });
      // The 256 commands that made it into the queue run once; the rest were reported, not issued.
      const ok = await s.workload(0, { batch: 4, iterations: 2 });
      expect(ok.syncTimeouts).toBe(0);
      expect(s.exec('TLBI_NSNH_ALL')).toBe(nsnh0 + 256);
      expect(s.exec('TLBI_NH_VA')).toBe(8);
      expect((await s.driverStats(0)).issued).toBe(2 + 256 + 8);
    });
  });
});
