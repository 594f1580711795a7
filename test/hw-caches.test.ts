// The SMMU's caches hold until the matching invalidation (IHI 0070 3.21, 4.3, 4.4, 5.1.1, 5.2.1,
// 5.4.1): a driver that forgets a CFGI/TLBI, or frees a table page after a leaf-only TLBI, sees the old
// configuration or translation, exactly as on hardware; the right command makes the change visible.

import { describe, expect, test } from 'vitest';
import { Rig } from './helpers/rig.ts';
import { PageTable, makeSte, writeStruct } from './helpers/tables.ts';
import { XSTAT } from '../src/machine/layout.ts';
import { CR2 } from '../src/arch/smmu/regs.ts';
import { PTE } from '../src/arch/smmu/pte.ts';
import type { CmdEnt, TlbiRange } from '../drivers/arm-smmu-v3/cmds.ts';

function markedPage(rig: Rig, marker: number): number {
  const p = rig.alloc();
  rig.mem.write32(p, marker);
  return p;
}

/** What a read of `addr` by `sid` sees: the marker word, or the fault. */
function sees(rig: Rig, sid: number, addr: number, extra = {}): number | string {
  const { r, buf } = rig.read(sid, addr, extra);
  return r.ok ? new DataView(buf.buffer).getUint32(0, true) : r.fault!;
}

const tlbi = (o: Partial<TlbiRange> & { addr: number }): TlbiRange => ({ asid: 0, vmid: 0, leaf: false, num: 0, scale: 0, tg: 0, ttl: 0, ...o });

describe('configuration cache (CFGI_*)', () => {
  test('an STE change is invisible until CFGI_STE, CFGI_STE_RANGE covering it, or CFGI_ALL', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(5);
    pt.map(0x1000, markedPage(rig, 0xa));
    const inv: [CmdEnt, boolean][] = [
      [{ op: 'CFGI_STE', sid: 4, leaf: true }, false],
      [{ op: 'CFGI_STE_RANGE', sid: 8, range: 1 }, false], // 8..11
      [{ op: 'CFGI_STE', sid: 5, leaf: true }, true],
      [{ op: 'CFGI_STE_RANGE', sid: 7, range: 1 }, true], // aligned block 4..7
      [{ op: 'CFGI_ALL' }, true],
    ];
    for (const [cmd, effective] of inv) {
      rig.writeSte(5, { config: 0b101, cdPtr: cd });
      rig.cmd({ op: 'CFGI_ALL' });
      expect(sees(rig, 5, 0x1000)).toBe(0xa);
      rig.writeSte(5, { config: 0b000 }); // abort
      expect(sees(rig, 5, 0x1000)).toBe(0xa); // stale STE still translates
      rig.cmd(cmd);
      expect([cmd, sees(rig, 5, 0x1000)]).toEqual([cmd, effective ? 'ABORT' : 0xa]);
    }
  });

  test('an L1STD change needs the non-leaf CFGI_STE (5.1.1)', () => {
    const rig = new Rig({ strtab: { log2size: 16, split: 8 } });
    const page = markedPage(rig, 0x11);
    const a = rig.installL2(1, 9);
    writeStruct(rig.mem, a + 5 * 64, makeSte({ config: 0b100 }));
    expect(sees(rig, 0x105, page)).toBe(0x11);
    const b = rig.installL2(1, 9); // a new L2 array whose STE 5 aborts
    writeStruct(rig.mem, b + 5 * 64, makeSte({ config: 0b000 }));
    rig.cmd({ op: 'CFGI_STE', sid: 0x105, leaf: true });
    expect(sees(rig, 0x105, page)).toBe(0x11); // STE re-fetched through the cached L1STD, from array a
    rig.cmd({ op: 'CFGI_STE', sid: 0x105, leaf: false });
    expect(sees(rig, 0x105, page)).toBe('ABORT');
  });

  test('a CD change needs CFGI_CD / CFGI_CD_ALL / CFGI_STE; TLB-cached CD fields also need a TLBI (5.4.1)', () => {
    const rig = new Rig();
    const { pt, cd } = rig.s1Stream(6, { asid: 1 });
    pt.map(0x1000, markedPage(rig, 0xa));
    const other = new PageTable(rig.mem, rig.pages, 1, 25);
    other.map(0x1000, markedPage(rig, 0xb));
    expect(sees(rig, 6, 0x1000)).toBe(0xa);

    // New TTB0, same ASID: the CD is stale until CFGI_CD, then the IOTLB until a TLBI for the ASID.
    rig.writeCd(cd, { asid: 1, ttb0: other.root });
    expect(sees(rig, 6, 0x1000)).toBe(0xa);
    rig.cmd({ op: 'CFGI_CD', sid: 6, ssid: 0, leaf: true });
    expect(sees(rig, 6, 0x1000)).toBe(0xa);
    rig.cmd({ op: 'TLBI_NH_ASID', asid: 1, vmid: 0 });
    expect(sees(rig, 6, 0x1000)).toBe(0xb);

    // A new ASID makes a new TLB tag: only the CD invalidation matters.
    for (const cmd of [{ op: 'CFGI_CD_ALL', sid: 6 }, { op: 'CFGI_STE', sid: 6, leaf: true }] as CmdEnt[]) {
      const back = { asid: 1, ttb0: pt.root };
      rig.writeCd(cd, back);
      rig.cmd({ op: 'CFGI_CD', sid: 6, ssid: 0, leaf: true }, { op: 'TLBI_NH_ALL', vmid: 0 });
      expect(sees(rig, 6, 0x1000)).toBe(0xa);
      rig.writeCd(cd, { asid: 2, ttb0: other.root });
      expect(sees(rig, 6, 0x1000)).toBe(0xa);
      rig.cmd(cmd);
      expect(sees(rig, 6, 0x1000)).toBe(0xb);
    }
  });
});

