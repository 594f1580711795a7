// ATS end to end in lockstep: Translation Requests filling the endpoint's ATC, translated requests from
// ATC hits, ATC invalidation round trips on unmap, upstream Linux's enable/disable ordering, TLBI+SYNC
// before ATC_INVs with one SYNC for many devices, invalidate-queue-depth back-pressure, and the SMMU's
// ATC invalidation timeout: CERROR_ATC_INV_SYNC on the SYNC with CONS on it, handled by the issuing CPU
// itself once its poll times out (the GERROR interrupt cannot reach it while it polls), the re-executed
// SYNC completing and reporting SYNC_ATC_TIMEOUT to its issuer, late completions discarded, both
// orderings of the SMMU and driver timeouts.

import { describe, expect, it } from 'vitest';
import { pcieStack, type PcieStack } from './helpers/pcie-rig.ts';
import { atcInvEnt, buildCmd, type CmdEnt } from '../drivers/arm-smmu-v3/cmds.ts';
import { SYNC_ATC_TIMEOUT } from '../drivers/arm-smmu-v3/cmdq.ts';
import { pciDisableAts } from '../drivers/pci/ats.ts';
import { IommuDma } from '../drivers/iommu/dma-iommu.ts';
import { CMDQ_CONS, CR0, GERROR, OFF } from '../src/arch/smmu/regs.ts';
import { ATS, DEVCTL, EXP } from '../src/arch/pcie/regs.ts';
import { histogramPercentile, latencyHistogram } from '../src/machine/pcie-stats.ts';
import { STAT } from '../src/machine/layout.ts';
import { PA } from '../src/arch/platform.ts';
import { NS_PER_MS, NS_PER_S, NS_PER_US } from '../src/arch/time.ts';

const ETIMEDOUT = -110;

/** GERROR bits raised and not yet acknowledged. */
function gerrorActive(r: PcieStack): number {
  const dev = r.k.smmu!;
  return (dev.regs.read32(OFF.GERROR) ^ dev.regs.read32(OFF.GERRORN)) >>> 0;
}

/** Issues raw commands (each a CmdEnt) with a CMD_SYNC through the driver's queue; returns the result. */
function issue(r: PcieStack, ents: CmdEnt[]): { ret: number; syncProd: number } {
  const buf = new Uint32Array(4 * ents.length);
  ents.forEach((e, i) => buildCmd(buf, 4 * i, e));
  return r.k.smmu!.cmdq.issue(buf, ents.length, true);
}

/** A page of data mapped for a device through a DMA context, and a destination page. */
function buffers(r: PcieStack, dma: IommuDma, pages: number, fill: number) {
  const src = r.platform.pages.alloc(pages);
  const dst = r.platform.pages.alloc(pages);
  r.platform.mem.fill(src, pages * 4096, fill);
  return { src, dst, si: dma.map(src, pages * 4096, 'to-device'), di: dma.map(dst, pages * 4096, 'from-device'), len: pages * 4096 };
}

/** Records the IOMMU layer's commands and the functions' ATS Control writes, in order. */
function recorder(r: PcieStack) {
  const seq: string[] = [];
  const cmds = r.glue.iommu.cmds;
  const add = cmds.add.bind(cmds);
  const submit = cmds.submit.bind(cmds);
  cmds.add = (e) => {
    seq.push(e.op === 'ATC_INV' ? `ATC_INV ${e.sid.toString(16)}` : e.op);
    add(e);
  };
  cmds.submit = () => {
    seq.push('SYNC');
    return submit();
  };
  const atsCtl = new Map(r.core.devices.filter((d) => d.atsCap).map((d) => [PA.ECAM_BASE + d.rid * 4096 + d.atsCap + ATS.CTRL, d.bdf]));
  const write = r.machine.write.bind(r.machine);
  r.machine.write = (w) => {
    const bdf = atsCtl.get(w.pa);
    if (bdf) seq.push(`${bdf} ATS ${w.lo & 0x8000 ? 'on' : 'off'}`);
    write(w);
  };
  return seq;
}

