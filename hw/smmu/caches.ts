// The SMMU's caches and the commands that invalidate them (IHI 0070 3.21, 4.3, 4.4, 5.1.1, 5.2.1, 5.4.1).
//
// Three caches, each keyed the way the architecture says hardware may key them, and each keeping its
// entries until an invalidation command (or capacity eviction) removes them, so a driver that skips
// an invalidation observes stale behaviour exactly as it would on hardware:
// - ConfigCache: STEs by StreamID, valid L1STDs by the StreamID span they cover, CDs by {StreamID, CD
//   table index} and L1CDs by {StreamID, index span}. CFGI_STE also drops the CDs cached through that
//   StreamID (5.2.1); the non-leaf forms also drop the L1 descriptors on the path (4.3.1, 4.3.3).
// - Tlb.entries (the IOTLB): leaf translations only, tagged by stage, translation regime, VMID and ASID
//   (global, nG=0, entries match any ASID), by input page/block and output. Combined stage 1+2 entries
//   of nested streams are tagged like stage 1 ones, and TLBI_S2_IPA leaves them alone (4.4.3.1).
// - Tlb.walks (the walk cache): non-leaf table descriptors (the next-level table address and the
//   hierarchical attributes so far), by stage, regime, VMID, ASID, level and the input region the
//   descriptor covers. Leaf=1 TLBIs spare them; that is what makes freeing a table page after a
//   leaf-only invalidation observable.
// Capacity is bounded; the oldest entry goes first (deterministic, no timing).

import { CFGI_RANGE_ALL, F } from '../../src/smmu/commands.ts';
import { CR2 } from '../../src/smmu/regs.ts';
import type { SmmuFeatures } from '../../src/smmu/features.ts';
import type { RegisterFile } from '../../src/regmap.ts';
import { XSTAT } from '../../src/layout.ts';
import { levelShift4k } from '../../src/smmu/pte.ts';
import { DONE, type CommandQueue } from './cmdq.ts';
import type { L1Std, Ste } from './strtab.ts';
import type { Cd, L1Cd } from './cd.ts';

/** Translation regimes a stage 1 entry belongs to (STE.STRW with CR2.E2H, 5.2). */
export const REGIME = { EL1: 0, EL2: 1, EL2_E2H: 2 } as const;
/** What an IOTLB entry translates: stage 1 (VA -> PA, or VA -> IPA for split-stage ATS), stage 2, both. */
export const TLB_KIND = { S1: 1, S2: 2, S12: 3 } as const;

/** ASID of entries that match any ASID: global (nG=0) entries, and the ASID-less EL2 regime. */
export const ASID_GLOBAL = -1;

export interface TlbEntry {
  readonly kind: number;
  readonly regime: number;
  readonly vmid: number;
  readonly asid: number;
  /** Input base (VA or IPA) and size of the translation. */
  readonly va: number;
  readonly size: number;
  /** Leaf level (the stage 1 level for combined entries; the stage 2 level for stage 2 entries). */
  readonly level: number;
  /** Output base. */
  readonly pa: number;
  /** Stage 1 permissions (S1P_* bits) and stage 2 permissions (S2P_* bits); 0 for a stage not involved. */
  readonly s1perms: number;
  readonly s2perms: number;
  /** Stage 2 maps the output as Device memory (for S2PTW checks). */
  readonly device: boolean;
}

export interface WalkEntry {
  readonly kind: number; // TLB_KIND.S1 or TLB_KIND.S2
  readonly regime: number;
  readonly vmid: number;
  readonly asid: number;
  /** Level of the table descriptor; it covers [va, va + size) and points at a level + 1 table. */
  readonly level: number;
  readonly va: number;
  readonly size: number;
  readonly table: number;
  /** Hierarchical attributes accumulated down to this descriptor (walk.ts TABLE_ATTR_* bits). */
  readonly attrs: number;
}

