// The event queue (IHI 0070 3.5, 7.2, 7.3, 7.4, 3.18): every event type the model produces, with its
// record checked field by field and against the raw architected layout; overflow and its
// acknowledgement; the interrupt on empty -> non-empty; aborts writing the queue.

import { describe, expect, test } from 'vitest';
import { Rig, type Ev } from './helpers/rig.ts';
import { PageTable, tableDesc } from './helpers/tables.ts';
import { STAT, XSTAT } from '../src/machine/layout.ts';
import { VECTOR } from '../src/arch/platform.ts';
import { CR0, CR2, GERROR, IRQ_CTRL, OFF, Q_OVFLG } from '../src/arch/smmu/regs.ts';
import { EVT, EVT_CLASS, type EventName } from '../src/arch/smmu/events.ts';
import { TIMEOUT } from '../src/arch/time.ts';
import { validateFault } from '../src/protocol/faults.ts';

const NOT_RAM = 0x8000_0000;

/**
 * Events the architecture defines that this model never produces: F_UUT (every transaction type is
 * supported), F_TLB_CONFLICT (reporting a multi-match is IMPLEMENTATION DEFINED; the IOTLB resolves it by
 * taking the smallest matching entry), F_CFG_CONFLICT (STE.CONT is not used), E_PAGE_REQUEST (no PRI),
 * F_VMS_FETCH (no MPAM/VMS).
 */
const NOT_PRODUCED: EventName[] = ['F_UUT', 'F_TLB_CONFLICT', 'F_CFG_CONFLICT', 'E_PAGE_REQUEST', 'F_VMS_FETCH'];

function markedPage(rig: Rig, marker: number): number {
  const p = rig.alloc();
  rig.mem.write32(p, marker);
  return p;
}

/** The record's 64-bit words, straight from memory. */
const qw = (e: Ev, i: number) => (BigInt(e.words[2 * i + 1]!) << 32n) | BigInt(e.words[2 * i]!);

