// Command errors and their recovery (IHI 0070 7.1; Linux arm_smmu_gerror_handler/skip_err):
// an illegal command stops consumption at it (CONS.ERR = CERROR_ILL, GERROR.CMDQ_ERR) until the driver's
// GERROR handler replaces it with a CMD_SYNC and acknowledges; a transient fetch abort (CERROR_ABT) is
// retried. First in lockstep (inspecting the stopped queue), then with real workers: one CPU (the
// issuing CPU polls its CMD_SYNC with interrupts off, so the GERROR interrupt cannot be taken: once its
// poll times out it looks at GERROR itself, handles the error and polls again, and the CMD_SYNC
// completes) and two CPUs (CPU 1 takes the interrupt and the CMD_SYNC completes in time).

import { BAD, BAD_DUMP, cfgiSte, fetchAbortsRetried, illegalFile, illegalHandledOnCpu1, nhAsid } from './fixtures/illegal-command.ts';
import { describe, expect, it } from 'vitest';
import { hex } from '../src/arch/bits.ts';
import { STAT } from '../src/machine/layout.ts';
import { OP } from '../src/arch/smmu/commands.ts';
import { CERROR, CR0, OFF } from '../src/arch/smmu/regs.ts';
import { DEFAULT_FEATURES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { TIMEOUT } from '../src/arch/time.ts';
import { ACK_NS, cmds, lockstep, page, probed, queueAt } from './helpers/lockstep.ts';
import { withSystem } from './helpers/system.ts';

describe('illegal command (lockstep)', () => {
  it('stops consumption at the command until skip_err replaces it; every other command runs exactly once', () => {
    const h = probed(DEFAULT_FEATURES);
    const before = { ste: h.exec('CFGI_STE'), asid: h.exec('TLBI_NH_ASID'), sync: h.exec('SYNC'), total: h.execTotal() };
    const prod0 = h.io.read32(OFF.CMDQ_PROD);
    const badSlot = prod0 + 3;
    const batch = cmds(cfgiSte(1), cfgiSte(2), cfgiSte(3), BAD, nhAsid(1), nhAsid(2), nhAsid(3));
    // As in Linux the CPU waits for its CMD_SYNC with interrupts off, so the GERROR interrupt cannot be
    // taken: when its poll times out it looks at GERROR itself. Inspect the stopped queue at that point,
    // before the error is handled; keep interrupts off afterwards too, so that only the issuer handles it.
    const stopped: { t: number; rd: number; err: number; active: boolean; ste: number; asid: number; rdAfterDoorbell: number }[] = [];
    const checkGerror = h.dev.checkGerror.bind(h.dev);
    h.dev.checkGerror = () => {
      const at = { t: h.platform.clock.now(), rd: h.consRd(), err: h.consErr(), active: h.cmdqErrActive(), ste: h.exec('CFGI_STE'), asid: h.exec('TLBI_NH_ASID') };
      // A doorbell while the error is active does not restart the queue.
      h.io.write32(OFF.CMDQ_PROD, h.io.read32(OFF.CMDQ_PROD));
      h.platform.delay(1_000_000);
      stopped.push({ ...at, rdAfterDoorbell: h.consRd() });
      return checkGerror();
    };
    const flags = h.platform.localIrqSave();
    const t0 = h.platform.clock.now();
    const ret = h.dev.issueRaw(batch, 7, true);
    // The CMD_SYNC behind the illegal command completed once its issuer had the command skipped.
    expect(ret).toBe(0);
    expect(stopped).toEqual([{ t: expect.any(Number), rd: badSlot, err: CERROR.ILL, active: true, ste: before.ste + 3, asid: before.asid, rdAfterDoorbell: badSlot }]);
    // It looked only after its full poll timeout.
    expect(stopped[0]!.t - t0).toBeGreaterThanOrEqual(TIMEOUT.SMMU_POLL);
    // Recovered with interrupts still off: by the issuer, not by the GERROR interrupt.
    expect(h.cmdqErrActive()).toBe(false);
    expect(h.consRd()).toBe(prod0 + 8);
    expect(h.exec('CFGI_STE')).toBe(before.ste + 3);
    expect(h.exec('TLBI_NH_ASID')).toBe(before.asid + 3);
    expect(h.exec('SYNC')).toBe(before.sync + 2); // the batch's own and skip_err's replacement
    expect(h.execTotal()).toBe(before.total + 8);
    expect(h.cerror(CERROR.ILL)).toBe(1);
    const hwCons = (CERROR.ILL << 24) | badSlot;
    const log = h.log().map((l) => l.replace('arm-smmu-v3 9050000.smmuv3: ', ''));
    const at = log.indexOf(`CMDQ error (cons ${hex(hwCons)}): Illegal command`);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(log.slice(at + 1, at + 4)).toEqual(['skipping command in error state:', ...BAD_DUMP]);
    expect(log.some((l) => l.startsWith('CMD_SYNC timeout'))).toBe(false);
    expect(h.dev.errorLog).toEqual([{ cons: badSlot, code: CERROR.ILL }]);

    h.platform.localIrqRestore(flags); // the GERROR interrupt, taken now, finds nothing left to handle
    expect(h.cerror(CERROR.ILL)).toBe(1);
    expect(h.dev.errorLog).toEqual([{ cons: badSlot, code: CERROR.ILL }]);
    expect(h.log().filter((l) => l.endsWith('Illegal command'))).toHaveLength(1);
    // The queue works normally afterwards.
    expect(h.dev.issueCmdWithSync({ op: 'TLBI_NSNH_ALL' })).toBe(0);
    expect(h.consRd()).toBe(prod0 + 10);
  });

  it('a transient fetch abort is retried: CERROR_ABT each time, then every command runs exactly once', () => {
    const h = probed(DEFAULT_FEATURES);
    const before = { ste: h.exec('CFGI_STE'), asid: h.exec('TLBI_NH_ASID'), sync: h.exec('SYNC') };
    h.inject({ kind: 'cmd-fetch-abort', trigger: { count: 3 } });
    const ret = h.dev.issueRaw(cmds(cfgiSte(1), nhAsid(1), cfgiSte(2)), 3, true);
    // One CPU: the poll times out with interrupts off; the issuer then handles the first abort itself
    // and polls once more, but the retried fetch aborts again and that poll times out too. The other
    // aborts are handled in turn when interrupts come back on.
    expect(ret).toBe(-110);
    expect(h.log().filter((l) => l.includes('CMD_SYNC timeout'))).toHaveLength(1);
    expect(h.cerror(CERROR.ABT)).toBe(3);
    expect(h.stat(STAT.FETCH_ABORTS)).toBe(3);
    expect(h.exec('CFGI_STE')).toBe(before.ste + 2);
    expect(h.exec('TLBI_NH_ASID')).toBe(before.asid + 1);
    expect(h.exec('SYNC')).toBe(before.sync + 1);
    const log = h.log();
    expect(log.filter((l) => l.endsWith('): Abort on command fetch'))).toHaveLength(3);
    expect(log.filter((l) => l.endsWith('retrying command fetch'))).toHaveLength(3);
    expect(log.filter((l) => l.includes('skipping command'))).toEqual([]);
    expect(h.dev.issueCmdWithSync({ op: 'TLBI_NSNH_ALL' })).toBe(0);
    expect(h.cerror(CERROR.ABT)).toBe(3);
  });
});

describe('command fetch from outside memory (lockstep)', () => {
  it('a queue base above 4 GiB (no RAM there) aborts every fetch instead of aliasing into DRAM', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const inDram = Number(page(h));
    h.platform.mem.write32(inDram, OP.TLBI_NSNH_ALL); // what a 32-bit truncated address would find
    h.io.write64(OFF.CMDQ_BASE, queueAt((1n << 32n) | BigInt(inDram), 4));
    h.io.write32(OFF.CR0, CR0.CMDQEN.bits);
    h.platform.delay(ACK_NS);
    h.io.write32(OFF.CMDQ_PROD, 1);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(0);
    expect(h.consRd()).toBe(0);
    expect(h.consErr()).toBe(CERROR.ABT);
    expect(h.cmdqErrActive()).toBe(true);
    expect(h.trace()).toContain(`smmuv3_cmdq_consume_error cmd="fetch" error=CERROR_ABT cons=0x0 reason="fetch of entry 0 at PA 0x${(2 ** 32 + inDram).toString(16)} aborted"`);
  });

  // 3.4.3: the SMMU truncates the queue addresses it originates to the OAS, so bits above it (up to
  // CMDQ_BASE.ADDR's top bit 55) select nothing: the queue is read at the address below the OAS.
  const ABOVE_OAS: [SmmuFeatures['oasBits'], bigint][] = [
    [48, (1n << 55n) | (1n << 48n)],
    [40, 1n << 44n],
  ];
  for (const [oasBits, high] of ABOVE_OAS) {
    it(`OAS ${oasBits}: a queue base with bits ${hex(high, 0)} above it is truncated to the OAS, not fetched from beyond it`, () => {
      const h = lockstep({ ...DEFAULT_FEATURES, oasBits });
      const inDram = Number(page(h));
      h.platform.mem.write32(inDram, OP.TLBI_NSNH_ALL);
      h.io.write64(OFF.CMDQ_BASE, queueAt(high | BigInt(inDram), 4));
      expect(h.io.read64(OFF.CMDQ_BASE) & high).toBe(high); // the register keeps what was written
      h.io.write32(OFF.CR0, CR0.CMDQEN.bits);
      h.platform.delay(ACK_NS);
      h.io.write32(OFF.CMDQ_PROD, 1);
      expect(h.exec('TLBI_NSNH_ALL')).toBe(1);
      expect(h.consRd()).toBe(1);
      expect(h.consErr()).toBe(0);
      expect(h.cmdqErrActive()).toBe(false);
    });
  }
});