describe('IOTLB (TLBI_*)', () => {
  /** Stream 7 (ASID 3, VMID 0): VA 0x1000 -> page 0xa; returns a function remapping it to page 0xb. */
  function stale(rig: Rig, o: { ng?: boolean } = {}) {
    const { pt } = rig.s1Stream(7, { asid: 3 });
    pt.map(0x1000, markedPage(rig, 0xa), 4096, { ng: o.ng ?? true });
    const b = markedPage(rig, 0xb);
    expect(sees(rig, 7, 0x1000)).toBe(0xa);
    pt.map(0x1000, b, 4096, { ng: o.ng ?? true });
    expect(sees(rig, 7, 0x1000)).toBe(0xa); // the PTE changed, the IOTLB did not
  }

  const cases: [string, CmdEnt, boolean, { ng?: boolean }?][] = [
    ['NH_VA of the address', { op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 3, addr: 0x1000, leaf: true }) }, true],
    ['NH_VA of another address', { op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 3, addr: 0x2000 }) }, false],
    ['NH_VA of another ASID', { op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 4, addr: 0x1000 }) }, false],
    ['NH_VA of another ASID, global entry', { op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 4, addr: 0x1000 }) }, true, { ng: false }],
    ['NH_VAA', { op: 'TLBI_NH_VAA', tlbi: tlbi({ addr: 0x1000 }) }, true],
    ['NH_VAA of another VMID', { op: 'TLBI_NH_VAA', tlbi: tlbi({ vmid: 1, addr: 0x1000 }) }, false],
    ['NH_ASID', { op: 'TLBI_NH_ASID', asid: 3, vmid: 0 }, true],
    ['NH_ASID, global entry', { op: 'TLBI_NH_ASID', asid: 3, vmid: 0 }, false, { ng: false }],
    ['NH_ALL', { op: 'TLBI_NH_ALL', vmid: 0 }, true],
    ['NH_ALL of another VMID', { op: 'TLBI_NH_ALL', vmid: 2 }, false],
    ['NSNH_ALL', { op: 'TLBI_NSNH_ALL' }, true],
    ['S12_VMALL', { op: 'TLBI_S12_VMALL', vmid: 0 }, true],
    ['EL2_ALL (another regime)', { op: 'TLBI_EL2_ALL' }, false],
    ['CFGI_ALL (configuration only)', { op: 'CFGI_ALL' }, false],
  ];
  test.each(cases)('a PTE change is stale until the right TLBI: %s', (_n, cmd, effective, o) => {
    const rig = new Rig();
    stale(rig, o);
    rig.cmd(cmd);
    expect(sees(rig, 7, 0x1000)).toBe(effective ? 0xb : 0xa);
  });

  test('range invalidation by NUM/SCALE/TG/TTL (4.4.1.1)', () => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(8, { asid: 5 });
    const remap = () => {
      for (let i = 0; i < 8; i++) pt.map(0x10000 + i * 4096, markedPage(rig, 0x100 + i));
      rig.cmd({ op: 'TLBI_NH_ASID', asid: 5, vmid: 0 });
      for (let i = 0; i < 8; i++) expect(sees(rig, 8, 0x10000 + i * 4096)).toBe(0x100 + i);
      for (let i = 0; i < 8; i++) pt.map(0x10000 + i * 4096, markedPage(rig, 0x200 + i));
    };
    const fresh = () => [...Array(8).keys()].map((i) => (sees(rig, 8, 0x10000 + i * 4096) as number) >= 0x200);
    const range = (o: Partial<TlbiRange>) => rig.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 5, addr: 0x11000, leaf: true, tg: 1, ...o }) });

    remap();
    range({ num: 3, ttl: 3 }); // 4 pages from 0x11000
    expect(fresh()).toEqual([false, true, true, true, true, false, false, false]);
    remap();
    range({ num: 0, scale: 1 }); // (0+1) * 2^1 pages
    expect(fresh()).toEqual([false, true, true, false, false, false, false, false]);
    remap();
    range({ num: 3, ttl: 2 }); // level hint 2: the level 3 entries stay
    expect(fresh()).toEqual(Array(8).fill(false));
    remap();
    range({ num: 3, tg: 2 }); // 16 KiB granule: 4 KiB entries stay
    expect(fresh()).toEqual(Array(8).fill(false));
  });

  test('a block entry is removed by an invalidation of any address inside it', () => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(9, { asid: 6 });
    const a = rig.alloc(512);
    const b = rig.alloc(512);
    rig.mem.write32(a + 0x5000, 0xa);
    rig.mem.write32(b + 0x5000, 0xb);
    pt.map(0x20_0000, a, 2 ** 21);
    expect(sees(rig, 9, 0x20_5000)).toBe(0xa);
    pt.map(0x20_0000, b, 2 ** 21);
    rig.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 6, addr: 0x3f_f000, leaf: true }) });
    expect(sees(rig, 9, 0x20_5000)).toBe(0xb);
  });
});

