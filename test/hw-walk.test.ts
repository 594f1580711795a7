// Translation table walks (IHI 0070 3.4, 3.13, 5.2, 5.4, 7.3.12-7.3.16; VMSAv8-64 4 KiB granule):
// start levels, blocks, access flag, permissions, address sizes, walk aborts, stage 2 and nested
// walks with the fault records they produce, and a property test against a reference map.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { Rig } from './helpers/rig.ts';
import { PageTable, tableDesc } from './helpers/tables.ts';
import { XSTAT } from '../src/machine/layout.ts';
import { EVT_CLASS } from '../src/arch/smmu/events.ts';
import { PTE } from '../src/arch/smmu/pte.ts';

const NOT_RAM = 0x8000_0000;

function markedPage(rig: Rig, marker: number): number {
  const p = rig.alloc();
  rig.mem.write32(p, marker);
  return p;
}

function word(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset).getUint32(0, true);
}

/** Sets or clears bits of the descriptor at pa. */
function patch(rig: Rig, pa: number, set: bigint, clear = 0n): void {
  rig.mem.write64(pa, (rig.mem.read64(pa) & ~clear) | set);
}

describe('stage 1 walk (VMSAv8-64, 4 KiB granule)', () => {
  test.each([
    [16, 4],
    [25, 3],
    [34, 2],
    [39, 2],
  ])('T0SZ=%i: the walk reads %i levels; the last page of the range translates, the next address faults', (t0sz, levels) => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(1, { t0sz });
    const top = 2 ** (64 - t0sz);
    pt.map(top - 4096, markedPage(rig, 0x70f));
    const before = rig.stats[XSTAT.DESC_READS]!;
    expect(word(rig.read(1, top - 4096).buf)).toBe(0x70f);
    expect(rig.stats[XSTAT.DESC_READS]! - before).toBe(levels);
    expect(rig.read(1, top).r).toMatchObject({ ok: false, fault: 'F_TRANSLATION' });
    expect(rig.events()).toMatchObject([{ name: 'F_TRANSLATION', sid: 1, inputAddr: BigInt(top), rnw: 1, s2: 0, cls: EVT_CLASS.IN }]);
  });

  test('2 MiB and 1 GiB blocks translate with the offset inside the block', () => {
    const rig = new Rig({ memBytes: 64 << 20 });
    const { pt } = rig.s1Stream(1);
    const block = rig.alloc(512); // 2 MiB, naturally aligned
    rig.mem.write32(block + 0x12345 * 4, 0xb10c);
    pt.map(0x20_0000, block, 2 ** 21);
    expect(word(rig.read(1, 0x20_0000 + 0x12345 * 4).buf)).toBe(0xb10c);
    // A 1 GiB block mapping the GiB that holds DRAM.
    pt.map(0x4000_0000, 0x4000_0000, 2 ** 30);
    expect(word(rig.read(1, block + 0x12345 * 4).buf)).toBe(0xb10c);
  });

  test('invalid descriptors, a level 0 block and a level 3 block encoding are Translation faults with the access attributes', () => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(2, { t0sz: 16 });
    const at = pt.map(0x1000, markedPage(rig, 1));
    rig.write(2, 0x5000, new Uint8Array(4), { priv: true });
    patch(rig, at, 0n, BigInt(PTE.TABLE.bits)); // level 3 with bit 1 clear is reserved
    rig.read(2, 0x1000, { instr: true });
    const l0 = pt.descAddr(2 ** 40, 0)!;
    rig.mem.write64(l0, pt.leaf(0x4000_0000, 1)); // a block encoding at level 0
    rig.read(2, 2 ** 40);
    expect(rig.events().map((e) => [e.name, e.inputAddr, e.rnw, e.pnu, e.ind])).toEqual([
      ['F_TRANSLATION', 0x5000n, 0, 1, 0],
      ['F_TRANSLATION', 0x1000n, 1, 0, 1],
      ['F_TRANSLATION', 2n ** 40n, 1, 0, 0],
    ]);
  });

  test('AF=0 is an Access fault unless CD.AFFD; such entries are not cached', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(3);
    const page = markedPage(rig, 0xaf);
    const at = pt.map(0x1000, page, 4096, { af: false });
    expect(rig.read(3, 0x1000).r).toMatchObject({ ok: false, fault: 'F_ACCESS' });
    expect(rig.events()).toMatchObject([{ name: 'F_ACCESS', s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x1000n }]);
    patch(rig, at, PTE.AF.set64(0n, 1)); // no TLBI: the faulting translation was never cached
    expect(word(rig.read(3, 0x1000).buf)).toBe(0xaf);
    patch(rig, at, 0n, PTE.AF.set64(0n, 1));
    rig.writeCd(cd, { asid: 1, ttb0: pt.root, affd: true });
    rig.cmd({ op: 'CFGI_CD', sid: 3, ssid: 0, leaf: true }, { op: 'TLBI_NH_ALL', vmid: 0 });
    expect(word(rig.read(3, 0x1000).buf)).toBe(0xaf);
  });

  // [description, leaf attributes, table attributes (APTable, UXNTable, PXNTable), CD flags, access, allowed]
  type Acc = { write?: boolean; instr?: boolean; priv?: boolean };
  const perms: [string, { ap: number; uxn?: boolean; pxn?: boolean }, { apt?: number; uxnt?: boolean; pxnt?: boolean }, { wxn?: boolean; pan?: boolean; had0?: boolean }, Acc, boolean][] = [
    ['AP=00 privileged read', { ap: 0 }, {}, {}, { priv: true }, true],
    ['AP=00 privileged write', { ap: 0 }, {}, {}, { priv: true, write: true }, true],
    ['AP=00 unprivileged read', { ap: 0 }, {}, {}, {}, false],
    ['AP=01 unprivileged write', { ap: 1 }, {}, {}, { write: true }, true],
    ['AP=01 privileged execute (EL0-writable is PXN)', { ap: 1 }, {}, {}, { priv: true, instr: true }, false],
    ['AP=01 unprivileged execute', { ap: 1 }, {}, {}, { instr: true }, true],
    ['AP=10 privileged write', { ap: 2 }, {}, {}, { priv: true, write: true }, false],
    ['AP=10 unprivileged read', { ap: 2 }, {}, {}, {}, false],
    ['AP=11 unprivileged read', { ap: 3 }, {}, {}, {}, true],
    ['AP=11 unprivileged write', { ap: 3 }, {}, {}, { write: true }, false],
    ['AP=11 privileged execute', { ap: 3 }, {}, {}, { priv: true, instr: true }, true],
    ['UXN unprivileged execute', { ap: 3, uxn: true }, {}, {}, { instr: true }, false],
    ['UXN privileged execute', { ap: 3, uxn: true }, {}, {}, { priv: true, instr: true }, true],
    ['PXN privileged execute', { ap: 3, pxn: true }, {}, {}, { priv: true, instr: true }, false],
    ['WXN privileged execute of a writable page', { ap: 0 }, {}, { wxn: true }, { priv: true, instr: true }, false],
    ['WXN privileged execute of a read-only page', { ap: 2 }, {}, { wxn: true }, { priv: true, instr: true }, true],
    ['PAN privileged read of an EL0 page', { ap: 1 }, {}, { pan: true }, { priv: true }, false],
    ['PAN privileged read of a privileged page', { ap: 0 }, {}, { pan: true }, { priv: true }, true],
    ['PAN privileged execute of an EL0 read-only page', { ap: 3 }, {}, { pan: true }, { priv: true, instr: true }, true],
    ['APTable read-only limits a writable page', { ap: 0 }, { apt: 2 }, {}, { priv: true, write: true }, false],
    ['APTable no-EL0 limits an EL0 page', { ap: 1 }, { apt: 1 }, {}, {}, false],
    ['HAD0 ignores APTable', { ap: 0 }, { apt: 2 }, { had0: true }, { priv: true, write: true }, true],
    ['UXNTable', { ap: 1 }, { uxnt: true }, {}, { instr: true }, false],
    ['PXNTable', { ap: 3 }, { pxnt: true }, {}, { priv: true, instr: true }, false],
  ];
  test.each(perms)('permissions: %s', (_name, leaf, table, cdf, acc, allowed) => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(4, { t0sz: 25 });
    pt.map(0x1000, markedPage(rig, 0x9e), 4096, leaf);
    rig.writeCd(cd, { asid: 1, ttb0: pt.root, ...cdf });
    // Table attributes on the level 2 table descriptor.
    const l2 = pt.descAddr(0x1000, 2)!;
    let set = 0n;
    if (table.apt) set = PTE.AP_TABLE.set64(set, table.apt);
    if (table.uxnt) set = PTE.UXN_TABLE.set64(set, 1);
    if (table.pxnt) set = PTE.PXN_TABLE.set64(set, 1);
    patch(rig, l2, set);
    const r = acc.write ? rig.write(4, 0x1000, new Uint8Array(4), acc).r : rig.read(4, 0x1000, acc).r;
    expect(r.ok).toBe(allowed);
    const ev = rig.events();
    if (allowed) expect(ev).toEqual([]);
    else {
      expect(ev).toMatchObject([{ name: 'F_PERMISSION', s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x1000n, rnw: acc.write ? 0 : 1, pnu: acc.priv ? 1 : 0, ind: acc.instr ? 1 : 0 }]);
    }
  });

  test('STE PRIVCFG/INSTCFG override the incoming attributes; the record shows the result', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(5);
    pt.map(0x1000, markedPage(rig, 1), 4096, { ap: 0, uxn: true });
    expect(rig.read(5, 0x1000).r.fault).toBe('F_PERMISSION');
    rig.writeSte(5, { config: 0b101, cdPtr: cd, privcfg: 3 }); // privileged
    rig.cmd({ op: 'CFGI_STE', sid: 5, leaf: true });
    expect(rig.read(5, 0x1000).r.ok).toBe(true);
    rig.writeSte(5, { config: 0b101, cdPtr: cd, privcfg: 2, instcfg: 3 }); // unprivileged instruction reads
    rig.cmd({ op: 'CFGI_STE', sid: 5, leaf: true });
    expect(rig.read(5, 0x1000, { priv: true }).r.fault).toBe('F_PERMISSION');
    expect(rig.write(5, 0x1000, new Uint8Array(4), { priv: true }).r.fault).toBe('F_PERMISSION'); // AP=00 needs privilege
    expect(rig.events().map((e) => [e.pnu, e.ind, e.rnw])).toEqual([
      [0, 0, 1],
      [0, 1, 1],
      [0, 0, 0], // INSTCFG affects reads only
    ]);
  });

  test('outputs and table addresses beyond the effective IPS are Address Size faults', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(6);
    rig.writeCd(cd, { asid: 1, ttb0: pt.root, ips: 0 }); // 32 bits
    pt.map(0x1000, 0x1_0000_0000);
    pt.map(0x4000_0000, markedPage(rig, 0x32));
    const l2 = pt.descAddr(0x8000_0000, 1)!;
    rig.mem.write64(l2, tableDesc(0x2_0000_0000));
    expect(rig.read(6, 0x1000).r.fault).toBe('F_ADDR_SIZE');
    expect(rig.read(6, 0x8000_0000).r.fault).toBe('F_ADDR_SIZE');
    expect(word(rig.read(6, 0x4000_0000).buf)).toBe(0x32);
    expect(rig.events()).toMatchObject([
      { name: 'F_ADDR_SIZE', s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x1000n },
      { name: 'F_ADDR_SIZE', s2: 0, cls: EVT_CLASS.IN, inputAddr: 0x8000_0000n },
    ]);
  });

  test('a descriptor fetch outside RAM is F_WALK_EABT (CLASS=TT, FetchAddr), recorded even with CD.R=0', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(7);
    rig.writeCd(cd, { asid: 1, ttb0: pt.root, r: false });
    const l1 = pt.descAddr(0x4000_0000, 1)!;
    rig.mem.write64(l1, tableDesc(NOT_RAM));
    expect(rig.read(7, 0x4000_0000 + 5 * 2 ** 21).r).toMatchObject({ ok: false, fault: 'F_WALK_EABT', event: 0x0b });
    expect(rig.events()).toMatchObject([{ name: 'F_WALK_EABT', sid: 7, s2: 0, cls: EVT_CLASS.TT, fetchAddr: BigInt(NOT_RAM + 5 * 8), inputAddr: BigInt(0x4000_0000 + 5 * 2 ** 21) }]);
    // CD.R=0: translation faults terminate without a record (5.5).
    expect(rig.read(7, 0x1000).r).toMatchObject({ ok: false, fault: 'F_TRANSLATION', event: 0 });
    expect(rig.events()).toEqual([]);
  });

  test('EPD0=1: a TTB0 walk faults, an IOTLB hit still translates (5.4 EPD0)', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(8);
    pt.map(0x1000, markedPage(rig, 0xe0));
    pt.map(0x2000, markedPage(rig, 0xe1));
    expect(word(rig.read(8, 0x1000).buf)).toBe(0xe0);
    rig.writeCd(cd, { asid: 1, ttb0: pt.root, epd0: true });
    rig.cmd({ op: 'CFGI_CD', sid: 8, ssid: 0, leaf: true });
    expect(word(rig.read(8, 0x1000).buf)).toBe(0xe0);
    expect(rig.read(8, 0x2000).r.fault).toBe('F_TRANSLATION');
  });
});