describe('illegal command with real workers', () => {
  const file = illegalFile;

  it('1 CPU: the CMD_SYNC poll times out, the issuer finds the error in GERROR itself, skip_err recovers and the SYNC completes', async () => {
    // Platform time runs 10x faster, so the 1 s CMD_SYNC timeout takes 100 ms of host time.
    await withSystem({ cpus: 1, timeScale: 10 }, async (s) => {
      await s.sys.probe();
      const before = { ste: s.exec('CFGI_STE'), asid: s.exec('TLBI_NH_ASID'), sync: s.exec('SYNC'), ill: s.stat(STAT.CERROR + CERROR.ILL) };
      // One submission holding the commands and the CMD_SYNC (as Linux's batch submit): CPU 0 keeps
      // interrupts off from before the illegal command reaches the SMMU until its poll gives up; then it
      // looks at GERROR itself, has the command skipped, and polls its CMD_SYNC again.
      const prod0 = s.reg('CMDQ_PROD');
      const t0 = s.sys.clock.now();
      const ret = await s.sys.cpu(0).op('issueBatch', { words: file(), sync: true });
      expect(ret).toBe(0);
      const badSlot = prod0 + 2;
      // Recovered and drained by the time the issuer returned.
      expect(s.reg('GERROR')).toBe(s.reg('GERRORN'));
      expect(s.reg('CMDQ_CONS') & 0xfffff).toBe(s.reg('CMDQ_PROD'));
      expect(s.exec('CFGI_STE')).toBe(before.ste + 2);
      expect(s.exec('TLBI_NH_ASID')).toBe(before.asid + 2);
      expect(s.exec('SYNC')).toBe(before.sync + 2); // the batch's CMD_SYNC and skip_err's replacement
      expect(s.stat(STAT.CERROR + CERROR.ILL)).toBe(before.ill + 1);
      const entries = (await s.log()).filter((e) => e.cpu === 0);
      const log = entries.map((e) => e.msg.replace('arm-smmu-v3 9050000.smmuv3: ', ''));
      const err = log.findIndex((l) => l === `CMDQ error (cons ${hex((CERROR.ILL << 24) | badSlot)}): Illegal command`);
      expect(err).toBeGreaterThanOrEqual(0);
      // Handled only after the issuer's full 1 s poll timeout; no CMD_SYNC timed out.
      expect(entries[err]!.t - t0).toBeGreaterThanOrEqual(TIMEOUT.SMMU_POLL);
      expect(log.some((l) => l.startsWith('CMD_SYNC timeout'))).toBe(false);
      expect(log.slice(err + 1, err + 4)).toEqual(['skipping command in error state:', ...BAD_DUMP]);
      expect((await s.driverStats(0)).cmdqErrors).toEqual([{ cons: badSlot, code: CERROR.ILL }]);
      // The queue works again.
      const w = await s.workload(0, { batch: 8, iterations: 3 });
      expect(w.syncTimeouts).toBe(0);
      expect(s.exec('TLBI_NH_VA')).toBe(24);
    });
  });

  it('2 CPUs: CPU 1 takes the GERROR interrupt, so CPU 0 sees its CMD_SYNC complete in time; then a transient fetch abort', async () => {
    await withSystem({ cpus: 2, timeScale: 1 }, async (s) => {
      await s.sys.probe({ irqCpu: 1 });
      await illegalHandledOnCpu1(s);
      // A transient fetch abort while CPU 0 runs a workload: retried, nothing lost or repeated.
      await fetchAbortsRetried(s);
    });
  });
});
