// ATC invalidation timeout recovery (drivers/arm-smmu-v3/atc-recovery.ts) on the whole stack in
// lockstep: the unmap that meets a device which does not answer its ATC_INV, under each policy; both
// orders of the SMMU's ATC timeout and the driver's CMD_SYNC poll timeout; the GERROR interrupt masked
// on the issuing CPU; two culprits in one batch; a late answer after the fence; an attach racing the
// fence; a reset nested inside another while fenced; surprise removal while the device is recovered;
// and a command queue left usable by a CmdqTimeout thrown mid-issue. The sanitizer judges every case.

import { describe, expect, it } from 'vitest';
import { pcieStack, type PcieStack } from './helpers/pcie-rig.ts';
import { IommuDma } from '../drivers/iommu/dma-iommu.ts';
import { pciResetFunction } from '../drivers/pci/reset.ts';
import { PCI_ERS } from '../drivers/pci/pci.ts';
import { CmdqTimeout, W } from '../drivers/arm-smmu-v3/cmdq.ts';
import { atcInvEnt, buildCmd } from '../drivers/arm-smmu-v3/cmds.ts';
import { ATS } from '../src/arch/pcie/regs.ts';
import { EATS, STE } from '../src/arch/smmu/ste.ts';
import { CMDQ_CONS, GERROR, OFF } from '../src/arch/smmu/regs.ts';
import { qget } from '../src/arch/bits.ts';
import { STAT } from '../src/machine/layout.ts';
import { NS_PER_MS, NS_PER_S } from '../src/arch/time.ts';
import type { AtcRecovery } from '../src/protocol/ops/smmu.ts';
import type { Fault } from '../src/protocol/faults.ts';

const FOUR = { ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: ['01:00.0', '01:00.1', '01:00.2', '01:00.3'].map((bdf) => ({ bdf })) }] };

/**
 * A stack whose endpoints all share one paging domain (so one CMD_SYNC covers every ATC_INV of an
 * unmap), a mapped source and destination page, and one copy by every endpoint so each ATC holds both.
 */
function shared(policy: AtcRecovery, o: { topology?: unknown; atcTimeoutNs?: number; pollTimeoutNs?: number } = {}) {
  const r = pcieStack({ atcTimeoutNs: o.atcTimeoutNs ?? NS_PER_MS, pollTimeoutNs: o.pollTimeoutNs ?? 5 * NS_PER_MS, driver: { atcRecovery: policy }, ...(o.topology ? { topology: o.topology } : {}) });
  const devs = r.core.devices.filter((d) => d.atsCap);
  const domain = r.glue.iommu.allocPaging();
  for (const d of devs) expect(r.glue.attachDomain(d, domain)).toBe(0);
  const dma = new IommuDma(r.platform, domain, { strict: true });
  const src = r.platform.pages.alloc(1);
  const dst = r.platform.pages.alloc(1);
  const si = dma.map(src, 4096, 'to-device');
  const di = dma.map(dst, 4096, 'from-device');
  for (const d of devs) expect(r.drv.transfer(d, si, di, 4096, NS_PER_S).ok).toBe(true);
  return { r, devs, domain, dma, si, di, src, dst };
}

const noAnswer = (bdf: string, count: 'forever' | 'until-reset' = 'until-reset'): Fault => ({ kind: 'atc-inv-no-answer', bdf, trigger: { count } });

function eats(r: PcieStack, sid: number): number {
  return qget(r.glue.iommu.strtab.readSte(sid), STE.EATS);
}

function atsOn(r: PcieStack, bdf: string): boolean {
  const d = r.core.dev(bdf);
  return (d.read16(d.atsCap + ATS.CTRL) & 0x8000) !== 0;
}

async function uaf(r: PcieStack): Promise<number> {
  return (await r.hw.op('report')).uaf;
}

/** ATC_INVs the IOMMU layer adds, by StreamID, while `body` runs. */
function atcInvsDuring(r: PcieStack, body: () => void): Record<string, number> {
  const cmds = r.glue.iommu.cmds;
  const add = cmds.add;
  const seen: Record<string, number> = {};
  cmds.add = (e) => {
    if (e.op === 'ATC_INV') seen[e.sid.toString(16)] = (seen[e.sid.toString(16)] ?? 0) + 1;
    add.call(cmds, e);
  };
  try {
    body();
  } finally {
    cmds.add = add;
  }
  return seen;
}

