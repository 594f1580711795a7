// io-pgtable-arm: random map/unmap sequences against a reference model (page -> PA, permissions),
// checked by walking the tables two ways: a small walker written here from the VMSAv8-64 descriptor
// format, and the SMMU's own walker (lockstep hardware, DMA through the device services).
//
// Also checked on every unmap: each page that disappeared was covered by a TLB invalidation the page
// table asked for (a leaf added to the gather, or a walk flush before a table was freed); and page
// accounting: the tables the walker finds are exactly the pages the page table holds.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createLockstep } from '../src/host/lockstep.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { PTE } from '../src/arch/smmu/pte.ts';
import { ArmLpaeIoPgtable, gatherFlushOps, type IoPgtableFmt } from '../drivers/iommu/io-pgtable-arm.ts';
import { IOMMU, IommuError, iommuMap, iommuUnmap, newGather, resetGather } from '../drivers/iommu/iommu.ts';
import { iommuRig } from './helpers/iommu.ts';

const PG = 4096;
const BLOCK = 2 << 20;
const BLOCK_PAGES = 512;

// ---- a reference walker, independent of the page-table code ----

interface Leaf {
  iova: number;
  size: number;
  pa: number;
  pte: bigint;
}

/** Every valid leaf and the number of table pages below the top level (Arm ARM D8.3 descriptors, 4 KiB granule). */
function walkAll(read: (pa: number) => bigint, pgdPa: number, startLevel: number, pgdEntries: number): { leaves: Leaf[]; tables: number } {
  const leaves: Leaf[] = [];
  let tables = 0;
  const visit = (table: number, lvl: number, base: number, entries: number) => {
    const span = 2 ** (12 + 9 * (3 - lvl));
    for (let i = 0; i < entries; i++) {
      const d = read(table + i * 8);
      if ((d & 1n) === 0n) continue;
      const oa = Number(d & 0x0000_ffff_ffff_f000n);
      const isTable = (d & 2n) !== 0n && lvl < 3;
      if (isTable) {
        tables++;
        visit(oa, lvl + 1, base + i * span, 512);
      } else {
        // Level 3 needs the page type (0b11); levels 1-2 are blocks (0b01).
        if (lvl === 3 && (d & 2n) === 0n) throw new Error(`reserved level-3 descriptor at iova 0x${(base + i * span).toString(16)}`);
        leaves.push({ iova: base + i * span, size: span, pa: oa, pte: d });
      }
    }
  };
  visit(pgdPa, startLevel, 0, pgdEntries);
  return { leaves, tables };
}

/** What a stage-1 leaf grants, read from its AP/XN/AF bits. */
function s1Perms(pte: bigint): { write: boolean; exec: boolean; af: boolean } {
  return { write: PTE.AP_RDONLY.get64(pte) === 0n, exec: PTE.UXN.get64(pte) === 0n, af: PTE.AF.get64(pte) === 1n };
}

// ---- the harness ----

interface RefPage {
  pa: number;
  prot: number;
}

function harness(fmt: IoPgtableFmt = 'ARM_64_LPAE_S1', ias = 40) {
  const { platform } = createLockstep({ features: DEFAULT_FEATURES, memBytes: 32 << 20 });
  /** Invalidations the page table asked for since the last reset: [start, end) byte ranges. */
  let inval: [number, number][] = [];
  const tlb = gatherFlushOps(
    (iova, size) => inval.push([iova, iova + size]),
    (g) => {
      if (g.pgsize) inval.push([g.start, g.end + 1]);
      resetGather(g);
    },
  );
  const baseline = platform.pages.used();
  const pt = ArmLpaeIoPgtable.alloc(platform, fmt, { ias, oas: 48, coherentWalk: true, tlb });
  const sync = (g: ReturnType<typeof newGather>) => {
    if (g.pgsize) inval.push([g.start, g.end + 1]);
    resetGather(g);
  };
  return {
    platform,
    pt,
    baseline,
    walk: () => walkAll((pa) => platform.mem.read64(pa), pt.pgdPa, pt.startLevel, 2 ** pt.pgdBits),
    map: (iova: number, pa: number, size: number, prot: number) => iommuMap(pt, iova, pa, size, prot, sync),
    unmap: (iova: number, size: number) => {
      const g = newGather();
      const n = iommuUnmap(pt, iova, size, g);
      sync(g);
      return n;
    },
    takeInval: () => {
      const r = inval;
      inval = [];
      return r;
    },
  };
}

type H = ReturnType<typeof harness>;

