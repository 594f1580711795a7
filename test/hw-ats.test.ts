// ATS, case by case (IHI 0070 3.9.1.2 Translation Requests, 3.9.1.3 Translated transactions, 5.2 EATS,
// 13.7 permissions), through the SMMU's device services.

import { describe, expect, test } from 'vitest';
import { Rig } from './helpers/rig.ts';
import { PageTable, tableDesc } from './helpers/tables.ts';
import { CR0, CR2 } from '../src/arch/smmu/regs.ts';
import { EVT_CLASS } from '../src/arch/smmu/events.ts';
import { EATS } from '../src/arch/smmu/ste.ts';
import type { AtsTranslation } from '../hw/smmu/services.ts';

const NOT_RAM = 0x8000_0000;
const REC = CR2.RECINVSID.bits | CR2.REC_CFG_ATS.bits;

/** A rig with ATSRECERR, CR2 as given, and CR0.ATSCHK as given. */
function atsRig(o: { cr2?: number; atschk?: boolean; smmuen?: boolean } = {}): Rig {
  const rig = new Rig({ features: { atsRecErr: true }, cr2: o.cr2 ?? CR2.RECINVSID.bits, smmuen: o.smmuen ?? true });
  if (o.atschk) rig.setCr0(rig.cr0() | CR0.ATSCHK.bits);
  return rig;
}

/** Stage 1 stream `sid` with EATS; VA 0x1000 -> a page (AP as given), 0x20_0000 -> a 2 MiB block. */
function s1Ats(rig: Rig, sid: number, o: { eats?: number; ap?: number; uxn?: boolean; cdMax?: number; s1dss?: number } = {}) {
  // ASID = StreamID: streams sharing an ASID (and VMID) share TLB entries, as they should.
  const { pt, cd } = rig.s1Stream(sid, { asid: sid, ste: { eats: o.eats ?? EATS.TRANS } });
  const page = rig.alloc();
  pt.map(0x1000, page, 4096, { ap: o.ap ?? 1, uxn: o.uxn ?? false });
  const block = rig.alloc(512);
  pt.map(0x20_0000, block, 2 ** 21);
  if (o.cdMax) rig.writeSte(sid, { config: 0b101, cdPtr: cd, cdMax: o.cdMax, s1dss: o.s1dss ?? 0, eats: o.eats ?? EATS.TRANS });
  return { pt, cd, page, block };
}

const treq = (rig: Rig, sid: number, addr: number, o: { write?: boolean; ssv?: boolean; ssid?: number; priv?: boolean; instr?: boolean } = {}): AtsTranslation =>
  rig.services.atsTranslate({ sid, addr, bytes: 4096, write: o.write ?? false, ...o });

const names = (rig: Rig) => rig.events().map((e) => e.name);

