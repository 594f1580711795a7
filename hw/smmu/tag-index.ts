// The index behind the IOTLB and the walk cache (tlb.ts): entries tagged {regime, VMID, ASID, stage},
// each covering an aligned input region of one of three sizes, kept until invalidated or evicted.
//
// It is indexed so that an invalidation costs what it can match, not what the cache holds: a group per
// {regime, VMID}, in it a bucket per ASID (ASID_GLOBAL for global and ASID-less entries), and in a
// bucket one map per slot {stage, size} keyed by base / size, with a bit mask of the slots that hold
// anything. A VMID- or ASID-wide invalidation drops whole maps; an address-based one probes the few
// keys its range can hit, or scans a map when the range spans more keys than the map holds. A command
// whose {regime, VMID} has nothing cached costs one map lookup. Every entry is also on an oldest-first
// list, for eviction at capacity (deterministic: no timing).

import { hex } from '../../src/arch/bits.ts';

/** What the index needs of an entry: its tags and the input region [va, va + size) it covers. */
export interface TaggedEntry {
  /** Stage: TLB_KIND.S1, S2 or S12 (1..3). */
  readonly kind: number;
  readonly regime: number;
  readonly vmid: number;
  readonly asid: number;
  readonly va: number;
  readonly size: number;
  readonly level: number;
}

/** Tag wildcard: any VMID, or any ASID (global entries included). */
export const TAG_ANY = -2;
/** ASID of entries that match any ASID: global (nG=0) entries, and the ASID-less EL2 regime. */
export const ASID_GLOBAL = -1;

/**
 * Map slots of a bucket: stage (1..3) x size index (0..2); slot = kind * 3 + index, so a stage's slots
 * are bits 3k..3k+2 of a slot mask.
 */
const SLOTS = 12;
/** Addresses below this are exact in a double, so base / size keys and the range arithmetic are exact. */
const EXACT_LIMIT = 2 ** 53;

/** A link of the oldest-first list (the list head is a bare Link). */
class Link {
  prev: Link = this;
  next: Link = this;
}

/** One cached entry: where it is indexed (bucket, map slot, key), and its place on the oldest-first list. */
class Slot<E> extends Link {
  constructor(
    public entry: E,
    readonly bucket: Bucket<E>,
    readonly slot: number,
    readonly map: Map<number, Slot<E>>,
    readonly key: number,
  ) {
    super();
  }
}

/** The entries of one tag {regime, vmid, asid}, all stages and sizes. */
export class Bucket<E> {
  /** Entries per slot, keyed by va / size; a map exists once its slot was used. */
  readonly maps: (Map<number, Slot<E>> | undefined)[] = new Array(SLOTS).fill(undefined);
  /** Slots whose map holds entries. */
  used = 0;

  constructor(
    readonly group: TagGroup<E>,
    readonly asid: number,
  ) {}
}

/** The buckets of one {regime, vmid}, by ASID. */
class TagGroup<E> {
  readonly buckets = new Map<number, Bucket<E>>();

  constructor(
    readonly key: number,
    readonly regime: number,
  ) {}
}

/** Regime (0..2) in 2 bits, VMID above: a small-integer Map key. */
function groupKey(regime: number, vmid: number): number {
  return regime + 4 * vmid;
}

/** The slots of the stages in a mask of stage bits (1 << kind). */
export function kindSlots(kinds: number): number {
  let m = 0;
  for (let kind = 1; kind <= 3; kind++) if ((kinds >> kind) & 1) m |= 7 << (kind * 3);
  return m;
}

export class TagIndex<E extends TaggedEntry> {
  private readonly groups = new Map<number, TagGroup<E>>();
  private readonly age = new Link();
  private count = 0;
  /** The groups select() chose for the next invalidation, and how many (reused: no allocation per command). */
  private readonly visit: (TagGroup<E> | undefined)[] = [];
  private selected = 0;

  constructor(
    /** What the index holds, for error messages. */
    private readonly name: string,
    /** Region size of each size index (0..2). */
    private readonly sizes: readonly number[],
    /** The size index of an entry: where it is filed in its bucket. */
    private readonly sizeIndex: (e: E) => number,
    private readonly capacity: number,
  ) {}

  get size(): number {
    return this.count;
  }

  /** The bucket of tag {regime, vmid, asid}, or undefined when nothing is cached under it (for find()). */
  bucketOf(regime: number, vmid: number, asid: number): Bucket<E> | undefined {
    return this.groups.get(groupKey(regime, vmid))?.buckets.get(asid);
  }

  /** The entry of bucket b at slot {kind, size index} covering addr, if any. */
  find(b: Bucket<E> | undefined, kind: number, index: number, addr: number): E | undefined {
    return b?.maps[kind * 3 + index]?.get(Math.floor(addr / this.sizes[index]!))?.entry;
  }

  /** Adds an entry (replacing one with the same tags and region, which keeps its age), evicting the oldest at capacity. */
  insert(e: E): void {
    const index = this.sizeIndex(e);
    const size = this.sizes[index];
    if (size === undefined || e.size !== size) throw new Error(`${this.name}: no entry of size ${hex(e.size, 0)} at index ${index}`);
    if (e.va % size !== 0) throw new Error(`${this.name}: entry base ${hex(e.va, 0)} not aligned to its size ${hex(size, 0)}`);
    if (e.kind < 1 || e.kind > 3) throw new Error(`${this.name}: no stage ${e.kind}`);
    const slot = e.kind * 3 + index;
    if (this.count >= this.capacity) {
      const oldest = this.age.next;
      if (oldest !== this.age) this.drop(oldest as Slot<E>);
    }
    const b = this.bucket(e.regime, e.vmid, e.asid);
    let m = b.maps[slot];
    if (m === undefined) b.maps[slot] = m = new Map();
    const key = e.va / size;
    const s = m.get(key);
    if (s !== undefined) {
      s.entry = e;
      return;
    }
    const n = new Slot(e, b, slot, m, key);
    m.set(key, n);
    b.used |= 1 << slot;
    const last = this.age.prev;
    n.prev = last;
    n.next = this.age;
    last.next = n;
    this.age.prev = n;
    this.count++;
  }

