// VMSAv8-64 I/O page tables with a 4 KiB granule, in DMA memory (Linux io-pgtable-arm, ARM_64_LPAE_S1
// and ARM_64_LPAE_S2 formats).
//
// Tables are 4 KiB pages from the shared page allocator; descriptors are written with 64-bit
// single-copy atomic stores (the SMMU may walk at any moment, IHI 0070 3.21.3) and next-level tables are
// installed with a 64-bit compare-and-swap. Leaves are 4 KiB pages (level 3), 2 MiB blocks (level 2) or
// 1 GiB blocks (level 1). Map never invalidates anything (an empty entry is never cached as valid);
// unmap reports cleared leaves to the gather (strict mode) and, before freeing a table it removed,
// flushes walks through it at once, so the SMMU's walk cache never points into a freed page.
//
// As in Linux since v6.13, unmapping part of a block is refused (no block splitting), and tables left
// empty by unmapping their last leaf stay until their table entry itself is unmapped or the page table
// is freed.

import type { Platform } from '../platform/platform.ts';
import { PAGE_SIZE } from '../../src/arch/platform.ts';
import { LEVEL_BITS_4K, MAIR_IDX, MAIR_LINUX, PTE, levelShift4k } from '../../src/arch/smmu/pte.ts';
import { PS_BITS } from '../../src/arch/smmu/cd.ts';
import { IOMMU, IommuError, gatherAddPage, type IotlbGather, type PgtableOps } from './iommu.ts';

export type IoPgtableFmt = 'ARM_64_LPAE_S1' | 'ARM_64_LPAE_S2';

/** Invalidation callbacks the page table calls (struct iommu_flush_ops). */
export interface IoPgtableFlushOps {
  /** Invalidate walks and leaves for [iova, iova+size) now, with a sync (a table is about to be freed). */
  tlbFlushWalk(iova: number, size: number, granule: number): void;
  /** A leaf of `granule` bytes at iova was cleared: gather it for the iotlb sync at the end of the unmap. */
  tlbAddPage(gather: IotlbGather, iova: number, granule: number): void;
}

export interface IoPgtableCfg {
  /** Input and output address sizes in bits (the page table clamps them to 48 with a 4 KiB granule). */
  ias: number;
  oas: number;
  /** Table walks are cache-coherent (the SMMU's COHACC): walk attributes write-back, inner-shareable. */
  coherentWalk: boolean;
  tlb: IoPgtableFlushOps;
}

/** What a stage-1 CD needs from the page table (io_pgtable_cfg.arm_lpae_s1_cfg). */
export interface S1TableConfig {
  ttbr: number;
  tcr: { tsz: number; tg: number; irgn: number; orgn: number; sh: number; ips: number };
  mair: bigint;
}

/** What a stage-2 STE needs from the page table (io_pgtable_cfg.arm_lpae_s2_cfg). */
export interface S2TableConfig {
  vttbr: number;
  vtcr: { tsz: number; sl: number; irgn: number; orgn: number; sh: number; tg: number; ps: number };
}

/** Largest leaf level is 1 (1 GiB blocks); level 0 holds only tables with a 4 KiB granule. */
const MAX_LEVELS = 4;
const ENTRIES = 1 << LEVEL_BITS_4K;
/** Descriptor type bits [1:0] (Arm ARM D8.3): block at levels 0-2, table or page. */
const TYPE_BLOCK = 1n;
const TYPE_TABLE = 3n;
const TYPE_MASK = 3n;
/** Shareability and cacheability encodings of TCR/VTCR and descriptor SH. */
const SH_OS = 2;
const SH_IS = 3;
const RGN_NC = 0;
const RGN_WBWA = 1;
/** Stage-2 MemAttr[3:0] encodings Linux uses (device nGnRE, normal outer/inner write-back, normal non-cacheable). */
const S2_MEMATTR = { DEV: 0x1, OIWB: 0xf, NC: 0x5 } as const;
/** S2AP bits: read (bit 6), write (bit 7). */
const S2AP_READ = 1;
const S2AP_WRITE = 2;

