// Stream table, STE and CD fetch and validation (IHI 0070 3.3, 5.1-5.4, 7.3.3-7.3.11), driven through
// the SMMU's untranslated DMA service on a lockstep machine with tables written by hand.

import { describe, expect, test } from 'vitest';
import { Rig } from './helpers/rig.ts';
import { l1cd, l1std, makeCd, PageTable, writeStruct } from './helpers/tables.ts';
import { XSTAT } from '../src/machine/layout.ts';
import { CD } from '../src/arch/smmu/cd.ts';
import { CR0, OFF } from '../src/arch/smmu/regs.ts';
import { EVT_CLASS } from '../src/arch/smmu/events.ts';
import { STE } from '../src/arch/smmu/ste.ts';
import type { Field } from '../src/arch/bits.ts';
import type { SmmuFeatures } from '../src/arch/smmu/features.ts';

const NOT_RAM = 0x8000_0000; // below 2^48, above the emulated DRAM

/** A page of DRAM whose first word is `marker`. */
function markedPage(rig: Rig, marker: number): number {
  const p = rig.alloc();
  rig.mem.write32(p, marker);
  return p;
}

function word(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset).getUint32(0, true);
}

describe('StreamID range (5.1.1, 7.3.3)', () => {
  test('a StreamID beyond the linear table is C_BAD_STREAMID with SID/SSV/SSID; silent without RECINVSID', () => {
    const rig = new Rig({ strtab: { log2size: 6 } });
    const r = rig.read(64, 0x1000).r;
    expect(r).toMatchObject({ ok: false, fault: 'C_BAD_STREAMID', event: 0x02, bytes: 0 });
    rig.read(70, 0x1000, { ssv: true, ssid: 5 });
    const ev = rig.events();
    expect(ev.map((e) => [e.name, e.sid, e.ssv, e.ssid])).toEqual([
      ['C_BAD_STREAMID', 64, 0, 0],
      ['C_BAD_STREAMID', 70, 1, 5],
    ]);

    const quiet = new Rig({ strtab: { log2size: 6 }, cr2: 0 });
    expect(quiet.read(64, 0x1000).r).toMatchObject({ ok: false, fault: 'C_BAD_STREAMID', event: 0 });
    expect(quiet.events()).toEqual([]);
  });

  test('LOG2SIZE above IDR1.SIDSIZE is capped (6.3.25)', () => {
    const rig = new Rig({ features: { sidBits: 6, twoLevelStrtab: false }, strtab: { log2size: 10 } });
    rig.writeSte(63, { config: 0b100 });
    rig.writeSte(64, { config: 0b100 }); // inside the memory, outside the effective table
    expect(rig.read(63, rig.alloc()).r.ok).toBe(true);
    expect(rig.read(64, rig.alloc()).r).toMatchObject({ ok: false, fault: 'C_BAD_STREAMID' });
  });

  test('2-level table: Span 0, reserved, wider than SPLIT+1, or not covering the StreamID is C_BAD_STREAMID', () => {
    const rig = new Rig({ strtab: { log2size: 16, split: 8 } });
    const cases: [span: number, sid: number, ok: boolean][] = [
      [0, 0x105, false],
      [12, 0x105, false], // 12..31 behave as 0
      [31, 0x105, false],
      [10, 0x105, false], // SPLIT=8 allows at most Span 9
      [3, 0x103, true], // 4 STEs: 0x100..0x103
      [3, 0x104, false],
      [9, 0x1ff, true],
    ];
    const page = markedPage(rig, 0x1234);
    for (const [span, sid, ok] of cases) {
      const l2 = rig.alloc(4);
      for (let i = 0; i < 256; i++) writeStruct(rig.mem, l2 + i * 64, new Uint32Array([0b1001, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])); // V=1, Config=bypass
      rig.mem.write64(rig.strtabBase + 8, l1std(l2, span));
      rig.cmd({ op: 'CFGI_STE', sid, leaf: false });
      const r = rig.read(sid, page).r;
      expect({ span, sid, ok: r.ok, fault: r.fault }).toEqual({ span, sid, ok, fault: ok ? null : 'C_BAD_STREAMID' });
      if (ok) expect(word(rig.read(sid, page).buf)).toBe(0x1234);
    }
    expect(rig.events().map((e) => e.name)).toEqual(Array(5).fill('C_BAD_STREAMID'));
  });

  test('STE and L1STD fetches outside RAM are F_STE_FETCH with the fetch address (7.3.4)', () => {
    const two = new Rig({ strtab: { log2size: 16, split: 8 } });
    two.mem.write64(two.strtabBase + 2 * 8, l1std(NOT_RAM, 9));
    expect(two.read(0x205, 0x1000, { ssv: true, ssid: 3 }).r).toMatchObject({ ok: false, fault: 'F_STE_FETCH' });
    const [e] = two.events();
    expect(e).toMatchObject({ name: 'F_STE_FETCH', sid: 0x205, ssv: 1, ssid: 3, fetchAddr: BigInt(NOT_RAM + 5 * 64) });

    // The stream table base itself outside RAM: the L1STD (2-level) or STE (linear) fetch aborts.
    for (const split of [8, undefined]) {
      const rig = new Rig({ strtab: { log2size: 16, split }, smmuen: false, features: {} });
      rig.io.write64(OFF.STRTAB_BASE, BigInt(NOT_RAM));
      rig.setCr0(rig.cr0() | CR0.SMMUEN.bits);
      expect(rig.read(0x305, 0x1000).r.fault).toBe('F_STE_FETCH');
      expect(rig.events()[0]!.fetchAddr).toBe(BigInt(split ? NOT_RAM + 3 * 8 : NOT_RAM + 0x305 * 64));
      // Failed fetches are not cached: the next access fetches again (5.2.1).
      const before = rig.stats[XSTAT.STE_FETCHES]!;
      rig.read(0x305, 0x1000);
      expect(rig.stats[XSTAT.STE_FETCHES]! - before).toBe(1);
    }
  });
});