/** The walker's view as page -> {pa, leaf}, checked against the reference model. */
function checkAgainst(h: H, ref: Map<number, RefPage>): Map<number, Leaf> {
  const { leaves, tables } = h.walk();
  const byPage = new Map<number, Leaf>();
  for (const l of leaves) {
    for (let off = 0; off < l.size; off += PG) {
      const page = (l.iova + off) / PG;
      byPage.set(page, l);
      const r = ref.get(page);
      if (!r) throw new Error(`iova 0x${(l.iova + off).toString(16)} is mapped but the model says it is not`);
      if (l.pa + off !== r.pa) throw new Error(`iova 0x${(l.iova + off).toString(16)} -> 0x${(l.pa + off).toString(16)}, model 0x${r.pa.toString(16)}`);
      const perm = s1Perms(l.pte);
      if (perm.write !== ((r.prot & IOMMU.WRITE) !== 0) || perm.exec !== ((r.prot & IOMMU.NOEXEC) === 0) || !perm.af) {
        throw new Error(`iova 0x${(l.iova + off).toString(16)}: permissions ${JSON.stringify(perm)} for prot 0x${r.prot.toString(16)}`);
      }
    }
  }
  if (byPage.size !== ref.size) {
    const missing = [...ref.keys()].find((p) => !byPage.has(p))!;
    throw new Error(`${ref.size - byPage.size} model pages not mapped, e.g. iova 0x${(missing * PG).toString(16)}`);
  }
  // Every page the table holds (pgd + tables) is accounted for: no leak, no double free.
  expect(h.platform.pages.used() - h.baseline).toBe(tables + Math.max(1, (2 ** h.pt.pgdBits * 8) / PG));
  // The page table's own lookup agrees with the walker.
  for (const [page, r] of [...ref].slice(0, 64)) expect(h.pt.iovaToPhys(page * PG + 8)).toBe(r.pa + 8);
  return byPage;
}

// ---- random operations ----

type Op =
  | { kind: 'map'; block: number; off: number; pages: number; paBlock: number; paShift: boolean; prot: number }
  | { kind: 'unmapRegion'; pick: number }
  | { kind: 'unmapLeaves'; pick: number; leaves: number }
  | { kind: 'unmapPartOfBlock'; pick: number };

/** IOVAs within 64 MiB (32 blocks of 2 MiB), so blocks and tables are reused and replaced often. */
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      block: fc.integer({ min: 0, max: 31 }),
      off: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: BLOCK_PAGES - 1 })),
      pages: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.constantFrom(BLOCK_PAGES, 2 * BLOCK_PAGES), fc.integer({ min: 1, max: 3 * BLOCK_PAGES })),
      paBlock: fc.integer({ min: 0, max: 1 << 16 }),
      // Output offset equal to the input's within 2 MiB (blocks possible), or shifted (4 KiB pages only).
      paShift: fc.boolean(),
      prot: fc.constantFrom(IOMMU.READ, IOMMU.READ | IOMMU.WRITE, IOMMU.READ | IOMMU.WRITE | IOMMU.CACHE, IOMMU.WRITE | IOMMU.NOEXEC),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unmapRegion' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unmapLeaves' as const), pick: fc.nat(), leaves: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unmapPartOfBlock' as const), pick: fc.nat() }) },
);