describe('ATS translation and the ATC', () => {
  it('misses fill the ATC, later copies hit, unmap invalidates it through the SMMU and the function answers', () => {
    const r = pcieStack();
    const d = r.core.dev('01:00.0');
    const ep = r.ep('01:00.0');
    const dma = r.glue.dma(d);
    const b = buffers(r, dma, 2, 0x3c);
    for (let i = 0; i < 3; i++) expect(r.drv.transfer(d, b.si, b.di, b.len, NS_PER_S).ok).toBe(true);
    expect(r.platform.mem.readBytes(b.dst, b.len).every((x) => x === 0x3c)).toBe(true);
    // Two source and two destination pages: one Translation Request each, then hits.
    expect(r.pstat('ATC_MISSES')).toBe(4);
    expect(r.pstat('ATC_HITS')).toBe(8);
    expect(ep.atc!.count).toBe(4);
    const sent = r.pstat('ATC_INV_SENT');
    dma.unmap(b.si, b.len, 'to-device');
    expect(r.pstat('ATC_INV_SENT') - sent).toBe(1);
    expect(r.pstat('ATC_INV_COMPLETED')).toBe(r.pstat('ATC_INV_SENT'));
    expect(r.pstat('EP_INV_ENTRIES')).toBeGreaterThanOrEqual(2);
    expect(ep.atc!.count).toBe(2);
    // Every round trip took the function's 2 us (lockstep time is exact; the histogram has ~9% buckets).
    const p50 = histogramPercentile(latencyHistogram(r.views.stats), 50)!;
    expect(Math.abs(p50 - 2000)).toBeLessThan(200);
    // The unmapped source is gone from the ATC: a copy from it faults instead of reading stale data.
    const res = r.drv.transfer(d, b.si, b.di, b.len, NS_PER_S);
    expect(res.ok).toBe(false);
    expect(res.error).toBe('translation fault');
  });

  it('Linux ordering: ATS off at the function before the STE loses EATS, ATC flush after; on only after STE + flush', () => {
    const r = pcieStack();
    const d = r.core.dev('02:00.0');
    const seq = recorder(r);
    const m = r.glue.master(d);
    r.glue.iommu.attach(m, r.glue.iommu.blocked);
    // Disable: function first, then the STE (CFGI_STE + SYNC), then the whole ATC (ATC_INV + SYNC);
    // the old domain's tag flush and CD cleanup follow.
    expect(seq[0]).toBe('02:00.0 ATS off');
    const lastCfgi = seq.lastIndexOf('CFGI_STE');
    const inv = seq.indexOf('ATC_INV 200');
    expect(lastCfgi).toBeGreaterThan(0);
    expect(seq.slice(lastCfgi, inv + 2)).toEqual(['CFGI_STE', 'SYNC', 'ATC_INV 200', 'SYNC']);
    expect(seq.filter((x) => x.includes('ATS'))).toEqual(['02:00.0 ATS off']);
    seq.length = 0;
    r.glue.iommu.attach(m, r.glue.iommu.allocPaging());
    // Enable: the STE with EATS first, the ATC flushed, then ATS on at the function, last.
    expect(seq.at(-1)).toBe('02:00.0 ATS on');
    expect(seq.slice(-5)).toEqual(['CFGI_STE', 'SYNC', 'ATC_INV 200', 'SYNC', '02:00.0 ATS on']);
    expect(d.read16(d.atsCap + ATS.CTRL)).toBe(0x8000);
  });

  it('unmap: TLBI + SYNC complete before the ATC_INVs, and one SYNC covers every endpoint of the domain', () => {
    const r = pcieStack();
    const devs = ['01:00.0', '02:00.0'].map((b) => r.core.dev(b));
    const domain = r.glue.iommu.allocPaging();
    for (const d of devs) expect(r.glue.attachDomain(d, domain)).toBe(0);
    const dma = new IommuDma(r.platform, domain, { strict: true });
    const b = buffers(r, dma, 1, 0x11);
    for (const d of devs) expect(r.drv.transfer(d, b.si, b.di, b.len, NS_PER_S).ok).toBe(true);
    const seq = recorder(r);
    const syncs = r.views.stats[STAT.SYNC_DONE]!;
    dma.unmap(b.si, b.len, 'to-device');
    expect(seq).toEqual(['TLBI_NH_VA', 'SYNC', 'ATC_INV 100', 'ATC_INV 200', 'SYNC']);
    expect(r.views.stats[STAT.SYNC_DONE]! - syncs).toBe(2);
    for (const bdf of ['01:00.0', '02:00.0']) expect(r.ep(bdf).atc!.count).toBe(1);
  });
});

