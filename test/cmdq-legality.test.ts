// Command decode and legality per feature set (IHI 0070 4.1.3, 4.1.5, chapter 4, 7.1), in lockstep:
// every opcode 0..255 on several profiles, then operand-level rules. Each command is issued through the
// driver's command queue (no CMD_SYNC) with interrupts off, so the hardware's response can be inspected
// before the driver's GERROR handler (skip_err) recovers from it; the hardware's per-opcode executed
// counts and CERROR counts are checked for every command.

import { describe, expect, it } from 'vitest';
import type { Field } from '../src/arch/bits.ts';
import { STAT } from '../src/machine/layout.ts';
import { ATC_INV_SIZE_ALL, CS, F, OP } from '../src/arch/smmu/commands.ts';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { CERROR, CR0, OFF } from '../src/arch/smmu/regs.ts';
import { ACK_NS, probed, raw, withBit } from './helpers/lockstep.ts';

type Probed = ReturnType<typeof probed>;

const SYNC = OP.SYNC;

/**
 * Issues one command and checks the hardware's response is consistent: either executed (CONS moves past
 * it, its opcode's count +1, no error) or CERROR_ILL (CONS stays on it with ERR=ILL, GERROR.CMDQ_ERR
 * active, not executed) and then recovered by the driver's skip_err once interrupts are on again.
 */
function submit(h: Probed, words: Uint32Array): 'ok' | 'ill' {
  const op = words[0]! & 0xff;
  const before = { exec: h.exec(op), sync: h.exec('SYNC'), ill: h.cerror(CERROR.ILL), total: h.execTotal() };
  const flags = h.platform.localIrqSave();
  const { start } = h.dev.cmdq.issue(words, 1, false);
  const next = (start + 1) & ((2 << h.dev.shared.cmdq.shift) - 1);
  const active = h.cmdqErrActive();
  const rd = h.consRd();
  const err = h.consErr();
  const exec = h.exec(op);
  const ill = h.cerror(CERROR.ILL);
  h.platform.localIrqRestore(flags); // the GERROR interrupt, if any, is taken here
  if (!active) {
    expect({ rd, exec, ill }).toEqual({ rd: next, exec: before.exec + 1, ill: before.ill });
    expect(h.execTotal()).toBe(before.total + 1);
    return 'ok';
  }
  expect({ rd, err, exec, ill }).toEqual({ rd: start, err: CERROR.ILL, exec: before.exec, ill: before.ill + 1 });
  // skip_err replaced the command with a CMD_SYNC, which then executed.
  expect(h.cmdqErrActive()).toBe(false);
  expect(h.consRd()).toBe(next);
  expect(h.exec('SYNC')).toBe(before.sync + 1);
  expect(h.exec(op)).toBe(before.exec + (op === SYNC ? 1 : 0));
  expect(h.execTotal()).toBe(before.total + 1);
  return 'ill';
}

/** Opcodes legal with all operands zero, from the spec's per-command rules (not from src/arch/smmu/commands.ts). */
function expectedLegal(f: SmmuFeatures): number[] {
  const ops = [0x01, 0x02, 0x03, 0x04, 0x30, 0x46]; // PREFETCH_*, CFGI_STE(_RANGE), TLBI_NSNH_ALL, SYNC
  if (f.stage1) ops.push(0x05, 0x06, 0x10, 0x11, 0x12, 0x13); // CFGI_CD(_ALL), TLBI_NH_*
  if (f.hyp) ops.push(0x20, 0x21, 0x22, 0x23); // TLBI_EL2_*
  if (f.stage2) ops.push(0x28, 0x2a); // TLBI_S12_VMALL, TLBI_S2_IPA
  if (f.ats) ops.push(0x40); // ATC_INV
  if (f.pri) ops.push(0x41); // PRI_RESP
  // Never legal here: reserved and IMPLEMENTATION DEFINED encodings, CFGI_VMS_PIDM (no MPAM), EL3 and
  // Secure-only invalidations (Non-secure queue), RESUME/STALL_TERM (no stall model), DPTI_* (no DPT).
  return ops.sort((a, b) => a - b);
}

const VARIANTS: Record<string, SmmuFeatures> = {
  default: DEFAULT_FEATURES,
  'qemu-like': PROFILES['qemu-like']!,
  'v3.1-minimal': PROFILES['v3.1-minimal']!,
  'no-ats': { ...DEFAULT_FEATURES, ats: false },
  'no-hyp': { ...DEFAULT_FEATURES, hyp: false },
  'stage2-only': { ...DEFAULT_FEATURES, stage1: false, hyp: false },
  pri: { ...DEFAULT_FEATURES, pri: true, priqLog2: 8 },
};

