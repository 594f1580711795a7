// SMMUv3 register semantics through the generic write path (the CPU's ioremap -> Machine -> RegisterFile),
// in lockstep: reset values, RO and RES0 bits, guarded registers (6.3, v3.2 "ignored" rule), the
// CR0/IRQ_CTRL request/acknowledge handshakes, the GBPA Update protocol, GERROR/GERRORN toggle
// semantics and interrupts, 64-bit registers written in halves, and 8/16-bit accesses.

import { describe, expect, it } from 'vitest';
import { STAT } from '../src/machine/layout.ts';
import { PA, SMMU_BYTES, VECTOR } from '../src/arch/platform.ts';
import { CS, F, OP } from '../src/arch/smmu/commands.ts';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { smmuIdRegisters } from '../src/arch/smmu/implementation.ts';
import { AIDR, CERROR, CR0, GBPA, GERROR, IDR0, IDR1, IDR3, IDR5, IRQ_CTRL, OFF } from '../src/arch/smmu/regs.ts';
import { ACK_NS, lockstep, manualQueue, page, queueAt, raw, type Lockstep } from './helpers/lockstep.ts';

const ID_REGS = ['IDR0', 'IDR1', 'IDR2', 'IDR3', 'IDR4', 'IDR5', 'IIDR', 'AIDR'] as const;

const EXTRA_PROFILES: Record<string, SmmuFeatures> = {
  pri: { ...DEFAULT_FEATURES, pri: true, priqLog2: 8 },
  'gbpa-abort': { ...DEFAULT_FEATURES, gbpaAbortAtReset: true },
  'stage2-only': { ...DEFAULT_FEATURES, stage1: false, hyp: false },
  btm: { ...DEFAULT_FEATURES, btm: true },
};
const ALL_PROFILES = { ...PROFILES, ...EXTRA_PROFILES };

/** Waits (virtual time) for an Update to be acknowledged. */
const settle = (h: Lockstep) => h.platform.delay(ACK_NS);

describe('reset values', () => {
  for (const [name, f] of Object.entries(ALL_PROFILES)) {
    it(`${name}: ID registers advertise the feature set, everything else resets to 0 (GBPA to its ABORT choice)`, () => {
      const h = lockstep(f);
      const ids = smmuIdRegisters(f);
      for (const r of ID_REGS) expect(h.io.read32(OFF[r]), r).toBe(ids[r] >>> 0);
      expect(h.io.read32(OFF.GBPA)).toBe(f.gbpaAbortAtReset ? GBPA.ABORT.bits : 0);
      const idOffsets = new Set<number>(ID_REGS.map((r) => OFF[r]));
      const nonZero: string[] = [];
      for (let off = 0; off < SMMU_BYTES; off += 4) {
        if (idOffsets.has(off) || off === OFF.GBPA) continue;
        const v = h.io.read32(off);
        if (v !== 0) nonZero.push(`+0x${off.toString(16)}=0x${v.toString(16)}`);
      }
      expect(nonZero).toEqual([]);
    });
  }

  it('ID register fields match each profile (checked field by field, independently of smmuIdRegisters)', () => {
    const idr = (f: SmmuFeatures) => {
      const h = lockstep(f);
      const r = (o: number) => h.io.read32(o);
      return { idr0: r(OFF.IDR0), idr1: r(OFF.IDR1), idr3: r(OFF.IDR3), idr5: r(OFF.IDR5), aidr: r(OFF.AIDR), iidr: r(OFF.IIDR) };
    };
    const d = idr(PROFILES.default!);
    for (const fl of [IDR0.S1P, IDR0.S2P, IDR0.HYP, IDR0.ATS, IDR0.MSI, IDR0.SEV, IDR0.COHACC, IDR0.ST_LEVEL, IDR0.CD2L]) {
      expect(fl.get(d.idr0), `default IDR0.${fl.name}`).toBe(1);
    }
    expect(IDR0.PRI.get(d.idr0)).toBe(0);
    expect(IDR0.TTF.get(d.idr0)).toBe(2); // AArch64
    expect(IDR0.TTENDIAN.get(d.idr0)).toBe(2); // little-endian
    expect(IDR0.STALL_MODEL.get(d.idr0)).toBe(1); // no stalls
    expect(IDR1.SIDSIZE.get(d.idr1)).toBe(16);
    // 20-bit SubstreamIDs, the endpoints' PASID width (Arm BSA PCI_PAS_1 fails anything less).
    expect(IDR1.SSIDSIZE.get(d.idr1)).toBe(20);
    expect(IDR1.CMDQS.get(d.idr1)).toBe(19);
    expect(IDR3.RIL.get(d.idr3)).toBe(1);
    expect(IDR5.OAS.get(d.idr5)).toBe(5); // 48 bits
    expect(AIDR.ArchMinorRev.get(d.aidr)).toBe(2); // SMMUv3.2
    expect(d.iidr & 0xfff).toBe(0x43b); // Arm's JEP106 code

    const q = idr(PROFILES['qemu-like']!);
    for (const fl of [IDR0.S2P, IDR0.HYP, IDR0.ATS, IDR0.MSI, IDR0.SEV, IDR0.VMID16]) expect(fl.get(q.idr0), `qemu-like IDR0.${fl.name}`).toBe(0);
    expect(IDR0.S1P.get(q.idr0)).toBe(1);

    const m = idr(PROFILES['v3.1-minimal']!);
    expect(IDR3.RIL.get(m.idr3)).toBe(0);
    expect(AIDR.ArchMinorRev.get(m.aidr)).toBe(1); // no RIL: reported as SMMUv3.1
    expect(IDR1.CMDQS.get(m.idr1)).toBe(8);

    const l = idr(PROFILES.linear!);
    expect(IDR0.ST_LEVEL.get(l.idr0)).toBe(0);
    expect(IDR1.SIDSIZE.get(l.idr1)).toBe(6);

    const s2 = idr(EXTRA_PROFILES['stage2-only']!);
    expect(IDR0.S1P.get(s2.idr0)).toBe(0);
    expect(IDR0.CD2L.get(s2.idr0)).toBe(0);
    expect(IDR1.SSIDSIZE.get(s2.idr1)).toBe(0);
  });
});