describe('walk cache', () => {
  test('a table page freed and reused after a leaf-only TLBI is still walked; a non-leaf TLBI fixes it', () => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(10, { asid: 7 });
    const va = 0x4020_3000;
    pt.map(va, markedPage(rig, 0xa));
    expect(sees(rig, 10, va)).toBe(0xa);
    // Unmap: the leaf and the level 2 table descriptor go, the level 3 table page is freed...
    const leaf = pt.descAddr(va, 3)!;
    const l2 = pt.descAddr(va, 2)!;
    const l3page = leaf - (leaf % 4096);
    rig.mem.write64(leaf, 0n);
    rig.mem.write64(l2, 0n);
    rig.pages.free(l3page, 1);
    rig.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 7, addr: va, leaf: true }) });
    // ...and reused for something else that happens to look like a valid PTE at the same index.
    expect(rig.pages.alloc(1)).toBe(l3page);
    rig.mem.write64(leaf, pt.leaf(markedPage(rig, 0xbad), 3));
    const hits = rig.stats[XSTAT.WALK_HITS]!;
    expect(sees(rig, 10, va)).toBe(0xbad); // the walk cache still points at the old table page
    expect(rig.stats[XSTAT.WALK_HITS]! - hits).toBe(1);
    rig.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 7, addr: va, leaf: false }) });
    expect(sees(rig, 10, va)).toBe('F_TRANSLATION');
  });

  test('Leaf=0 with a TTL hint removes table entries above that level only', () => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(11, { asid: 8 });
    const va = 0x4020_3000;
    pt.map(va, markedPage(rig, 0xa));
    expect(sees(rig, 11, va)).toBe(0xa);
    const l1 = pt.descAddr(va, 1)!;
    rig.mem.write64(l1, 0n); // the whole GiB unmapped at level 1
    // TTL=3, Leaf=0: the level 1 and 2 table entries go (levels above 3).
    rig.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ asid: 8, addr: va, tg: 1, num: 0, ttl: 3 }) });
    expect(sees(rig, 11, va)).toBe('F_TRANSLATION');
  });
});

