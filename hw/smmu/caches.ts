// The SMMU's caches and the commands that invalidate them (IHI 0070 3.21, 4.3, 4.4, 5.1.1, 5.2.1, 5.4.1).
//
// Three caches, each keyed the way the architecture says hardware may key them, and each keeping its
// entries until an invalidation command (or capacity eviction) removes them, so a driver that skips
// an invalidation observes stale behaviour exactly as it would on hardware:
// - ConfigCache: STEs by StreamID, valid L1STDs by the StreamID span they cover, CDs by {StreamID, CD
//   table index} and L1CDs by {StreamID, index span}. CFGI_STE also drops the CDs cached through that
//   StreamID (5.2.1); the non-leaf forms also drop the L1 descriptors on the path (4.3.1, 4.3.3).
// - The IOTLB (Tlb leaf entries): leaf translations only, tagged by stage, translation regime, VMID and ASID
//   (global, nG=0, entries match any ASID), by input page/block and output. Combined stage 1+2 entries
//   of nested streams are tagged like stage 1 ones, and TLBI_S2_IPA leaves them alone (4.4.3.1).
// - The walk cache (Tlb walk entries): non-leaf table descriptors (the next-level table address and the
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
import { hex } from '../../src/bits.ts';

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
/** Input region a table descriptor at level 0, 1, 2 covers (levels that hold tables with 4 KiB granules). */
const WALK_SIZES = [levelShift4k(0), levelShift4k(1), levelShift4k(2)].map((s) => 2 ** s);
/** Addresses below this are exact in a double, so base / size keys and the range arithmetic are exact. */
const EXACT_LIMIT = 2 ** 53;

/** Tag wildcard for the invalidation methods: any VMID, or any ASID (global entries included). */
const TAG_ANY = -2;

/** Bit mask of TLB_KIND or REGIME values, for the invalidation methods. */
function tagSet(...values: number[]): number {
  let m = 0;
  for (const v of values) m |= 1 << v;
  return m;
}
const ALL_KINDS = tagSet(TLB_KIND.S1, TLB_KIND.S2, TLB_KIND.S12);
const ALL_REGIMES = tagSet(REGIME.EL1, REGIME.EL2, REGIME.EL2_E2H);

function evictOldest<K, V>(m: Map<K, V>, capacity: number): void {
  if (m.size < capacity) return;
  const first = m.keys().next();
  if (!first.done) m.delete(first.value);
}

// The IOTLB and walk cache are indexed so that an invalidation costs what it can match, not what the
// cache holds: a group per {regime, VMID}, in it a bucket per ASID (ASID_GLOBAL for global and
// ASID-less entries), and in a bucket one map per {stage, entry size} (walk entries: per {stage,
// level}) keyed by base / size, with a bit mask of the maps that hold anything. A VMID- or ASID-wide
// invalidation drops whole maps; an address-based one probes the few keys its range can hit, or scans
// a map when the range spans more keys than the map holds. A command whose {regime, VMID} has nothing
// cached costs one map lookup. Every entry is also on an oldest-first list of its cache, for eviction
// at capacity.

/** A link of a cache's oldest-first list (the list head is a bare Link). */
class Link {
  prev: Link = this;
  next: Link = this;
}

/** One cached entry: where it is indexed (bucket, map slot, key), and its place on the oldest-first list. */
class Slot<E> extends Link {
  constructor(
    public entry: E,
    readonly bucket: Bucket,
    readonly slot: number,
    readonly map: Map<number, Slot<E>>,
    readonly key: number,
  ) {
    super();
  }
}

/** Insertion order of a cache's entries (re-inserting a cached key keeps its place, like Map.set). */
class AgeList<E> {
  readonly head = new Link();
  count = 0;

  push(s: Slot<E>): void {
    const last = this.head.prev;
    s.prev = last;
    s.next = this.head;
    last.next = s;
    this.head.prev = s;
    this.count++;
  }

  unlink(s: Slot<E>): void {
    s.prev.next = s.next;
    s.next.prev = s.prev;
    this.count--;
  }

  oldest(): Slot<E> | undefined {
    const first = this.head.next;
    return first === this.head ? undefined : (first as Slot<E>);
  }
}

/**
 * Map slots of a bucket: stage (TLB_KIND 1..3) x entry size (LEAF_SIZES index) for leaves, stage x
 * level for walk entries; slot = kind * 3 + index, so a stage's slots are bits 3k..3k+2 of a mask.
 */