describe('read-only and RES0 bits', () => {
  it('ignores writes of every size to the ID registers', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const ids = smmuIdRegisters(DEFAULT_FEATURES);
    for (const r of ID_REGS) {
      h.io.write32(OFF[r], 0xffffffff);
      h.io.write32(OFF[r], 0);
      h.io.write16(OFF[r] + 2, 0x1234);
      h.io.write8(OFF[r] + 1, 0x56);
      expect(h.io.read32(OFF[r]), r).toBe(ids[r] >>> 0);
    }
    h.io.write64(OFF.IDR0, 0n);
    expect(h.io.read32(OFF.IDR0)).toBe(ids.IDR0 >>> 0);
    expect(h.io.read32(OFF.IDR1)).toBe(ids.IDR1 >>> 0);
  });

  it('ignores writes to CR0ACK, IRQ_CTRLACK, GERROR, STATUSR and CMDQ_CONS.ERR', () => {
    const h = lockstep(DEFAULT_FEATURES);
    for (const r of ['CR0ACK', 'IRQ_CTRLACK', 'GERROR', 'STATUSR'] as const) {
      h.io.write32(OFF[r], 0xffffffff);
      expect(h.io.read32(OFF[r]), r).toBe(0);
    }
    settle(h);
    expect(h.io.read32(OFF.CR0ACK)).toBe(0);
    expect(h.io.read32(OFF.IRQ_CTRLACK)).toBe(0);
    // GERROR written to 1 does not make an error active.
    expect(h.cmdqErrActive()).toBe(false);
    h.io.write32(OFF.CMDQ_CONS, 0x7f000005);
    expect(h.io.read32(OFF.CMDQ_CONS)).toBe(0x5); // RD stored, ERR is the SMMU's
  });

  it('drops RES0 bits of CR0, CR1, CR2, IRQ_CTRL, GBPA and GERRORN', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write32(OFF.CR0, 0xffffffe0); // only RES0 bits and VMW (absent: IDR0.VMW=0)
    expect(h.io.read32(OFF.CR0)).toBe(0);
    h.io.write32(OFF.CR1, 0xfffff000);
    expect(h.io.read32(OFF.CR1)).toBe(0);
    h.io.write32(OFF.CR1, 0xffffffff);
    expect(h.io.read32(OFF.CR1)).toBe(0xfff);
    h.io.write32(OFF.CR2, 0xffffffff);
    expect(h.io.read32(OFF.CR2)).toBe(0x3); // E2H (HYP) and RECINVSID; PTM needs BTM, REC_CFG_ATS needs ATSRECERR
    h.io.write32(OFF.IRQ_CTRL, 0xfffffffe);
    expect(h.io.read32(OFF.IRQ_CTRL)).toBe(IRQ_CTRL.EVENTQ_IRQEN.bits); // PRIQ_IRQEN is RES0 without PRI
    h.io.write32(OFF.GBPA, 0xffffffff);
    expect(h.io.read32(OFF.GBPA)).toBe(0x801f3f1f); // Update, ABORT, INSTCFG, PRIVCFG, SHCFG, ALLOCCFG, MTCFG, MemAttr
    h.io.write32(OFF.GERRORN, 0xfffffffe);
    expect(h.io.read32(OFF.GERRORN)).toBe(0x1b4); // bits 2, 4, 5, 7, 8 (PRIQ_ABT_ERR and MSI_PRIQ_ABT_ERR need PRI)
  });

  it('keeps feature-dependent fields RES0 when the feature is absent', () => {
    const q = lockstep(PROFILES['qemu-like']!);
    q.io.write32(OFF.CR2, 0xffffffff);
    expect(q.io.read32(OFF.CR2)).toBe(0x2); // no E2H without HYP
    // No MSI: the *_IRQ_CFG registers are RES0 (RAZ/WI).
    q.io.write64(OFF.GERROR_IRQ_CFG0, 0x12345678n);
    q.io.write32(OFF.EVENTQ_IRQ_CFG1, 0x42);
    expect(q.io.read64(OFF.GERROR_IRQ_CFG0)).toBe(0n);
    expect(q.io.read32(OFF.EVENTQ_IRQ_CFG1)).toBe(0);
    // No PRI: PRIQ_BASE and PRIQ_PROD are reserved.
    q.io.write64(OFF.PRIQ_BASE, 0x40001000n);
    q.io.write32(OFF.PRIQ_PROD, 3);
    expect(q.io.read64(OFF.PRIQ_BASE)).toBe(0n);
    expect(q.io.read32(OFF.PRIQ_PROD)).toBe(0);

    const l = lockstep(PROFILES.linear!);
    l.io.write32(OFF.STRTAB_BASE_CFG, 0x10210); // FMT and SPLIT are RES0 with ST_LEVEL=0
    expect(l.io.read32(OFF.STRTAB_BASE_CFG)).toBe(0x10);
    const d = lockstep(DEFAULT_FEATURES);
    d.io.write32(OFF.STRTAB_BASE_CFG, 0xffffffff);
    expect(d.io.read32(OFF.STRTAB_BASE_CFG)).toBe(0x307ff);

    const b = lockstep(EXTRA_PROFILES.btm!);
    b.io.write32(OFF.CR2, 0xffffffff);
    expect(b.io.read32(OFF.CR2)).toBe(0x7); // PTM exists with BTM
  });

  it('drops RES0 bits of 64-bit registers', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write64(OFF.CMDQ_BASE, 0xffffffffffffffffn);
    expect(h.io.read64(OFF.CMDQ_BASE)).toBe(0x40ffffffffffffffn); // RA/WA 62, ADDR [55:5], LOG2SIZE [4:0]
    h.io.write64(OFF.STRTAB_BASE, 0xffffffffffffffffn);
    expect(h.io.read64(OFF.STRTAB_BASE)).toBe(0x40ffffffffffffc0n); // RA 62, ADDR [55:6]
    h.io.write64(OFF.GERROR_IRQ_CFG0, 0xffffffffffffffffn);
    expect(h.io.read64(OFF.GERROR_IRQ_CFG0)).toBe(0x00fffffffffffffcn); // ADDR [55:2]
    h.io.write32(OFF.CMDQ_PROD, 0xffffffff);
    expect(h.io.read32(OFF.CMDQ_PROD)).toBe(0xfffff); // WR [19:0]
  });
});

