// The IOTLB and the walk cache (IHI 0070 3.21, 4.4, 5.2.1): translations cached by the tags the
// architecture lets hardware use, and kept until a TLBI (or capacity eviction) removes them, so a driver
// that skips an invalidation observes stale behaviour exactly as it would on hardware.
// - The IOTLB: leaf translations only, tagged by stage, translation regime, VMID and ASID (global,
//   nG=0, entries match any ASID), by input page/block and output. Combined stage 1+2 entries of nested
//   streams are tagged like stage 1 ones, and TLBI_S2_IPA leaves them alone (4.4.3.1).
// - The walk cache: non-leaf table descriptors (the next-level table address and the hierarchical
//   attributes so far), by stage, regime, VMID, ASID, level and the input region the descriptor
//   covers. Leaf=1 TLBIs spare them; that is what makes freeing a table page after a leaf-only
//   invalidation observable.
// Both are a TagIndex (tag-index.ts); the TLBI commands that act on them are in invalidation.ts.

import { XSTAT } from '../../src/machine/layout.ts';
import { levelShift4k } from '../../src/arch/smmu/pte.ts';
import { ASID_GLOBAL, TagIndex, kindSlots, type TaggedEntry } from './tag-index.ts';

/** What an IOTLB entry translates: stage 1 (VA -> PA, or VA -> IPA for split-stage ATS), stage 2, both. */
export const TLB_KIND = { S1: 1, S2: 2, S12: 3 } as const;

/** A leaf translation: its tags and input region (va, size; VA or IPA), leaf level, output and permissions. */
export interface TlbEntry extends TaggedEntry {
  /** Output base. */
  readonly pa: number;
  /** Stage 1 permissions (S1P_* bits) and stage 2 permissions (S2P_* bits); 0 for a stage not involved. */
  readonly s1perms: number;
  readonly s2perms: number;
  /** Stage 2 maps the output as Device memory (for S2PTW checks). */
  readonly device: boolean;
}

/** A table descriptor (kind TLB_KIND.S1 or S2) at `level`: it covers [va, va + size) and points at a level + 1 table. */
export interface WalkEntry extends TaggedEntry {
  readonly table: number;
  /** Hierarchical attributes accumulated down to this descriptor (walk.ts TABLE_ATTR_* bits). */
  readonly attrs: number;
}

const IOTLB_CAPACITY = 8192;
const WALK_CAPACITY = 2048;
/** Leaf sizes a 4 KiB-granule walk produces: page, 2 MiB block, 1 GiB block. */
const LEAF_SIZES = [2 ** 12, 2 ** 21, 2 ** 30] as const;
/** Input region a table descriptor at level 0, 1, 2 covers (levels that hold tables with 4 KiB granules). */
const WALK_SIZES = [levelShift4k(0), levelShift4k(1), levelShift4k(2)].map((s) => 2 ** s);

/** Mask of TLB_KIND or REGIME values, for the invalidation methods. */
export function tagSet(...values: number[]): number {
  let m = 0;
  for (const v of values) m |= 1 << v;
  return m;
}

/** Walk slots of levels below `ttl` for every stage (all levels when ttl is 0): 4.4.1.1 Leaf=0 + TTL. */
function levelsAbove(ttl: number): number {
  const levels = ttl === 0 ? 7 : (1 << ttl) - 1;
  return levels * 0b001_001_001_001;
}

/** The input range an address-based TLBI covers (4.4.1.1). */
export interface TlbiRange {
  lo: number;
  hi: number;
  /** TTL: 0 = any level, 1..3 = only leaves at that level (and, with Leaf=0, tables above it). */
  ttl: number;
  leaf: boolean;
}

export class Tlb {
  private readonly leaves: TagIndex<TlbEntry>;
  private readonly walks: TagIndex<WalkEntry>;

  constructor(private readonly stats: Float64Array) {
    this.leaves = new TagIndex<TlbEntry>('IOTLB', LEAF_SIZES, (e) => LEAF_SIZES.indexOf(e.size as (typeof LEAF_SIZES)[number]), IOTLB_CAPACITY);
    this.walks = new TagIndex<WalkEntry>('walk cache', WALK_SIZES, (e) => e.level, WALK_CAPACITY);
  }