describe('stage 2 and nested caching', () => {
  test('TLBI_S2_IPA invalidates stage 2 entries but not combined stage 1+2 entries (4.4.3.1)', () => {
    const rig = new Rig();
    // Stage 2 only.
    const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    rig.writeSte(1, { config: 0b110, vmid: 5, s2: { ttb: s2.root } });
    s2.map(0x1000, markedPage(rig, 0xa));
    expect(sees(rig, 1, 0x1000)).toBe(0xa);
    s2.map(0x1000, markedPage(rig, 0xb));
    expect(sees(rig, 1, 0x1000)).toBe(0xa);
    rig.cmd({ op: 'TLBI_S2_IPA', tlbi: tlbi({ vmid: 4, addr: 0x1000, leaf: true }) });
    expect(sees(rig, 1, 0x1000)).toBe(0xa);
    rig.cmd({ op: 'TLBI_S2_IPA', tlbi: tlbi({ vmid: 5, addr: 0x1000, leaf: true }) });
    expect(sees(rig, 1, 0x1000)).toBe(0xb);

    // Nested, VMID 6: stage 1 maps VA 0x5000 -> IPA 0x1000; stage 2 IPA 0x1000 changes.
    const t2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
    const s1 = new PageTable(rig.mem, rig.pages, 1, 25);
    const cd = rig.alloc();
    for (const pa of [cd, s1.root]) t2.map(pa, pa); // CD and table pages identity-mapped at stage 2
    s1.map(0x5000, 0x1000);
    for (let l = 1; l <= 2; l++) {
      const d = rig.mem.read64(s1.descAddr(0x5000, l)!);
      const t = Number(PTE.OA.get64(d)) * 4096;
      t2.map(t, t);
    }
    rig.writeCd(cd, { asid: 2, ttb0: s1.root });
    rig.writeSte(2, { config: 0b111, vmid: 6, cdPtr: cd, s2: { ttb: t2.root } });
    t2.map(0x1000, markedPage(rig, 0xc));
    expect(sees(rig, 2, 0x5000)).toBe(0xc);
    t2.map(0x1000, markedPage(rig, 0xd));
    rig.cmd({ op: 'TLBI_S2_IPA', tlbi: tlbi({ vmid: 6, addr: 0x1000, leaf: true }) });
    expect(sees(rig, 2, 0x5000)).toBe(0xc); // the combined entry survives
    rig.cmd({ op: 'TLBI_NH_ALL', vmid: 6 });
    expect(sees(rig, 2, 0x5000)).toBe(0xd);
    t2.map(0x1000, markedPage(rig, 0xe));
    rig.cmd({ op: 'TLBI_S12_VMALL', vmid: 6 });
    expect(sees(rig, 2, 0x5000)).toBe(0xe);
  });
});

describe('EL2 regimes (STE.STRW=EL2, CR2.E2H)', () => {
  test.each([
    [0, { op: 'TLBI_NH_ALL', vmid: 0 } as CmdEnt, false],
    [0, { op: 'TLBI_EL2_VA', tlbi: tlbi({ asid: 99, addr: 0x1000, leaf: true }) } as CmdEnt, true], // ASID ignored without E2H
    [0, { op: 'TLBI_EL2_ALL' } as CmdEnt, true],
    [1, { op: 'TLBI_EL2_VA', tlbi: tlbi({ asid: 99, addr: 0x1000 }) } as CmdEnt, false],
    [1, { op: 'TLBI_EL2_VA', tlbi: tlbi({ asid: 3, addr: 0x1000 }) } as CmdEnt, true],
    [1, { op: 'TLBI_EL2_ASID', asid: 3 } as CmdEnt, true],
    [1, { op: 'TLBI_EL2_VAA', tlbi: tlbi({ addr: 0x1000 }) } as CmdEnt, true],
    [1, { op: 'TLBI_NSNH_ALL' } as CmdEnt, false],
  ])('E2H=%i: %j invalidates: %s', (e2h, cmd, effective) => {
    const rig = new Rig({ cr2: CR2.RECINVSID.bits | (e2h ? CR2.E2H.bits : 0) });
    const { pt } = rig.s1Stream(3, { asid: 3, ste: { strw: 2 } });
    pt.map(0x1000, markedPage(rig, 0xa));
    expect(sees(rig, 3, 0x1000)).toBe(0xa);
    pt.map(0x1000, markedPage(rig, 0xb));
    rig.cmd(cmd);
    expect(sees(rig, 3, 0x1000)).toBe(effective ? 0xb : 0xa);
  });
});

describe('statistics', () => {
  test('config cache, IOTLB and walk cache hits and misses count what happened', () => {
    const rig = new Rig();
    const { pt } = rig.s1Stream(1);
    pt.map(0x1000, markedPage(rig, 1));
    pt.map(0x2000, markedPage(rig, 2));
    const s = () => [XSTAT.CONFIG_HITS, XSTAT.CONFIG_MISSES, XSTAT.IOTLB_HITS, XSTAT.IOTLB_MISSES, XSTAT.WALK_HITS, XSTAT.WALK_MISSES, XSTAT.TRANSLATIONS].map((i) => rig.stats[i]!);
    const base = s();
    sees(rig, 1, 0x1000); // STE + CD miss, IOTLB miss, walk from the base
    sees(rig, 1, 0x1000); // STE + CD hit, IOTLB hit
    sees(rig, 1, 0x2000); // STE + CD hit, IOTLB miss, walk from the cached level 2 table
    expect(s().map((v, i) => v - base[i]!)).toEqual([4, 2, 1, 2, 1, 1, 3]);
  });
});