describe('event records (7.3)', () => {
  test('every event type the model can produce, with its fields', () => {
    const rig = new Rig({ features: { atsRecErr: true }, cr2: CR2.RECINVSID.bits });
    const produced = new Map<string, Ev>();
    const expectOne = (name: EventName, fields: Partial<Ev>) => {
      const ev = rig.events();
      expect(ev.map((e) => e.name)).toEqual([name]);
      expect(ev[0]).toMatchObject({ type: EVT[name], ...fields });
      produced.set(name, ev[0]!);
      return ev[0]!;
    };

    // C_BAD_STREAMID (7.3.3)
    rig.read(100, 0x1000, { ssv: true, ssid: 0x12 });
    expectOne('C_BAD_STREAMID', { sid: 100, ssv: 1, ssid: 0x12 });

    // F_STE_FETCH (7.3.4): needs a stream table outside RAM; a second SMMU with a 2-level table.
    const two = new Rig({ strtab: { log2size: 16, split: 8 } });
    two.mem.write64(two.strtabBase + 8 * 4, 0x8000_0000n | 9n); // L1STD: L2Ptr=NOT_RAM, Span=9
    two.read(0x403, 0x1000, { ssv: true, ssid: 3 });
    const fe = two.events();
    expect(fe).toMatchObject([{ type: EVT.F_STE_FETCH, sid: 0x403, ssv: 1, ssid: 3, fetchAddr: BigInt(NOT_RAM + 3 * 64) }]);
    expect(qw(fe[0]!, 3)).toBe(BigInt(NOT_RAM + 3 * 64)); // FetchAddr[55:3] at [247:195]
    produced.set('F_STE_FETCH', fe[0]!);

    // C_BAD_STE (7.3.5)
    rig.writeSte(1, { v: false });
    rig.read(1, 0x1000, { ssv: true, ssid: 7 });
    expectOne('C_BAD_STE', { sid: 1, ssv: 1, ssid: 7 });

    // F_BAD_ATS_TREQ (7.3.6): a Translation Request to a bypass stream.
    rig.writeSte(2, { config: 0b100, eats: 1 });
    expect(rig.services.atsTranslate({ sid: 2, addr: 0x5000, bytes: 4096, write: true }).status).toBe('UR');
    expectOne('F_BAD_ATS_TREQ', { sid: 2, ssv: 0, inputAddr: 0x5000n });

    // F_STREAM_DISABLED (7.3.7): SID only.
    const table = rig.alloc();
    rig.writeSte(3, { config: 0b101, cdPtr: table, cdMax: 2, s1dss: 0 });
    rig.read(3, 0x1000);
    expectOne('F_STREAM_DISABLED', { sid: 3, ssv: 0, ssid: 0 });

    // F_TRANSL_FORBIDDEN (7.3.8): a Translated write with ATSCHK=1 to a stream with EATS=0.
    rig.setCr0(rig.cr0() | CR0.ATSCHK.bits);
    rig.writeSte(4, { config: 0b100 });
    rig.services.translatedWrite({ sid: 4, addr: 0x4000_2000, bytes: 4, write: true }, new Uint8Array(4));
    expectOne('F_TRANSL_FORBIDDEN', { sid: 4, rnw: 0, inputAddr: 0x4000_2000n });

    // C_BAD_SUBSTREAMID (7.3.9): no SSV field, the SubstreamID recorded.
    rig.read(3, 0x1000, { ssv: true, ssid: 9 });
    const bs = expectOne('C_BAD_SUBSTREAMID', { sid: 3, ssv: 0, ssid: 9 });
    expect(bs.words[0]! & 0xf00).toBe(0);

    // F_CD_FETCH (7.3.10)
    rig.writeSte(5, { config: 0b101, cdPtr: NOT_RAM });
    rig.read(5, 0x1000);
    expectOne('F_CD_FETCH', { sid: 5, ssv: 0, fetchAddr: BigInt(NOT_RAM) });

    // C_BAD_CD (7.3.11)
    const cdPa = rig.alloc();
    rig.writeCd(cdPa, { v: false, ttb0: 0 });
    rig.writeSte(6, { config: 0b101, cdPtr: cdPa, cdMax: 1, s1dss: 2 });
    rig.read(6, 0x1000, { ssv: true, ssid: 1 });
    expectOne('C_BAD_CD', { sid: 6, ssv: 1, ssid: 1 });

    // The four translation faults and F_WALK_EABT (7.3.12-16), from one stage 1 stream with
    // SubstreamIDs, privileged instruction reads and writes.
    const pts: PageTable[] = [];
    const cds = rig.alloc();
    for (let i = 0; i < 4; i++) {
      const pt = new PageTable(rig.mem, rig.pages, 1, 25);
      pts.push(pt);
      rig.writeCd(cds + i * 64, { asid: 20 + i, ttb0: pt.root, ips: i === 3 ? 0 : 5 });
    }
    rig.writeSte(7, { config: 0b101, cdPtr: cds, cdMax: 2, s1dss: 2 });
    const pt = pts[1]!;
    pt.map(0x1000, markedPage(rig, 1), 4096, { af: false });
    pt.map(0x2000, markedPage(rig, 2), 4096, { ap: 3 }); // read-only
    rig.mem.write64(pt.descAddr(0x4000_0000, 1)!, tableDesc(NOT_RAM));
    pts[3]!.map(0x3000, 0x1_0000_0000); // beyond IPS (32 bits) of CD 3

    rig.read(7, 0x9000, { ssv: true, ssid: 1, priv: true, instr: true });
    const tr = expectOne('F_TRANSLATION', { sid: 7, ssv: 1, ssid: 1, rnw: 1, pnu: 1, ind: 1, s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x9000n });
    rig.read(7, 0x3008, { ssv: true, ssid: 3 });
    expectOne('F_ADDR_SIZE', { sid: 7, ssid: 3, rnw: 1, s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x3008n });
    rig.write(7, 0x1004, new Uint8Array(4), { ssv: true, ssid: 1 });
    expectOne('F_ACCESS', { sid: 7, ssid: 1, rnw: 0, pnu: 0, ind: 0, inputAddr: 0x1004n });
    rig.write(7, 0x2000, new Uint8Array(4), { ssv: true, ssid: 1, priv: true });
    expectOne('F_PERMISSION', { sid: 7, ssid: 1, rnw: 0, pnu: 1, s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x2000n });
    rig.read(7, 0x4000_0000 + 0x201000, { ssv: true, ssid: 1 });
    const wa = expectOne('F_WALK_EABT', { sid: 7, ssid: 1, rnw: 1, s2: 0, cls: EVT_CLASS.TT, fetchAddr: BigInt(NOT_RAM + 1 * 8) });

    // Raw layout (7.3): Type [7:0], SSV [11], SubstreamID [31:12], StreamID [63:32]; PnU [97], InD [98],
    // RnW [99], S2 [103], CLASS [105:104]; InputAddr [191:128]; FetchAddr/IPA in the last qword.
    expect(qw(tr, 0)).toBe(0x10n | (1n << 11n) | (1n << 12n) | (7n << 32n));
    expect(qw(tr, 1)).toBe((1n << 33n) | (1n << 34n) | (1n << 35n) | (BigInt(EVT_CLASS.IN) << 40n));
    expect(qw(tr, 2)).toBe(0x9000n);
    expect(qw(wa, 1)).toBe((1n << 35n) | (BigInt(EVT_CLASS.TT) << 40n));
    expect(qw(wa, 3)).toBe(BigInt(NOT_RAM + 8));

    // Stage 2 records carry S2=1 and the IPA in [243:204] (7.3.13).
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    rig.writeSte(8, { config: 0b110, vmid: 2, s2: { ttb: s2.root } });
    rig.read(8, 0x7_6543_2100);
    const st2 = rig.events()[0]!;
    expect(st2).toMatchObject({ type: EVT.F_TRANSLATION, s2: 1, cls: EVT_CLASS.IN, ipa: 0x7_6543_2000n });
    expect(qw(st2, 3)).toBe(0x7_6543_2000n);

    const all = (Object.keys(EVT) as EventName[]).filter((n) => !NOT_PRODUCED.includes(n));
    expect([...produced.keys()].sort()).toEqual(all.sort());
    // Records recorded are counted by type (STAT.EVENTS + type).
    expect(rig.stats[STAT.EVENTS + EVT.F_TRANSLATION]).toBe(2);
  });
});