describe('64-bit registers and narrow accesses', () => {
  it('assembles a 64-bit register written as two 32-bit halves', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write32(OFF.CMDQ_BASE, 0x40123404);
    h.io.write32(OFF.CMDQ_BASE + 4, 0x40000000);
    expect(h.io.read64(OFF.CMDQ_BASE)).toBe(0x4000000040123404n);
    h.io.write32(OFF.CMDQ_BASE + 4, 0x00000001); // the high half alone
    expect(h.io.read64(OFF.CMDQ_BASE)).toBe(0x0000000140123404n);
    h.io.write32(OFF.GERROR_IRQ_CFG0, PA.MSI_DOORBELL);
    h.io.write32(OFF.GERROR_IRQ_CFG0 + 4, 0);
    expect(h.io.read64(OFF.GERROR_IRQ_CFG0)).toBe(BigInt(PA.MSI_DOORBELL));
    expect(h.io.read32(OFF.GERROR_IRQ_CFG0 + 4)).toBe(0);
  });

  it('applies 8- and 16-bit writes to their bytes and reads them back', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write8(OFF.CR1 + 1, 0x0d);
    expect(h.io.read32(OFF.CR1)).toBe(0xd00);
    h.io.write8(OFF.CR1, 0x75);
    expect(h.io.read32(OFF.CR1)).toBe(0xd75);
    expect(h.io.read8(OFF.CR1 + 1)).toBe(0x0d);
    expect(h.io.read16(OFF.CR1)).toBe(0xd75);
    h.io.write32(OFF.GERROR_IRQ_CFG1, 0x11223344);
    h.io.write16(OFF.GERROR_IRQ_CFG1 + 2, 0xbeef);
    expect(h.io.read32(OFF.GERROR_IRQ_CFG1)).toBe(0xbeef3344);
    h.io.write8(OFF.GERROR_IRQ_CFG1 + 1, 0x00);
    expect(h.io.read32(OFF.GERROR_IRQ_CFG1)).toBe(0xbeef0044);
    expect(h.io.read16(OFF.GERROR_IRQ_CFG1 + 2)).toBe(0xbeef);
    // A byte write to CR0 is a request like any other.
    h.io.write8(OFF.CR0, CR0.EVENTQEN.bits);
    settle(h);
    expect(h.io.read32(OFF.CR0ACK)).toBe(CR0.EVENTQEN.bits);
  });
});