describe('stage 2 walk (Config=0b110)', () => {
  function s2Stream(rig: Rig, sid: number, o: { t0sz?: number; sl0?: number; start?: number; ps?: number; r?: boolean; affd?: boolean } = {}) {
    const t0sz = o.t0sz ?? 24;
    const pt = new PageTable(rig.mem, rig.pages, 2, t0sz, o.start ?? 1);
    rig.writeSte(sid, { config: 0b110, vmid: 3, s2: { ttb: pt.root, t0sz, sl0: o.sl0 ?? 1, ps: o.ps ?? 5, r: o.r ?? true, affd: o.affd ?? false } });
    return pt;
  }

  test('concatenated start-level tables (S2T0SZ=24, S2SL0=1) and a level 0 start (S2T0SZ=16, S2SL0=2)', () => {
    const rig = new Rig();
    const pt = s2Stream(rig, 1);
    pt.map(2 ** 39 + 0x1000, markedPage(rig, 0x52)); // in the second of two concatenated tables
    expect(word(rig.read(1, 2 ** 39 + 0x1000).buf)).toBe(0x52);
    const pt0 = s2Stream(rig, 2, { t0sz: 16, sl0: 2, start: 0 });
    pt0.map(2 ** 47 + 0x3000, markedPage(rig, 0x53));
    const before = rig.stats[XSTAT.DESC_READS]!;
    expect(word(rig.read(2, 2 ** 47 + 0x3000).buf)).toBe(0x53);
    expect(rig.stats[XSTAT.DESC_READS]! - before).toBe(4);
  });

  test('stage 2 faults carry S2=1, CLASS=IN and the IPA; S2R=0 silences them but not walk aborts', () => {
    const rig = new Rig();
    const pt = s2Stream(rig, 1, { ps: 0 });
    pt.map(0x1000, markedPage(rig, 1), 4096, { s2ap: 0b01 }); // read-only
    pt.map(0x2000, markedPage(rig, 2), 4096, { s2ap: 0b10 }); // write-only
    pt.map(0x3000, markedPage(rig, 3), 4096, { af: false });
    pt.map(0x4000, markedPage(rig, 4), 4096, { xn: true });
    pt.map(0x5000, 0x1_0000_0000); // beyond the 32-bit S2PS
    rig.mem.write64(pt.descAddr(0x4000_0000, 2)!, tableDesc(NOT_RAM));
    const cases: [string, () => unknown][] = [
      ['F_TRANSLATION', () => rig.read(1, 0x9000)],
      ['F_TRANSLATION', () => rig.read(1, 2 ** 40)],
      ['F_PERMISSION', () => rig.write(1, 0x1000, new Uint8Array(4))],
      ['F_PERMISSION', () => rig.read(1, 0x2000)],
      ['F_ACCESS', () => rig.read(1, 0x3000)],
      ['F_PERMISSION', () => rig.read(1, 0x4000, { instr: true })],
      ['F_ADDR_SIZE', () => rig.read(1, 0x5000)],
      ['F_WALK_EABT', () => rig.read(1, 0x4000_0000 + 0x7000)],
    ];
    for (const [, run] of cases) run();
    const ev = rig.events();
    expect(ev.map((e) => e.name)).toEqual(cases.map(([n]) => n));
    const ipas = [0x9000n, 2n ** 40n, 0x1000n, 0x2000n, 0x3000n, 0x4000n, 0x5000n, 0x4000_7000n];
    ev.forEach((e, i) => {
      expect(e).toMatchObject({ sid: 1, s2: 1, cls: EVT_CLASS.IN, inputAddr: ipas[i] });
      if (e.name !== 'F_WALK_EABT') expect(e.ipa).toBe(ipas[i]! & ~0xfffn);
    });
    expect(ev[7]!.fetchAddr).toBe(BigInt(NOT_RAM + 7 * 8));
    expect(rig.read(1, 0x1000).r.ok).toBe(true); // read-only page reads
    // Stage 1 is bypassed: an input beyond IAS is a stage 1 Address Size fault (3.4).
    expect(rig.read(1, 2 ** 48).r.fault).toBe('F_ADDR_SIZE');
    expect(rig.events()).toMatchObject([{ name: 'F_ADDR_SIZE', s2: 0, cls: EVT_CLASS.IN }]);

    const quiet = new Rig();
    const q = s2Stream(quiet, 2, { r: false, affd: true });
    q.map(0x3000, markedPage(quiet, 0x33), 4096, { af: false });
    expect(word(quiet.read(2, 0x3000).buf)).toBe(0x33); // S2AFFD
    quiet.read(2, 0x9000);
    quiet.mem.write64(q.descAddr(0x4000_0000, 2)!, tableDesc(NOT_RAM));
    quiet.read(2, 0x4000_0000);
    expect(quiet.events().map((e) => e.name)).toEqual(['F_WALK_EABT']);
  });
});

