// The driver's two CMD_SYNC completion modes (Linux arm_smmu_cmdq_poll_until_sync): MSI-poll, where the
// SYNC carries CS=SIG_IRQ with its own slot as MSIAddress and the SMMU's MSI write of 0 completes it
// (IDR0.MSI and a coherent SMMU), and CONS-poll, where the SYNC carries CS=SIG_SEV and the CPU polls
// CMDQ_CONS (waiting in WFE when IDR0.SEV; the SEV is SIG_NONE on an SMMU without it).

import { syncModes } from './fixtures/cmdq-state.ts';
import { describe, expect, it } from 'vitest';
import { STAT } from '../src/machine/layout.ts';
import { PA, VECTOR } from '../src/arch/platform.ts';
import { CS, F, OP } from '../src/arch/smmu/commands.ts';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { GERROR, OFF } from '../src/arch/smmu/regs.ts';
import type { SmmuDriverOptions } from '../src/protocol/ops/smmu.ts';
import { cmd, lockstep, manualQueue, page, probed, raw } from './helpers/lockstep.ts';
import { withSystem } from './helpers/system.ts';

type Mode = 'msi' | 'cons-sev' | 'cons';

const MODES: [string, SmmuFeatures, SmmuDriverOptions, Mode][] = [
  ['default (MSI + COHACC): MSI-poll', DEFAULT_FEATURES, {}, 'msi'],
  ['default with disable_msipolling: CONS-poll with SEV', DEFAULT_FEATURES, { disableMsiPolling: true }, 'cons-sev'],
  ['no-cohacc (MSI, not coherent): CONS-poll with SEV', PROFILES['no-cohacc']!, {}, 'cons-sev'],
  ['default, firmware says not coherent: CONS-poll with SEV', DEFAULT_FEATURES, { coherent: false }, 'cons-sev'],
  ['poll-only (no MSI, no SEV): CONS-poll, the SEV acts as SIG_NONE', PROFILES['poll-only']!, {}, 'cons'],
  ['qemu-like (no MSI, no SEV): CONS-poll', PROFILES['qemu-like']!, {}, 'cons'],
];

describe('CMD_SYNC completion (lockstep)', () => {
  for (const [what, f, opts, mode] of MODES) {
    it(what, () => {
      const h = probed(f, opts);
      expect(h.dev.shared.cmdq.msiPoll).toBe(mode === 'msi');
      const msi0 = h.stat(STAT.MSI_WRITES);
      const sev0 = h.sev();
      const sync0 = h.exec('SYNC');
      for (let i = 1; i <= 5; i++) {
        const r = h.dev.cmdq.issue(cmd({ op: 'CFGI_STE', sid: i, leaf: true }), 1, true);
        expect(r.ret).toBe(0);
        const slotPa = h.dev.shared.cmdq.basePa + (r.syncProd & ((1 << h.dev.shared.cmdq.shift) - 1)) * 16;
        const slot = Uint32Array.from({ length: 4 }, (_, k) => h.platform.mem.read32(slotPa + 4 * k));
        if (mode === 'msi') {
          // The SMMU wrote MSIData (0) to MSIAddress, which is the SYNC's own slot.
          expect(slot[0]).toBe(0);
          expect(F.MSIADDR.read(slot) * 4).toBe(slotPa);
          expect(F.MSIDATA.read(slot)).toBe(0);
        } else {
          expect(slot[0]! & 0xff).toBe(OP.SYNC);
          expect(F.CS.read(slot)).toBe(CS.SIG_SEV);
          expect(F.MSIADDR.read(slot)).toBe(0);
        }
        expect(h.exec('SYNC')).toBe(sync0 + i);
        expect(h.stat(STAT.MSI_WRITES)).toBe(msi0 + (mode === 'msi' ? i : 0));
        expect(h.sev()).toBe(sev0 + (mode === 'cons-sev' ? i : 0));
        expect(h.consRd()).toBe((r.syncProd + 1) & ((2 << h.dev.shared.cmdq.shift) - 1));
      }
      expect(h.log().filter((l) => l.includes('timeout'))).toEqual([]);
      if (opts.coherent === false) expect(h.log()).toContain('arm-smmu-v3 9050000.smmuv3: IDR0.COHACC overridden by FW configuration (false)');
    });
  }
});

describe('CMD_SYNC completion with real workers', () => {
  for (const [what, f, opts, mode] of [MODES[0]!, MODES[1]!, MODES[4]!]) {
    it(`2 CPUs, ${what}`, async () => {
      await withSystem({ cpus: 2, features: f }, async (s) => {
        await syncModes(s, await s.sys.probe(opts), f, mode);
      });
    });
  }
});

/** A CMD_SYNC with CS=SIG_IRQ that asks for `data` to be written to the 56-bit address `addr` (4.7.3). */
function syncMsi(addr: bigint, data: number): Uint32Array {
  const w = raw(OP.SYNC, [[F.CS, CS.SIG_IRQ], [F.MSIDATA, data]]);
  F.MSIADDR.write64(w, 0, addr >> 2n);
  return w;
}