describe('ATS Translation Requests (3.9.1.2)', () => {
  test('SMMUEN=0: UR and F_BAD_ATS_TREQ', () => {
    const rig = atsRig({ smmuen: false });
    expect(treq(rig, 1, 0x1000)).toMatchObject({ status: 'UR', read: false, write: false });
    expect(names(rig)).toEqual(['F_BAD_ATS_TREQ']);
  });

  test('no ATS in the SMMU (IDR0.ATS=0): UR without an event', () => {
    const rig = new Rig({ features: { ats: false } });
    s1Ats(rig, 1);
    expect(treq(rig, 1, 0x1000).status).toBe('UR');
    expect(names(rig)).toEqual([]);
  });

  test.each([
    ['Config=0b000 (abort)', { config: 0b000 }, 'UR', []],
    ['Config=0b100 (bypass)', { config: 0b100, eats: 1 }, 'UR', ['F_BAD_ATS_TREQ']],
    ['EATS=0b00', { config: 0b101, eats: 0 }, 'UR', ['F_BAD_ATS_TREQ']],
    ['EATS=0b11 without DPT (reserved, behaves as 0b00)', { config: 0b101, eats: 3 }, 'UR', ['F_BAD_ATS_TREQ']],
  ] as const)('%s: %s', (_n, ste, status, events) => {
    const rig = atsRig();
    const { cd } = s1Ats(rig, 1);
    rig.writeSte(1, { ...ste, cdPtr: cd });
    expect(treq(rig, 1, 0x1000).status).toBe(status);
    expect(names(rig)).toEqual(events);
  });

  test('EATS=0b10 (split stage) behaves as 0b00 with ATSCHK=0 and returns the stage 1 IPA with ATSCHK=1', () => {
    for (const atschk of [false, true]) {
      const rig = atsRig({ atschk });
      const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
      const s1 = new PageTable(rig.mem, rig.pages, 1, 25);
      const cd = rig.alloc();
      rig.writeCd(cd, { asid: 1, ttb0: s1.root });
      for (const pa of [cd, s1.root]) s2.map(pa, pa);
      s1.map(0x1000, 0x7_0000_0000); // an IPA that stage 2 does not map
      for (let l = 1; l <= 2; l++) {
        const t = Number((rig.mem.read64(s1.descAddr(0x1000, l)!) >> 12n) & 0xf_ffff_ffffn) * 4096;
        s2.map(t, t);
      }
      rig.writeSte(1, { config: 0b111, vmid: 1, cdPtr: cd, eats: EATS.S1CHK, s2: { ttb: s2.root } });
      const t = treq(rig, 1, 0x1000);
      if (!atschk) {
        expect(t.status).toBe('UR');
        expect(names(rig)).toEqual(['F_BAD_ATS_TREQ']);
      } else {
        expect(t).toMatchObject({ status: 'SUCCESS', addr: 0x7_0000_0000, size: 4096, read: true, write: true });
        expect(names(rig)).toEqual([]);
      }
    }
  });

  // Configuration errors: CA, recorded only with CR2.REC_CFG_ATS (and, for C_BAD_STREAMID, RECINVSID).
  const cfgErrors: [string, (rig: Rig) => [sid: number, o?: object], string][] = [
    ['C_BAD_STREAMID', () => [200], 'C_BAD_STREAMID'],
    ['STE V=0 (C_BAD_STE)', (rig) => (rig.writeSte(1, { v: false }), [1]), 'C_BAD_STE'],
    ['ILLEGAL STE (C_BAD_STE)', (rig) => (rig.writeSte(1, { config: 0b101, cdPtr: rig.alloc(), eats: 1, strw: 1 }), [1]), 'C_BAD_STE'],
    ['F_CD_FETCH', (rig) => (rig.writeSte(1, { config: 0b101, cdPtr: NOT_RAM, eats: 1 }), [1]), 'F_CD_FETCH'],
    ['C_BAD_SUBSTREAMID', (rig) => (s1Ats(rig, 1, { cdMax: 2 }), [1, { ssv: true, ssid: 7 }]), 'C_BAD_SUBSTREAMID'],
    ['F_STREAM_DISABLED', (rig) => (s1Ats(rig, 1, { cdMax: 2, s1dss: 0 }), [1]), 'F_STREAM_DISABLED'],
    ['C_BAD_CD', (rig) => {
      const { cd } = s1Ats(rig, 1);
      rig.writeCd(cd, { v: false, ttb0: 0 });
      return [1];
    }, 'C_BAD_CD'],
    ['F_WALK_EABT', (rig) => {
      const { pt } = s1Ats(rig, 1);
      rig.mem.write64(pt.descAddr(0x4000_0000, 1)!, tableDesc(NOT_RAM));
      return [1, { addr: 0x4000_1000 }];
    }, 'F_WALK_EABT'],
  ];
  test.each(cfgErrors)('%s: CA; an event only with REC_CFG_ATS', (_n, setup, event) => {
    for (const cr2 of [CR2.RECINVSID.bits, REC, CR2.REC_CFG_ATS.bits]) {
      const rig = atsRig({ cr2 });
      const [sid, o = {}] = setup(rig);
      const addr = (o as { addr?: number }).addr ?? 0x1000;
      expect(treq(rig, sid, addr, o)).toMatchObject({ status: 'CA', read: false, write: false });
      const recorded = cr2 === REC || (cr2 === CR2.REC_CFG_ATS.bits && event !== 'C_BAD_STREAMID');
      expect([cr2, names(rig)]).toEqual([cr2, recorded ? [event] : []]);
    }
  });

  test('F_STE_FETCH: CA; an event only with REC_CFG_ATS', () => {
    for (const cr2 of [CR2.RECINVSID.bits, REC]) {
      const rig = new Rig({ features: { atsRecErr: true }, cr2, strtab: { log2size: 16, split: 8 } });
      rig.mem.write64(rig.strtabBase + 8, BigInt(NOT_RAM) | 9n);
      expect(treq(rig, 0x101, 0x1000).status).toBe('CA');
      expect(names(rig)).toEqual(cr2 === REC ? ['F_STE_FETCH'] : []);
    }
  });

  test('translation, access and address-size faults: Success with R=W=0 for one STU, never an event', () => {
    const rig = atsRig({ cr2: REC });
    const { pt, cd } = s1Ats(rig, 1);
    pt.map(0x3000, rig.alloc(), 4096, { af: false });
    pt.map(0x4000, 0x1_0000_0000);
    rig.writeCd(cd, { asid: 1, ttb0: pt.root, ips: 0 });
    for (const addr of [0x9000, 0x3000, 0x4000, 2 ** 40]) {
      expect(treq(rig, 1, addr)).toEqual(expect.objectContaining({ status: 'SUCCESS', size: 4096, read: false, write: false, exec: false }));
    }
    // Stage 2 faults, on the output and on the CD fetch, likewise.
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    rig.writeSte(2, { config: 0b110, vmid: 4, eats: 1, s2: { ttb: s2.root } });
    expect(treq(rig, 2, 0x5000)).toMatchObject({ status: 'SUCCESS', read: false, write: false });
    rig.writeSte(3, { config: 0b111, vmid: 5, eats: 1, cdPtr: 0x10_0000, s2: { ttb: s2.root } });
    expect(treq(rig, 3, 0x5000)).toMatchObject({ status: 'SUCCESS', read: false, write: false });
    expect(names(rig)).toEqual([]);
  });

  test('Success returns the output base, the size of the page or block, and what the tables grant', () => {
    const rig = atsRig();
    const { page, block } = s1Ats(rig, 1, { ap: 1 });
    expect(treq(rig, 1, 0x1234, { write: true })).toEqual({ status: 'SUCCESS', addr: page, size: 4096, read: true, write: true, exec: false, priv: false });
    expect(treq(rig, 1, 0x20_5000)).toMatchObject({ status: 'SUCCESS', addr: block, size: 2 ** 21, read: true, write: true });

    // Permission faults answer with the permissions the tables grant (read-only here), no event.
    const ro = s1Ats(rig, 2, { ap: 3 });
    expect(treq(rig, 2, 0x1000, { write: true })).toMatchObject({ status: 'SUCCESS', addr: ro.page, read: true, write: false });
    // Without a PASID the request is unprivileged data: a privileged-only page grants nothing.
    s1Ats(rig, 3, { ap: 0 });
    expect(treq(rig, 3, 0x1000)).toMatchObject({ status: 'SUCCESS', read: false, write: false });
    expect(names(rig)).toEqual([]);
  });

  test('privilege and execute come only with a PASID; Exe implies R (13.7)', () => {
    const rig = atsRig();
    // CD 1 of a 2-CD table maps 0x1000 privileged RW, executable.
    const { cd } = s1Ats(rig, 1, { cdMax: 1, s1dss: 2, ap: 0 });
    const pt = new PageTable(rig.mem, rig.pages, 1, 25);
    pt.map(0x1000, rig.alloc(), 4096, { ap: 0 });
    rig.writeCd(cd + 64, { asid: 9, ttb0: pt.root });
    expect(treq(rig, 1, 0x1000, { priv: true, instr: true })).toMatchObject({ read: false, write: false, exec: false, priv: false });
    expect(treq(rig, 1, 0x1000, { ssv: true, ssid: 1, priv: true, instr: true })).toMatchObject({ status: 'SUCCESS', read: true, write: true, exec: true, priv: true });
    expect(treq(rig, 1, 0x1000, { ssv: true, ssid: 1, priv: false })).toMatchObject({ read: false, write: false, exec: false });
  });

  test('S1DSS=bypass without a PASID: Success, identity, R=W=1', () => {
    const rig = atsRig();
    s1Ats(rig, 1, { cdMax: 2, s1dss: 1 });
    expect(treq(rig, 1, 0x4000_3000)).toMatchObject({ status: 'SUCCESS', addr: 0x4000_3000, read: true, write: true });
  });

  test('nested: the response grants the intersection of stage 1 and stage 2 permissions', () => {
    const rig = atsRig();
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    const s1 = new PageTable(rig.mem, rig.pages, 1, 25);
    const cd = rig.alloc();
    rig.writeCd(cd, { asid: 1, ttb0: s1.root });
    const page = rig.alloc();
    s1.map(0x1000, page);
    for (const pa of [cd, s1.root]) s2.map(pa, pa);
    for (let l = 1; l <= 2; l++) {
      const t = Number((rig.mem.read64(s1.descAddr(0x1000, l)!) >> 12n) & 0xf_ffff_ffffn) * 4096;
      s2.map(t, t);
    }
    s2.map(page, page, 4096, { s2ap: 0b01 }); // stage 2 read-only
    rig.writeSte(1, { config: 0b111, vmid: 3, cdPtr: cd, eats: 1, s2: { ttb: s2.root } });
    expect(treq(rig, 1, 0x1000, { write: true })).toMatchObject({ status: 'SUCCESS', addr: page, read: true, write: false });
    expect(names(rig)).toEqual([]);
  });
});

