// Test-only builders that write STEs, CDs and translation tables into emulated DRAM by hand, field by
// field from the shared layouts (src/arch/smmu/ste.ts, cd.ts, pte.ts), each qword with one 64-bit store.
// They build what a test needs, legal or not; the driver's own writers live in drivers/.

import type { Field } from '../../src/arch/bits.ts';
import type { PageAllocator, PhysMem } from '../../src/machine/dma.ts';
import { CD, CD_QWORDS, L1CD, TG0 } from '../../src/arch/smmu/cd.ts';
import { PTE, levelShift4k, startLevel4k } from '../../src/arch/smmu/pte.ts';
import { L1STD, STE, STE_CONFIG, STE_QWORDS } from '../../src/arch/smmu/ste.ts';

/** Writes 32-bit words as 64-bit single-copy atomic stores. */
export function writeStruct(mem: PhysMem, pa: number, words: Uint32Array): void {
  for (let q = 0; q < words.length / 2; q++) mem.write64(pa + q * 8, (BigInt(words[2 * q + 1]!) << 32n) | BigInt(words[2 * q]!));
}

type FieldValues = [Field, number | bigint][];

function put(w: Uint32Array, f: Field, v: number | bigint): void {
  if (typeof v === 'bigint' || f.width > 32) f.write64(w, 0, BigInt(v));
  else f.write(w, 0, v);
}

export interface SteOpts {
  v?: boolean;
  config?: number;
  /** Stage 1: CD table pointer, S1CDMax, S1Fmt, S1DSS. */
  cdPtr?: number;
  cdMax?: number;
  s1fmt?: number;
  s1dss?: number;
  eats?: number;
  strw?: number;
  vmid?: number;
  /** Stage 2: table, input size (S2T0SZ), start (S2SL0), output size (S2PS encoding), S2R. */
  s2?: { ttb: number; t0sz?: number; sl0?: number; ps?: number; r?: boolean; affd?: boolean; ptw?: boolean };
  privcfg?: number;
  instcfg?: number;
  /** Raw field overrides applied last. */
  raw?: FieldValues;
}

/** An STE image (16 words) from options. */
export function makeSte(o: SteOpts): Uint32Array {
  const w = new Uint32Array(STE_QWORDS * 2);
  put(w, STE.V, o.v === false ? 0 : 1);
  put(w, STE.CONFIG, o.config ?? STE_CONFIG.ABORT);
  if (o.cdPtr !== undefined) put(w, STE.S1CTXPTR, o.cdPtr / 64);
  put(w, STE.S1CDMAX, o.cdMax ?? 0);
  put(w, STE.S1FMT, o.s1fmt ?? 0);
  put(w, STE.S1DSS, o.s1dss ?? 0);
  put(w, STE.EATS, o.eats ?? 0);
  put(w, STE.STRW, o.strw ?? 0);
  put(w, STE.S2VMID, o.vmid ?? 0);
  put(w, STE.PRIVCFG, o.privcfg ?? 0);
  put(w, STE.INSTCFG, o.instcfg ?? 0);
  if (o.s2) {
    put(w, STE.S2T0SZ, o.s2.t0sz ?? 24);
    put(w, STE.S2SL0, o.s2.sl0 ?? 1);
    put(w, STE.S2PS, o.s2.ps ?? 5);
    put(w, STE.S2AA64, 1);
    put(w, STE.S2R, o.s2.r === false ? 0 : 1);
    put(w, STE.S2AFFD, o.s2.affd ? 1 : 0);
    put(w, STE.S2PTW, o.s2.ptw ? 1 : 0);
    put(w, STE.S2TTB, BigInt(o.s2.ttb) >> 4n);
  }
  for (const [f, v] of o.raw ?? []) put(w, f, v);
  return w;
}

export interface CdOpts {
  v?: boolean;
  asid?: number;
  ttb0: number;
  t0sz?: number;
  ips?: number;
  r?: boolean;
  a?: boolean;
  epd0?: boolean;
  affd?: boolean;
  wxn?: boolean;
  pan?: boolean;
  had0?: boolean;
  raw?: FieldValues;
}

/** A CD image (16 words): VMSAv8-64, 4 KiB granule, TTB1 disabled, A=1, R=1 unless told otherwise. */
export function makeCd(o: CdOpts): Uint32Array {
  const w = new Uint32Array(CD_QWORDS * 2);
  put(w, CD.V, o.v === false ? 0 : 1);
  put(w, CD.T0SZ, o.t0sz ?? 25);
  put(w, CD.TG0, TG0.G4K);
  put(w, CD.EPD0, o.epd0 ? 1 : 0);
  put(w, CD.EPD1, 1);
  put(w, CD.IPS, o.ips ?? 5);
  put(w, CD.AA64, 1);
  put(w, CD.R, o.r === false ? 0 : 1);
  put(w, CD.A, o.a === false ? 0 : 1);
  put(w, CD.AFFD, o.affd ? 1 : 0);
  put(w, CD.WXN, o.wxn ? 1 : 0);
  put(w, CD.PAN, o.pan ? 1 : 0);
  put(w, CD.HAD0, o.had0 ? 1 : 0);
  put(w, CD.ASID, o.asid ?? 1);
  put(w, CD.TTB0, BigInt(o.ttb0) >> 4n);
  for (const [f, v] of o.raw ?? []) put(w, f, v);
  return w;
}