const IOTLB_CAPACITY = 8192;
const WALK_CAPACITY = 2048;
const CONFIG_CAPACITY = 4096;
/** Leaf sizes a 4 KiB-granule walk produces: page, 2 MiB block, 1 GiB block. */
const LEAF_SIZES = [2 ** 12, 2 ** 21, 2 ** 30] as const;

function evictOldest<K, V>(m: Map<K, V>, capacity: number): void {
  if (m.size < capacity) return;
  const first = m.keys().next();
  if (!first.done) m.delete(first.value);
}

export class Tlb {
  private readonly entries = new Map<string, TlbEntry>();
  private readonly walks = new Map<string, WalkEntry>();

  constructor(private readonly stats: Float64Array) {}

  private static key(kind: number, regime: number, vmid: number, asid: number, size: number, va: number): string {
    return `${kind}|${regime}|${vmid}|${asid}|${size}|${va}`;
  }

  /** Finds a leaf entry translating addr for the tag (ASID-specific or global); counts a hit or a miss. */
  lookup(kind: number, regime: number, vmid: number, asid: number, addr: number): TlbEntry | null {
    for (const size of LEAF_SIZES) {
      const base = addr - (addr % size);
      const e = this.entries.get(Tlb.key(kind, regime, vmid, asid, size, base)) ??
        (asid !== ASID_GLOBAL ? this.entries.get(Tlb.key(kind, regime, vmid, ASID_GLOBAL, size, base)) : undefined);
      if (e) {
        this.stats[XSTAT.IOTLB_HITS]!++;
        return e;
      }
    }
    this.stats[XSTAT.IOTLB_MISSES]!++;
    return null;
  }

  insert(e: TlbEntry): void {
    evictOldest(this.entries, IOTLB_CAPACITY);
    this.entries.set(Tlb.key(e.kind, e.regime, e.vmid, e.asid, e.size, e.va), e);
  }

  /**
   * The deepest cached table descriptor on the path to addr, at or below `fromLevel`..2, or null.
   * Counts one walk-cache hit or miss per walk.
   */
  walkLookup(kind: number, regime: number, vmid: number, asid: number, addr: number, fromLevel: number): WalkEntry | null {
    for (let level = 2; level >= fromLevel; level--) {
      const size = 2 ** levelShift4k(level);
      const e = this.walks.get(Tlb.key(kind, regime, vmid, asid, level, addr - (addr % size)));
      if (e) {
        this.stats[XSTAT.WALK_HITS]!++;
        return e;
      }
    }
    this.stats[XSTAT.WALK_MISSES]!++;
    return null;
  }

  walkInsert(e: WalkEntry): void {
    evictOldest(this.walks, WALK_CAPACITY);
    this.walks.set(Tlb.key(e.kind, e.regime, e.vmid, e.asid, e.level, e.va), e);
  }

  /** Removes the leaf entries matching pred, and (unless leafOnly) the walk-cache entries matching walkPred. */
  invalidate(pred: (e: TlbEntry) => boolean, walkPred: ((w: WalkEntry) => boolean) | null): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (pred(e)) {
        this.entries.delete(k);
        n++;
      }
    }
    if (walkPred) {
      for (const [k, w] of this.walks) {
        if (walkPred(w)) {
          this.walks.delete(k);
          n++;
        }
      }
    }
    return n;
  }

  get size(): { leaf: number; walk: number } {
    return { leaf: this.entries.size, walk: this.walks.size };
  }
}

/** A cached L1CD: the CD table indexes [first, first + count) it covers, and where their L2 table is. */
export interface CachedL1Cd {
  readonly first: number;
  readonly count: number;
  readonly l1: L1Cd;
}

export class ConfigCache {
  private readonly stes = new Map<number, Ste>();
  private readonly l1stds = new Map<number, L1Std>(); // by first StreamID of the span
  /** Per StreamID: CDs by CD table index, L1CDs by first index of their span. */
  private readonly cds = new Map<number, Map<number, Cd>>();
  private readonly l1cds = new Map<number, Map<number, CachedL1Cd>>();
  private cdCount = 0;