  /**
   * Selects what an invalidation can touch: the {regime, VMID} groups of the regimes (a mask of
   * 1 << regime) and VMID (or TAG_ANY). Returns how many; the next invalidateTags or invalidateRange
   * acts on this selection.
   */
  select(regimes: number, vmid: number): number {
    let n = 0;
    if (this.groups.size !== 0) {
      if (vmid !== TAG_ANY) {
        for (let regime = 0; regime < 3; regime++) {
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

  /** Removes every entry of the selected groups in `slots`, of ASID `asid` (TAG_ANY: all, global ones included). */
  invalidateTags(slots: number, asid: number): void {
    this.eachSelected(asid, false, slots, 0, 0, -1);
  }

  /**
   * Removes the entries of the selected groups in `slots`, of ASID `asid` (as invalidateTags; with
   * `withGlobal`, global entries also match a given ASID), that overlap [lo, hi) and, when `level` is
   * not 0, are at that level.
   */
  invalidateRange(slots: number, asid: number, withGlobal: boolean, lo: number, hi: number, level: number): void {
    this.eachSelected(asid, withGlobal, slots, lo, hi, level);
  }

  /**
   * Invalidates in the buckets of the selected groups that ASID `asid` names (every bucket for TAG_ANY;
   * with `withGlobal` also the global bucket), and clears the selection: whole slots when `level` is
   * -1, else the range [lo, hi) at `level`. (Arguments, not a callback: nothing is allocated per command.)
   */
  private eachSelected(asid: number, withGlobal: boolean, slots: number, lo: number, hi: number, level: number): void {
    const n = this.selected;
    this.selected = 0;
    for (let i = 0; i < n; i++) {
      const g = this.visit[i]!;
      this.visit[i] = undefined;
      if (asid !== TAG_ANY) {
        const b = g.buckets.get(asid);
        if (b !== undefined) this.invalidateIn(b, slots, lo, hi, level);
        const gb = withGlobal ? g.buckets.get(ASID_GLOBAL) : undefined;
        if (gb !== undefined) this.invalidateIn(gb, slots, lo, hi, level);
      } else {
        for (const b of g.buckets.values()) this.invalidateIn(b, slots, lo, hi, level);
      }
    }
  }

  /** Every entry, oldest first (for tests and diagnostics). */
  contents(): E[] {
    const out: E[] = [];
    for (let l = this.age.next; l !== this.age; l = l.next) out.push((l as Slot<E>).entry);
    return out;
  }

  private bucket(regime: number, vmid: number, asid: number): Bucket<E> {
    const gk = groupKey(regime, vmid);
    let g = this.groups.get(gk);
    if (g === undefined) this.groups.set(gk, (g = new TagGroup<E>(gk, regime)));
    let b = g.buckets.get(asid);
    if (b === undefined) g.buckets.set(asid, (b = new Bucket<E>(g, asid)));
    return b;
  }

  /** Forgets an empty bucket, and its group once that is empty too. */
  private release(b: Bucket<E>): void {
    if (b.used !== 0) return;
    const g = b.group;
    g.buckets.delete(b.asid);
    if (g.buckets.size === 0) this.groups.delete(g.key);
  }

  private unlink(s: Slot<E>): void {
    s.prev.next = s.next;
    s.next.prev = s.prev;
    this.count--;
  }

  private drop(s: Slot<E>): void {
    s.map.delete(s.key);
    this.unlink(s);
    if (s.map.size === 0) {
      s.bucket.used &= ~(1 << s.slot);
      this.release(s.bucket);
    }
  }

  private invalidateIn(b: Bucket<E>, slots: number, lo: number, hi: number, level: number): void {
    if (level < 0) this.clearSlots(b, slots);
    else this.rangeInBucket(b, slots, lo, hi, level);
  }

  /** Removes every entry in the given slots of a bucket. */
  private clearSlots(b: Bucket<E>, slots: number): void {
    for (let bits = b.used & slots; bits !== 0; bits &= bits - 1) {
      const m = b.maps[31 - Math.clz32(bits & -bits)]!;
      for (const s of m.values()) this.unlink(s);
      m.clear();
    }
    b.used &= ~slots;
    this.release(b);
  }

  /**
   * Removes a bucket's entries in the given slots overlapping [lo, hi) (at `level` unless it is 0). Per
   * map: when the range covers no more keys than the map holds (and its ends are exact), probe each
   * key; otherwise scan the map. Either way the work is bounded by the smaller of the two.
   */
  private rangeInBucket(b: Bucket<E>, slots: number, lo: number, hi: number, level: number): void {
    const exact = hi < EXACT_LIMIT;
    for (let bits = b.used & slots; bits !== 0; bits &= bits - 1) {
      const slot = 31 - Math.clz32(bits & -bits);
      const m = b.maps[slot]!;
      const size = this.sizes[slot % 3]!;
      const first = Math.floor(lo / size);
      const last = Math.floor((hi - 1) / size);
      if (exact && last - first < m.size) {
        for (let k = first; k <= last; k++) {
          const s = m.get(k);
          if (s !== undefined && (level === 0 || s.entry.level === level)) this.drop(s);
        }
      } else {
        for (const s of m.values()) {
          const e = s.entry;
          if (e.va < hi && lo < e.va + e.size && (level === 0 || e.level === level)) this.drop(s);
        }
      }
    }
  }
}