describe('CR0 -> CR0ACK and IRQ_CTRL -> IRQ_CTRLACK', () => {
  for (const [req, ack, value] of [
    ['CR0', 'CR0ACK', CR0.EVENTQEN.bits | CR0.SMMUEN.bits],
    ['IRQ_CTRL', 'IRQ_CTRLACK', IRQ_CTRL.GERROR_IRQEN.bits | IRQ_CTRL.EVENTQ_IRQEN.bits],
  ] as const) {
    it(`${req}: the request reads back at once, ${ack} follows only after the latency`, () => {
      const h = lockstep(DEFAULT_FEATURES);
      h.io.write32(OFF[req], value);
      expect(h.io.read32(OFF[req])).toBe(value);
      expect(h.io.read32(OFF[ack])).toBe(0);
      h.platform.delay(ACK_NS - 1);
      expect(h.io.read32(OFF[ack])).toBe(0);
      h.platform.delay(1);
      expect(h.io.read32(OFF[ack])).toBe(value);
      // And back to 0.
      h.io.write32(OFF[req], 0);
      expect(h.io.read32(OFF[ack])).toBe(value);
      settle(h);
      expect(h.io.read32(OFF[ack])).toBe(0);
    });

    it(`${req}: a write that changes a field during its Update is ignored; the first value completes (v3.2)`, () => {
      const h = lockstep(DEFAULT_FEATURES);
      h.io.write32(OFF[req], value);
      h.platform.delay(ACK_NS / 2);
      h.io.write32(OFF[req], 0);
      h.platform.delay(ACK_NS);
      expect(h.io.read32(OFF[ack])).toBe(value);
      expect(h.trace().some((t) => t.startsWith(`smmuv3_update_ignored reg="${req}" value=0x0 changed=`))).toBe(true);
    });
  }

  it('CR0: another field may change while one is in its Update (rewriting the same value is allowed)', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write32(OFF.CR0, CR0.EVENTQEN.bits);
    h.platform.delay(ACK_NS / 2);
    h.io.write32(OFF.CR0, CR0.EVENTQEN.bits | CR0.SMMUEN.bits);
    expect(h.io.read32(OFF.CR0ACK)).toBe(0);
    h.platform.delay(2 * ACK_NS);
    expect(h.io.read32(OFF.CR0ACK)).toBe(CR0.EVENTQEN.bits | CR0.SMMUEN.bits);
    expect(h.trace().filter((t) => t.startsWith('smmuv3_update_ignored '))).toEqual([]);
  });

  it('never acknowledges fields the implementation lacks (ATSCHK without ATS, PRIQEN without PRI, VMW without VMW)', () => {
    const wanted = CR0.ATSCHK.bits | CR0.EVENTQEN.bits | CR0.PRIQEN.bits | CR0.VMW.bits;
    const q = lockstep(PROFILES['qemu-like']!);
    q.io.write32(OFF.CR0, wanted);
    expect(q.io.read32(OFF.CR0)).toBe(CR0.EVENTQEN.bits);
    settle(q);
    expect(q.io.read32(OFF.CR0ACK)).toBe(CR0.EVENTQEN.bits);
    const d = lockstep(DEFAULT_FEATURES); // ATS but no PRI or VMW
    d.io.write32(OFF.CR0, wanted);
    settle(d);
    expect(d.io.read32(OFF.CR0ACK)).toBe(CR0.EVENTQEN.bits | CR0.ATSCHK.bits);
    const p = lockstep(EXTRA_PROFILES.pri!);
    p.io.write32(OFF.CR0, wanted);
    settle(p);
    expect(p.io.read32(OFF.CR0ACK)).toBe(CR0.EVENTQEN.bits | CR0.ATSCHK.bits | CR0.PRIQEN.bits);
    const i = lockstep(DEFAULT_FEATURES);
    i.io.write32(OFF.IRQ_CTRL, 0x7);
    settle(i);
    expect(i.io.read32(OFF.IRQ_CTRLACK)).toBe(0x5); // PRIQ_IRQEN needs PRI
  });

  it('takes as long as the ack-latency fault says', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.inject({ kind: 'ack-latency', ns: 40 * ACK_NS });
    h.io.write32(OFF.CR0, CR0.SMMUEN.bits);
    h.platform.delay(ACK_NS * 39);
    expect(h.io.read32(OFF.CR0ACK)).toBe(0);
    h.platform.delay(ACK_NS);
    expect(h.io.read32(OFF.CR0ACK)).toBe(CR0.SMMUEN.bits);
  });
});