describe('STE validity and Config (5.2, 5.2.2)', () => {
  test('V=0 is C_BAD_STE; Config 0b000..0b011 abort without an event', () => {
    const rig = new Rig();
    rig.writeSte(1, { v: false, config: 0b100 });
    expect(rig.read(1, 0x1000, { ssv: true, ssid: 9 }).r).toMatchObject({ ok: false, fault: 'C_BAD_STE' });
    expect(rig.events().map((e) => [e.name, e.sid, e.ssv, e.ssid])).toEqual([['C_BAD_STE', 1, 1, 9]]);
    for (let config = 0; config < 4; config++) {
      rig.writeSte(2 + config, { config });
      const r = rig.read(2 + config, 0x1000, { ssv: true, ssid: 1 }).r;
      expect(r).toMatchObject({ ok: false, fault: 'ABORT', event: 0 });
    }
    expect(rig.events()).toEqual([]);
  });

  test('Config=0b100 passes identity-mapped, checks the input against OAS and rejects SubstreamIDs', () => {
    const rig = new Rig();
    rig.writeSte(4, { config: 0b100 });
    const page = markedPage(rig, 0xcafe);
    expect(word(rig.read(4, page).buf)).toBe(0xcafe);
    expect(rig.read(4, 2 ** 48).r).toMatchObject({ ok: false, fault: 'F_ADDR_SIZE' });
    expect(rig.read(4, page, { ssv: true, ssid: 0x77 }).r).toMatchObject({ ok: false, fault: 'C_BAD_SUBSTREAMID' });
    const ev = rig.events();
    expect(ev[0]).toMatchObject({ name: 'F_ADDR_SIZE', sid: 4, s2: 0, cls: EVT_CLASS.IN, inputAddr: 2n ** 48n, rnw: 1 });
    // C_BAD_SUBSTREAMID has no SSV field; the SubstreamID is recorded (7.3.9).
    expect(ev[1]).toMatchObject({ name: 'C_BAD_SUBSTREAMID', sid: 4, ssv: 0, ssid: 0x77 });
  });

  // Each case: a base STE that works, plus one field that makes it ILLEGAL, with the reason expected.
  const illegal: { name: string; feat?: Partial<SmmuFeatures>; s2?: boolean; config: number; raw: [Field, number | bigint][]; why: RegExp }[] = [
    { name: 'stage 1 on a stage-2-only SMMU', feat: { stage1: false, hyp: false }, config: 0b101, raw: [], why: /needs stage 1/ },
    { name: 'stage 2 on a stage-1-only SMMU', feat: { stage2: false, hyp: false }, config: 0b110, raw: [], why: /needs stage 2/ },
    { name: 'S1STALLD=1 without stalls', config: 0b101, raw: [[STE.S1STALLD, 1]], why: /S1STALLD/ },
    { name: 'S1CDMax > SSIDSIZE (20)', config: 0b101, raw: [[STE.S1CDMAX, 21]], why: /S1CDMax=21 exceeds SSIDSIZE=20/ },
    { name: 'S1CDMax > SSIDSIZE (8, set with the feature)', feat: { ssidBits: 8 }, config: 0b101, raw: [[STE.S1CDMAX, 9]], why: /S1CDMax=9 exceeds SSIDSIZE=8/ },
    { name: '2-level CD table without CD2L', feat: { cd2l: false }, config: 0b101, raw: [[STE.S1CDMAX, 4], [STE.S1FMT, 1]], why: /CD2L/ },
    { name: 'S1ContextPtr beyond OAS', config: 0b101, raw: [[STE.S1CTXPTR, 2 ** 42]], why: /S1ContextPtr/ },
    { name: 'EATS=0b10 without nesting', config: 0b101, raw: [[STE.EATS, 2]], why: /EATS=0b10/ },
    { name: 'EATS=0b01 with S2S=1 at stage 2', s2: true, config: 0b110, raw: [[STE.EATS, 1], [STE.S2S, 1]], why: /EATS=0b01 with S2S/ },
    { name: 'STRW=0b01 (reserved)', config: 0b101, raw: [[STE.STRW, 1]], why: /STRW/ },
    { name: 'S2S=1 without stalls', s2: true, config: 0b110, raw: [[STE.S2S, 1]], why: /S2S=1/ },
    { name: 'S2AA64=0', s2: true, config: 0b110, raw: [[STE.S2AA64, 0]], why: /S2AA64/ },
    { name: 'S2HA=1 without HTTU', s2: true, config: 0b110, raw: [[STE.S2HA, 1]], why: /S2HA/ },
    { name: 'S2TG 64K (not walked)', s2: true, config: 0b110, raw: [[STE.S2TG, 1]], why: /S2TG/ },
    { name: 'S2T0SZ below 16', s2: true, config: 0b110, raw: [[STE.S2T0SZ, 15]], why: /S2T0SZ=15/ },
    { name: 'S2T0SZ above 39', s2: true, config: 0b110, raw: [[STE.S2T0SZ, 40]], why: /S2T0SZ=40/ },
    { name: 'S2SL0=3', s2: true, config: 0b110, raw: [[STE.S2SL0, 3]], why: /S2SL0=3/ },
    { name: 'S2SL0 inconsistent with S2T0SZ', s2: true, config: 0b110, raw: [[STE.S2SL0, 0]], why: /inconsistent/ },
    { name: 'S2TTB beyond S2PS', s2: true, config: 0b110, raw: [[STE.S2PS, 0], [STE.S2TTB, 2n ** 32n >> 4n]], why: /S2TTB/ },
    { name: 'S2ENDI=1 on a little-endian SMMU', s2: true, config: 0b110, raw: [[STE.S2ENDI, 1]], why: /S2ENDI/ },
    { name: 'S2VMID above 8 bits without VMID16', feat: { vmid16: false }, s2: true, config: 0b110, raw: [[STE.S2VMID, 0x100]], why: /VMID16/ },
  ];
  test.each(illegal)('ILLEGAL STE: $name -> C_BAD_STE', ({ feat, s2, config, raw, why }) => {
    const rig = new Rig({ features: feat ?? {} });
    const page = markedPage(rig, 0x5a5a);
    let ste: Parameters<Rig['writeSte']>[1];
    if (s2 || (config & 2)) {
      // Stage 2 identity over the first GiB of DRAM (a 1 GiB block at level 1; T0SZ=24, SL0=1).
      const pt = new PageTable(rig.mem, rig.pages, 2, 24, 1);
      pt.map(0x4000_0000, 0x4000_0000, 2 ** 30);
      ste = { config, s2: { ttb: pt.root } };
    } else {
      const { pt, cd } = rig.s1Stream(7);
      pt.map(0x1000, page);
      ste = { config, cdPtr: cd };
    }
    const addr = config & 1 ? 0x1000 : page;
    rig.writeSte(7, ste);
    const okBefore = rig.read(7, addr).r;
    rig.writeSte(7, { ...ste, raw });
    rig.cmd({ op: 'CFGI_STE', sid: 7, leaf: true });
    const r = rig.read(7, addr).r;
    expect(r).toMatchObject({ ok: false, fault: 'C_BAD_STE', event: 0x04 });
    expect(r.reason).toMatch(why);
    // The base STE translated, unless the configuration alone is what the feature set rules out.
    if (raw.length) expect(okBefore.ok).toBe(true);
    else expect(okBefore.fault).toBe('C_BAD_STE');
    expect(rig.events().map((e) => [e.name, e.sid])).toContainEqual(['C_BAD_STE', 7]);
  });
});