describe('queue behaviour (7.2, 7.4, 3.18)', () => {
  /** Makes one recordable fault per call (a C_BAD_STE on SID 1 whose SubstreamID tags the record). */
  const fault = (rig: Rig, tag: number) => rig.read(1, 0x1000, { ssv: true, ssid: tag });
  const prodReg = (rig: Rig) => rig.io.read32(OFF.EVENTQ_PROD);

  test('overflow: records lost, OVFLG toggled only when no overflow is showing, acknowledged through CONS.OVACKFLG', () => {
    const rig = new Rig({ evtqLog2: 1 }); // two entries
    rig.writeSte(1, { v: false });
    fault(rig, 1);
    fault(rig, 2);
    expect(prodReg(rig)).toBe(0b10); // index 0 with the wrap bit: full
    fault(rig, 3); // lost: overflow
    expect(Q_OVFLG.get(prodReg(rig))).toBe(1);
    fault(rig, 4); // lost: overflow already showing, OVFLG stays
    expect(Q_OVFLG.get(prodReg(rig))).toBe(1);
    expect(rig.stats[XSTAT.EVENTQ_OVERFLOWS]).toBe(1);

    // Consume one record without acknowledging: the queue keeps working (7.4).
    const cons = rig.io.read32(OFF.EVENTQ_CONS);
    rig.io.write32(OFF.EVENTQ_CONS, cons + 1);
    fault(rig, 5);
    fault(rig, 6); // full again: lost, no new toggle
    expect(Q_OVFLG.get(prodReg(rig))).toBe(1);
    expect(rig.stats[XSTAT.EVENTQ_OVERFLOWS]).toBe(1);

    // Read everything and acknowledge (OVACKFLG = OVFLG).
    const got = rig.events().map((e) => e.ssid);
    expect(got).toEqual([2, 5]);
    rig.io.write32(OFF.EVENTQ_CONS, rig.io.read32(OFF.EVENTQ_CONS) | Q_OVFLG.bits);
    fault(rig, 7);
    fault(rig, 8);
    fault(rig, 9); // a new overflow toggles OVFLG back
    expect(Q_OVFLG.get(prodReg(rig))).toBe(0);
    expect(rig.stats[XSTAT.EVENTQ_OVERFLOWS]).toBe(2);
    expect(rig.events().map((e) => e.ssid)).toEqual([7, 8]);
    expect(rig.smmu.evtq.lost.full).toBe(4);
    expect(rig.stats[XSTAT.EVENTS_WRITTEN]).toBe(5);
  });

  test('the interrupt fires when the queue goes from empty to non-empty; MSI when configured', () => {
    const rig = new Rig({ features: { msi: true } });
    rig.platform.irqc.route(VECTOR.SMMU_EVTQ, 0);
    rig.writeSte(1, { v: false });
    const raised = () => rig.stats[STAT.IRQS_RAISED]!;
    const r0 = raised();
    fault(rig, 1);
    expect(raised() - r0).toBe(1);
    fault(rig, 2); // not empty before: no new interrupt
    expect(raised() - r0).toBe(1);
    rig.events();
    fault(rig, 3);
    expect(raised() - r0).toBe(2);
    rig.events();

    // MSI: configuration registers are writable only with the enable off (6.3.30-32).
    rig.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN.bits);
    rig.platform.delay(TIMEOUT.SMMU_ACK_LATENCY * 2);
    const slot = rig.alloc();
    rig.io.write64(OFF.EVENTQ_IRQ_CFG0, BigInt(slot));
    rig.io.write32(OFF.EVENTQ_IRQ_CFG1, 0x5eed);
    rig.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN.bits | IRQ_CTRL.EVENTQ_IRQEN.bits);
    rig.platform.delay(TIMEOUT.SMMU_ACK_LATENCY * 2);
    fault(rig, 4);
    expect(rig.mem.read32(slot)).toBe(0x5eed);
    // The wired interrupt fires as well (3.18.2): the MSI accompanies it, it does not replace it.
    expect(raised() - r0).toBe(3);
  });

  test('EVENTQEN=0 discards records without overflow; PROD is writable only then', () => {
    const rig = new Rig({ evtqLog2: 1 });
    rig.writeSte(1, { v: false });
    const on = rig.cr0();
    rig.setCr0(on & ~CR0.EVENTQEN.bits);
    for (let i = 0; i < 4; i++) fault(rig, i);
    expect(prodReg(rig)).toBe(0);
    expect(rig.smmu.evtq.lost.disabled).toBe(4);
    // Software places PROD and CONS while disabled; the SMMU continues from there.
    rig.io.write32(OFF.EVENTQ_PROD, 1);
    rig.io.write32(OFF.EVENTQ_CONS, 1);
    rig.setCr0(on);
    rig.io.write32(OFF.EVENTQ_PROD, 0); // guarded while EVENTQEN=1: ignored
    fault(rig, 9);
    expect(prodReg(rig)).toBe(2);
    expect(rig.mem.read32(rig.evtqBase + 32)).toBe(EVT.C_BAD_STE | (1 << 11) | (9 << 12));
    expect(rig.stats[XSTAT.EVENTQ_OVERFLOWS]).toBe(0);
  });

  test('an abort writing the queue raises GERROR.EVENTQ_ABT_ERR; PROD stays; records are lost until acknowledged', () => {
    const rig = new Rig();
    rig.writeSte(1, { v: false });
    rig.platform.irqc.route(VECTOR.SMMU_GERROR, 0);
    const on = rig.cr0();
    rig.setCr0(on & ~CR0.EVENTQEN.bits);
    rig.io.write64(OFF.EVENTQ_BASE, BigInt(NOT_RAM) | 6n);
    rig.setCr0(on);
    fault(rig, 1);
    expect(rig.io.read32(OFF.GERROR) & GERROR.EVENTQ_ABT_ERR.bits).toBe(GERROR.EVENTQ_ABT_ERR.bits);
    expect(prodReg(rig)).toBe(0);
    fault(rig, 2);
    expect(rig.smmu.evtq.lost).toMatchObject({ 'write-abort': 1, 'abort-error': 1 });
    // Recover: acknowledge, move the queue to RAM.
    rig.io.write32(OFF.GERRORN, rig.io.read32(OFF.GERROR));
    rig.setCr0(on & ~CR0.EVENTQEN.bits);
    rig.io.write64(OFF.EVENTQ_BASE, BigInt(rig.evtqBase) | 6n);
    rig.setCr0(on);
    fault(rig, 3);
    expect(rig.events().map((e) => [e.name, e.ssid])).toEqual([['C_BAD_STE', 3]]);
  });

  // 3.4.3: queue accesses and MSI writes the SMMU originates are truncated to the OAS (48 bits by
  // default), so address bits above it, up to bit 55, do not move them out of RAM.
  const ABOVE_OAS = (1n << 55n) | (1n << 48n);

  test('an EVENTQ_BASE with address bits above the OAS is truncated to it: records land in RAM, no abort', () => {
    const rig = new Rig();
    expect(rig.features.oasBits).toBe(48);
    rig.writeSte(1, { v: false });
    const on = rig.cr0();
    rig.setCr0(on & ~CR0.EVENTQEN.bits);
    rig.io.write64(OFF.EVENTQ_BASE, ABOVE_OAS | BigInt(rig.evtqBase) | BigInt(rig.evtqLog2));
    rig.setCr0(on);
    fault(rig, 1);
    fault(rig, 2);
    expect(rig.io.read32(OFF.GERROR) & GERROR.EVENTQ_ABT_ERR.bits).toBe(0);
    expect(prodReg(rig)).toBe(2);
    expect(rig.events().map((e) => [e.name, e.ssid])).toEqual([
      ['C_BAD_STE', 1],
      ['C_BAD_STE', 2],
    ]);
  });

  test('an EVENTQ_IRQ_CFG0 MSI address with bits above the OAS is truncated to it: the MSI lands in RAM, no abort', () => {
    const rig = new Rig({ features: { msi: true } });
    rig.writeSte(1, { v: false });
    // The MSI configuration is writable only with the enable off (6.3.30-32).
    rig.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN.bits);
    rig.platform.delay(TIMEOUT.SMMU_ACK_LATENCY * 2);
    const slot = rig.alloc();
    rig.io.write64(OFF.EVENTQ_IRQ_CFG0, ABOVE_OAS | BigInt(slot));
    rig.io.write32(OFF.EVENTQ_IRQ_CFG1, 0x5eed);
    rig.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN.bits | IRQ_CTRL.EVENTQ_IRQEN.bits);
    rig.platform.delay(TIMEOUT.SMMU_ACK_LATENCY * 2);
    fault(rig, 1);
    expect(rig.mem.read32(slot)).toBe(0x5eed);
    expect(rig.io.read32(OFF.GERROR) & GERROR.MSI_EVENTQ_ABT_ERR.bits).toBe(0);
  });
});