describe('GBPA Update protocol (6.3.14.1)', () => {
  it('ignores a write without Update, takes one with Update, ignores writes until Update clears', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write32(OFF.GBPA, GBPA.ABORT.bits);
    expect(h.io.read32(OFF.GBPA)).toBe(0);
    expect(h.trace().some((t) => t.startsWith('mmio_write_dropped ') && t.endsWith('outcome=no-update'))).toBe(true);
    h.io.write32(OFF.GBPA, GBPA.ABORT.bits | GBPA.Update.bits);
    expect(h.io.read32(OFF.GBPA)).toBe((GBPA.ABORT.bits | GBPA.Update.bits) >>> 0); // visible before Update clears
    h.io.write32(OFF.GBPA, GBPA.MTCFG.bits | GBPA.Update.bits); // while Update=1: ignored
    expect(h.io.read32(OFF.GBPA)).toBe((GBPA.ABORT.bits | GBPA.Update.bits) >>> 0);
    h.platform.delay(ACK_NS - 1);
    expect(GBPA.Update.get(h.io.read32(OFF.GBPA))).toBe(1);
    h.platform.delay(1);
    expect(h.io.read32(OFF.GBPA)).toBe(GBPA.ABORT.bits); // the first value completed
    h.io.write32(OFF.GBPA, GBPA.MTCFG.bits | GBPA.Update.bits);
    settle(h);
    expect(h.io.read32(OFF.GBPA)).toBe(GBPA.MTCFG.bits);
  });
});

// ---- guarded registers ----

interface GuardCase {
  reg: keyof typeof OFF;
  width: 32 | 64;
  /** The request register and the enable that guards `reg`. */
  req: 'CR0' | 'IRQ_CTRL';
  enable: number;
  a: (h: Lockstep) => bigint;
  b: (h: Lockstep) => bigint;
  /** Programming the enable needs (so turning it on is harmless). */
  prepare?: (h: Lockstep) => void;
}