describe('an unmap whose ATC invalidation times out, under each policy', () => {
  it('quarantine-bisect (the default): the culprit alone is fenced before the unmap returns, the others keep ATS; a good reset lifts the fence', async () => {
    const { r, dma, si, di, devs } = shared('quarantine-bisect');
    r.inject(noAnswer('01:00.0'));
    const syncs = r.views.stats[STAT.SYNC_DONE]!;
    dma.unmap(di, 4096, 'from-device');
    // On return: ATS off at the function, STE.EATS clear, the master flagged; the innocent device untouched.
    const culprit = r.glue.master(r.core.dev('01:00.0'));
    expect(culprit.fenced).toBe(true);
    expect(atsOn(r, '01:00.0')).toBe(false);
    expect(eats(r, 0x100)).toBe(EATS.ABT);
    expect(r.glue.master(r.core.dev('02:00.0')).fenced).toBe(false);
    expect(atsOn(r, '02:00.0')).toBe(true);
    expect(eats(r, 0x200)).toBe(EATS.TRANS);
    const st = r.glue.iommu.recovery.stats;
    expect(st).toMatchObject({ failedBatches: 1, staleReturns: 0, fences: 1 });
    // Two devices: the halves {01:00.0} and {02:00.0}, one SYNC each, then the fence's CFGI_STE + SYNC.
    expect(st.extraSyncs).toBe(3);
    expect(r.views.stats[STAT.SYNC_DONE]! - syncs).toBe(1 + 1 + 3);
    expect(st.fenceLatencyNs).toHaveLength(1);
    // A later invalidation skips the fenced device's (broken) entry: no ATC_INV for SID 0x100.
    expect(atcInvsDuring(r, () => dma.unmap(si, 4096, 'to-device'))).toEqual({ '200': 1 });
    // The stale destination translation cannot be used: the copy goes untranslated and faults.
    const res = r.drv.transfer(r.core.dev('01:00.0'), si, di, 4096, NS_PER_S);
    expect(res.ok).toBe(false);
    expect(st.failedBatches).toBe(1);
    // The device was reported broken; its driver asked for a reset, which ran as deferred work, and
    // succeeded: the fence lifted, ATS and EATS are back, and so is its ATC_INV.
    r.sleep(2 * NS_PER_S);
    expect(culprit.fenced).toBe(false);
    expect(culprit.fences).toBe(1);
    expect(atsOn(r, '01:00.0')).toBe(true);
    expect(eats(r, 0x100)).toBe(EATS.TRANS);
    expect(r.log()).toContain('pci 0000:01:00.0: IOMMU reports the device broken (ATC invalidation timeout): ATS fenced until a reset');
    const d0 = dma.map(r.platform.pages.alloc(1), 4096, 'from-device');
    for (const d of devs) expect(r.drv.transfer(d, d0, d0, 4096, NS_PER_S).ok).toBe(true);
    expect(atcInvsDuring(r, () => dma.unmap(d0, 4096, 'from-device'))).toEqual({ '100': 1, '200': 1 });
    expect(await uaf(r)).toBe(0);
  });

  it('quarantine: every ATS device of the failed batch is fenced, innocent ones too; none: nothing is, and the unmap returns success over a stale ATC', async () => {
    const q = shared('quarantine');
    q.r.inject(noAnswer('01:00.0'));
    q.dma.unmap(q.di, 4096, 'from-device');
    for (const bdf of ['01:00.0', '02:00.0']) expect(q.r.glue.master(q.r.core.dev(bdf)).fenced, bdf).toBe(true);
    expect(q.r.glue.iommu.recovery.stats).toMatchObject({ failedBatches: 1, fences: 2, extraSyncs: 2 });

    const n = shared('none');
    n.r.inject(noAnswer('01:00.0'));
    n.dma.unmap(n.di, 4096, 'from-device');
    expect(n.r.glue.master(n.r.core.dev('01:00.0')).fenced).toBe(false);
    expect(eats(n.r, 0x100)).toBe(EATS.TRANS);
    expect(n.r.glue.iommu.recovery.stats).toMatchObject({ failedBatches: 1, staleReturns: 1, fences: 0, extraSyncs: 0 });
    // The page is freed and reused; the device still writes through its ATC: a use-after-free.
    n.r.platform.pages.free(n.dst, 1);
    expect(await uaf(n.r)).toBe(0);
    n.r.drv.transfer(n.r.core.dev('01:00.0'), n.si, n.di, 4096, NS_PER_S);
    expect(await uaf(n.r)).toBe(1);
  });

  it('reset (v1): the unmap returns before anything is fenced; the deferred work resets the device whose ATC_INV preceded the SYNC: the wrong one', async () => {
    const { r, dma, di } = shared('reset');
    r.inject(noAnswer('01:00.0'));
    dma.unmap(di, 4096, 'from-device');
    const d = r.core.dev('01:00.0');
    expect(r.glue.master(d).fenced).toBe(false);
    expect(eats(r, 0x100)).toBe(EATS.TRANS);
    expect(r.glue.iommu.recovery.stats).toMatchObject({ failedBatches: 1, staleReturns: 1 });
    const resets = async () => Object.fromEntries((await r.hw.op('report')).devices.map((x) => [x.bdf, x.resets]));
    const before = await resets();
    r.sleep(2 * NS_PER_S);
    // skip_err names the StreamID of the command before the failed CMD_SYNC: the batch was
    // [ATC_INV 0x100, ATC_INV 0x200, SYNC], so v1 resets 02:00.0, which answered, and leaves 01:00.0,
    // which did not, with its stale ATC.
    const after = await resets();
    expect(after['02:00.0']! - before['02:00.0']!).toBe(1);
    expect(after['01:00.0']! - before['01:00.0']!).toBe(0);
    expect(r.log()).toContain('pci 0000:02:00.0: ATC invalidation timeout: resetting the device');
    // Blocking 02:00.0 for its reset is what v1 does instead of fencing: after the work queue's delay.
    expect(r.glue.iommu.recovery.stats.fenceLatencyNs).toHaveLength(1);
    expect(r.glue.iommu.recovery.stats.fenceLatencyNs[0]).toBeGreaterThanOrEqual(100_000);
    expect(atsOn(r, '01:00.0')).toBe(true);
  });
});