describe('every opcode 0..255 with zero operands', () => {
  for (const [name, f] of Object.entries(VARIANTS)) {
    it(`${name}: executes exactly the opcodes the feature set allows, CERROR_ILL for the rest`, () => {
      const h = probed(f);
      const illBefore = h.cerror(CERROR.ILL);
      const legal: number[] = [];
      for (let op = 0; op < 256; op++) if (submit(h, raw(op)) === 'ok') legal.push(op);
      expect(legal.map((o) => o.toString(16))).toEqual(expectedLegal(f).map((o) => o.toString(16)));
      expect(h.cerror(CERROR.ILL) - illBefore).toBe(256 - legal.length);
      expect(h.cerror(CERROR.ABT)).toBe(0);
      // The driver logged each error the way Linux does.
      const log = h.log();
      expect(log.filter((l) => /CMDQ error \(cons 0x[0-9a-f]{8}\): Illegal command$/.test(l))).toHaveLength(256 - legal.length);
      expect(log.filter((l) => l.endsWith('skipping command in error state:'))).toHaveLength(256 - legal.length);
    });
  }
});

type Case = [what: string, features: SmmuFeatures, command: Uint32Array, expected: 'ok' | 'ill'];

const D = DEFAULT_FEATURES;
const M = PROFILES['v3.1-minimal']!;
const Q = PROFILES['qemu-like']!;
const P = VARIANTS.pri!;
const NARROW = { ...DEFAULT_FEATURES, asid16: false, vmid16: false };

const nhVa = (fields: [Field, number][]) => raw(OP.TLBI_NH_VA, [[F.ASID, 1], [F.VA, 0x1234], [F.LEAF, 1], ...fields]);