  getSte(sid: number): Ste | undefined {
    return this.stes.get(sid);
  }

  putSte(sid: number, ste: Ste): void {
    evictOldest(this.stes, CONFIG_CAPACITY);
    this.stes.set(sid, ste);
  }

  getL1Std(sid: number): L1Std | undefined {
    for (const l1 of this.l1stds.values()) if (sid >= l1.first && sid < l1.first + l1.count) return l1;
    return undefined;
  }

  putL1Std(l1: L1Std): void {
    evictOldest(this.l1stds, CONFIG_CAPACITY);
    this.l1stds.set(l1.first, l1);
  }

  getCd(sid: number, index: number): Cd | undefined {
    return this.cds.get(sid)?.get(index);
  }

  putCd(sid: number, index: number, cd: Cd): void {
    if (this.cdCount >= CONFIG_CAPACITY) this.dropCds(this.cds.keys().next().value!);
    let m = this.cds.get(sid);
    if (!m) this.cds.set(sid, (m = new Map()));
    if (!m.has(index)) this.cdCount++;
    m.set(index, cd);
  }

  getL1Cd(sid: number, index: number): CachedL1Cd | undefined {
    const m = this.l1cds.get(sid);
    if (!m) return undefined;
    for (const l1 of m.values()) if (index >= l1.first && index < l1.first + l1.count) return l1;
    return undefined;
  }

  putL1Cd(sid: number, l1: CachedL1Cd): void {
    let m = this.l1cds.get(sid);
    if (!m) this.l1cds.set(sid, (m = new Map()));
    evictOldest(m, CONFIG_CAPACITY);
    m.set(l1.first, l1);
  }

  private dropCds(sid: number): void {
    const m = this.cds.get(sid);
    if (m) this.cdCount -= m.size;
    this.cds.delete(sid);
    this.l1cds.delete(sid);
  }

  /** CMD_CFGI_STE (4.3.1): the STE, the CDs and L1CDs cached through it, and with Leaf=0 the L1STD. */
  cfgiSte(sid: number, leaf: boolean): void {
    this.stes.delete(sid);
    this.dropCds(sid);
    if (!leaf) {
      for (const [k, l1] of this.l1stds) if (sid >= l1.first && sid < l1.first + l1.count) this.l1stds.delete(k);
    }
  }

  /** CMD_CFGI_STE_RANGE (4.3.2): an aligned block of StreamIDs, with their L1STDs; CFGI_ALL clears all. */
  cfgiRange(first: number, count: number): void {
    const inBlock = (sid: number) => sid >= first && sid < first + count;
    for (const sid of this.stes.keys()) if (inBlock(sid)) this.stes.delete(sid);
    for (const sid of [...this.cds.keys(), ...this.l1cds.keys()]) if (inBlock(sid)) this.dropCds(sid);
    for (const [k, l1] of this.l1stds) if (l1.first < first + count && first < l1.first + l1.count) this.l1stds.delete(k);
  }

  cfgiAll(): void {
    this.stes.clear();
    this.l1stds.clear();
    this.cds.clear();
    this.l1cds.clear();
    this.cdCount = 0;
  }

  /** CMD_CFGI_CD (4.3.3): the CD at one table index of a StreamID, and with Leaf=0 its L1CD. */
  cfgiCd(sid: number, index: number, leaf: boolean): void {
    const m = this.cds.get(sid);
    if (m?.delete(index)) this.cdCount--;
    if (!leaf) {
      const l = this.l1cds.get(sid);
      if (l) for (const [k, l1] of l) if (index >= l1.first && index < l1.first + l1.count) l.delete(k);
    }
  }

  /** CMD_CFGI_CD_ALL (4.3.4): every CD and L1CD cached for a StreamID. */
  cfgiCdAll(sid: number): void {
    this.dropCds(sid);
  }