const blockSize = (lvl: number): number => 2 ** levelShift4k(lvl);

export class ArmLpaeIoPgtable implements PgtableOps {
  /** 4 KiB pages, 2 MiB and 1 GiB blocks. */
  readonly pgsizes = [PAGE_SIZE, 2 << 20, 1 << 30] as const;
  readonly ias: number;
  readonly oas: number;
  readonly startLevel: number;
  /** log2 of the number of entries of the top-level table. */
  readonly pgdBits: number;
  readonly pgdPa: number;
  private readonly pgdPages: number;
  private readonly leafProt = new Map<number, bigint>();

  private constructor(
    private readonly p: Platform,
    readonly fmt: IoPgtableFmt,
    private readonly cfg: IoPgtableCfg,
  ) {
    // arm_lpae_restrict_pgsizes: 48-bit input and output with a 4 KiB granule.
    this.ias = Math.min(cfg.ias, 48);
    this.oas = Math.min(cfg.oas, 48);
    if (this.ias < 32 || this.oas < 32) throw new RangeError(`io-pgtable: ias ${cfg.ias} / oas ${cfg.oas} below 32 bits`);
    const vaBits = this.ias - 12;
    const levels = Math.ceil(vaBits / LEVEL_BITS_4K);
    let start = MAX_LEVELS - levels;
    let pgdBits = vaBits - LEVEL_BITS_4K * (levels - 1);
    // Stage 2 may concatenate up to 16 level-1 tables instead of a small level-0 table (Arm ARM D8.2.6).
    if (fmt === 'ARM_64_LPAE_S2' && start === 0 && 2 ** pgdBits <= 16) {
      pgdBits += LEVEL_BITS_4K;
      start = 1;
    }
    this.startLevel = start;
    this.pgdBits = pgdBits;
    this.pgdPages = Math.max(1, (2 ** pgdBits * 8) / PAGE_SIZE);
    this.pgdPa = p.pages.alloc(this.pgdPages, 'io-pgtable pgd');
  }

  /** Allocates an empty page table (alloc_io_pgtable_ops). */
  static alloc(p: Platform, fmt: IoPgtableFmt, cfg: IoPgtableCfg): ArmLpaeIoPgtable {
    return new ArmLpaeIoPgtable(p, fmt, cfg);
  }

  // ---- configuration for the CD (stage 1) or STE (stage 2) ----

  private ps(): number {
    const i = PS_BITS.indexOf(this.oas as (typeof PS_BITS)[number]);
    if (i < 0) throw new RangeError(`io-pgtable: oas ${this.oas} has no IPS/PS encoding`);
    return i;
  }

  /** TCR fields, TTBR and MAIR for a stage-1 CD (arm_64_lpae_alloc_pgtable_s1). */
  s1Config(): S1TableConfig {
    if (this.fmt !== 'ARM_64_LPAE_S1') throw new Error('s1Config: this is a stage-2 page table');
    const c = this.cfg.coherentWalk;
    return {
      ttbr: this.pgdPa,
      tcr: { tsz: 64 - this.ias, tg: 0, irgn: c ? RGN_WBWA : RGN_NC, orgn: c ? RGN_WBWA : RGN_NC, sh: c ? SH_IS : SH_OS, ips: this.ps() },
      mair: MAIR_LINUX,
    };
  }

  /** VTCR fields and VTTBR for a stage-2 STE (arm_64_lpae_alloc_pgtable_s2). */
  s2Config(): S2TableConfig {
    if (this.fmt !== 'ARM_64_LPAE_S2') throw new Error('s2Config: this is a stage-1 page table');
    const c = this.cfg.coherentWalk;
    // VTCR.SL0 with a 4 KiB granule: 2 = start at level 0, 1 = level 1, 0 = level 2.
    const sl = 2 - this.startLevel;
    return {
      vttbr: this.pgdPa,
      vtcr: { tsz: 64 - this.ias, sl, irgn: c ? RGN_WBWA : RGN_NC, orgn: c ? RGN_WBWA : RGN_NC, sh: c ? SH_IS : SH_OS, tg: 0, ps: this.ps() },
    };
  }