describe("fault injection: 'smmu-fetch-abort'", () => {
  test('the next STE, CD, descriptor fetch or event write aborts, once per count, with the architected response', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(3);
    pt.map(0x1000, rig.alloc());
    const inject = (what: string, count = 1) => rig.inject(validateFault({ kind: 'smmu-fetch-abort', what, trigger: { count } }));

    inject('ste');
    expect(rig.read(3, 0x1000).r.fault).toBe('F_STE_FETCH');
    inject('cd');
    expect(rig.read(3, 0x1000).r.fault).toBe('F_CD_FETCH');
    inject('walk');
    expect(rig.read(3, 0x1000).r.fault).toBe('F_WALK_EABT');
    expect(rig.read(3, 0x1000).r.ok).toBe(true); // each injection is used up
    expect(rig.events()).toMatchObject([
      { name: 'F_STE_FETCH', sid: 3, fetchAddr: BigInt(rig.steAddr(3)) },
      { name: 'F_CD_FETCH', sid: 3, fetchAddr: BigInt(cd) },
      { name: 'F_WALK_EABT', sid: 3, cls: EVT_CLASS.TT, fetchAddr: BigInt(pt.root) },
    ]);

    inject('evtq');
    rig.read(3, 0x9000);
    expect(rig.io.read32(OFF.GERROR) & GERROR.EVENTQ_ABT_ERR.bits).toBe(GERROR.EVENTQ_ABT_ERR.bits);
    expect(() => validateFault({ kind: 'smmu-fetch-abort', what: 'pte', trigger: { count: 1 } })).toThrow(/what: must be one of ste, cd, walk, evtq/);
  });
});