const SLOTS = 12;
/** The slots of the stages in a tagSet mask of TLB_KIND values. */
function kindSlots(kinds: number): number {
  let m = 0;
  for (let kind = TLB_KIND.S1; kind <= TLB_KIND.S12; kind++) if ((kinds >> kind) & 1) m |= 7 << (kind * 3);
  return m;
}
/** Walk slots of levels below `ttl` for every stage (all levels when ttl is 0): 4.4.1.1 Leaf=0 + TTL. */
function levelsAbove(ttl: number): number {
  const levels = ttl === 0 ? 7 : (1 << ttl) - 1;
  return levels * 0b001_001_001_001;
}

/** The entries of one tag {regime, vmid, asid}, all stages. */
class Bucket {
  /** Leaf entries per slot, keyed by va / size; a map exists once its slot was used. */
  readonly leaves: (Map<number, Slot<TlbEntry>> | undefined)[] = new Array(SLOTS).fill(undefined);
  /** Walk-cache entries per slot (stage, level), keyed by va / size. */
  readonly walks: (Map<number, Slot<WalkEntry>> | undefined)[] = new Array(SLOTS).fill(undefined);
  /** Slots whose map holds entries. */
  leafSlots = 0;
  walkSlots = 0;

  constructor(
    readonly group: TagGroup,
    readonly asid: number,
  ) {}
}

/** The buckets of one {regime, vmid}, by ASID. */
class TagGroup {
  readonly buckets = new Map<number, Bucket>();

  constructor(
    readonly key: number,
    readonly regime: number,
  ) {}
}

/** Regime (0..2) in 2 bits, VMID above: a small-integer Map key. */
function groupKey(regime: number, vmid: number): number {
  return regime + 4 * vmid;
}

function leafSizeIndex(size: number): number {
  const i = LEAF_SIZES.indexOf(size as (typeof LEAF_SIZES)[number]);
  if (i < 0) throw new Error(`IOTLB: entry size ${hex(size, 0)} is not a 4 KiB-granule leaf size`);
  return i;
}

// The TLBI handlers run once per command, so they decode through readers specialized to each field
// (Field.reader), which compile down to a load, a shift and a mask.
const leafOf = F.LEAF.reader();
const tgOf = F.TG.reader();
const numOf = F.NUM.reader();
const scaleOf = F.SCALE.reader();
const ttlOf = F.TTL.reader();
const vmidOf = F.VMID.reader();
const asidOf = F.ASID.reader();
const vaField = F.VA.reader();
const ipaField = F.IPA.reader();
// VA[63:12] (52 bits) and IPA[55:12] fit a double: the number path avoids a BigInt per command.
const vaOf = (c: Uint32Array) => vaField(c) * 4096;
const ipaOf = (c: Uint32Array) => ipaField(c) * 4096;

/** The input range an address-based TLBI covers (4.4.1.1), decoded into one reused object. */
class TlbiSpan {
  lo = 0;
  hi = 0;
  /** TTL: 0 = any level, 1..3 = only leaves at that level (and, with Leaf=0, tables above it). */
  ttl = 0;
  leaf = false;

  /**
   * Decodes the address, range and level hint of command c; false when TG names a granule other than
   * the 4 KiB one every entry here was created with, so nothing can match.
   */
  decode(c: Uint32Array, addr: number, ril: boolean): boolean {
    this.leaf = leafOf(c) === 1;
    const tg = ril ? tgOf(c) : 0;
    this.lo = addr;
    if (tg === 0) {
      this.hi = addr + 1;
      this.ttl = 0;
      return true;
    }
    if (tg !== 1) return false;
    this.hi = addr + (numOf(c) + 1) * 2 ** scaleOf(c) * 2 ** 12;
    this.ttl = ttlOf(c);
    return true;
  }
}

export class Tlb {
  private readonly groups = new Map<number, TagGroup>();
  private readonly leafAge = new AgeList<TlbEntry>();
  private readonly walkAge = new AgeList<WalkEntry>();
  /** The groups select() chose for the next invalidation, and how many (reused: no allocation per command). */
  private readonly visit: (TagGroup | undefined)[] = [];
  private selected = 0;

  constructor(private readonly stats: Float64Array) {}