describe('ATS Translated transactions (3.9.1.3)', () => {
  const tw = (rig: Rig, sid: number, addr: number) => rig.services.transfer({ sid, addr, bytes: 4, write: true }, new Uint8Array([1, 2, 3, 4]), true);

  test('SMMUEN=0: F_TRANSL_FORBIDDEN and abort', () => {
    const rig = atsRig({ smmuen: false });
    expect(tw(rig, 1, rig.alloc())).toMatchObject({ ok: false, fault: 'F_TRANSL_FORBIDDEN' });
    expect(rig.events()).toMatchObject([{ name: 'F_TRANSL_FORBIDDEN', sid: 1, rnw: 0 }]);
  });

  test('ATSCHK=0: any configuration passes with only an address size check', () => {
    const rig = atsRig();
    const page = rig.alloc();
    rig.writeSte(1, { config: 0b000 });
    expect(tw(rig, 1, page).ok).toBe(true);
    expect(rig.mem.read32(page)).toBe(0x04030201);
    expect(tw(rig, 300, page).ok).toBe(true); // no StreamID check either
    expect(tw(rig, 1, 2 ** 48)).toMatchObject({ ok: false, fault: 'ABORT', event: 0 });
    expect(names(rig)).toEqual([]);
  });

  test.each([
    ['Config=0b000', { config: 0b000 }, false, null],
    ['Config=0b100', { config: 0b100, eats: 1 }, false, 'F_TRANSL_FORBIDDEN'],
    ['EATS=0b00', { config: 0b101, eats: 0 }, false, 'F_TRANSL_FORBIDDEN'],
    ['EATS=0b01', { config: 0b101, eats: 1 }, true, null],
  ] as const)('ATSCHK=1, %s', (_n, ste, ok, event) => {
    const rig = atsRig({ atschk: true });
    const page = rig.alloc();
    rig.writeSte(1, { ...ste, cdPtr: rig.alloc() });
    expect(tw(rig, 1, page).ok).toBe(ok);
    const ev = rig.events();
    expect(ev.map((e) => e.name)).toEqual(event ? [event] : []);
    if (event) expect(ev[0]).toMatchObject({ sid: 1, rnw: 0, inputAddr: BigInt(page) });
  });

  test('ATSCHK=1: configuration errors abort; recorded only with REC_CFG_ATS, C_BAD_STREAMID then even without RECINVSID', () => {
    for (const cr2 of [CR2.RECINVSID.bits, CR2.REC_CFG_ATS.bits]) {
      const rig = atsRig({ atschk: true, cr2 });
      rig.writeSte(1, { v: false });
      expect(tw(rig, 1, rig.alloc()).ok).toBe(false);
      expect(tw(rig, 200, rig.alloc()).ok).toBe(false);
      expect(names(rig)).toEqual(cr2 === CR2.REC_CFG_ATS.bits ? ['C_BAD_STE', 'C_BAD_STREAMID'] : []);
    }
  });

  test('ATSCHK=1, EATS=0b10: the address is an IPA translated at stage 2; stage 2 faults are recorded', () => {
    const rig = atsRig({ atschk: true });
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    const page = rig.alloc();
    s2.map(0x9000, page);
    rig.writeSte(1, { config: 0b111, vmid: 2, cdPtr: rig.alloc(), eats: EATS.S1CHK, s2: { ttb: s2.root } });
    expect(tw(rig, 1, 0x9000).ok).toBe(true);
    expect(rig.mem.read32(page)).toBe(0x04030201);
    expect(tw(rig, 1, 0xa000)).toMatchObject({ ok: false, fault: 'F_TRANSLATION' });
    expect(rig.events()).toMatchObject([{ name: 'F_TRANSLATION', s2: 1, cls: EVT_CLASS.IN, ipa: 0xa000n }]);
  });
});

describe('ATS endpoints registry', () => {
  test('attachAtsEndpoint / detachAtsEndpoint maintain SmmuV3.atsEndpoints', () => {
    const rig = new Rig();
    const ep = { atcInvalidate: () => {}, invalidateQueueDepth: () => 0 };
    rig.services.attachAtsEndpoint(5, ep);
    expect(rig.smmu.atsEndpoints.get(5)).toBe(ep);
    rig.services.detachAtsEndpoint(5);
    expect(rig.smmu.atsEndpoints.has(5)).toBe(false);
  });
});