const CASES: Case[] = [
  // TLBI range and level hint (4.4.1.1)
  ['NH_VA TG=4K NUM=3 SCALE=2 (RIL)', D, nhVa([[F.TG, 1], [F.NUM, 3], [F.SCALE, 2]]), 'ok'],
  ['NH_VA TG=4K TTL=3, NUM=SCALE=0 (RIL)', D, nhVa([[F.TG, 1], [F.TTL, 3]]), 'ok'],
  ['NH_VA TG=4K with NUM=SCALE=TTL=0 is the reserved combination', D, nhVa([[F.TG, 1]]), 'ill'],
  ['S2_IPA TG=64K with NUM=SCALE=TTL=0 is reserved', D, raw(OP.TLBI_S2_IPA, [[F.TG, 3]]), 'ill'],
  ['S2_IPA TG=16K NUM=1 (RIL)', D, raw(OP.TLBI_S2_IPA, [[F.TG, 2], [F.NUM, 1], [F.IPA, 0x80]]), 'ok'],
  ['EL2_VA TG=4K SCALE=1 (RIL)', D, raw(OP.TLBI_EL2_VA, [[F.TG, 1], [F.SCALE, 1]]), 'ok'],
  ['NH_VAA TG=4K NUM=31 SCALE=31 (RIL)', D, raw(OP.TLBI_NH_VAA, [[F.TG, 1], [F.NUM, 31], [F.SCALE, 31]]), 'ok'],
  ['NH_VA TG=0 with NUM set (range fields RES0 without a granule)', D, nhVa([[F.NUM, 1]]), 'ill'],
  ['NH_VA TG=0 with TTL set', D, nhVa([[F.TTL, 2]]), 'ill'],
  ['NH_VA TTL128=1 (no 128-bit descriptors)', D, nhVa([[F.TG, 1], [F.TTL, 3], [F.TTL128, 1]]), 'ill'],
  ['NH_VA SCALE bit 25 (RES0 without DS)', D, withBit(nhVa([[F.TG, 1], [F.NUM, 1]]), 25), 'ill'],
  ['NH_VA without RIL, no range fields', M, nhVa([]), 'ok'],
  ['NH_VA NUM=1 without RIL', M, nhVa([[F.NUM, 1]]), 'ill'],
  ['NH_VA SCALE=1 without RIL', M, nhVa([[F.SCALE, 1]]), 'ill'],
  ['NH_VA TG=4K TTL=3 without RIL', M, nhVa([[F.TG, 1], [F.TTL, 3]]), 'ill'],
  ['NH_VAA SCALE=1 without RIL', M, raw(OP.TLBI_NH_VAA, [[F.SCALE, 1]]), 'ill'],
  // ATC_INV (4.5.1)
  ['ATC_INV Size=52 (everything)', D, raw(OP.ATC_INV, [[F.ATC_SIZE, ATC_INV_SIZE_ALL]]), 'ok'],
  ['ATC_INV Size=53', D, raw(OP.ATC_INV, [[F.ATC_SIZE, 53]]), 'ill'],
  ['ATC_INV Size=63', D, raw(OP.ATC_INV, [[F.ATC_SIZE, 63]]), 'ill'],
  ['ATC_INV SSV=1 Global=1 SubstreamID=5', D, raw(OP.ATC_INV, [[F.SSV, 1], [F.GLOBAL, 1], [F.SSID, 5], [F.SID, 9], [F.VA, 0x40]]), 'ok'],
  ['ATC_INV without ATS', VARIANTS['no-ats']!, raw(OP.ATC_INV), 'ill'],
  // PRI_RESP (4.5.2)
  ['PRI_RESP Resp=ResponseFailure', P, raw(OP.PRI_RESP, [[F.PRI_RESP, 0], [F.SID, 3], [F.PRG_INDEX, 7]]), 'ok'],
  ['PRI_RESP Resp=InvalidRequest', P, raw(OP.PRI_RESP, [[F.PRI_RESP, 1]]), 'ok'],
  ['PRI_RESP Resp=Success', P, raw(OP.PRI_RESP, [[F.PRI_RESP, 2], [F.SSV, 1], [F.SSID, 4]]), 'ok'],
  ['PRI_RESP Resp=0b11 is reserved', P, raw(OP.PRI_RESP, [[F.PRI_RESP, 3]]), 'ill'],
  ['PRI_RESP without PRI', D, raw(OP.PRI_RESP, [[F.PRI_RESP, 2]]), 'ill'],
  // CMD_SYNC (4.7.3)
  ['SYNC CS=0b11 is reserved', D, raw(SYNC, [[F.CS, 3]]), 'ill'],
  ['SYNC CS=SIG_SEV', D, raw(SYNC, [[F.CS, CS.SIG_SEV]]), 'ok'],
  ['SYNC CS=SIG_IRQ with MSIAddress=0', D, raw(SYNC, [[F.CS, CS.SIG_IRQ], [F.MSIDATA, 5]]), 'ok'],
  ['SYNC CS=SIG_SEV without SEV', M, raw(SYNC, [[F.CS, CS.SIG_SEV]]), 'ok'],
  ['SYNC CS=0b11 without SEV or MSI', Q, raw(SYNC, [[F.CS, 3]]), 'ill'],
  ['SYNC with MSIAddress bit [1:0] set (RES0)', D, withBit(raw(SYNC, [[F.CS, CS.SIG_IRQ]]), 64), 'ill'],
  ['SYNC with bit 120 set (above MSIAddress[55:2])', D, withBit(raw(SYNC), 120), 'ill'],
  // RES0 bits (4.1.5: this model reports them as CERROR_ILL)
  ['NSNH_ALL with bit 8 set', D, withBit(raw(OP.TLBI_NSNH_ALL), 8), 'ill'],
  ['NSNH_ALL with bit 64 set', D, withBit(raw(OP.TLBI_NSNH_ALL), 64), 'ill'],
  ['NSNH_ALL with bit 127 set', D, withBit(raw(OP.TLBI_NSNH_ALL), 127), 'ill'],
  ['CFGI_STE Leaf=1', D, raw(OP.CFGI_STE, [[F.LEAF, 1], [F.SID, 0xffff]]), 'ok'],
  ['CFGI_STE with bit 65 set', D, withBit(raw(OP.CFGI_STE, [[F.LEAF, 1]]), 65), 'ill'],
  ['CFGI_STE with SubstreamID bits set (not a field of CFGI_STE)', D, raw(OP.CFGI_STE, [[F.SSID, 1]]), 'ill'],
  ['CFGI_ALL (CFGI_STE_RANGE Range=31)', D, raw(OP.CFGI_STE_RANGE, [[F.RANGE, 31]]), 'ok'],
  ['CFGI_STE_RANGE with bit 69 set', D, withBit(raw(OP.CFGI_STE_RANGE, [[F.RANGE, 4]]), 69), 'ill'],
  ['TLBI_NH_ASID with ASID and VMID', D, raw(OP.TLBI_NH_ASID, [[F.ASID, 0xffff], [F.VMID, 0xffff]]), 'ok'],
  ['TLBI_NH_ASID with bit 8 set', D, withBit(raw(OP.TLBI_NH_ASID), 8), 'ill'],
  ['PREFETCH_CONFIG SSV=1 SubstreamID=3', D, raw(OP.PREFETCH_CONFIG, [[F.SSV, 1], [F.SSID, 3], [F.SID, 7]]), 'ok'],
  ['PREFETCH_ADDR Size=5 with an address', D, raw(OP.PREFETCH_ADDR, [[F.PF_SIZE, 5], [F.VA, 0x777]]), 'ok'],
  // SSec=1 on the Non-secure queue (4.1.6)
  ['CFGI_STE SSec=1', D, raw(OP.CFGI_STE, [[F.SSEC, 1]]), 'ill'],
  ['CFGI_STE_RANGE SSec=1', D, raw(OP.CFGI_STE_RANGE, [[F.SSEC, 1], [F.RANGE, 31]]), 'ill'],
  ['CFGI_CD SSec=1', D, raw(OP.CFGI_CD, [[F.SSEC, 1]]), 'ill'],
  ['CFGI_CD_ALL SSec=1', D, raw(OP.CFGI_CD_ALL, [[F.SSEC, 1]]), 'ill'],
  ['PREFETCH_CONFIG SSec=1', D, raw(OP.PREFETCH_CONFIG, [[F.SSEC, 1]]), 'ill'],
  // 8-bit ASID/VMID, and VMID without stage 2 (4.4, 4.4.2)
  ['NH_ASID ASID=0xff with 8-bit ASIDs', NARROW, raw(OP.TLBI_NH_ASID, [[F.ASID, 0xff], [F.VMID, 0xff]]), 'ok'],
  ['NH_ASID ASID=0x100 with 8-bit ASIDs', NARROW, raw(OP.TLBI_NH_ASID, [[F.ASID, 0x100]]), 'ill'],
  ['NH_ASID VMID=0x100 with 8-bit VMIDs', NARROW, raw(OP.TLBI_NH_ASID, [[F.VMID, 0x100]]), 'ill'],
  ['NH_ALL VMID=1 without stage 2', Q, raw(OP.TLBI_NH_ALL, [[F.VMID, 1]]), 'ill'],
  ['NH_ALL VMID=0 without stage 2', Q, raw(OP.TLBI_NH_ALL), 'ok'],
];