  /** Finds a leaf entry translating addr for the tag (ASID-specific or global); counts a hit or a miss. */
  lookup(kind: number, regime: number, vmid: number, asid: number, addr: number): TlbEntry | null {
    const g = this.groups.get(groupKey(regime, vmid));
    if (g !== undefined) {
      const own = g.buckets.get(asid);
      const global = asid !== ASID_GLOBAL ? g.buckets.get(ASID_GLOBAL) : undefined;
      for (let i = 0; i < LEAF_SIZES.length; i++) {
        const key = Math.floor(addr / LEAF_SIZES[i]!);
        const slot = kind * 3 + i;
        const s = own?.leaves[slot]?.get(key) ?? global?.leaves[slot]?.get(key);
        if (s !== undefined) {
          this.stats[XSTAT.IOTLB_HITS]!++;
          return s.entry;
        }
      }
    }
    this.stats[XSTAT.IOTLB_MISSES]!++;
    return null;
  }

  insert(e: TlbEntry): void {
    if (e.kind < TLB_KIND.S1 || e.kind > TLB_KIND.S12) throw new Error(`IOTLB: no stage ${e.kind}`);
    const slot = e.kind * 3 + leafSizeIndex(e.size);
    if (e.va % e.size !== 0) throw new Error(`IOTLB: entry base ${hex(e.va, 0)} not aligned to its size ${hex(e.size, 0)}`);
    const oldest = this.leafAge.count >= IOTLB_CAPACITY ? this.leafAge.oldest() : undefined;
    if (oldest !== undefined) this.dropLeaf(oldest);
    const b = this.bucket(e.regime, e.vmid, e.asid);
    let m = b.leaves[slot];
    if (m === undefined) b.leaves[slot] = m = new Map();
    const key = e.va / e.size;
    const s = m.get(key);
    if (s !== undefined) {
      s.entry = e;
      return;
    }
    const n = new Slot(e, b, slot, m, key);
    m.set(key, n);
    b.leafSlots |= 1 << slot;
    this.leafAge.push(n);
  }

  /**
   * The deepest cached table descriptor on the path to addr, at or below `fromLevel`..2, or null.
   * Counts one walk-cache hit or miss per walk.
   */
  walkLookup(kind: number, regime: number, vmid: number, asid: number, addr: number, fromLevel: number): WalkEntry | null {
    const b = this.groups.get(groupKey(regime, vmid))?.buckets.get(asid);
    if (b !== undefined) {
      for (let level = WALK_SIZES.length - 1; level >= fromLevel && level >= 0; level--) {
        const s = b.walks[kind * 3 + level]?.get(Math.floor(addr / WALK_SIZES[level]!));
        if (s !== undefined) {
          this.stats[XSTAT.WALK_HITS]!++;
          return s.entry;
        }
      }
    }
    this.stats[XSTAT.WALK_MISSES]!++;
    return null;
  }

  walkInsert(e: WalkEntry): void {
    const size = WALK_SIZES[e.level];
    if (size === undefined || e.size !== size) throw new Error(`walk cache: no level ${e.level} table descriptor of size ${hex(e.size, 0)} with a 4 KiB granule`);
    if (e.va % size !== 0) throw new Error(`walk cache: entry base ${hex(e.va, 0)} not aligned to its size ${hex(size, 0)}`);
    if (e.kind < TLB_KIND.S1 || e.kind > TLB_KIND.S12) throw new Error(`walk cache: no stage ${e.kind}`);
    const slot = e.kind * 3 + e.level;
    const oldest = this.walkAge.count >= WALK_CAPACITY ? this.walkAge.oldest() : undefined;
    if (oldest !== undefined) this.dropWalk(oldest);
    const b = this.bucket(e.regime, e.vmid, e.asid);
    let m = b.walks[slot];
    if (m === undefined) b.walks[slot] = m = new Map();
    const key = e.va / size;
    const s = m.get(key);
    if (s !== undefined) {
      s.entry = e;
      return;
    }
    const n = new Slot(e, b, slot, m, key);
    m.set(key, n);
    b.walkSlots |= 1 << slot;
    this.walkAge.push(n);
  }

  /**
   * Selects what an invalidation can touch: the {regime, VMID} groups of the regimes (a tagSet mask)
   * and VMID (or TAG_ANY). Returns how many; 0 means nothing is cached there and the command has
   * nothing to do (so a handler need not decode the rest of it). The next invalidateTags or
   * invalidateRange acts on this selection.
   */
  select(regimes: number, vmid: number): number {
    let n = 0;
    if (this.groups.size !== 0) {
      if (vmid !== TAG_ANY) {
        for (let regime = REGIME.EL1; regime <= REGIME.EL2_E2H; regime++) {
          if (((regimes >> regime) & 1) === 0) continue;
          const g = this.groups.get(groupKey(regime, vmid));
          if (g !== undefined) this.visit[n++] = g;
        }
      } else {
        for (const g of this.groups.values()) if (((regimes >> g.regime) & 1) === 1) this.visit[n++] = g;
      }
    }
    this.selected = n;
    return n;
  }

