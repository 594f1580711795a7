// The IOTLB and walk cache index (hw/smmu/caches.ts Tlb) against a reference: the plain model of the
// same caches, where every invalidation command tests every cached entry with the matching rules of
// IHI 0070 4.4 (tags: stage, regime, VMID, ASID with global entries; Leaf; TG/NUM/SCALE/TTL ranges of
// 4.4.1.1; EL2 regimes with and without CR2.E2H; stage 2 sparing combined entries, 4.4.3.1) and
// capacity evicts the oldest entry. Commands go through the real command queue and its handlers.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { Rig } from './helpers/rig.ts';
import { REGIME } from '../src/arch/smmu/ste.ts';
import { ASID_GLOBAL } from '../hw/smmu/tag-index.ts';
import { TLB_KIND, type TlbEntry, type WalkEntry } from '../hw/smmu/tlb.ts';
import type { CmdEnt, TlbiRange } from '../drivers/arm-smmu-v3/cmds.ts';
import { levelShift4k } from '../src/arch/smmu/pte.ts';
import { CR2 } from '../src/arch/smmu/regs.ts';

const LEAF_SIZES = [2 ** 12, 2 ** 21, 2 ** 30];
const GRANULE = [0, 2 ** 12, 2 ** 14, 2 ** 16];
const IOTLB_CAPACITY = 8192;
const WALK_CAPACITY = 2048;

/** The caches as a flat, insertion-ordered model: every invalidation looks at every entry. */
class RefTlb {
  readonly leaves = new Map<string, TlbEntry>();
  readonly walks = new Map<string, WalkEntry>();

  private static key(kind: number, regime: number, vmid: number, asid: number, size: number, va: number): string {
    return `${kind}|${regime}|${vmid}|${asid}|${size}|${va}`;
  }

  insert(e: TlbEntry): void {
    if (this.leaves.size >= IOTLB_CAPACITY) this.leaves.delete(this.leaves.keys().next().value!);
    this.leaves.set(RefTlb.key(e.kind, e.regime, e.vmid, e.asid, e.size, e.va), e);
  }

  walkInsert(w: WalkEntry): void {
    if (this.walks.size >= WALK_CAPACITY) this.walks.delete(this.walks.keys().next().value!);
    this.walks.set(RefTlb.key(w.kind, w.regime, w.vmid, w.asid, w.level, w.va), w);
  }

  lookup(kind: number, regime: number, vmid: number, asid: number, addr: number): TlbEntry | null {
    for (const size of LEAF_SIZES) {
      const base = addr - (addr % size);
      const e = this.leaves.get(RefTlb.key(kind, regime, vmid, asid, size, base)) ?? (asid !== ASID_GLOBAL ? this.leaves.get(RefTlb.key(kind, regime, vmid, ASID_GLOBAL, size, base)) : undefined);
      if (e) return e;
    }
    return null;
  }

  walkLookup(kind: number, regime: number, vmid: number, asid: number, addr: number, fromLevel: number): WalkEntry | null {
    for (let level = 2; level >= fromLevel; level--) {
      const size = 2 ** levelShift4k(level);
      const w = this.walks.get(RefTlb.key(kind, regime, vmid, asid, level, addr - (addr % size)));
      if (w) return w;
    }
    return null;
  }

  private drop(pred: (e: TlbEntry) => boolean, walkPred: ((w: WalkEntry) => boolean) | null): void {
    for (const [k, e] of this.leaves) if (pred(e)) this.leaves.delete(k);
    if (walkPred) for (const [k, w] of this.walks) if (walkPred(w)) this.walks.delete(k);
  }