function runOps(h: H, ops: Op[]): { blocksSeen: number; tablesReplaced: number } {
  const ref = new Map<number, RefPage>();
  /** Mapped regions still whole (never partly unmapped): [first page, pages]. */
  const regions: { page: number; pages: number }[] = [];
  let leafOf = checkAgainst(h, ref);
  let blocksSeen = 0;
  let tablesReplaced = 0;
  const removedCovered = (pages: number[]) => {
    const inv = h.takeInval();
    for (const p of pages) {
      const a = p * PG;
      if (!inv.some(([s, e]) => s <= a && a + PG <= e)) throw new Error(`unmapped iova 0x${a.toString(16)} was never invalidated`);
    }
  };
  for (const op of ops) {
    if (op.kind === 'map') {
      const page = op.block * BLOCK_PAGES + op.off;
      const pages = Math.min(op.pages, 32 * BLOCK_PAGES - page);
      if (pages < 1) continue;
      let free = true;
      for (let p = page; p < page + pages && free; p++) free = !ref.has(p);
      if (!free) continue;
      const paPage = op.paBlock * BLOCK_PAGES + (op.paShift ? (op.off + 1) % BLOCK_PAGES : op.off);
      const tablesBefore = h.walk().tables;
      h.map(page * PG, paPage * PG, pages * PG, op.prot);
      for (let k = 0; k < pages; k++) ref.set(page + k, { pa: (paPage + k) * PG, prot: op.prot });
      regions.push({ page, pages });
      // Mapping never asks for invalidation; replacing an empty table by a block flushes its walks.
      const inv = h.takeInval();
      const tablesAfter = h.walk().tables;
      if (inv.length) tablesReplaced++;
      else expect(tablesAfter).toBeGreaterThanOrEqual(tablesBefore);
    } else if (op.kind === 'unmapRegion') {
      if (!regions.length) continue;
      const [r] = regions.splice(op.pick % regions.length, 1);
      expect(h.unmap(r!.page * PG, r!.pages * PG)).toBe(r!.pages * PG);
      const gone = Array.from({ length: r!.pages }, (_, k) => r!.page + k);
      for (const p of gone) ref.delete(p);
      removedCovered(gone);
    } else if (op.kind === 'unmapLeaves') {
      if (!ref.size) continue;
      const keys = [...ref.keys()];
      const first = leafOf.get(keys[op.pick % keys.length]!)!;
      // A run of whole, adjacent leaves starting at this one.
      let end = first.iova + first.size;
      for (let n = 1; n < op.leaves; n++) {
        const next = leafOf.get(end / PG);
        if (!next || next.iova !== end) break;
        end += next.size;
      }
      expect(h.unmap(first.iova, end - first.iova)).toBe(end - first.iova);
      const gone: number[] = [];
      for (let a = first.iova; a < end; a += PG) gone.push(a / PG);
      for (const p of gone) ref.delete(p);
      removedCovered(gone);
      // Regions with a hole are no longer unmapped whole.
      for (let i = regions.length - 1; i >= 0; i--) {
        const r = regions[i]!;
        if (r.page * PG < end && first.iova < (r.page + r.pages) * PG) regions.splice(i, 1);
      }
    } else {
      const blocks = [...new Set(leafOf.values())].filter((l) => l.size === BLOCK);
      if (!blocks.length) continue;
      blocksSeen++;
      const b = blocks[op.pick % blocks.length]!;
      // Part of a block cannot be unmapped (no splitting): nothing changes.
      expect(h.unmap(b.iova + PG, PG)).toBe(0);
      expect(h.takeInval()).toEqual([]);
    }
    leafOf = checkAgainst(h, ref);
  }
  return { blocksSeen, tablesReplaced };
}

describe('io-pgtable-arm: random map/unmap against a reference model', () => {
  it('the tables always describe exactly the model; every unmapped page is invalidated; no page leaks', () => {
    let blocks = 0;
    let replaced = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 25 }), (ops) => {
        const h = harness();
        const s = runOps(h, ops);
        blocks += s.blocksSeen;
        replaced += s.tablesReplaced;
        h.pt.free();
        expect(h.platform.pages.used()).toBe(h.baseline);
      }),
      { numRuns: 60, seed: 0x5eed },
    );
    // The runs did exercise 2 MiB blocks and tables replaced by blocks.
    expect(blocks).toBeGreaterThan(0);
    expect(replaced).toBeGreaterThan(0);
  });
});

describe('io-pgtable-arm: specific behaviour', () => {
  it('picks 2 MiB blocks where input and output are aligned, 4 KiB pages elsewhere', () => {
    const h = harness();
    h.map(BLOCK - 2 * PG, 0x8000_0000 - 2 * PG, BLOCK + 4 * PG, IOMMU.READ);
    const sizes = h.walk().leaves.map((l) => l.size);
    expect(sizes.filter((s) => s === BLOCK)).toHaveLength(1);
    expect(sizes.filter((s) => s === PG)).toHaveLength(4);
    // Same range, output not 2 MiB-aligned relative to the input: pages only.
    const g = harness();
    g.map(BLOCK, 0x8000_1000, BLOCK, IOMMU.READ);
    expect(g.walk().leaves.every((l) => l.size === PG)).toBe(true);
  });

  it('a 1 GiB block where 1 GiB is aligned', () => {
    const h = harness();
    h.map(1 << 30, 0x80_0000_0000, 1 << 30, IOMMU.READ | IOMMU.WRITE);
    const { leaves } = h.walk();
    expect(leaves).toHaveLength(1);
    expect(leaves[0]!.size).toBe(1 << 30);
    expect(h.pt.iovaToPhys((1 << 30) + 0x1234)).toBe(0x80_0000_1234);
    expect(h.unmap(1 << 30, 1 << 30)).toBe(1 << 30);
    expect(h.walk().leaves).toHaveLength(0);
  });

  it('refuses to map over a mapping (EEXIST) and leaves the tables as they were', () => {
    const h = harness();
    h.map(0x10000, 0x4000_0000, 4 * PG, IOMMU.READ);
    const before = h.walk();
    expect(() => h.map(0xe000, 0x5000_0000, 4 * PG, IOMMU.READ)).toThrow(IommuError);
    expect(h.walk()).toEqual(before);
  });

  it('rejects bad arguments with errors naming them', () => {
    const h = harness();
    expect(() => h.map(0x1001, 0x4000_0000, PG, IOMMU.READ)).toThrow(/unaligned: iova 0x1001/);
    expect(() => h.map(0x1000, 0x4000_0000, PG, 0)).toThrow(/neither read nor write/);
    expect(() => h.map(2 ** 40, 0x4000_0000, PG, IOMMU.READ)).toThrow(/beyond the 40-bit input range/);
    expect(() => h.map(0x1000, 2 ** 48, PG, IOMMU.READ)).toThrow(/beyond the 48-bit output range/);
  });

  it('an unmap stops at a hole and reports what it removed', () => {
    const h = harness();
    h.map(0, 0x4000_0000, 2 * PG, IOMMU.READ);
    h.map(3 * PG, 0x4000_3000, PG, IOMMU.READ);
    expect(h.unmap(0, 4 * PG)).toBe(2 * PG);
    expect(h.walk().leaves.map((l) => l.iova)).toEqual([3 * PG]);
  });

  it('stage 2 tables: S2AP permissions, VTCR for the start level, concatenated level-1 tables for a 40-bit IPA', () => {
    const h = harness('ARM_64_LPAE_S2', 40);
    // 40-bit input: level 0 would have 2 entries, so two level-1 tables are concatenated (1024 entries).
    expect(h.pt.startLevel).toBe(1);
    expect(h.pt.pgdBits).toBe(10);
    expect(h.pt.s2Config().vtcr).toMatchObject({ tsz: 24, sl: 1, tg: 0, ps: 5 });
    h.map(0x80_0000_0000 - BLOCK, 0x4000_0000, BLOCK, IOMMU.READ);
    const [leaf] = h.walk().leaves;
    expect(leaf!.size).toBe(BLOCK);
    expect(PTE.S2AP.get64(leaf!.pte)).toBe(1n);
    const s1 = harness('ARM_64_LPAE_S1', 48);
    expect(s1.pt.startLevel).toBe(0);
    expect(s1.pt.s1Config().tcr).toMatchObject({ tsz: 16, tg: 0, sh: 3, irgn: 1, orgn: 1, ips: 5 });
  });
});