describe('CMD_SYNC MSIAddress beyond the OAS (hardware alone, lockstep)', () => {
  // 3.4.3: an MSI write the SMMU originates is truncated to the OAS (48 bits here), so only the address
  // bits below it choose where it lands. MSIAddress[55] lies beyond 2^53 (a number's exact range).
  const HIGH: [string, bigint][] = [
    ['bit 55 (the top MSIAddress bit)', 1n << 55n],
    ['bits 54:48', 0x7fn << 48n],
    ['bits 55:48', 0xffn << 48n],
  ];
  for (const [what, high] of HIGH) {
    it(`${what} set above a DRAM address: the MSI is written to the truncated address, no abort`, () => {
      expect(DEFAULT_FEATURES.oasBits).toBe(48);
      const h = lockstep(DEFAULT_FEATURES);
      const q = manualQueue(h);
      const target = Number(page(h)) + 0x40;
      h.platform.mem.write32(target, 0xffffffff);
      const msi0 = h.stat(STAT.MSI_WRITES);
      q.push(syncMsi(high | BigInt(target), 0x1234_5678));
      expect(h.exec('SYNC')).toBe(1);
      expect(h.consRd()).toBe(1);
      expect(h.cmdqErrActive()).toBe(false);
      expect(h.stat(STAT.MSI_WRITES)).toBe(msi0 + 1);
      expect(h.platform.mem.read32(target)).toBe(0x1234_5678);
      expect(h.io.read32(OFF.GERROR) & GERROR.MSI_CMDQ_ABT_ERR.bits).toBe(0);
    });
  }

  it('only bit 55 set: still an MSI (MSIAddress is not 0), truncated to PA 0, which aborts with GERROR.MSI_CMDQ_ABT_ERR', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const q = manualQueue(h);
    const msi0 = h.stat(STAT.MSI_WRITES);
    q.push(syncMsi(1n << 55n, 1));
    expect(h.exec('SYNC')).toBe(1);
    expect(h.consRd()).toBe(1);
    expect(h.stat(STAT.MSI_WRITES)).toBe(msi0 + 1);
    expect(h.io.read32(OFF.GERROR) & GERROR.MSI_CMDQ_ABT_ERR.bits).toBe(GERROR.MSI_CMDQ_ABT_ERR.bits);
    expect(h.trace()).toContain('smmuv3_cmd_sync_msi_abort pa=0x0');
  });
});

describe('CMD_SYNC CS=SIG_IRQ: the wired output, and the MSI beside it (hardware alone, lockstep)', () => {
  // 4.7.3: on an implementation with wired interrupts, SIG_IRQ asserts the CMD_SYNC wire regardless of
  // MSIAddress; with MSIs and a non-zero MSIAddress the MSI is written as well (3.18.2: both, not one
  // instead of the other).
  const MSI_VEC = VECTOR.MSI_BASE + 9;
  function rig(f: SmmuFeatures) {
    const h = lockstep(f);
    const taken: number[] = [];
    h.platform.requestIrq(VECTOR.SMMU_CMD_SYNC, 'test-sync-wire', (v) => taken.push(v));
    h.platform.requestIrq(MSI_VEC, 'test-sync-msi', (v) => taken.push(v));
    const q = manualQueue(h);
    const push = (c: Uint32Array) => {
      q.push(c);
      h.platform.irqCheckpoint();
    };
    return { h, taken, push };
  }

  it('MSIAddress = 0: the wire fires and no MSI is written', () => {
    const { h, taken, push } = rig(DEFAULT_FEATURES);
    push(syncMsi(0n, MSI_VEC));
    expect(h.exec('SYNC')).toBe(1);
    expect(taken).toEqual([VECTOR.SMMU_CMD_SYNC]);
    expect(h.stat(STAT.MSI_WRITES)).toBe(0);
  });

  it('MSIAddress = the doorbell: the wire and the MSI both fire, once each per SYNC', () => {
    const { h, taken, push } = rig(DEFAULT_FEATURES);
    push(syncMsi(BigInt(PA.MSI_DOORBELL), MSI_VEC));
    push(syncMsi(BigInt(PA.MSI_DOORBELL), MSI_VEC));
    expect(h.exec('SYNC')).toBe(2);
    expect(taken).toEqual([VECTOR.SMMU_CMD_SYNC, MSI_VEC, VECTOR.SMMU_CMD_SYNC, MSI_VEC]);
    expect(h.stat(STAT.MSI_WRITES)).toBe(2);
  });

  it('no MSIs (IDR0.MSI=0): MSIAddress is ignored, the wire still fires', () => {
    const { h, taken, push } = rig(PROFILES['poll-only']!);
    push(syncMsi(BigInt(PA.MSI_DOORBELL), MSI_VEC));
    expect(taken).toEqual([VECTOR.SMMU_CMD_SYNC]);
    expect(h.stat(STAT.MSI_WRITES)).toBe(0);
  });

  it('SIG_NONE and SIG_SEV do not touch the wire', () => {
    const { h, taken, push } = rig(DEFAULT_FEATURES);
    push(raw(OP.SYNC, [[F.CS, CS.SIG_NONE]]));
    push(raw(OP.SYNC, [[F.CS, CS.SIG_SEV]]));
    expect(h.exec('SYNC')).toBe(2);
    expect(h.sev()).toBe(1);
    expect(taken).toEqual([]);
  });
});