  /** What the command removes, by the rules of 4.4, entry by entry. */
  command(cmd: CmdEnt, e2h: boolean): void {
    const isS1 = (kind: number) => kind === TLB_KIND.S1 || kind === TLB_KIND.S12;
    const span = (t: TlbiRange) => {
      const hi = t.tg === 0 ? t.addr + 1 : t.addr + (t.num + 1) * 2 ** t.scale * GRANULE[t.tg]!;
      return { lo: t.addr, hi, ttl: t.tg === 0 ? 0 : t.ttl, other: t.tg > 1, leaf: t.leaf };
    };
    type Span = ReturnType<typeof span>;
    const overlaps = (e: { va: number; size: number }, s: Span) => e.va < s.hi && s.lo < e.va + e.size;
    const leafOk = (e: TlbEntry, s: Span) => !s.other && overlaps(e, s) && (s.ttl === 0 || e.level === s.ttl);
    const walkOk = (w: WalkEntry, s: Span) => !s.other && overlaps(w, s) && (s.ttl === 0 || w.level < s.ttl);
    const el2 = e2h ? REGIME.EL2_E2H : REGIME.EL2;
    switch (cmd.op) {
      case 'TLBI_NH_ALL':
        return this.drop((e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === cmd.vmid, (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === cmd.vmid);
      case 'TLBI_NH_ASID':
        return this.drop(
          (e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === cmd.vmid && e.asid === cmd.asid,
          (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === cmd.vmid && w.asid === cmd.asid,
        );
      case 'TLBI_NH_VA': {
        const t = cmd.tlbi;
        const s = span(t);
        return this.drop(
          (e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === t.vmid && (e.asid === t.asid || e.asid === ASID_GLOBAL) && leafOk(e, s),
          s.leaf ? null : (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === t.vmid && w.asid === t.asid && walkOk(w, s),
        );
      }
      case 'TLBI_NH_VAA': {
        const s = span(cmd.tlbi);
        return this.drop(
          (e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === cmd.tlbi.vmid && leafOk(e, s),
          s.leaf ? null : (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === cmd.tlbi.vmid && walkOk(w, s),
        );
      }
      case 'TLBI_EL2_ALL':
        return this.drop((e) => e.regime !== REGIME.EL1, (w) => w.regime !== REGIME.EL1);
      case 'TLBI_EL2_ASID':
        return this.drop((e) => e.regime === REGIME.EL2_E2H && e.asid === cmd.asid, (w) => w.regime === REGIME.EL2_E2H && w.asid === cmd.asid);
      case 'TLBI_EL2_VA': {
        const t = cmd.tlbi;
        const s = span(t);
        const asidOk = (a: number, global: boolean) => el2 === REGIME.EL2 || a === t.asid || (global && a === ASID_GLOBAL);
        return this.drop((e) => e.regime === el2 && asidOk(e.asid, true) && leafOk(e, s), s.leaf ? null : (w) => w.regime === el2 && asidOk(w.asid, false) && walkOk(w, s));
      }
      case 'TLBI_EL2_VAA': {
        const s = span(cmd.tlbi);
        return this.drop((e) => e.regime === el2 && leafOk(e, s), s.leaf ? null : (w) => w.regime === el2 && walkOk(w, s));
      }
      case 'TLBI_S12_VMALL':
        return this.drop((e) => e.regime === REGIME.EL1 && e.vmid === cmd.vmid, (w) => w.regime === REGIME.EL1 && w.vmid === cmd.vmid);
      case 'TLBI_S2_IPA': {
        const s = span(cmd.tlbi);
        return this.drop((e) => e.kind === TLB_KIND.S2 && e.vmid === cmd.tlbi.vmid && leafOk(e, s), s.leaf ? null : (w) => w.kind === TLB_KIND.S2 && w.vmid === cmd.tlbi.vmid && walkOk(w, s));
      }
      case 'TLBI_NSNH_ALL':
        return this.drop((e) => e.regime === REGIME.EL1, (w) => w.regime === REGIME.EL1);
      default:
        throw new Error(`reference: ${cmd.op} is not a TLBI`);
    }
  }
}

/** Both caches side by side: the SMMU's (through a Rig and its command queue) and the reference. */
function pair(e2h: boolean) {
  const rig = new Rig({ cr2: CR2.RECINVSID.bits | (e2h ? CR2.E2H.bits : 0) });
  const tlb = rig.smmu.tlb;
  const ref = new RefTlb();
  const same = () => {
    const c = tlb.contents();
    expect(c.leaves).toEqual([...ref.leaves.values()]);
    expect(c.walks).toEqual([...ref.walks.values()]);
    expect(tlb.size).toEqual({ leaf: ref.leaves.size, walk: ref.walks.size });
  };
  return {
    rig,
    tlb,
    ref,
    same,
    insert: (e: TlbEntry) => (tlb.insert(e), ref.insert(e)),
    walkInsert: (w: WalkEntry) => (tlb.walkInsert(w), ref.walkInsert(w)),
    cmd: (c: CmdEnt) => (rig.cmd(c), ref.command(c, e2h)),
  };
}

const leafEntry = (o: Partial<TlbEntry> & { va: number }): TlbEntry => ({
  kind: TLB_KIND.S1,
  regime: REGIME.EL1,
  vmid: 0,
  asid: 1,
  size: 4096,
  level: 3,
  pa: 0x4000_0000,
  s1perms: 0,
  s2perms: 0,
  device: false,
  ...o,
});

const tlbi = (o: Partial<TlbiRange> & { addr: number }): TlbiRange => ({ asid: 1, vmid: 0, leaf: true, num: 0, scale: 0, tg: 0, ttl: 0, ...o });

// Small tag and address spaces, so that entries and ranges collide, nest and straddle: most pages in
// the first 16 of a window, some further, a few anywhere in 2 GiB; windows at 0, 2^47 and below 2^53.
const WINDOWS = [0, 2 ** 47, 2 ** 53 - 2 ** 31];
const arbPage = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 15 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 1023 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 19 - 1 }) },
);
const arbAddr = fc.tuple(fc.constantFrom(...WINDOWS), arbPage).map(([w, page]) => w + page * 4096);
const arbKind = fc.constantFrom(TLB_KIND.S1, TLB_KIND.S1, TLB_KIND.S1, TLB_KIND.S2, TLB_KIND.S12);
const arbRegime = fc.oneof({ weight: 3, arbitrary: fc.constant(REGIME.EL1) }, { weight: 2, arbitrary: fc.constantFrom(REGIME.EL2, REGIME.EL2_E2H) });
const arbVmid = fc.integer({ min: 0, max: 1 });
const arbAsid = fc.integer({ min: -1, max: 1 });
const arbCmdAsid = fc.integer({ min: 0, max: 1 });

const arbLeaf = fc
  .record({ kind: arbKind, regime: arbRegime, vmid: arbVmid, asid: arbAsid, sizeIdx: fc.constantFrom(0, 0, 0, 1, 2), level: fc.integer({ min: 1, max: 3 }), addr: arbAddr, pa: fc.nat() })
  .map(({ sizeIdx, addr, pa, ...t }): TlbEntry => {
    const size = LEAF_SIZES[sizeIdx]!;
    return { ...t, size, va: addr - (addr % size), pa, s1perms: 0, s2perms: 0, device: false };
  });
const arbWalk = fc
  .record({ kind: fc.constantFrom(TLB_KIND.S1, TLB_KIND.S2), regime: arbRegime, vmid: arbVmid, asid: arbAsid, level: fc.integer({ min: 0, max: 2 }), addr: arbAddr, table: fc.nat() })
  .map(({ addr, ...t }): WalkEntry => {
    const size = 2 ** levelShift4k(t.level);
    return { ...t, size, va: addr - (addr % size), attrs: 0 };
  });
// A legal range (4.4.1.1): TG=0 with NUM=SCALE=TTL=0, or TG!=0 with not all of them 0.
const arbRange = fc
  .record({
    asid: arbCmdAsid,
    vmid: arbVmid,
    addr: arbAddr,
    leaf: fc.boolean(),
    tg: fc.constantFrom(0, 1, 1, 1, 1, 2, 3),
    num: fc.integer({ min: 0, max: 31 }),
    scale: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 31 })),
    ttl: fc.constantFrom(0, 0, 1, 2, 3),
  })
  .map((t): TlbiRange => (t.tg === 0 ? { ...t, num: 0, scale: 0, ttl: 0 } : t.num + t.scale + t.ttl === 0 ? { ...t, num: 1 } : t));
const arbCmd: fc.Arbitrary<CmdEnt> = fc.oneof(
  { weight: 1, arbitrary: arbVmid.map((vmid): CmdEnt => ({ op: 'TLBI_NH_ALL', vmid })) },
  { weight: 1, arbitrary: fc.record({ asid: arbCmdAsid, vmid: arbVmid }).map((o): CmdEnt => ({ op: 'TLBI_NH_ASID', ...o })) },
  { weight: 1, arbitrary: arbCmdAsid.map((asid): CmdEnt => ({ op: 'TLBI_EL2_ASID', asid })) },
  { weight: 1, arbitrary: arbVmid.map((vmid): CmdEnt => ({ op: 'TLBI_S12_VMALL', vmid })) },
  { weight: 1, arbitrary: fc.constantFrom<CmdEnt>({ op: 'TLBI_EL2_ALL' }, { op: 'TLBI_NSNH_ALL' }) },
  {
    weight: 10,
    arbitrary: fc
      .tuple(fc.constantFrom('TLBI_NH_VA', 'TLBI_NH_VAA', 'TLBI_EL2_VA', 'TLBI_EL2_VAA', 'TLBI_S2_IPA'), arbRange)
      .map(([op, t]): CmdEnt => ({ op, tlbi: t }) as CmdEnt),
  },
);
const arbOp = fc.oneof(
  { weight: 4, arbitrary: arbLeaf.map((e) => ({ leaf: e })) },
  { weight: 2, arbitrary: arbWalk.map((w) => ({ walk: w })) },
  { weight: 2, arbitrary: arbCmd.map((c) => ({ cmd: c })) },
  { weight: 1, arbitrary: fc.tuple(arbKind, arbRegime, arbVmid, arbAsid, arbAddr, fc.integer({ min: 0, max: 2 })).map((probe) => ({ probe })) },
);

describe('IOTLB and walk cache against the reference model', () => {
  test.each([0, 1])('random inserts, lookups and TLBI commands (CR2.E2H=%i): same entries, same order, same lookups', (e2h) => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 40, maxLength: 120 }), (ops) => {
        const p = pair(e2h === 1);
        for (const op of ops) {
          if ('leaf' in op) p.insert(op.leaf);
          else if ('walk' in op) p.walkInsert(op.walk);
          else if ('cmd' in op) p.cmd(op.cmd);
          else {
            const [kind, regime, vmid, asid, addr, from] = op.probe;
            expect(p.tlb.lookup(kind, regime, vmid, asid, addr)).toBe(p.ref.lookup(kind, regime, vmid, asid, addr));
            const wk = kind === TLB_KIND.S12 ? TLB_KIND.S1 : kind;
            expect(p.tlb.walkLookup(wk, regime, vmid, asid, addr, from)).toBe(p.ref.walkLookup(wk, regime, vmid, asid, addr, from));
          }
          p.same();
        }
      }),
      { numRuns: 200 },
    );
  });

  test('ranges just under, at and over the number of pages a bucket holds: exactly the pages inside go', () => {
    // 64 pages of one ASID at 0x10_0000, and ranges of (NUM + 1) * 2^SCALE = 62, 64 and 68 pages at
    // three starts. The index probes each key of the smaller ranges and scans the bucket for the larger
    // one; the outcome must not depend on which.
    const p = pair(false);
    const base = 0x10_0000;
    const refill = () => {
      for (let i = 0; i < 64; i++) p.insert(leafEntry({ va: base + i * 4096, pa: i * 4096 }));
    };
    for (const [num, scale, pages] of [
      [30, 1, 62],
      [31, 1, 64],
      [16, 2, 68],
    ] as const) {
      for (const startPage of [0, 1, -3]) {
        refill();
        p.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ addr: base + startPage * 4096, tg: 1, num, scale, ttl: 3 }) });
        p.same();
        const left = p.tlb.contents().leaves.map((e) => (e.va - base) / 4096);
        const expected = [...Array(64).keys()].filter((i) => i < startPage || i >= startPage + pages);
        expect(left).toEqual(expected);
        p.cmd({ op: 'TLBI_NH_ASID', asid: 1, vmid: 0 });
      }
    }
  });

  test('a range reaching 2^53 and beyond still removes the entries it overlaps', () => {
    const p = pair(false);
    const top = 2 ** 53 - 2 ** 30; // a 1 GiB block just below 2^53, and pages in it
    p.insert(leafEntry({ va: top, size: 2 ** 30, level: 1 }));
    p.insert(leafEntry({ va: 2 ** 53 - 4096 }));
    p.insert(leafEntry({ va: 2 ** 53 - 8192 }));
    p.walkInsert({ kind: TLB_KIND.S1, regime: REGIME.EL1, vmid: 0, asid: 1, level: 2, va: 2 ** 53 - 2 ** 21, size: 2 ** 21, table: 0x5000, attrs: 0 });
    p.cmd({ op: 'TLBI_NH_VA', tlbi: tlbi({ addr: 2 ** 53 - 4096, tg: 1, num: 1, leaf: false }) });
    p.same();
    expect(p.tlb.contents().leaves.map((e) => e.va)).toEqual([2 ** 53 - 8192]);
    expect(p.tlb.size.walk).toBe(0);
  });

  test('capacity: the oldest entry goes first; re-inserting a cached key keeps its place', () => {
    const p = pair(false);
    // Leaves spread over several tags, so the oldest-first order crosses buckets.
    const leaf = (i: number) => leafEntry({ va: (i >> 2) * 4096, asid: i & 3, vmid: (i >> 12) & 1, pa: i });
    for (let i = 0; i < IOTLB_CAPACITY; i++) p.insert(leaf(i));
    p.same();
    p.insert({ ...leaf(5), pa: 0xdead_0000 }); // full: evicts leaf 0, then updates 5 in place
    p.insert(leaf(IOTLB_CAPACITY)); // one free slot: nothing evicted
    p.insert(leaf(IOTLB_CAPACITY + 1)); // full again: evicts leaf 1
    p.same();
    const c = p.tlb.contents().leaves;
    expect(c[0]!.pa).toBe(2);
    expect(c[3]!.pa).toBe(0xdead_0000);
    expect(c.length).toBe(IOTLB_CAPACITY);
    // A VMID-wide invalidation drops one half; the rest keeps its order.
    p.cmd({ op: 'TLBI_NH_ALL', vmid: 1 });
    p.same();
    for (let i = 0; i < WALK_CAPACITY + 3; i++) {
      p.walkInsert({ kind: TLB_KIND.S1, regime: REGIME.EL1, vmid: 0, asid: i & 1, level: 2, va: i * 2 ** 21, size: 2 ** 21, table: i * 4096, attrs: 0 });
    }
    p.same();
    expect(p.tlb.size.walk).toBe(WALK_CAPACITY);
  });

  test('nothing cached: every TLBI leaves the caches empty and lookups miss', () => {
    const p = pair(true);
    fc.assert(
      fc.property(arbCmd, (c) => {
        p.cmd(c);
        p.same();
        expect(p.tlb.lookup(TLB_KIND.S1, REGIME.EL1, 0, 1, 0x1000)).toBeNull();
      }),
      { numRuns: 50 },
    );
  });
});