// ---- the same model, translated by the SMMU ----

describe('io-pgtable-arm through the SMMU walker (lockstep)', () => {
  it('DMA through a stage-1 domain reaches exactly the PAs the model says, and faults elsewhere', () => {
    const { platform, machine, iommu } = iommuRig({}, 48 << 20);
    const sid = 0x21;
    const master = iommu.probeDevice('walker-check', [sid]);
    // Target memory: 16 MiB of DRAM, each page tagged with its own address.
    const target = platform.pages.alloc(4096, 'targets');
    for (let p = 0; p < 4096; p++) {
      platform.mem.write32(target + p * PG, (target + p * PG) >>> 0);
      platform.mem.write32(target + p * PG + 4, (target + p * PG + 4) >>> 0);
    }
    const read32 = (iova: number): number | null => {
      const buf = new Uint8Array(4);
      const r = machine.smmu.services.dmaRead({ sid, addr: iova, bytes: 4, write: false }, buf);
      return r.ok ? new DataView(buf.buffer).getUint32(0, true) : null;
    };
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            block: fc.integer({ min: 0, max: 15 }),
            off: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: BLOCK_PAGES - 1 })),
            pages: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(BLOCK_PAGES)),
            tBlock: fc.integer({ min: 0, max: 7 }),
            unmapAfter: fc.boolean(),
          }),
          { minLength: 1, maxLength: 10 },
        ),
        (maps) => {
          const d = iommu.allocPaging();
          iommu.attach(master, d);
          const ref = new Map<number, number>();
          for (const m of maps) {
            const page = m.block * BLOCK_PAGES + m.off;
            let free = true;
            for (let p = page; p < page + m.pages && free; p++) free = !ref.has(p);
            if (!free) continue;
            const pa = target + m.tBlock * BLOCK + m.off * PG;
            const pages = Math.min(m.pages, (target + 4096 * PG - pa) / PG);
            d.map(page * PG, pa, pages * PG, IOMMU.READ | IOMMU.WRITE);
            for (let k = 0; k < pages; k++) ref.set(page + k, pa + k * PG);
            // Translate now (filling the IOTLB and walk cache), then maybe unmap (strict invalidation).
            expect(read32(page * PG)).toBe(pa >>> 0);
            if (m.unmapAfter) {
              expect(d.unmap(page * PG, pages * PG)).toBe(pages * PG);
              for (let k = 0; k < pages; k++) ref.delete(page + k);
            }
          }
          // Every mapped page translates to its PA; neighbours of mappings fault.
          for (const [page, pa] of ref) expect(read32(page * PG + 4)).toBe((pa + 4) >>> 0);
          for (const page of ref.keys()) {
            for (const n of [page - 1, page + 1]) if (n >= 0 && !ref.has(n)) expect(read32(n * PG)).toBeNull();
          }
          iommu.attach(master, iommu.blocked);
          d.free();
        },
      ),
      { numRuns: 25, seed: 0xd1a },
    );
  });
});