describe('nested (Config=0b111): stage 1 tables and CDs at IPAs', () => {
  const IPA_OFF = 2 ** 36;
  function nested(rig: Rig, sid: number, o: { ptw?: boolean; r?: boolean } = {}) {
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    const s2map = (pa: number, a = {}) => s2.map(pa + IPA_OFF, pa, 4096, a);
    const ipa = { of: (pa: number) => (s2map(pa), pa + IPA_OFF), pa: (i: number) => i - IPA_OFF };
    const s1 = new PageTable(rig.mem, rig.pages, 1, 25, undefined, ipa);
    s2map(s1.root);
    const cd = rig.alloc();
    s2map(cd);
    rig.writeCd(cd, { asid: 4, ttb0: s1.root + IPA_OFF });
    // One VMID per stream: stage 2 translations are shared by every STE with the same S2VMID (5.2.1).
    rig.writeSte(sid, { config: 0b111, vmid: 8 + sid, cdPtr: cd + IPA_OFF, s2: { ttb: s2.root, ptw: o.ptw ?? false, r: o.r ?? true } });
    return { s1, s2, s2map, cd };
  }

  test('translates VA -> IPA -> PA and caches the combined translation', () => {
    const rig = new Rig();
    const { s1, s2map } = nested(rig, 1);
    const page = markedPage(rig, 0x4e5);
    s1.map(0x7000, page + IPA_OFF);
    s2map(page);
    expect(word(rig.read(1, 0x7000).buf)).toBe(0x4e5);
    const reads = rig.stats[XSTAT.DESC_READS]!;
    const hits = rig.stats[XSTAT.IOTLB_HITS]!;
    expect(word(rig.read(1, 0x7000).buf)).toBe(0x4e5);
    expect(rig.stats[XSTAT.DESC_READS]).toBe(reads);
    expect(rig.stats[XSTAT.IOTLB_HITS]! - hits).toBe(1);
  });

  test('stage 2 faults on the CD fetch (CLASS=CD), a stage 1 table fetch (CLASS=TT, TTRnW) and the output (CLASS=IN)', () => {
    const rig = new Rig();
    // CD IPA not mapped at stage 2.
    const a = nested(rig, 1);
    rig.writeSte(1, { config: 0b111, vmid: 9, cdPtr: a.cd + IPA_OFF + 0x100_0000, s2: { ttb: a.s2.root } });
    rig.cmd({ op: 'CFGI_STE', sid: 1, leaf: true });
    expect(rig.read(1, 0x1000).r.fault).toBe('F_TRANSLATION');
    // Stage 1 level 2 table page readable only without S2 read permission.
    const b = nested(rig, 2);
    const page = markedPage(rig, 1);
    b.s1.map(0x1000, page + IPA_OFF);
    const l3 = Math.floor(b.s1.descAddr(0x1000, 3)! / 4096) * 4096;
    b.s2map(l3, { s2ap: 0b10 });
    expect(rig.read(2, 0x1000).r.fault).toBe('F_PERMISSION');
    // The output IPA not mapped at stage 2.
    const c = nested(rig, 3);
    c.s1.map(0x1000, 0x10_0000 + IPA_OFF);
    expect(rig.read(3, 0x1000).r.fault).toBe('F_TRANSLATION');
    const ev = rig.events();
    expect(ev).toMatchObject([
      { name: 'F_TRANSLATION', sid: 1, s2: 1, cls: EVT_CLASS.CD, ipa: BigInt(a.cd + IPA_OFF + 0x100_0000), inputAddr: 0x1000n },
      { name: 'F_PERMISSION', sid: 2, s2: 1, cls: EVT_CLASS.TT, ttrnw: 1, ipa: BigInt(l3 + IPA_OFF) },
      { name: 'F_TRANSLATION', sid: 3, s2: 1, cls: EVT_CLASS.IN, ipa: BigInt(0x10_0000 + IPA_OFF) },
    ]);
  });

  test('S2PTW: a stage 1 table in Device memory at stage 2 is a stage 2 Permission fault', () => {
    const rig = new Rig();
    const { s1, s2map } = nested(rig, 1, { ptw: true });
    const page = markedPage(rig, 1);
    s1.map(0x1000, page + IPA_OFF);
    s2map(page);
    const l3 = Math.floor(s1.descAddr(0x1000, 3)! / 4096) * 4096;
    s2map(l3, { memattr: 0x1 }); // Device-nGnRE
    expect(rig.read(1, 0x1000).r.fault).toBe('F_PERMISSION');
    expect(rig.events()).toMatchObject([{ name: 'F_PERMISSION', s2: 1, cls: EVT_CLASS.TT }]);
  });

  test('stage 1 faults follow CD.R and stage 2 faults STE.S2R', () => {
    const rig = new Rig();
    const { s1 } = nested(rig, 1, { r: false });
    s1.map(0x1000, 0x10_0000 + IPA_OFF); // IPA unmapped at stage 2
    expect(rig.read(1, 0x1000).r).toMatchObject({ fault: 'F_TRANSLATION', event: 0 });
    expect(rig.read(1, 0x9000).r).toMatchObject({ fault: 'F_TRANSLATION', event: 0x10 }); // stage 1, CD.R=1
    expect(rig.events()).toMatchObject([{ name: 'F_TRANSLATION', s2: 0 }]);
  });
});