describe('SubstreamIDs, S1DSS and CD tables (5.2, 5.3, 7.3.7-7.3.11)', () => {
  /** Stream 9 with a linear table of 4 CDs; CD i maps IOVA 0x1000 to a page marked 0xc0 + i. */
  function fourCds(rig: Rig, s1dss: number) {
    const table = rig.alloc();
    for (let i = 0; i < 4; i++) {
      const pt = new PageTable(rig.mem, rig.pages, 1, 25);
      pt.map(0x1000, markedPage(rig, 0xc0 + i));
      rig.writeCd(table + i * 64, { asid: 10 + i, ttb0: pt.root });
    }
    rig.writeSte(9, { config: 0b101, cdPtr: table, cdMax: 2, s1dss });
    return table;
  }
  const marker = (rig: Rig, extra: object) => {
    const { r, buf } = rig.read(9, 0x1000, extra);
    return r.ok ? word(buf) : r.fault;
  };

  test('S1DSS: terminate, bypass, or use CD 0 for traffic without a SubstreamID', () => {
    const rig = new Rig();
    fourCds(rig, 0);
    expect(marker(rig, {})).toBe('F_STREAM_DISABLED');
    expect(marker(rig, { ssv: true, ssid: 2 })).toBe(0xc2);
    // F_STREAM_DISABLED records the StreamID only (7.3.7).
    expect(rig.events()).toMatchObject([{ name: 'F_STREAM_DISABLED', sid: 9, ssv: 0, ssid: 0 }]);

    fourCds(rig, 3); // reserved, behaves as terminate
    rig.cmd({ op: 'CFGI_STE', sid: 9, leaf: true });
    expect(marker(rig, {})).toBe('F_STREAM_DISABLED');

    fourCds(rig, 1); // bypass stage 1: the input address is output as is
    rig.cmd({ op: 'CFGI_STE', sid: 9, leaf: true });
    const page = markedPage(rig, 0xb1);
    expect(word(rig.read(9, page).buf)).toBe(0xb1);
    expect(marker(rig, { ssv: true, ssid: 1 })).toBe(0xc1);

    fourCds(rig, 2); // CD 0 for traffic without a SubstreamID; SubstreamID 0 itself is then disabled
    rig.cmd({ op: 'CFGI_STE', sid: 9, leaf: true });
    expect(marker(rig, {})).toBe(0xc0);
    expect(marker(rig, { ssv: true, ssid: 0 })).toBe('F_STREAM_DISABLED');
    expect(marker(rig, { ssv: true, ssid: 3 })).toBe(0xc3);
  });

  test('C_BAD_SUBSTREAMID: SubstreamID beyond S1CDMax, or given to a single-CD or stage-1-less stream', () => {
    const rig = new Rig();
    fourCds(rig, 0);
    expect(marker(rig, { ssv: true, ssid: 4 })).toBe('C_BAD_SUBSTREAMID');
    const { pt } = rig.s1Stream(10);
    pt.map(0x1000, markedPage(rig, 1));
    expect(rig.read(10, 0x1000).r.ok).toBe(true);
    expect(rig.read(10, 0x1000, { ssv: true, ssid: 1 }).r.fault).toBe('C_BAD_SUBSTREAMID');
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    rig.writeSte(11, { config: 0b110, s2: { ttb: s2.root } });
    expect(rig.read(11, 0x1000, { ssv: true, ssid: 2 }).r.fault).toBe('C_BAD_SUBSTREAMID');
    expect(rig.events().map((e) => [e.name, e.sid, e.ssv, e.ssid])).toEqual([
      ['C_BAD_SUBSTREAMID', 9, 0, 4],
      ['C_BAD_SUBSTREAMID', 10, 0, 1],
      ['C_BAD_SUBSTREAMID', 11, 0, 2],
    ]);
  });

  test('2-level CD tables with 4 KiB and 64 KiB leaves; L1CD V=0 and L2Ptr out of range are C_BAD_SUBSTREAMID', () => {
    const rig = new Rig();
    const page = markedPage(rig, 0xd00d);
    const pt = new PageTable(rig.mem, rig.pages, 1, 25);
    pt.map(0x1000, page);
    const cd = makeCd({ asid: 3, ttb0: pt.root });

    // S1Fmt=1: 64 CDs per 4 KiB leaf table; S1CDMax=8 gives 4 L1CDs.
    const l1 = rig.alloc();
    const leaf = rig.alloc();
    writeStruct(rig.mem, leaf + 6 * 64, cd); // SubstreamID 70 = L1 index 1, leaf index 6
    rig.writeSte(12, { config: 0b101, cdPtr: l1, cdMax: 8, s1fmt: 1 });
    expect(rig.read(12, 0x1000, { ssv: true, ssid: 70 }).r.fault).toBe('C_BAD_SUBSTREAMID');
    rig.mem.write64(l1 + 8, l1cd(leaf));
    // The invalid L1CD was cached: a leaf CFGI_CD keeps it; the non-leaf form drops it (4.3.3, 5.3.1).
    rig.cmd({ op: 'CFGI_CD', sid: 12, ssid: 70, leaf: true });
    expect(rig.read(12, 0x1000, { ssv: true, ssid: 70 }).r.fault).toBe('C_BAD_SUBSTREAMID');
    rig.cmd({ op: 'CFGI_CD', sid: 12, ssid: 70, leaf: false });
    expect(word(rig.read(12, 0x1000, { ssv: true, ssid: 70 }).buf)).toBe(0xd00d);
    rig.mem.write64(l1 + 16, l1cd(2 ** 48)); // L2Ptr beyond OAS
    expect(rig.read(12, 0x1000, { ssv: true, ssid: 130 }).r.fault).toBe('C_BAD_SUBSTREAMID');

    // S1Fmt=2: 1024 CDs per 64 KiB leaf; with S1CDMax=8 only L1CD 0 is used.
    const l1b = rig.alloc();
    const leaf64 = rig.alloc(16);
    writeStruct(rig.mem, leaf64 + 200 * 64, cd);
    rig.mem.write64(l1b, l1cd(leaf64 + 0x3000)); // L2Ptr[15:12] are treated as 0
    rig.writeSte(13, { config: 0b101, cdPtr: l1b, cdMax: 8, s1fmt: 2 });
    expect(word(rig.read(13, 0x1000, { ssv: true, ssid: 200 }).buf)).toBe(0xd00d);
    expect(rig.events().map((e) => [e.name, e.ssid])).toEqual([
      ['C_BAD_SUBSTREAMID', 70],
      ['C_BAD_SUBSTREAMID', 70],
      ['C_BAD_SUBSTREAMID', 130],
    ]);
  });

  test('CD and L1CD fetches outside RAM are F_CD_FETCH with the fetch address (7.3.10)', () => {
    const rig = new Rig();
    rig.writeSte(14, { config: 0b101, cdPtr: NOT_RAM });
    rig.writeSte(15, { config: 0b101, cdPtr: NOT_RAM, cdMax: 8, s1fmt: 1 });
    const l1 = rig.alloc();
    rig.mem.write64(l1, l1cd(NOT_RAM));
    rig.writeSte(16, { config: 0b101, cdPtr: l1, cdMax: 8, s1fmt: 1 });
    expect(rig.read(14, 0x1000).r.fault).toBe('F_CD_FETCH');
    expect(rig.read(15, 0x1000, { ssv: true, ssid: 200 }).r.fault).toBe('F_CD_FETCH');
    expect(rig.read(16, 0x1000, { ssv: true, ssid: 5 }).r.fault).toBe('F_CD_FETCH');
    expect(rig.events().map((e) => [e.name, e.sid, e.ssv, e.ssid, e.fetchAddr])).toEqual([
      ['F_CD_FETCH', 14, 0, 0, BigInt(NOT_RAM)],
      ['F_CD_FETCH', 15, 1, 200, BigInt(NOT_RAM + 3 * 8)],
      ['F_CD_FETCH', 16, 1, 5, BigInt(NOT_RAM + 5 * 64)],
    ]);
  });

  const badCds: { name: string; raw: [Field, number | bigint][]; feat?: Partial<SmmuFeatures>; why: RegExp }[] = [
    { name: 'V=0', raw: [[CD.V, 0]], why: /V=0/ },
    { name: 'A=0 with TERM_MODEL=1', raw: [[CD.A, 0]], why: /A=0/ },
    { name: 'S=1 without stalls', raw: [[CD.S, 1]], why: /S=1/ },
    { name: 'AA64=0', raw: [[CD.AA64, 0]], why: /AA64/ },
    { name: 'HA=1 without HTTU', raw: [[CD.HA, 1]], why: /HA\/HD/ },
    { name: 'HD=1 without HTTU', raw: [[CD.HD, 1]], why: /HA\/HD/ },
    { name: 'ENDI=1', raw: [[CD.ENDI, 1]], why: /ENDI/ },
    { name: 'T0SZ=15', raw: [[CD.T0SZ, 15]], why: /T0SZ=15/ },
    { name: 'T0SZ=40', raw: [[CD.T0SZ, 40]], why: /T0SZ=40/ },
    { name: 'TG0=64K', raw: [[CD.TG0, 1]], why: /TG0/ },
    { name: 'TTB0 beyond IPS', raw: [[CD.IPS, 0], [CD.TTB0, 2n ** 32n >> 4n]], why: /TTB0/ },
    { name: 'ASID above 8 bits without ASID16', feat: { asid16: false }, raw: [[CD.ASID, 0x100]], why: /ASID16/ },
    { name: 'TTB1 enabled with a reserved TG1', raw: [[CD.EPD1, 0], [CD.T1SZ, 25], [CD.TG1, 0]], why: /TG1/ },
    { name: 'TTB1 enabled with T1SZ out of range', raw: [[CD.EPD1, 0], [CD.T1SZ, 50], [CD.TG1, 2]], why: /T1SZ/ },
  ];
  test.each(badCds)('ILLEGAL CD: $name -> C_BAD_CD', ({ raw, feat, why }) => {
    const rig = new Rig({ features: feat ?? {} });
    const { pt, cd } = rig.s1Stream(17, { asid: 5 });
    pt.map(0x1000, markedPage(rig, 1));
    expect(rig.read(17, 0x1000).r.ok).toBe(true);
    rig.writeCd(cd, { asid: 5, ttb0: pt.root, raw });
    rig.cmd({ op: 'CFGI_CD', sid: 17, ssid: 0, leaf: true });
    const r = rig.read(17, 0x1000, {}).r;
    expect(r).toMatchObject({ ok: false, fault: 'C_BAD_CD', event: 0x0a });
    expect(r.reason).toMatch(why);
    expect(rig.events()).toMatchObject([{ name: 'C_BAD_CD', sid: 17, ssv: 0 }]);
  });

  test('EPD0=1 suppresses the TTB0 checks: the CD is legal and a TTB0 walk is a Translation fault', () => {
    const rig = new Rig();
    const { cd } = rig.s1Stream(18);
    rig.writeCd(cd, { ttb0: 0, epd0: true, raw: [[CD.T0SZ, 0]] });
    expect(rig.read(18, 0x1000).r).toMatchObject({ ok: false, fault: 'F_TRANSLATION' });
  });
});