describe('timeouts and interrupts', () => {
  // When the driver's poll gives up first, the SMMU is still waiting for the answer: retries would
  // queue behind the stuck CMD_SYNC, so the whole batch is fenced (and the innocent device's reset lifts
  // its fence afterwards).
  for (const [name, atc, poll, innocentFenced] of [
    ['the SMMU times out first', NS_PER_MS, 5 * NS_PER_MS, false],
    ["the driver's poll times out first", 20 * NS_PER_MS, 2 * NS_PER_MS, true],
  ] as const) {
    it(`${name}, GERROR interrupt masked on the issuing CPU: the culprit is fenced before the unmap returns, the queue works after`, async () => {
      const { r, dma, si, di } = shared('quarantine-bisect', { atcTimeoutNs: atc, pollTimeoutNs: poll });
      const dev = r.k.smmu!;
      r.platform.irqc.disable(dev.shared.irqVectors.gerror);
      r.inject(noAnswer('02:00.0'));
      dma.unmap(di, 4096, 'from-device');
      expect(r.glue.master(r.core.dev('02:00.0')).fenced).toBe(true);
      expect(r.glue.master(r.core.dev('01:00.0')).fenced).toBe(innocentFenced);
      expect(eats(r, 0x200)).toBe(EATS.ABT);
      expect(await uaf(r)).toBe(0);
      // Both come back through their resets (the culprit's fault lasted until its reset). The error
      // was found and acknowledged by issuers themselves (the interrupt never ran): nothing is pending.
      r.sleep(2 * NS_PER_S);
      for (const bdf of ['01:00.0', '02:00.0']) expect(r.glue.master(r.core.dev(bdf)).fenced, bdf).toBe(false);
      expect(r.views.stats[STAT.CERROR + 3]).toBeGreaterThanOrEqual(1);
      expect((dev.regs.read32(OFF.GERROR) ^ dev.regs.read32(OFF.GERRORN)) & GERROR.CMDQ_ERR.bits).toBe(0);
      expect(r.machine.smmu.ats.pending).toBe(0);
      // The next unmap reaches both devices and succeeds; nothing reached freed memory.
      expect(atcInvsDuring(r, () => dma.unmap(si, 4096, 'to-device'))).toEqual({ '100': 1, '200': 1 });
      expect(r.glue.iommu.recovery.stats.failedBatches).toBe(1);
      expect(await uaf(r)).toBe(0);
      expect(eats(r, 0x200)).toBe(EATS.TRANS);
    });
  }
});