describe('property: translation matches a reference map for random mappings', () => {
  test('random pages and 2 MiB blocks, random probes: data lands where the reference says, or F_TRANSLATION', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.boolean(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 24 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 511 })), { minLength: 1, maxLength: 24 }),
        (maps, probes) => {
          const rig = new Rig({ memBytes: 64 << 20 });
          const { pt } = rig.s1Stream(1, { t0sz: 25 });
          // Reference: 2 MiB slot -> { page index -> PA } or a whole-block PA.
          const ref = new Map<number, { block?: number; pages: Map<number, number> }>();
          const blocks = [rig.alloc(512), rig.alloc(512)];
          for (const [slot, isBlock, which] of maps) {
            const va = slot * 2 ** 21;
            const cur = ref.get(slot);
            if (isBlock) {
              if (cur) continue; // something maps there already
              pt.map(va, blocks[which & 1]!, 2 ** 21);
              ref.set(slot, { block: blocks[which & 1]!, pages: new Map() });
            } else {
              if (cur?.block !== undefined) continue;
              const page = which * 8 + slot; // several VAs may share a page
              const pa = rig.pages.alloc(1);
              const e = cur ?? { pages: new Map<number, number>() };
              const idx = page % 512;
              if (e.pages.has(idx)) continue;
              pt.map(va + idx * 4096, pa);
              e.pages.set(idx, pa);
              ref.set(slot, e);
            }
          }
          let n = 0;
          for (const [slot, idx] of probes) {
            const va = slot * 2 ** 21 + idx * 4096 + 8;
            const e = ref.get(slot);
            const pa = e?.block !== undefined ? e.block + idx * 4096 + 8 : e?.pages.has(idx) ? e.pages.get(idx)! + 8 : null;
            const tag = (0x1000_0000 + n++) >>> 0;
            const data = new Uint8Array(4);
            new DataView(data.buffer).setUint32(0, tag, true);
            const r = rig.write(1, va, data).r;
            if (pa === null) {
              expect(r).toMatchObject({ ok: false, fault: 'F_TRANSLATION' });
            } else {
              expect(r.ok).toBe(true);
              expect(rig.mem.read32(pa)).toBe(tag);
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