describe('ATC invalidation in the SMMU', () => {
  it('keeps at most the invalidate queue depth outstanding per endpoint, stalling the command queue', () => {
    const r = pcieStack({ topology: { ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', invQueueDepth: 2, invLatencyUs: 100 }] }] } });
    const ep = r.ep('01:00.0');
    const outstanding: number[] = [];
    const deliver = ep.atcInvalidate.bind(ep);
    ep.atcInvalidate = (req, done, timeoutNs) => {
      outstanding.push(r.machine.smmu.ats.pending);
      deliver(req, done, timeoutNs);
    };
    // (Enabling ATS at setup flushed the ATC once: count from here.)
    const completed = r.pstat('ATC_INV_COMPLETED');
    const executed = r.exec('ATC_INV');
    const t0 = r.now();
    const { ret } = issue(r, Array.from({ length: 5 }, (_, i) => atcInvEnt(0x100, 0, i * 4096, 4096)));
    expect(ret).toBe(0);
    // Outstanding requests (counting the one being delivered) never exceed the depth of 2.
    expect(outstanding).toEqual([1, 2, 2, 2, 2]);
    // The queue stopped at a command for a full endpoint three times (commands 3, 4 and 5: each
    // completion frees one slot and the next command takes it before the second completion arrives).
    expect(r.pstat('ATC_INV_STALLS')).toBe(3);
    expect(r.pstat('ATC_INV_COMPLETED') - completed).toBe(5);
    // Three waves of 100 us: the SYNC completed only after the last one.
    expect(r.now() - t0).toBeGreaterThanOrEqual(300 * NS_PER_US);
    expect(r.exec('ATC_INV') - executed).toBe(5);
  });

  it('a timeout fails that CMD_SYNC with CERROR_ATC_INV_SYNC and CONS on it; the issuer acknowledges it after its poll timeout, the SYNC re-executes and reports SYNC_ATC_TIMEOUT', () => {
    // SMMU timeout 1 ms, driver poll 5 ms: the SMMU reports first.
    const r = pcieStack({ atcTimeoutNs: NS_PER_MS, pollTimeoutNs: 5 * NS_PER_MS });
    const dev = r.k.smmu!;
    // Mask the GERROR interrupt: only the issuing CPU's own look at GERROR can handle the error.
    const vec = dev.shared.irqVectors.gerror;
    r.platform.irqc.disable(vec);
    r.inject({ kind: 'atc-inv-no-answer', bdf: '01:00.0', trigger: { count: 'forever' } });
    // What the issuer finds when its poll gives up and it looks at GERROR itself.
    const seen: { t: number; cons: number; active: number }[] = [];
    const checkGerror = dev.checkGerror.bind(dev);
    dev.checkGerror = () => {
      seen.push({ t: r.now(), cons: dev.regs.read32(OFF.CMDQ_CONS), active: gerrorActive(r) });
      return checkGerror();
    };
    const t0 = r.now();
    const { ret, syncProd } = issue(r, [atcInvEnt(0x100, 0, 0, 0)]);
    // The SYNC completed (re-executed), but its issuer learns that the ATC invalidation before it failed.
    expect(ret).toBe(SYNC_ATC_TIMEOUT);
    // The driver polls CONS with interrupts off, so its poll runs out although the SMMU gave up at 1 ms;
    // then it looks once, and finds the SMMU stopped on the SYNC with the error raised.
    expect(seen).toHaveLength(1);
    expect(seen[0]!.t - t0).toBeGreaterThanOrEqual(5 * NS_PER_MS);
    const cons = seen[0]!.cons;
    expect(CMDQ_CONS.ERR.get(cons)).toBe(3);
    expect(CMDQ_CONS.RD.get(cons)).toBe(syncProd);
    expect(seen[0]!.active & GERROR.CMDQ_ERR.bits).toBe(GERROR.CMDQ_ERR.bits);
    expect(r.views.stats[STAT.CERROR + 3]).toBe(1);
    expect(r.pstat('ATC_INV_TIMEOUTS')).toBe(1);
    expect(r.machine.smmu.cmdq.lastError).toMatchObject({ name: 'CERROR_ATC_INV_SYNC', cons: syncProd });
    // It reported the error and acknowledged it; the SYNC ran again and completed (the timed-out
    // invalidation is not retried), although the ATC was never invalidated. No SYNC timed out.
    const cmdqError = `arm-smmu-v3 9050000.smmuv3: CMDQ error (cons 0x${(cons >>> 0).toString(16).padStart(8, '0')}): ATC invalidate timeout`;
    expect(r.log()).toContain(cmdqError);
    expect(r.log().some((m) => m.includes('CMD_SYNC timeout'))).toBe(false);
    expect(dev.errorLog).toEqual([{ cons: syncProd, code: 3 }]);
    expect(CMDQ_CONS.RD.get(dev.regs.read32(OFF.CMDQ_CONS))).toBe(syncProd + 1);
    expect(gerrorActive(r) & GERROR.CMDQ_ERR.bits).toBe(0);
    // Unmasked, the GERROR interrupt finds nothing left to handle.
    r.platform.irqc.route(vec, 0);
    r.sleep(100 * NS_PER_US);
    expect(r.views.stats[STAT.CERROR + 3]).toBe(1);
    expect(r.log().filter((m) => m === cmdqError)).toHaveLength(1);
    // The queue works again; the other endpoint answers.
    expect(issue(r, [atcInvEnt(0x200, 0, 0, 0)]).ret).toBe(0);
  });

  it('driver timeout first: the CMD_SYNC poll gives up before the SMMU does, which reports the error later', () => {
    const r = pcieStack({ atcTimeoutNs: 20 * NS_PER_MS, pollTimeoutNs: 2 * NS_PER_MS });
    const dev = r.k.smmu!;
    r.platform.irqc.disable(dev.shared.irqVectors.gerror);
    r.inject({ kind: 'atc-inv-no-answer', bdf: '02:00.0', trigger: { count: 'forever' } });
    const { ret, syncProd } = issue(r, [atcInvEnt(0x200, 0, 0, 0)]);
    expect(ret).toBe(ETIMEDOUT);
    expect(r.log().some((m) => m.includes('CMD_SYNC timeout'))).toBe(true);
    // No command error yet: the SMMU is still waiting for the completion, CONS on the SYNC.
    let cons = dev.regs.read32(OFF.CMDQ_CONS);
    expect(CMDQ_CONS.ERR.get(cons)).toBe(0);
    expect(CMDQ_CONS.RD.get(cons)).toBe(syncProd);
    expect(r.machine.smmu.ats.pending).toBe(1);
    r.sleep(20 * NS_PER_MS);
    cons = dev.regs.read32(OFF.CMDQ_CONS);
    expect(CMDQ_CONS.ERR.get(cons)).toBe(3);
    expect(CMDQ_CONS.RD.get(cons)).toBe(syncProd);
    expect(r.pstat('ATC_INV_TIMEOUTS')).toBe(1);
  });

  it('a completion that arrives after its timeout is discarded and fails nothing else', () => {
    // Pinned to the mainline recovery policy: setting up already times out once (the ATC flush when ATS
    // is enabled), which under the default policy would fence 01:00.0 and queue its reset, to run in
    // this test's sleeps. The point here is the SMMU's handling of a late completion.
    const r = pcieStack({
      atcTimeoutNs: NS_PER_MS,
      pollTimeoutNs: 2 * NS_PER_MS,
      topology: { ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', invLatencyUs: 5000 }] }] },
      driver: { atcRecovery: 'none' },
    });
    const dev = r.k.smmu!;
    // (Count from here, after the setup's timed-out flush and its late completion.)
    r.sleep(10 * NS_PER_MS);
    expect(r.glue.master(r.core.dev('01:00.0')).fenced).toBe(false);
    const late = r.pstat('ATC_INV_LATE');
    const cerr = r.views.stats[STAT.CERROR + 3]!;
    r.platform.irqc.disable(dev.shared.irqVectors.gerror);
    // The SMMU gives up at 1 ms, the issuer's poll at 2 ms: it handles the error itself, and the
    // re-executed SYNC completes, reporting the failed invalidation; the answer is still on its way.
    expect(issue(r, [atcInvEnt(0x100, 0, 0, 0)]).ret).toBe(SYNC_ATC_TIMEOUT);
    expect(r.views.stats[STAT.CERROR + 3]! - cerr).toBe(1);
    expect(gerrorActive(r) & GERROR.CMDQ_ERR.bits).toBe(0);
    expect(r.pstat('ATC_INV_LATE') - late).toBe(0);
    r.sleep(10 * NS_PER_MS);
    expect(r.pstat('ATC_INV_LATE') - late).toBe(1);
    expect(r.views.stats[STAT.CERROR + 3]! - cerr).toBe(1);
    // Nothing outstanding: the next SYNC completes; the late completion changed nothing.
    expect(r.machine.smmu.ats.pending).toBe(0);
    expect(issue(r, []).ret).toBe(0);
    expect(r.views.stats[STAT.CERROR + 3]! - cerr).toBe(1);
    expect(gerrorActive(r)).toBe(0);
  });

  it('the function answers with ATS disabled, but not while in FLR', () => {
    const r = pcieStack({ atcTimeoutNs: NS_PER_MS, pollTimeoutNs: 50 * NS_PER_MS });
    const d = r.core.dev('01:00.0');
    pciDisableAts(d);
    expect(issue(r, [atcInvEnt(0x100, 0, 0, 0)]).ret).toBe(0);
    r.platform.irqc.disable(r.k.smmu!.shared.irqVectors.gerror);
    d.update16(d.pcieCap + EXP.DEVCTL, 0, DEVCTL.BCR_FLR.bits);
    // Dropped in FLR: the SMMU times out (1 ms), the issuer's poll later (50 ms); it then handles the
    // error itself and the re-executed SYNC reports the failed invalidation.
    const { ret, syncProd } = issue(r, [atcInvEnt(0x100, 0, 0, 0)]);
    expect(ret).toBe(SYNC_ATC_TIMEOUT);
    expect(r.pstat('EP_INV_DROPPED')).toBe(1);
    expect(r.pstat('ATC_INV_TIMEOUTS')).toBe(1);
    expect(r.k.smmu!.errorLog).toEqual([{ cons: syncProd, code: 3 }]);
  });

  it('is ignored while SMMUEN=0, and completes at once for a StreamID with no ATS endpoint', () => {
    const r = pcieStack();
    const dev = r.k.smmu!;
    expect(issue(r, [atcInvEnt(0x345, 0, 0, 0)]).ret).toBe(0);
    expect(r.pstat('ATC_INV_NOT_SENT')).toBe(1);
    const en = dev.regs.read32(OFF.CR0) & ~CR0.SMMUEN.bits;
    dev.regs.write32(OFF.CR0, en);
    while (dev.regs.read32(OFF.CR0ACK) !== en) r.sleep(NS_PER_US);
    const received = r.pstat('EP_INV_RECEIVED');
    expect(issue(r, [atcInvEnt(0x100, 0, 0, 0)]).ret).toBe(0);
    expect(r.pstat('EP_INV_RECEIVED')).toBe(received);
    expect(r.pstat('ATC_INV_NOT_SENT')).toBe(2);
  });
});