  // ---- descriptors ----

  /** Leaf attributes for IOMMU_* protection flags (arm_lpae_prot_to_pte). */
  protToPte(prot: number): bigint {
    const cached = this.leafProt.get(prot);
    if (cached !== undefined) return cached;
    let pte = 0n;
    if (this.fmt === 'ARM_64_LPAE_S1') {
      pte = PTE.NG.set64(pte, 1n);
      if (prot & IOMMU.READ && !(prot & IOMMU.WRITE)) pte = PTE.AP_RDONLY.set64(pte, 1n);
      if (!(prot & IOMMU.PRIV)) pte = PTE.AP_UNPRIV.set64(pte, 1n);
      const idx = prot & IOMMU.MMIO ? MAIR_IDX.DEV : prot & IOMMU.CACHE ? MAIR_IDX.CACHE : MAIR_IDX.NC;
      pte = PTE.ATTRINDX.set64(pte, BigInt(idx));
    } else {
      let ap = 0;
      if (prot & IOMMU.READ) ap |= S2AP_READ;
      if (prot & IOMMU.WRITE) ap |= S2AP_WRITE;
      pte = PTE.S2AP.set64(pte, BigInt(ap));
      const attr = prot & IOMMU.MMIO ? S2_MEMATTR.DEV : prot & IOMMU.CACHE ? S2_MEMATTR.OIWB : S2_MEMATTR.NC;
      pte = PTE.S2_MEMATTR.set64(pte, BigInt(attr));
    }
    pte = PTE.SH.set64(pte, BigInt(prot & IOMMU.CACHE ? SH_IS : SH_OS));
    if (prot & IOMMU.NOEXEC) pte = PTE.S2XN.set64(pte, 3n);
    pte = PTE.AF.set64(pte, 1n);
    this.leafProt.set(prot, pte);
    return pte;
  }

  private isLeaf(pte: bigint, lvl: number): boolean {
    const type = pte & TYPE_MASK;
    return lvl === MAX_LEVELS - 1 ? type === TYPE_TABLE : type === TYPE_BLOCK;
  }

  private static oa(pte: bigint): number {
    return Number(PTE.OA.get64(pte)) * PAGE_SIZE;
  }

  private entries(lvl: number): number {
    return lvl === this.startLevel ? 2 ** this.pgdBits : ENTRIES;
  }

  /** Index of iova's entry in its level-lvl table. */
  private idx(iova: number, lvl: number): number {
    return Math.floor(iova / blockSize(lvl)) % this.entries(lvl);
  }

  private read(tablePa: number, i: number): bigint {
    return this.p.mem.read64(tablePa + i * 8, 'io-pgtable read');
  }

  private write(tablePa: number, i: number, v: bigint): void {
    this.p.mem.write64(tablePa + i * 8, v, 'io-pgtable write');
  }

  // ---- map (arm_lpae_map_pages) ----