const prepareCmdq = (h: Lockstep) => h.io.write64(OFF.CMDQ_BASE, queueAt(page(h), 4));
const prepareEvtq = (h: Lockstep) => h.io.write64(OFF.EVENTQ_BASE, queueAt(page(h), 4));

const GUARDED: GuardCase[] = [
  { reg: 'CMDQ_BASE', width: 64, req: 'CR0', enable: CR0.CMDQEN.bits, a: (h) => queueAt(page(h), 4), b: (h) => queueAt(page(h), 5) },
  {
    reg: 'CMDQ_CONS',
    width: 32,
    req: 'CR0',
    enable: CR0.CMDQEN.bits,
    a: () => 0x13n,
    b: () => 0x05n,
    // PROD = CONS: the queue is empty when it is enabled, so the SMMU leaves CONS alone.
    prepare: (h) => {
      prepareCmdq(h);
      h.io.write32(OFF.CMDQ_PROD, 0x13);
    },
  },
  { reg: 'EVENTQ_BASE', width: 64, req: 'CR0', enable: CR0.EVENTQEN.bits, a: (h) => queueAt(page(h), 4), b: (h) => queueAt(page(h), 3) },
  { reg: 'EVENTQ_PROD', width: 32, req: 'CR0', enable: CR0.EVENTQEN.bits, a: () => 0x3n, b: () => 0x9n, prepare: prepareEvtq },
  { reg: 'STRTAB_BASE', width: 64, req: 'CR0', enable: CR0.SMMUEN.bits, a: (h) => (1n << 62n) | page(h), b: (h) => page(h) },
  { reg: 'STRTAB_BASE_CFG', width: 32, req: 'CR0', enable: CR0.SMMUEN.bits, a: () => 0x6n, b: () => 0x10208n },
  { reg: 'CR2', width: 32, req: 'CR0', enable: CR0.SMMUEN.bits, a: () => 0x2n, b: () => 0x3n },
  { reg: 'CR1', width: 32, req: 'CR0', enable: CR0.SMMUEN.bits, a: () => 0xd75n, b: () => 0x555n },
  { reg: 'CR1', width: 32, req: 'CR0', enable: CR0.CMDQEN.bits, a: () => 0xd75n, b: () => 0x555n, prepare: prepareCmdq },
  { reg: 'CR1', width: 32, req: 'CR0', enable: CR0.EVENTQEN.bits, a: () => 0xd75n, b: () => 0x555n, prepare: prepareEvtq },
  { reg: 'GERROR_IRQ_CFG0', width: 64, req: 'IRQ_CTRL', enable: IRQ_CTRL.GERROR_IRQEN.bits, a: () => BigInt(PA.MSI_DOORBELL), b: (h) => page(h) },
  { reg: 'GERROR_IRQ_CFG1', width: 32, req: 'IRQ_CTRL', enable: IRQ_CTRL.GERROR_IRQEN.bits, a: () => 65n, b: () => 66n },
  { reg: 'GERROR_IRQ_CFG2', width: 32, req: 'IRQ_CTRL', enable: IRQ_CTRL.GERROR_IRQEN.bits, a: () => 0x1n, b: () => 0x31n },
  { reg: 'EVENTQ_IRQ_CFG0', width: 64, req: 'IRQ_CTRL', enable: IRQ_CTRL.EVENTQ_IRQEN.bits, a: () => BigInt(PA.MSI_DOORBELL), b: (h) => page(h) },
  { reg: 'EVENTQ_IRQ_CFG1', width: 32, req: 'IRQ_CTRL', enable: IRQ_CTRL.EVENTQ_IRQEN.bits, a: () => 64n, b: () => 67n },
  { reg: 'EVENTQ_IRQ_CFG2', width: 32, req: 'IRQ_CTRL', enable: IRQ_CTRL.EVENTQ_IRQEN.bits, a: () => 0x1n, b: () => 0x21n },
];