export function l1std(l2: number, span: number): bigint {
  return L1STD.SPAN.set64(L1STD.L2PTR.set64(0n, BigInt(l2) >> 6n), span);
}

export function l1cd(l2: number, valid = true): bigint {
  return L1CD.V.set64(L1CD.L2PTR.set64(0n, BigInt(l2) >> 12n), valid ? 1 : 0);
}

/** Leaf attributes for PageTable.map. Stage 1 uses ap/uxn/pxn/ng; stage 2 uses s2ap/xn/memattr. */
export interface MapAttrs {
  af?: boolean;
  ap?: number;
  uxn?: boolean;
  pxn?: boolean;
  ng?: boolean;
  s2ap?: number;
  xn?: boolean;
  memattr?: number;
  /** Write the descriptor with the valid bit clear. */
  invalid?: boolean;
}

/**
 * A VMSAv8-64 4 KiB-granule translation table in DRAM, stage 1 (T0SZ) or stage 2 (S2T0SZ + start
 * level). map() creates table levels on demand from the page allocator.
 */
export class PageTable {
  readonly root: number;
  readonly startLevel: number;
  readonly iaBits: number;

  constructor(
    private readonly mem: PhysMem,
    private readonly pages: PageAllocator,
    readonly stage: 1 | 2,
    txsz: number,
    startLevel?: number,
    /** Nested streams: table pointers are IPAs; how to name a table page, and how to find it again. */
    private readonly ipa: { of(pa: number): number; pa(ipa: number): number } | null = null,
  ) {
    this.iaBits = 64 - txsz;
    this.startLevel = startLevel ?? startLevel4k(txsz);
    const bytes = 2 ** (this.iaBits - levelShift4k(this.startLevel)) * 8;
    this.root = pages.alloc(Math.max(1, Math.ceil(bytes / 4096)), 'test page table root');
  }

  /** PA of the descriptor for `va` at `level`, creating intermediate tables; null if a block is in the way. */
  descAddr(va: number, level: number, create = true): number | null {
    let table = this.root;
    for (let l = this.startLevel; ; l++) {
      const shift = levelShift4k(l);
      const entries = l === this.startLevel ? 2 ** (this.iaBits - shift) : 512;
      const pa = table + (Math.floor(va / 2 ** shift) % entries) * 8;
      if (l === level) return pa;
      const d = this.mem.read64(pa);
      if (PTE.VALID.get64(d) === 1n && PTE.TABLE.get64(d) === 1n) {
        const t = Number(PTE.OA.get64(d)) * 4096;
        table = this.ipa ? this.ipa.pa(t) : t;
        continue;
      }
      if (!create) return null;
      if (PTE.VALID.get64(d) === 1n) return null;
      const next = this.pages.alloc(1, 'test page table');
      this.mem.write64(pa, tableDesc(this.ipa ? this.ipa.of(next) : next));
      table = next;
    }
  }

  /** Maps [va, va + size) to pa with a page (4 KiB) or block (2 MiB, 1 GiB) descriptor. */
  map(va: number, pa: number, size = 4096, a: MapAttrs = {}): number {
    const level = size === 4096 ? 3 : size === 2 ** 21 ? 2 : size === 2 ** 30 ? 1 : -1;
    if (level < 0) throw new Error(`PageTable.map: size ${size} is not 4K, 2M or 1G`);
    const at = this.descAddr(va, level);
    if (at === null) throw new Error(`PageTable.map: a block maps ${va.toString(16)} already`);
    this.mem.write64(at, this.leaf(pa, level, a));
    return at;
  }

  leaf(pa: number, level: number, a: MapAttrs = {}): bigint {
    let d = 0n;
    d = PTE.VALID.set64(d, a.invalid ? 0 : 1);
    d = PTE.TABLE.set64(d, level === 3 ? 1 : 0);
    d = PTE.AF.set64(d, a.af === false ? 0 : 1);
    d = PTE.OA.set64(d, BigInt(pa) >> 12n);
    d = PTE.SH.set64(d, 3);
    if (this.stage === 1) {
      d = PTE.AP.set64(d, a.ap ?? 0b01);
      d = PTE.UXN.set64(d, a.uxn ? 1 : 0);
      d = PTE.PXN.set64(d, a.pxn ? 1 : 0);
      d = PTE.NG.set64(d, a.ng === false ? 0 : 1);
      d = PTE.ATTRINDX.set64(d, 1);
    } else {
      d = PTE.S2AP.set64(d, a.s2ap ?? 0b11);
      d = PTE.S2XN.set64(d, a.xn ? 2 : 0);
      d = PTE.S2_MEMATTR.set64(d, a.memattr ?? 0xf);
    }
    return d;
  }
}

export function tableDesc(next: number): bigint {
  return PTE.TABLE.set64(PTE.VALID.set64(PTE.OA.set64(0n, BigInt(next) >> 12n), 1), 1);
}