describe('batches and late answers', () => {
  it('two culprits among four functions of one batch: bisection fences exactly those two', async () => {
    const { r, dma, di } = shared('quarantine-bisect', { topology: FOUR });
    r.inject(noAnswer('01:00.1'));
    r.inject(noAnswer('01:00.2'));
    dma.unmap(di, 4096, 'from-device');
    const fenced = r.core.devices.filter((d) => d.atsCap && r.glue.master(d).fenced).map((d) => d.bdf);
    expect(fenced).toEqual(['01:00.1', '01:00.2']);
    const st = r.glue.iommu.recovery.stats;
    expect(st.fences).toBe(2);
    // Halves {0,1} and {2,3} fail, then each single device is tried: 6 SYNCs, and 2 for the fences.
    expect(st.extraSyncs).toBe(6 + 2);
    expect(await uaf(r)).toBe(0);
  });

  it('a late answer (after the SMMU gave up) arrives after the fence, is discarded and lifts nothing', async () => {
    const { r, dma, di } = shared('quarantine-bisect');
    r.inject({ kind: 'atc-inv-late', bdf: '01:00.0', trigger: { count: 'until-reset' } });
    const late = r.pstat('ATC_INV_LATE');
    dma.unmap(di, 4096, 'from-device');
    const d = r.core.dev('01:00.0');
    const m = r.glue.master(d);
    expect(m.fenced).toBe(true);
    // The device's driver declines a reset when told the device is broken: only the late answers can
    // change anything now, and they must not.
    const eh = d.driver!.errHandler!;
    const errorDetected = eh.errorDetected;
    eh.errorDetected = () => PCI_ERS.CAN_RECOVER;
    r.sleep(20 * NS_PER_MS);
    eh.errorDetected = errorDetected;
    expect(r.log()).toContain('pci 0000:01:00.0: driver answered CAN_RECOVER: no reset, the device stays fenced');
    expect(r.pstat('ATC_INV_LATE') - late).toBeGreaterThanOrEqual(1);
    expect(m.fenced).toBe(true);
    expect(eats(r, 0x100)).toBe(EATS.ABT);
    expect(r.machine.smmu.ats.pending).toBe(0);
    expect(await uaf(r)).toBe(0);
  });
});