describe('guarded registers ignore writes while their enable is set in the request or the ACK register (6.3, v3.2)', () => {
  for (const c of GUARDED) {
    const en = c.req === 'CR0' ? Object.entries(CR0).find(([, f]) => f.bits === c.enable)![0] : Object.entries(IRQ_CTRL).find(([, f]) => f.bits === c.enable)![0];
    it(`${c.reg} guarded by ${c.req}.${en}`, () => {
      const h = lockstep(DEFAULT_FEATURES);
      const ack = c.req === 'CR0' ? OFF.CR0ACK : OFF.IRQ_CTRLACK;
      const write = (v: bigint) => (c.width === 64 ? h.io.write64(OFF[c.reg], v) : h.io.write32(OFF[c.reg], Number(v)));
      const read = () => (c.width === 64 ? h.io.read64(OFF[c.reg]) : BigInt(h.io.read32(OFF[c.reg])));
      const a = c.a(h);
      const b = c.b(h);
      c.prepare?.(h);
      write(a);
      expect(read(), 'writable while disabled').toBe(a);
      // Update to 1 in flight: CR0 says 1, CR0ACK still 0.
      h.io.write32(OFF[c.req], c.enable);
      expect(h.io.read32(ack) & c.enable).toBe(0);
      write(b);
      expect(read(), 'while the enable is being Updated to 1').toBe(a);
      settle(h);
      expect(h.io.read32(ack) & c.enable).toBe(c.enable);
      write(b);
      if (c.width === 64) h.io.write32(OFF[c.reg] + 4, 0xffff); // the high half alone is guarded too
      expect(read(), 'while enabled').toBe(a);
      // Update to 0 in flight: CR0 says 0, CR0ACK still 1.
      h.io.write32(OFF[c.req], 0);
      write(b);
      expect(read(), 'while the enable is being Updated to 0').toBe(a);
      expect(h.trace().some((t) => t.startsWith('mmio_write_dropped ') && t.endsWith('outcome=guarded'))).toBe(true);
      settle(h);
      expect(h.io.read32(ack) & c.enable).toBe(0);
      write(b);
      expect(read(), 'writable again once disabled').toBe(b);
    });
  }

  it('CMDQ_PROD and EVENTQ_CONS stay writable while their queues are enabled', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const q = page(h);
    h.io.write64(OFF.CMDQ_BASE, queueAt(q, 4));
    prepareEvtq(h);
    h.io.write32(OFF.CR0, CR0.CMDQEN.bits | CR0.EVENTQEN.bits);
    settle(h);
    h.platform.mem.write32(Number(q), OP.TLBI_NSNH_ALL); // a legal command in slot 0
    h.io.write32(OFF.CMDQ_PROD, 1);
    expect(h.io.read32(OFF.CMDQ_PROD)).toBe(1);
    expect(h.io.read32(OFF.CMDQ_CONS)).toBe(1); // and it was a doorbell
    h.io.write32(OFF.EVENTQ_CONS, 5);
    expect(h.io.read32(OFF.EVENTQ_CONS)).toBe(5);
  });

  it('each *_IRQ_CFG set is guarded by its own IRQEN only', () => {
    const h = lockstep(DEFAULT_FEATURES);
    h.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.EVENTQ_IRQEN.bits);
    settle(h);
    h.io.write32(OFF.GERROR_IRQ_CFG1, 77);
    h.io.write32(OFF.EVENTQ_IRQ_CFG1, 77);
    expect(h.io.read32(OFF.GERROR_IRQ_CFG1)).toBe(77);
    expect(h.io.read32(OFF.EVENTQ_IRQ_CFG1)).toBe(0);
  });
});

// ---- GERROR / GERRORN ----

const NSNH = () => raw(OP.TLBI_NSNH_ALL);
const ackGerror = (h: Lockstep) => h.io.write32(OFF.GERRORN, h.io.read32(OFF.GERROR));