describe('SMMUEN=0 (6.3.9, 6.3.14, 3.21.1)', () => {
  test('GBPA decides between bypass and abort; nothing is fetched or cached', () => {
    const rig = new Rig({ smmuen: false });
    const { pt } = rig.s1Stream(1);
    const page = markedPage(rig, 0xb0b);
    pt.map(0x1000, page);
    expect(word(rig.read(1, page).buf)).toBe(0xb0b); // bypass: the IOVA is the PA
    expect(rig.read(1, 2 ** 48).r).toMatchObject({ ok: false, fault: 'ABORT', event: 0 });
    rig.setGbpa(true);
    expect(rig.read(1, page).r).toMatchObject({ ok: false, fault: 'ABORT', event: 0 });
    expect(rig.stats[XSTAT.STE_FETCHES]).toBe(0);
    expect(rig.stats[XSTAT.TRANSLATIONS]).toBe(0);
    expect(rig.smmu.configCache.size).toEqual({ ste: 0, l1std: 0, cd: 0 });
    expect(rig.smmu.tlb.size).toEqual({ leaf: 0, walk: 0 });
    expect(rig.events()).toEqual([]);
    // Enabled, the same access is translated.
    rig.setCr0(rig.cr0() | CR0.SMMUEN.bits);
    expect(word(rig.read(1, 0x1000).buf)).toBe(0xb0b);
  });
});