  /**
   * Removes every entry of the selected groups with matching tags: leaf entries whose stage is in
   * `leafKinds`, walk entries whose stage is in `walkKinds` (tagSet masks), of ASID `asid` (TAG_ANY
   * for all; an ASID matches exactly, global entries only under TAG_ANY).
   */
  invalidateTags(leafKinds: number, walkKinds: number, asid: number): void {
    const leafSlots = kindSlots(leafKinds);
    const walkSlots = kindSlots(walkKinds);
    const n = this.selected;
    this.selected = 0;
    for (let i = 0; i < n; i++) {
      const g = this.visit[i]!;
      this.visit[i] = undefined;
      if (asid !== TAG_ANY) {
        const b = g.buckets.get(asid);
        if (b !== undefined) this.clearSlots(b, leafSlots, walkSlots);
      } else {
        for (const b of g.buckets.values()) this.clearSlots(b, leafSlots, walkSlots);
      }
    }
  }

  /**
   * Removes the entries of the selected groups with matching tags (as invalidateTags; with
   * `globalLeaves`, global leaf entries also match a given ASID) that overlap span [lo, hi): leaves
   * at level span.ttl (any when 0) and, unless span.leaf, walk entries above level span.ttl (4.4.1.1).
   */
  invalidateRange(leafKinds: number, walkKinds: number, asid: number, globalLeaves: boolean, span: TlbiSpan): void {
    const leafSlots = kindSlots(leafKinds);
    const walkSlots = span.leaf ? 0 : kindSlots(walkKinds) & levelsAbove(span.ttl);
    const n = this.selected;
    this.selected = 0;
    for (let i = 0; i < n; i++) {
      const g = this.visit[i]!;
      this.visit[i] = undefined;
      if (asid !== TAG_ANY) {
        const b = g.buckets.get(asid);
        if (b !== undefined) this.rangeInBucket(b, leafSlots, walkSlots, span.lo, span.hi, span.ttl);
        const gb = globalLeaves ? g.buckets.get(ASID_GLOBAL) : undefined;
        if (gb !== undefined) this.rangeInBucket(gb, leafSlots, 0, span.lo, span.hi, span.ttl);
      } else {
        for (const b of g.buckets.values()) this.rangeInBucket(b, leafSlots, walkSlots, span.lo, span.hi, span.ttl);
      }
    }
  }

  get size(): { leaf: number; walk: number } {
    return { leaf: this.leafAge.count, walk: this.walkAge.count };
  }

  /** Every cached entry, oldest first (for tests and diagnostics). */
  contents(): { leaves: TlbEntry[]; walks: WalkEntry[] } {
    const list = <E>(age: AgeList<E>) => {
      const out: E[] = [];
      for (let l = age.head.next; l !== age.head; l = l.next) out.push((l as Slot<E>).entry);
      return out;
    };
    return { leaves: list(this.leafAge), walks: list(this.walkAge) };
  }

  private bucket(regime: number, vmid: number, asid: number): Bucket {
    const gk = groupKey(regime, vmid);
    let g = this.groups.get(gk);
    if (g === undefined) this.groups.set(gk, (g = new TagGroup(gk, regime)));
    let b = g.buckets.get(asid);
    if (b === undefined) g.buckets.set(asid, (b = new Bucket(g, asid)));
    return b;
  }

  /** Forgets an empty bucket, and its group once that is empty too. */
  private release(b: Bucket): void {
    if ((b.leafSlots | b.walkSlots) !== 0) return;
    const g = b.group;
    g.buckets.delete(b.asid);
    if (g.buckets.size === 0) this.groups.delete(g.key);
  }

  private dropLeaf(s: Slot<TlbEntry>): void {
    s.map.delete(s.key);
    this.leafAge.unlink(s);
    if (s.map.size === 0) {
      s.bucket.leafSlots &= ~(1 << s.slot);
      this.release(s.bucket);
    }
  }