  get size(): { ste: number; l1std: number; cd: number } {
    return { ste: this.stes.size, l1std: this.l1stds.size, cd: this.cdCount };
  }
}

/** The input range an address-based TLBI covers, its leaf-level hint, and whether it applies at all. */
interface TlbiSpan {
  lo: number;
  hi: number;
  /** TTL: 0 = any level, 1..3 = only leaves at that level. */
  ttl: number;
  /** TG names a granule other than the 4 KiB one every entry here was created with: nothing matches. */
  otherGranule: boolean;
  leaf: boolean;
}

const GRANULE_BYTES = [0, 2 ** 12, 2 ** 14, 2 ** 16] as const;

/** Decodes the address, range and level hint of an address-based TLBI (4.4.1.1). */
function tlbiSpan(c: Uint32Array, addr: number, feat: SmmuFeatures): TlbiSpan {
  const leaf = F.LEAF.read(c) === 1;
  const tg = feat.ril ? F.TG.read(c) : 0;
  if (tg === 0) return { lo: addr, hi: addr + 1, ttl: 0, otherGranule: false, leaf };
  const bytes = (F.NUM.read(c) + 1) * 2 ** F.SCALE.read(c) * GRANULE_BYTES[tg]!;
  return { lo: addr, hi: addr + bytes, ttl: F.TTL.read(c), otherGranule: tg !== 1, leaf };
}

const overlaps = (e: { va: number; size: number }, s: TlbiSpan) => e.va < s.hi && s.lo < e.va + e.size;
const leafMatch = (e: TlbEntry, s: TlbiSpan) => !s.otherGranule && overlaps(e, s) && (s.ttl === 0 || e.level === s.ttl);
// Leaf=0 with TTL=n also removes table entries at the levels above n (4.4.1.1).
const walkMatch = (w: WalkEntry, s: TlbiSpan) => !s.otherGranule && overlaps(w, s) && (s.ttl === 0 || w.level < s.ttl);
const isS1 = (kind: number) => kind === TLB_KIND.S1 || kind === TLB_KIND.S12;
const isEl2 = (regime: number) => regime !== REGIME.EL1;

/**
 * Binds the CFGI_* and TLBI_* commands to the caches. Commands are executed whatever SMMUEN is; the
 * model executes every invalidation fully at consumption, so a later CMD_SYNC has nothing to wait for.
 */