describe('attach and reset against the fence', () => {
  it("an attach whose own ATC flush times out leaves ATS off; an attach of a fenced master keeps STE.EATS clear", () => {
    const r = pcieStack({ atcTimeoutNs: NS_PER_MS, pollTimeoutNs: 5 * NS_PER_MS });
    const d = r.core.dev('01:00.0');
    const m = r.glue.master(d);
    r.inject(noAnswer('01:00.0', 'forever'));
    // attach: STE with EATS, then the ATC flush, then ATS on. The flush times out and fences the
    // master in the middle of the attach; the attach must not turn ATS (or EATS) back on after it.
    expect(r.glue.attachDomain(d, r.glue.iommu.allocPaging())).toBe(0);
    expect(m.fenced).toBe(true);
    expect(m.atsEnabled).toBe(false);
    expect(atsOn(r, '01:00.0')).toBe(false);
    expect(eats(r, 0x100)).toBe(EATS.ABT);
    // Another attach while fenced: a paging domain that would want ATS gets an STE without EATS, and no ATC_INV.
    expect(atcInvsDuring(r, () => expect(r.glue.attachDomain(d, r.glue.iommu.allocPaging())).toBe(0))).toEqual({});
    expect(eats(r, 0x100)).toBe(EATS.ABT);
    expect(atsOn(r, '01:00.0')).toBe(false);
    expect(m.fences).toBe(1);
  });

  it('a reset nested inside another while fenced: the fence lifts only at the outermost successful done; a failed inner reset keeps it', () => {
    const { r, dma, di } = shared('quarantine-bisect', {
      topology: { ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', deviceId: '0x5a11' }] }, { bdf: '00:02.0', secondaryBus: 2, functions: [{ bdf: '02:00.0' }] }] },
    });
    const d = r.core.dev('01:00.0');
    const m = r.glue.master(d);
    // The device's driver declines the reset it is offered: the resets below are the only ones.
    d.driver!.errHandler!.errorDetected = () => PCI_ERS.CAN_RECOVER;
    r.inject(noAnswer('01:00.0'));
    dma.unmap(di, 4096, 'from-device');
    expect(m.fenced).toBe(true);
    // A failing inner FLR (the function never comes back in time): the device-specific reset swallows
    // the error, the outermost done knows, and the fence stays.
    r.inject({ kind: 'flr-slow', bdf: '01:00.0', ms: 70_000 });
    expect(pciResetFunction(r.core, d, ['device_specific'])).toBe(0);
    expect(m.fenced).toBe(true);
    expect(eats(r, 0x100)).toBe(EATS.ABT);
    expect(r.log()).toContain('pci 0000:01:00.0: Reset reported success but a nested reset failed. Blocking ATS to protect memory');
    // Once the function is back, a good nested reset: the inner done (depth 1) leaves the fence, the outer lifts it.
    r.sleep(10 * NS_PER_S);
    const atDone: boolean[] = [];
    const unblock = r.glue.unblock.bind(r.glue);
    r.glue.unblock = (x) => {
      atDone.push(m.fenced);
      return unblock(x);
    };
    r.inject({ kind: 'flr-slow', bdf: '01:00.0', ms: 100 });
    expect(pciResetFunction(r.core, d, ['device_specific'])).toBe(0);
    expect(atDone).toEqual([true]);
    expect(m.fenced).toBe(false);
    expect(eats(r, 0x100)).toBe(EATS.TRANS);
    expect(atsOn(r, '01:00.0')).toBe(true);
  });

  it('surprise removal while the fenced device is being recovered: the reset fails, the device is gone and stays fenced, nothing hangs', async () => {
    const { r, dma, di } = shared('quarantine-bisect');
    const d = r.core.dev('01:00.0');
    r.inject(noAnswer('01:00.0'));
    r.inject({ kind: 'surprise-removal', bdf: '01:00.0', trigger: { after: { event: 'recovery' } } });
    dma.unmap(di, 4096, 'from-device');
    expect(r.glue.master(d).fenced).toBe(true);
    const t0 = r.now();
    r.sleep(2 * NS_PER_S);
    expect(r.now() - t0).toBeLessThan(3 * NS_PER_S);
    expect(d.disconnected).toBe(true);
    expect(r.glue.master(d).fenced).toBe(true);
    expect(eats(r, 0x100)).toBe(EATS.ABT);
    expect((await r.hw.op('report')).devices.find((x) => x.bdf === '01:00.0')!.removed).toBe(true);
    // The other device still works, and its invalidations complete.
    expect(atcInvsDuring(r, () => dma.unmap(dma.map(r.platform.pages.alloc(1), 4096, 'to-device'), 4096, 'to-device'))).toEqual({ '200': 1 });
    expect(r.glue.iommu.recovery.stats.failedBatches).toBe(1);
    expect(await uaf(r)).toBe(0);
  });
});

describe('the command queue after a CmdqTimeout thrown mid-issue', () => {
  it('reserved slots are filled and published, the shared lock and interrupts restored; the next issue works', () => {
    const r = pcieStack({ pollTimeoutNs: 5 * NS_PER_MS });
    const q = r.k.smmu!.cmdq;
    const st = q.desc.statePa;
    const lockAt = (st >>> 0) + W.LOCK * 4;
    // Another CPU holds the queue's lock exclusively and never lets go: this CPU's CMD_SYNC cannot
    // take it shared, after its commands were reserved and written.
    r.platform.mem.write32(lockAt, 0x80000000);
    const buf = new Uint32Array(8);
    buildCmd(buf, 0, atcInvEnt(0x100, 0, 0, 0));
    buildCmd(buf, 4, atcInvEnt(0x200, 0, 0, 0));
    const prod0 = CMDQ_CONS.RD.get(r.k.smmu!.regs.read32(OFF.CMDQ_PROD));
    const syncs = r.exec('SYNC');
    expect(() => q.issue(buf, 2, true)).toThrow(CmdqTimeout);
    expect(r.platform.irqsEnabled()).toBe(true);
    // (Its failed attempt at the shared lock left its increment, which the exclusive unlock's store
    // of 0 wipes, as in Linux's arm_smmu_cmdq_shared_lock.)
    expect(r.platform.mem.read32(lockAt) >>> 0).toBe(0x80000001);
    // The three reserved slots reached the hardware (as SYNCs: their commands were never marked valid).
    expect(r.k.smmu!.regs.read32(OFF.CMDQ_PROD) - prod0).toBe(3);
    r.sleep(NS_PER_MS);
    expect(r.exec('SYNC') - syncs).toBe(3);
    // The other CPU lets go: the queue works.
    r.platform.mem.write32(lockAt, 0);
    expect(q.issue(buf, 2, true).ret).toBe(0);
    expect(r.platform.mem.read32(lockAt)).toBe(0);
  });
});