describe('operand legality', () => {
  // One probed system per feature set, shared by its cases (each case checks its own counts).
  const systems = new Map<SmmuFeatures, Probed>();
  const sys = (f: SmmuFeatures) => {
    if (!systems.has(f)) systems.set(f, probed(f));
    return systems.get(f)!;
  };
  for (const [what, f, command, expected] of CASES) {
    it(`${what}: ${expected === 'ok' ? 'executed' : 'CERROR_ILL'}`, () => {
      expect(submit(sys(f), command)).toBe(expected);
    });
  }
});

describe('signals and context', () => {
  it('CMD_SYNC CS=SIG_SEV sends an event with IDR0.SEV, and behaves as SIG_NONE without it', () => {
    const d = probed(D);
    const s0 = d.sev();
    expect(submit(d, raw(SYNC, [[F.CS, CS.SIG_SEV]]))).toBe('ok');
    expect(d.sev()).toBe(s0 + 1);
    const m = probed(M);
    const s1 = m.sev();
    const msi = m.stat(STAT.MSI_WRITES);
    expect(submit(m, raw(SYNC, [[F.CS, CS.SIG_SEV]]))).toBe('ok');
    expect(m.sev()).toBe(s1);
    expect(m.stat(STAT.MSI_WRITES)).toBe(msi);
  });

  it('CMD_SYNC CS=SIG_IRQ writes MSIData to MSIAddress with IDR0.MSI, and ignores both without it', () => {
    for (const [f, writes] of [
      [D, true],
      [Q, false],
    ] as const) {
      const h = probed(f);
      const pa = h.platform.pages.alloc(1);
      h.platform.mem.write32(pa + 8, 0xffffffff);
      const msi = h.stat(STAT.MSI_WRITES);
      expect(submit(h, raw(SYNC, [[F.CS, CS.SIG_IRQ], [F.MSIADDR, (pa + 8) / 4], [F.MSIDATA, 0x1234]]))).toBe('ok');
      expect(h.platform.mem.read32(pa + 8)).toBe(writes ? 0x1234 : 0xffffffff);
      expect(h.stat(STAT.MSI_WRITES)).toBe(msi + (writes ? 1 : 0));
    }
  });

  it('ATC_INV is consumed (ignored) while SMMUEN=0, but an illegal one is still CERROR_ILL', () => {
    const h = probed(D);
    const enables = h.io.read32(OFF.CR0ACK);
    expect(enables & CR0.SMMUEN.bits).toBe(CR0.SMMUEN.bits);
    h.io.write32(OFF.CR0, enables & ~CR0.SMMUEN.bits);
    h.platform.delay(ACK_NS);
    expect(h.io.read32(OFF.CR0ACK) & CR0.SMMUEN.bits).toBe(0);
    expect(submit(h, raw(OP.ATC_INV, [[F.ATC_SIZE, ATC_INV_SIZE_ALL], [F.SID, 1]]))).toBe('ok');
    expect(submit(h, raw(OP.ATC_INV, [[F.ATC_SIZE, 53]]))).toBe('ill');
    const n = probed(VARIANTS['no-ats']!);
    n.io.write32(OFF.CR0, n.io.read32(OFF.CR0ACK) & ~CR0.SMMUEN.bits);
    n.platform.delay(ACK_NS);
    expect(submit(n, raw(OP.ATC_INV))).toBe('ill');
  });
});