  /** Finds a leaf entry translating addr for the tag (ASID-specific or global); counts a hit or a miss. */
  lookup(kind: number, regime: number, vmid: number, asid: number, addr: number): TlbEntry | null {
    const own = this.leaves.bucketOf(regime, vmid, asid);
    const global = asid !== ASID_GLOBAL ? this.leaves.bucketOf(regime, vmid, ASID_GLOBAL) : undefined;
    if (own !== undefined || global !== undefined) {
      for (let i = 0; i < LEAF_SIZES.length; i++) {
        const e = this.leaves.find(own, kind, i, addr) ?? this.leaves.find(global, kind, i, addr);
        if (e !== undefined) {
          this.stats[XSTAT.IOTLB_HITS]!++;
          return e;
        }
      }
    }
    this.stats[XSTAT.IOTLB_MISSES]!++;
    return null;
  }

  insert(e: TlbEntry): void {
    this.leaves.insert(e);
  }

  /**
   * The deepest cached table descriptor on the path to addr, at or below `fromLevel`..2, or null.
   * Counts one walk-cache hit or miss per walk.
   */
  walkLookup(kind: number, regime: number, vmid: number, asid: number, addr: number, fromLevel: number): WalkEntry | null {
    const b = this.walks.bucketOf(regime, vmid, asid);
    if (b !== undefined) {
      for (let level = WALK_SIZES.length - 1; level >= fromLevel && level >= 0; level--) {
        const e = this.walks.find(b, kind, level, addr);
        if (e !== undefined) {
          this.stats[XSTAT.WALK_HITS]!++;
          return e;
        }
      }
    }
    this.stats[XSTAT.WALK_MISSES]!++;
    return null;
  }

  walkInsert(e: WalkEntry): void {
    this.walks.insert(e);
  }

  /**
   * Selects what an invalidation can touch: the {regime, VMID} groups of the regimes (a tagSet mask)
   * and VMID (or TAG_ANY). Returns how many; 0 means nothing is cached there and the command has
   * nothing to do (so a handler need not decode the rest of it). The next invalidateTags or
   * invalidateRange acts on this selection.
   */
  select(regimes: number, vmid: number): number {
    if (this.leaves.size === 0 && this.walks.size === 0) return 0;
    return this.leaves.select(regimes, vmid) + this.walks.select(regimes, vmid);
  }

  /**
   * Removes every entry of the selected groups with matching tags: leaf entries whose stage is in
   * `leafKinds`, walk entries whose stage is in `walkKinds` (tagSet masks), of ASID `asid` (TAG_ANY
   * for all; an ASID matches exactly, global entries only under TAG_ANY).
   */
  invalidateTags(leafKinds: number, walkKinds: number, asid: number): void {
    this.leaves.invalidateTags(kindSlots(leafKinds), asid);
    this.walks.invalidateTags(kindSlots(walkKinds), asid);
  }

  /**
   * Removes the entries of the selected groups with matching tags (as invalidateTags; with
   * `globalLeaves`, global leaf entries also match a given ASID) that overlap the range: leaves at
   * level r.ttl (any when 0) and, unless r.leaf, walk entries above level r.ttl (4.4.1.1).
   */
  invalidateRange(leafKinds: number, walkKinds: number, asid: number, globalLeaves: boolean, r: TlbiRange): void {
    this.leaves.invalidateRange(kindSlots(leafKinds), asid, globalLeaves, r.lo, r.hi, r.ttl);
    this.walks.invalidateRange(r.leaf ? 0 : kindSlots(walkKinds) & levelsAbove(r.ttl), asid, false, r.lo, r.hi, 0);
  }

  get size(): { leaf: number; walk: number } {
    return { leaf: this.leaves.size, walk: this.walks.size };
  }

  /** Every cached entry, oldest first (for tests and diagnostics). */
  contents(): { leaves: TlbEntry[]; walks: WalkEntry[] } {
    return { leaves: this.leaves.contents(), walks: this.walks.contents() };
  }
}