export function installInvalidationHandlers(cmdq: CommandQueue, cfg: ConfigCache, tlb: Tlb, regs: RegisterFile, feat: SmmuFeatures): void {
  const on = (name: string, fn: (c: Uint32Array) => void) =>
    cmdq.setHandler(name, (c) => {
      fn(c);
      return DONE;
    });
  // VA[63:12] (52 bits) and IPA[55:12] fit a double: the number path avoids a BigInt per command.
  const va = (c: Uint32Array) => F.VA.read(c) * 4096;
  const ipa = (c: Uint32Array) => F.IPA.read(c) * 4096;
  const e2h = () => CR2.E2H.get(regs.get('CR2')) === 1;

  on('CFGI_STE', (c) => cfg.cfgiSte(F.SID.read(c), F.LEAF.read(c) === 1));
  on('CFGI_STE_RANGE', (c) => {
    const range = F.RANGE.read(c);
    if (range === CFGI_RANGE_ALL) return cfg.cfgiAll(); // CMD_CFGI_ALL (4.3.6)
    const count = 2 ** (range + 1);
    const sid = F.SID.read(c);
    cfg.cfgiRange(sid - (sid % count), count);
  });
  on('CFGI_CD', (c) => cfg.cfgiCd(F.SID.read(c), F.SSID.read(c), F.LEAF.read(c) === 1));
  on('CFGI_CD_ALL', (c) => cfg.cfgiCdAll(F.SID.read(c)));

  // Stage 1, NS-EL1 regime (4.4.2.1-4).
  on('TLBI_NH_ALL', (c) => {
    const vmid = F.VMID.read(c);
    tlb.invalidate((e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === vmid, (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === vmid);
  });
  on('TLBI_NH_ASID', (c) => {
    const vmid = F.VMID.read(c);
    const asid = F.ASID.read(c);
    // Non-global entries of the ASID only (like TLBI ASIDE1).
    tlb.invalidate(
      (e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === vmid && e.asid === asid,
      (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === vmid && w.asid === asid,
    );
  });
  on('TLBI_NH_VA', (c) => {
    const vmid = F.VMID.read(c);
    const asid = F.ASID.read(c);
    const s = tlbiSpan(c, va(c), feat);
    tlb.invalidate(
      (e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === vmid && (e.asid === asid || e.asid === ASID_GLOBAL) && leafMatch(e, s),
      s.leaf ? null : (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === vmid && w.asid === asid && walkMatch(w, s),
    );
  });
  on('TLBI_NH_VAA', (c) => {
    const vmid = F.VMID.read(c);
    const s = tlbiSpan(c, va(c), feat);
    tlb.invalidate(
      (e) => isS1(e.kind) && e.regime === REGIME.EL1 && e.vmid === vmid && leafMatch(e, s),
      s.leaf ? null : (w) => w.kind === TLB_KIND.S1 && w.regime === REGIME.EL1 && w.vmid === vmid && walkMatch(w, s),
    );
  });

  // EL2 regimes (4.4.2.7-10): EL2_VA/VAA act on EL2-E2H entries when CR2.E2H=1, else on EL2 entries.
  on('TLBI_EL2_ALL', () => tlb.invalidate((e) => isEl2(e.regime), (w) => isEl2(w.regime)));
  on('TLBI_EL2_ASID', (c) => {
    const asid = F.ASID.read(c);
    tlb.invalidate((e) => e.regime === REGIME.EL2_E2H && e.asid === asid, (w) => w.regime === REGIME.EL2_E2H && w.asid === asid);
  });
  on('TLBI_EL2_VA', (c) => {
    const asid = F.ASID.read(c);
    const s = tlbiSpan(c, va(c), feat);
    const regime = e2h() ? REGIME.EL2_E2H : REGIME.EL2;
    const asidOk = (a: number, global: boolean) => regime === REGIME.EL2 || a === asid || (global && a === ASID_GLOBAL);
    tlb.invalidate(
      (e) => e.regime === regime && asidOk(e.asid, true) && leafMatch(e, s),
      s.leaf ? null : (w) => w.regime === regime && asidOk(w.asid, false) && walkMatch(w, s),
    );
  });
  on('TLBI_EL2_VAA', (c) => {
    const s = tlbiSpan(c, va(c), feat);
    const regime = e2h() ? REGIME.EL2_E2H : REGIME.EL2;
    tlb.invalidate((e) => e.regime === regime && leafMatch(e, s), s.leaf ? null : (w) => w.regime === regime && walkMatch(w, s));
  });

  // Stage 2 (4.4.3) and everything non-EL2 (4.4.4).
  on('TLBI_S12_VMALL', (c) => {
    const vmid = F.VMID.read(c);
    tlb.invalidate((e) => e.regime === REGIME.EL1 && e.vmid === vmid, (w) => w.regime === REGIME.EL1 && w.vmid === vmid);
  });
  on('TLBI_S2_IPA', (c) => {
    const vmid = F.VMID.read(c);
    const s = tlbiSpan(c, ipa(c), feat);
    // Combined stage 1+2 entries need not be affected (4.4.3.1): software pairs this with NH_ALL/VAA.
    tlb.invalidate(
      (e) => e.kind === TLB_KIND.S2 && e.vmid === vmid && leafMatch(e, s),
      s.leaf ? null : (w) => w.kind === TLB_KIND.S2 && w.vmid === vmid && walkMatch(w, s),
    );
  });
  on('TLBI_NSNH_ALL', () => tlb.invalidate((e) => e.regime === REGIME.EL1, (w) => w.regime === REGIME.EL1));
}
