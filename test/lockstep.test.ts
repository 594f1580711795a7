// The same hardware and driver code in one thread (src/lockstep.ts): MMIO doorbells run the hardware
// synchronously and platform time is virtual, moving only when the driver waits. A probe and command
// batches (including one whose CMD_SYNC times out behind an illegal command) run twice and produce
// identical logs, timestamps, traces and counts.

import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { STAT } from '../src/layout.ts';
import { createLockstep } from '../src/lockstep.ts';
import { F, OP } from '../src/smmu/commands.ts';
import { DEFAULT_FEATURES } from '../src/smmu/features.ts';
import { OFF } from '../src/smmu/regs.ts';
import { TIMEOUT } from '../src/time.ts';
import { ArmSmmuDevice } from '../drivers/arm-smmu-v3/smmu.ts';
import { cmds, raw } from './helpers/lockstep.ts';

function run() {
  const { machine, platform, views } = createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20 });
  const dev = ArmSmmuDevice.probe(platform);
  const afterProbe = platform.clock.now();
  // A doorbell runs the hardware before the MMIO write returns; no virtual time passes.
  const before = platform.clock.now();
  dev.cmdq.issue(cmds(raw(OP.TLBI_NSNH_ALL!)), 1, false);
  const consumedAtOnce = platform.ioremap(0x0905_0000, 0x20000).read32(OFF.CMDQ_CONS) === 7;
  const noTimePassed = platform.clock.now() === before;
  const batch = cmds(...Array.from({ length: 100 }, (_, i) => raw(OP.TLBI_NH_VA!, [[F.ASID, 3], [F.VA, i], [F.TG, 1], [F.TTL, 3]])));
  const ret = dev.issueRaw(batch, 100, true);
  const bad = dev.issueRaw(cmds(raw(OP.TLBI_NSNH_ALL!), raw(0x0b), raw(OP.TLBI_NSNH_ALL!)), 3, true);
  const stats = views.stats;
  return {
    afterProbe,
    consumedAtOnce,
    noTimePassed,
    ret,
    bad,
    end: platform.clock.now(),
    log: platform.dmesg().map((e) => ({ t: e.t, level: e.level, msg: e.msg })),
    trace: machine.ctx.trace.map((t) => ({ ...t })),
    exec: { nhVa: stats[STAT.EXEC + OP.TLBI_NH_VA!], nsnh: stats[STAT.EXEC + OP.TLBI_NSNH_ALL!], sync: stats[STAT.EXEC + OP.SYNC!] },
    msiWrites: stats[STAT.MSI_WRITES],
  };
}

describe('lockstep', () => {
  it('probes and runs command batches in one thread, deterministically in virtual time', () => {
    expect(isMainThread).toBe(true);
    const a = run();
    expect(a.consumedAtOnce).toBe(true);
    expect(a.noTimePassed).toBe(true);
    expect(a.afterProbe).toBeGreaterThan(0); // the probe waited for CR0ACK/IRQ_CTRLACK in virtual time
    expect(a.ret).toBe(0);
    expect(a.bad).toBe(-110);
    expect(a.exec).toEqual({ nhVa: 100, nsnh: 1 + 1 + 2, sync: 3 + 1 + 2 });
    expect(a.msiWrites).toBe(3 + 1 + 1); // MSI-poll: the probe's SYNCs, the batch's, the recovered one's
    const msgs = a.log.map((e) => e.msg);
    expect(msgs.slice(0, 3)).toEqual([
      'arm-smmu-v3 9050000.smmuv3: ias 48-bit, oas 48-bit (features 0x000897e7)',
      'arm-smmu-v3 9050000.smmuv3: allocated 16384 entries for cmdq',
      'arm-smmu-v3 9050000.smmuv3: allocated 4096 entries for evtq',
    ]);
    // The CMD_SYNC behind the illegal command times out after exactly the 1 s poll timeout of virtual time.
    const timeout = a.log.find((e) => e.msg.includes('CMD_SYNC timeout'))!;
    expect(timeout.level).toBe('err');
    expect(timeout.t).toBeGreaterThanOrEqual(TIMEOUT.SMMU_POLL);
    expect(timeout.t).toBeLessThan(TIMEOUT.SMMU_POLL + a.afterProbe + 1_000_000);
    expect(msgs.some((m) => m.endsWith('Illegal command'))).toBe(true);
    // Same code, same inputs: the same run, to the nanosecond.
    const b = run();
    expect(b).toEqual(a);
  });
});