  private dropWalk(s: Slot<WalkEntry>): void {
    s.map.delete(s.key);
    this.walkAge.unlink(s);
    if (s.map.size === 0) {
      s.bucket.walkSlots &= ~(1 << s.slot);
      this.release(s.bucket);
    }
  }

  /** Removes every entry in the given slots of a bucket. */
  private clearSlots(b: Bucket, leafSlots: number, walkSlots: number): void {
    for (let bits = b.leafSlots & leafSlots; bits !== 0; bits &= bits - 1) {
      const m = b.leaves[31 - Math.clz32(bits & -bits)]!;
      for (const s of m.values()) this.leafAge.unlink(s);
      m.clear();
    }
    for (let bits = b.walkSlots & walkSlots; bits !== 0; bits &= bits - 1) {
      const m = b.walks[31 - Math.clz32(bits & -bits)]!;
      for (const s of m.values()) this.walkAge.unlink(s);
      m.clear();
    }
    b.leafSlots &= ~leafSlots;
    b.walkSlots &= ~walkSlots;
    this.release(b);
  }

  /**
   * Removes a bucket's entries in the given slots overlapping the span. Per map: when the range
   * covers no more keys than the map holds (and its ends are exact), probe each key; otherwise scan
   * the map. Either way the work is bounded by the smaller of the two.
   */
  private rangeInBucket(b: Bucket, leafSlots: number, walkSlots: number, lo: number, hi: number, ttl: number): void {
    const exact = hi < EXACT_LIMIT;
    for (let bits = b.leafSlots & leafSlots; bits !== 0; bits &= bits - 1) {
      const slot = 31 - Math.clz32(bits & -bits);
      const m = b.leaves[slot]!;
      const size = LEAF_SIZES[slot % 3]!;
      const first = Math.floor(lo / size);
      const last = Math.floor((hi - 1) / size);
      if (exact && last - first < m.size) {
        for (let k = first; k <= last; k++) {
          const s = m.get(k);
          if (s !== undefined && (ttl === 0 || s.entry.level === ttl)) this.dropLeaf(s);
        }
      } else {
        for (const s of m.values()) {
          const e = s.entry;
          if (e.va < hi && lo < e.va + e.size && (ttl === 0 || e.level === ttl)) this.dropLeaf(s);
        }
      }
    }
    for (let bits = b.walkSlots & walkSlots; bits !== 0; bits &= bits - 1) {
      const slot = 31 - Math.clz32(bits & -bits);
      const m = b.walks[slot]!;
      const size = WALK_SIZES[slot % 3]!;
      const first = Math.floor(lo / size);
      const last = Math.floor((hi - 1) / size);
      if (exact && last - first < m.size) {
        for (let k = first; k <= last; k++) {
          const s = m.get(k);
          if (s !== undefined) this.dropWalk(s);
        }
      } else {
        for (const s of m.values()) {
          const w = s.entry;
          if (w.va < hi && lo < w.va + w.size) this.dropWalk(s);
        }
      }
    }
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

/** Leaf entries stage 1 TLBIs act on: stage 1 and combined stage 1+2 (4.4.2); walks are stage 1 ones. */
const S1_LEAVES = tagSet(TLB_KIND.S1, TLB_KIND.S12);
const S1_WALKS = tagSet(TLB_KIND.S1);
const S2_ONLY = tagSet(TLB_KIND.S2);
const EL1 = tagSet(REGIME.EL1);
const EL2 = tagSet(REGIME.EL2);
const EL2_E2H = tagSet(REGIME.EL2_E2H);
const EL2_REGIMES = EL2 | EL2_E2H;

/**
 * Binds the CFGI_* and TLBI_* commands to the caches. Commands are executed whatever SMMUEN is; the
 * model executes every invalidation fully at consumption, so a later CMD_SYNC has nothing to wait for.
 * Handlers decode their fields into locals and one reused span: nothing is allocated per command.
 */
export function installInvalidationHandlers(cmdq: CommandQueue, cfg: ConfigCache, tlb: Tlb, regs: RegisterFile, feat: SmmuFeatures): void {
  const ril = feat.ril;
  const span = new TlbiSpan();
  // EL2_VA/VAA act on EL2-E2H entries when CR2.E2H=1, else on EL2 entries (4.4.2.9-10).
  const e2h = () => CR2.E2H.get(regs.get('CR2')) === 1;

  cmdq.setHandler('CFGI_STE', (c) => {
    cfg.cfgiSte(F.SID.read(c), F.LEAF.read(c) === 1);
    return DONE;
  });
  cmdq.setHandler('CFGI_STE_RANGE', (c) => {
    const range = F.RANGE.read(c);
    if (range === CFGI_RANGE_ALL) {
      cfg.cfgiAll(); // CMD_CFGI_ALL (4.3.6)
    } else {
      const count = 2 ** (range + 1);
      const sid = F.SID.read(c);
      cfg.cfgiRange(sid - (sid % count), count);
    }
    return DONE;
  });
  cmdq.setHandler('CFGI_CD', (c) => {
    cfg.cfgiCd(F.SID.read(c), F.SSID.read(c), F.LEAF.read(c) === 1);
    return DONE;
  });
  cmdq.setHandler('CFGI_CD_ALL', (c) => {
    cfg.cfgiCdAll(F.SID.read(c));
    return DONE;
  });

  // Stage 1, NS-EL1 regime (4.4.2.1-4).
  cmdq.setHandler('TLBI_NH_ALL', (c) => {
    if (tlb.select(EL1, vmidOf(c)) !== 0) tlb.invalidateTags(S1_LEAVES, S1_WALKS, TAG_ANY);
    return DONE;
  });
  cmdq.setHandler('TLBI_NH_ASID', (c) => {
    // Non-global entries of the ASID only (like TLBI ASIDE1).
    if (tlb.select(EL1, vmidOf(c)) !== 0) tlb.invalidateTags(S1_LEAVES, S1_WALKS, asidOf(c));
    return DONE;
  });
  cmdq.setHandler('TLBI_NH_VA', (c) => {
    // Leaves of the ASID and global ones; walk entries of the ASID.
    if (tlb.select(EL1, vmidOf(c)) !== 0 && span.decode(c, vaOf(c), ril)) tlb.invalidateRange(S1_LEAVES, S1_WALKS, asidOf(c), true, span);
    return DONE;
  });
  cmdq.setHandler('TLBI_NH_VAA', (c) => {
    if (tlb.select(EL1, vmidOf(c)) !== 0 && span.decode(c, vaOf(c), ril)) tlb.invalidateRange(S1_LEAVES, S1_WALKS, TAG_ANY, false, span);
    return DONE;
  });

  // EL2 regimes (4.4.2.7-10), any VMID.
  cmdq.setHandler('TLBI_EL2_ALL', () => {
    if (tlb.select(EL2_REGIMES, TAG_ANY) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, TAG_ANY);
    return DONE;
  });
  cmdq.setHandler('TLBI_EL2_ASID', (c) => {
    if (tlb.select(EL2_E2H, TAG_ANY) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, asidOf(c));
    return DONE;
  });
  cmdq.setHandler('TLBI_EL2_VA', (c) => {
    const withE2h = e2h();
    if (tlb.select(withE2h ? EL2_E2H : EL2, TAG_ANY) !== 0 && span.decode(c, vaOf(c), ril)) {
      // The EL2 regime has no ASIDs: the command's ASID only matters with E2H.
      tlb.invalidateRange(ALL_KINDS, ALL_KINDS, withE2h ? asidOf(c) : TAG_ANY, true, span);
    }
    return DONE;
  });
  cmdq.setHandler('TLBI_EL2_VAA', (c) => {
    if (tlb.select(e2h() ? EL2_E2H : EL2, TAG_ANY) !== 0 && span.decode(c, vaOf(c), ril)) tlb.invalidateRange(ALL_KINDS, ALL_KINDS, TAG_ANY, false, span);
    return DONE;
  });

  // Stage 2 (4.4.3) and everything non-EL2 (4.4.4).
  cmdq.setHandler('TLBI_S12_VMALL', (c) => {
    if (tlb.select(EL1, vmidOf(c)) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, TAG_ANY);
    return DONE;
  });
  cmdq.setHandler('TLBI_S2_IPA', (c) => {
    // Combined stage 1+2 entries need not be affected (4.4.3.1): software pairs this with NH_ALL/VAA.
    if (tlb.select(ALL_REGIMES, vmidOf(c)) !== 0 && span.decode(c, ipaOf(c), ril)) tlb.invalidateRange(S2_ONLY, S2_ONLY, TAG_ANY, false, span);
    return DONE;
  });
  cmdq.setHandler('TLBI_NSNH_ALL', () => {
    if (tlb.select(EL1, TAG_ANY) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, TAG_ANY);
    return DONE;
  });
}
