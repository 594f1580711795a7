// The same hardware and driver code in one thread (src/host/lockstep.ts): MMIO doorbells run the hardware
// synchronously and platform time is virtual, moving only when the driver waits. A probe and command
// batches (including one whose CMD_SYNC times out behind an illegal command) run twice and produce
// identical logs, timestamps, traces and counts.

import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { STAT } from '../src/machine/layout.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { toBody } from '../src/host/trace.ts';
import { F, OP } from '../src/arch/smmu/commands.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { OFF } from '../src/arch/smmu/regs.ts';
import { NS_PER_S, TIMEOUT } from '../src/arch/time.ts';
import { ArmSmmuDevice } from '../drivers/arm-smmu-v3/smmu.ts';
import { cmds, raw } from './helpers/lockstep.ts';

function run() {
  const { platform, views, trace } = createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20, trace: { points: '*' } });
  const dev = ArmSmmuDevice.probe(platform);
  const afterProbe = platform.clock.now();
  // A doorbell runs the hardware before the MMIO write returns; no virtual time passes.
  const before = platform.clock.now();
  dev.cmdq.issue(cmds(raw(OP.TLBI_NSNH_ALL)), 1, false);
  const consumedAtOnce = platform.ioremap(0x0905_0000, 0x20000).read32(OFF.CMDQ_CONS) === 7;
  const noTimePassed = platform.clock.now() === before;
  const batch = cmds(...Array.from({ length: 100 }, (_, i) => raw(OP.TLBI_NH_VA, [[F.ASID, 3], [F.VA, i], [F.TG, 1], [F.TTL, 3]])));
  const ret = dev.issueRaw(batch, 100, true);
  const bad = dev.issueRaw(cmds(raw(OP.TLBI_NSNH_ALL), raw(0x0b), raw(OP.TLBI_NSNH_ALL)), 3, true);
  const stats = views.stats;
  return {
    afterProbe,
    consumedAtOnce,
    noTimePassed,
    ret,
    bad,
    end: platform.clock.now(),
    log: platform.dmesg().map((e) => ({ t: e.t, level: e.level, msg: e.msg })),
    trace: trace().map((r) => ({ t: r.t, ring: r.ring, line: toBody(r) })),
    exec: { nhVa: stats[STAT.EXEC + OP.TLBI_NH_VA], nsnh: stats[STAT.EXEC + OP.TLBI_NSNH_ALL], sync: stats[STAT.EXEC + OP.SYNC] },
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
    // The SYNC behind the illegal command: its poll times out, the CPU then finds the command error in
    // GERROR itself (its interrupt cannot be taken while it polls), skips the command, and the SYNC completes.
    expect(a.bad).toBe(0);
    expect(a.exec).toEqual({ nhVa: 100, nsnh: 1 + 1 + 2, sync: 3 + 1 + 2 });
    expect(a.msiWrites).toBe(3 + 1 + 1); // MSI-poll: the probe's SYNCs, the batch's, the recovered one's
    const msgs = a.log.map((e) => e.msg);
    expect(msgs.slice(0, 3)).toEqual([
      'arm-smmu-v3 9050000.smmuv3: ias 48-bit, oas 48-bit (features 0x000897e7)',
      'arm-smmu-v3 9050000.smmuv3: allocated 16384 entries for cmdq',
      'arm-smmu-v3 9050000.smmuv3: allocated 4096 entries for evtq',
    ]);
    // The error is handled after exactly the 1 s poll timeout of virtual time, and no SYNC times out.
    const handled = a.log.find((e) => e.msg.endsWith('Illegal command'))!;
    expect(handled.level).toBe('err');
    expect(handled.t).toBeGreaterThanOrEqual(TIMEOUT.SMMU_POLL);
    expect(handled.t).toBeLessThan(TIMEOUT.SMMU_POLL + a.afterProbe + 1_000_000);
    expect(msgs.some((m) => m.includes('CMD_SYNC timeout'))).toBe(false);
    // Same code, same inputs: the same run, to the nanosecond.
    const b = run();
    expect(b).toEqual(a);
  });
});

describe('bad time values are refused with a clear error, not a spin', () => {
  const ls = () => createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20 });

  it('Machine options: ackLatencyNs and atcTimeoutNs must be finite and non-negative', () => {
    for (const k of ['ackLatencyNs', 'atcTimeoutNs'] as const) {
      for (const v of [NaN, -1, Infinity]) {
        expect(() => createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20, [k]: v })).toThrow(`${k}: ${v} must be a non-negative number of platform ns`);
      }
      expect(() => createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20, [k]: 0 })).not.toThrow();
    }
  });

  it('the hardware scheduler refuses a timer at NaN (at() and after()) and queues nothing', () => {
    const { machine } = ls();
    const sched = machine.sched;
    const next = sched.nextDeadline();
    let ran = 0;
    expect(() => sched.at(NaN, () => ran++)).toThrow(RangeError);
    expect(() => sched.at(NaN, () => ran++)).toThrow('scheduler: timer at NaN platform ns');
    expect(() => sched.after(NaN, () => ran++)).toThrow('scheduler: timer at NaN platform ns');
    expect(sched.nextDeadline()).toBe(next);
    sched.after(0, () => ran++); // a good timer still runs
    machine.run();
    expect(ran).toBe(1);
  });

  it('lockstep delay(NaN), sleep(NaN), wfe(NaN) and waitMemWhileEqual(.., NaN) throw before time moves or a timer runs', () => {
    const { platform, machine } = ls();
    const t0 = platform.clock.now();
    // A hardware timer 1 s ahead that must not run. An unchecked NaN would advance time past every
    // timer for ever; this one then ends that loop with its own error rather than letting it spin.
    let ran = 0;
    const later = machine.sched.after(NS_PER_S, () => {
      ran++;
      throw new Error('the timer 1 s ahead ran');
    });
    expect(() => platform.delay(NaN)).toThrow(RangeError);
    expect(() => platform.delay(NaN)).toThrow('lockstep: advance to NaN platform ns');
    expect(() => platform.wfe(NaN)).toThrow('lockstep: advance to NaN platform ns');
    const pa = platform.pages.alloc(1);
    expect(() => platform.waitMemWhileEqual(pa, 0, NaN)).toThrow('lockstep: advance to NaN platform ns');
    expect(() => platform.sleep(NaN)).toThrow('lockstep: sleep for NaN platform ns');
    expect(ran).toBe(0);
    expect(platform.clock.now()).toBe(t0);
    later.cancelled = true;
    platform.delay(1_000); // and time still moves
    expect(platform.clock.now()).toBe(t0 + 1_000);
  });
});