describe('GERROR / GERRORN', () => {
  it('a command error toggles GERROR.CMDQ_ERR, stops the queue at the command until GERRORN matches, then resumes', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const q = manualQueue(h);
    q.push(NSNH(), raw(0x00), NSNH());
    expect(h.consRd()).toBe(1);
    expect(h.consErr()).toBe(CERROR.ILL);
    expect(h.io.read32(OFF.GERROR)).toBe(GERROR.CMDQ_ERR.bits);
    expect(h.io.read32(OFF.GERRORN)).toBe(0);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(1);
    expect(h.cerror(CERROR.ILL)).toBe(1);
    expect(h.stat(STAT.GERROR_RAISED)).toBe(1);
    // Ringing the doorbell again does not restart it.
    h.io.write32(OFF.CMDQ_PROD, q.prod());
    h.platform.delay(10 * ACK_NS);
    expect(h.consRd()).toBe(1);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(1);
    // Acknowledging without fixing the command: it is fetched again and fails again; GERROR toggles back.
    ackGerror(h);
    expect(h.io.read32(OFF.GERRORN)).toBe(GERROR.CMDQ_ERR.bits);
    expect(h.io.read32(OFF.GERROR)).toBe(0);
    expect(h.cmdqErrActive()).toBe(true);
    expect(h.cerror(CERROR.ILL)).toBe(2);
    // Fix the slot and acknowledge: consumption resumes from CONS without a PROD write.
    const fixed = NSNH();
    for (let k = 0; k < 4; k++) h.platform.mem.write32(q.slot(1) + 4 * k, fixed[k]!);
    ackGerror(h);
    expect(h.cmdqErrActive()).toBe(false);
    expect(h.consRd()).toBe(3);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(3);
    expect(h.cerror(CERROR.ILL)).toBe(2);
  });

  it('an error that is already active is not toggled (or counted) again', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const q = manualQueue(h);
    // CMD_SYNC with CS=SIG_IRQ to an address with nothing behind it: the MSI write aborts (GERROR.MSI_CMDQ_ABT_ERR).
    const badMsi = () => raw(OP.SYNC, [[F.CS, CS.SIG_IRQ], [F.MSIADDR, 0x1000 / 4]]);
    q.push(badMsi(), badMsi());
    expect(h.exec('SYNC')).toBe(2); // an MSI abort is not a command error
    expect(h.io.read32(OFF.GERROR)).toBe(GERROR.MSI_CMDQ_ABT_ERR.bits);
    expect(h.stat(STAT.GERROR_RAISED)).toBe(1);
    ackGerror(h);
    expect(h.io.read32(OFF.GERRORN)).toBe(GERROR.MSI_CMDQ_ABT_ERR.bits);
    q.push(badMsi());
    expect(h.io.read32(OFF.GERROR)).toBe(0); // toggled back: active again
    expect(h.io.read32(OFF.GERRORN)).toBe(GERROR.MSI_CMDQ_ABT_ERR.bits);
    expect(h.stat(STAT.GERROR_RAISED)).toBe(2);
    expect(h.cmdqErrActive()).toBe(false); // a different bit
  });

  it('interrupts on activation: the wire without an MSI address, the wire and the MSI with one (3.18.2), nothing while GERROR_IRQEN=0', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const taken: number[] = [];
    const MSI_VEC = VECTOR.MSI_BASE + 7;
    h.platform.requestIrq(VECTOR.SMMU_GERROR, 'test-wired', (v) => taken.push(v));
    h.platform.requestIrq(MSI_VEC, 'test-msi', (v) => taken.push(v));
    const q = manualQueue(h);
    const failAndAck = () => {
      q.push(raw(0x00));
      expect(h.cmdqErrActive()).toBe(true);
      h.platform.irqCheckpoint();
      h.platform.mem.write32(q.slot(q.prod() - 1), OP.TLBI_NSNH_ALL);
      ackGerror(h);
      expect(h.cmdqErrActive()).toBe(false);
    };
    failAndAck(); // GERROR_IRQEN=0
    expect(taken).toEqual([]);
    h.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN.bits);
    settle(h);
    failAndAck(); // GERROR_IRQ_CFG0.ADDR = 0: the wire
    expect(taken).toEqual([VECTOR.SMMU_GERROR]);
    h.io.write32(OFF.IRQ_CTRL, 0);
    settle(h);
    h.io.write64(OFF.GERROR_IRQ_CFG0, BigInt(PA.MSI_DOORBELL));
    h.io.write32(OFF.GERROR_IRQ_CFG1, MSI_VEC);
    h.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN.bits);
    settle(h);
    failAndAck(); // the wire again, and an MSI to the doorbell with the vector as data
    expect(taken).toEqual([VECTOR.SMMU_GERROR, VECTOR.SMMU_GERROR, MSI_VEC]);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(3);
  });
});