  mapPages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number): number {
    if (!this.pgsizes.includes(pgsize as (typeof this.pgsizes)[number])) throw new IommuError('EINVAL', `map: page size 0x${pgsize.toString(16)} not supported`);
    if (!(prot & (IOMMU.READ | IOMMU.WRITE))) throw new IommuError('EINVAL', `map: iova 0x${iova.toString(16)}: prot 0x${prot.toString(16)} grants neither read nor write`);
    if (iova < 0 || iova + pgsize * pgcount > 2 ** this.ias) throw new IommuError('ERANGE', `map: iova 0x${iova.toString(16)} (+0x${(pgsize * pgcount).toString(16)}) beyond the ${this.ias}-bit input range`);
    if (paddr < 0 || paddr + pgsize * pgcount > 2 ** this.oas) throw new IommuError('ERANGE', `map: pa 0x${paddr.toString(16)} beyond the ${this.oas}-bit output range`);
    return this.mapAt(iova, paddr, pgsize, pgcount, this.protToPte(prot), this.startLevel, this.pgdPa);
  }

  private mapAt(iova: number, paddr: number, size: number, pgcount: number, prot: bigint, lvl: number, table: number): number {
    const i = this.idx(iova, lvl);
    if (size === blockSize(lvl)) {
      const n = Math.min(pgcount, this.entries(lvl) - i);
      this.initPtes(iova, paddr, prot, lvl, n, table, i);
      return n * size;
    }
    if (lvl >= MAX_LEVELS - 1) throw new IommuError('EINVAL', `map: no level maps 0x${size.toString(16)} bytes`);
    let pte = this.read(table, i);
    if (pte === 0n) {
      // A new zeroed table, published with one CAS; if another CPU got there first, use theirs.
      const next = this.p.pages.alloc(1, 'io-pgtable table');
      const desc = BigInt(next) | TYPE_TABLE;
      const old = BigInt.asUintN(64, Atomics.compareExchange(this.p.mem.i64, this.p.mem.idx64(table + i * 8), 0n, BigInt.asIntN(64, desc)));
      if (old === 0n) {
        pte = desc;
      } else {
        this.p.pages.free(next, 1);
        pte = old;
      }
    }
    if (this.isLeaf(pte, lvl)) {
      throw new IommuError('EEXIST', `map: iova 0x${iova.toString(16)} lies in a ${blockSize(lvl) >> 10} KiB block already mapped (unmap it first)`);
    }
    return this.mapAt(iova, paddr, size, pgcount, prot, lvl + 1, ArmLpaeIoPgtable.oa(pte));
  }

  /**
   * Writes n leaves at table[i..] (arm_lpae_init_pte); an existing leaf is -EEXIST and nothing is written,
   * an existing table is unmapped and freed first.
   */
  private initPtes(iova: number, paddr: number, prot: bigint, lvl: number, n: number, table: number, i: number): void {
    const size = blockSize(lvl);
    for (let k = 0; k < n; k++) {
      const pte = this.read(table, i + k);
      if (pte === 0n) continue;
      if (this.isLeaf(pte, lvl)) {
        throw new IommuError('EEXIST', `map: iova 0x${(iova + k * size).toString(16)} is already mapped (unmap it first)`);
      }
      // A table (left empty by earlier unmaps) where a block goes: remove it, flushing walks through it.
      if (this.unmapAt(null, iova + k * size, size, 1, lvl, table) !== size) {
        throw new IommuError('EINVAL', `map: could not remove the table at iova 0x${(iova + k * size).toString(16)}`);
      }
    }
    const type = lvl === MAX_LEVELS - 1 ? TYPE_TABLE : TYPE_BLOCK;
    for (let k = 0; k < n; k++) {
      this.write(table, i + k, prot | type | PTE.OA.set64(0n, BigInt((paddr + k * size) / PAGE_SIZE)));
    }
  }

  // ---- unmap (arm_lpae_unmap_pages) ----

  unmapPages(iova: number, pgsize: number, pgcount: number, gather: IotlbGather | null): number {
    if (!this.pgsizes.includes(pgsize as (typeof this.pgsizes)[number]) || pgcount < 1) return 0;
    if (iova < 0 || iova + pgsize * pgcount > 2 ** this.ias) return 0;
    return this.unmapAt(gather, iova, pgsize, pgcount, this.startLevel, this.pgdPa);
  }

  private unmapAt(gather: IotlbGather | null, iova: number, size: number, pgcount: number, lvl: number, table: number): number {
    if (lvl === MAX_LEVELS) return 0;
    const i = this.idx(iova, lvl);
    const pte = this.read(table, i);
    if (pte === 0n) return 0; // a hole: the caller asked to unmap something not mapped
    if (size === blockSize(lvl)) {
      const n = Math.min(pgcount, this.entries(lvl) - i);
      let k = 0;
      for (; k < n; k++) {
        const e = this.read(table, i + k);
        if (e === 0n) break;
        this.write(table, i + k, 0n);
        if (!this.isLeaf(e, lvl)) {
          // A table: make the SMMU drop walks through it, then free the subtree.
          this.cfg.tlb.tlbFlushWalk(iova + k * size, size, PAGE_SIZE);
          this.freeTable(lvl + 1, ArmLpaeIoPgtable.oa(e), gather?.released ?? null);
        } else {
          gather?.released.push(ArmLpaeIoPgtable.oa(e), size);
        }
      }
      // Linux gathers only the leaves here (a removed table's range was just flushed by the walk
      // flush, which drops leaf entries too); this page table gathers every removed entry's range, so
      // unmapping a whole table costs one redundant leaf TLBI at the iotlb sync.
      if (gather && !gather.queued) for (let j = 0; j < k; j++) this.cfg.tlb.tlbAddPage(gather, iova + j * size, size);
      return k * size;
    }
    // A leaf bigger than what we unmap: splitting blocks is not supported (Linux v6.13+).
    if (this.isLeaf(pte, lvl)) return 0;
    return this.unmapAt(gather, iova, size, pgcount, lvl + 1, ArmLpaeIoPgtable.oa(pte));
  }

  /** Frees a table and every table below it (__arm_lpae_free_pgtable). */
  private freeTable(lvl: number, table: number, released: number[] | null): void {
    if (lvl < MAX_LEVELS - 1 || released) {
      for (let i = 0; i < ENTRIES; i++) {
        const e = this.read(table, i);
        if (e === 0n) continue;
        if (!this.isLeaf(e, lvl)) this.freeTable(lvl + 1, ArmLpaeIoPgtable.oa(e), released);
        else released?.push(ArmLpaeIoPgtable.oa(e), blockSize(lvl));
      }
    }
    this.p.pages.free(table, 1);
  }

  /** Frees the whole page table; the caller has made sure the SMMU can no longer walk it. */
  free(): void {
    if (this.startLevel < MAX_LEVELS - 1) {
      for (let i = 0; i < 2 ** this.pgdBits; i++) {
        const e = this.read(this.pgdPa, i);
        if (e !== 0n && !this.isLeaf(e, this.startLevel)) this.freeTable(this.startLevel + 1, ArmLpaeIoPgtable.oa(e), null);
      }
    }
    this.p.pages.free(this.pgdPa, this.pgdPages);
  }

  // ---- lookup (arm_lpae_iova_to_phys) ----

  /** The physical address iova maps to, or null. */
  iovaToPhys(iova: number): number | null {
    if (iova < 0 || iova >= 2 ** this.ias) return null;
    let table = this.pgdPa;
    for (let lvl = this.startLevel; lvl < MAX_LEVELS; lvl++) {
      const pte = this.read(table, this.idx(iova, lvl));
      if (pte === 0n) return null;
      if (this.isLeaf(pte, lvl)) return ArmLpaeIoPgtable.oa(pte) + (iova % blockSize(lvl));
      if (lvl === MAX_LEVELS - 1) return null;
      table = ArmLpaeIoPgtable.oa(pte);
    }
    return null;
  }
}

/** The flush ops' tlbAddPage for a domain whose iotlb sync is `sync` (iommu_iotlb_gather_add_page). */
export function gatherFlushOps(flushWalk: IoPgtableFlushOps['tlbFlushWalk'], sync: (g: IotlbGather) => void): IoPgtableFlushOps {
  return {
    tlbFlushWalk: flushWalk,
    tlbAddPage: (g, iova, granule) => gatherAddPage(g, iova, granule, sync),
  };
}
