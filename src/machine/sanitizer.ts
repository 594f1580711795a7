// The DMA use-after-free sanitizer's state, in the shared buffer so that the driver (every CPU) writes
// it and the hardware reads it at its one DMA choke point:
//
//   sid -> tag     which tracked domain a StreamID is attached to (-1: not tracked: identity, blocked
//                  or no domain), set by the driver at attach; while an attach is in progress the
//                  domain it moves to counts too (the SMMU may use either STE until the attach is done)
//   mapped[tag][page]  how many live mappings of the domain cover the physical page: +1 when a map
//                  returns, -1 when the unmap returns (after its invalidation)
//   lazy[tag][page]    unmapped, but the invalidation waits in a lazy flush queue (iommu.strict=0):
//                  +1 when the unmap returns, -1 when the flush that covers it completes
//   owner[page]    who owns the page now: 0 free, else 1 + the label the allocation gave
//
// A DMA access that reaches a page its device's domain does not map is a use-after-free, unless the
// page is in the domain's lazy window (that is the trade-off iommu.strict=0 makes, counted apart).
// Counts only move by Atomics.add; a reader sees each count whole.

import { PA, PAGE_SHIFT, PAGE_SIZE } from '../arch/platform.ts';

export const SAN = {
  /** Domains that can be tracked at once (a tag fits the Int8 of the StreamID table). */
  TAGS: 128,
  /** StreamIDs that can be tracked (higher ones are reported untracked). */
  SIDS: 1 << 16,
  LABELS: 64,
  LABEL_UNITS: 32,
  /** Header words: tag bitmap (TAGS / 32 words), label count, label lock, the off switch. */
  HEADER_WORDS: 16,
  TAG_WORDS: 0,
  LABEL_COUNT: 4,
  LABEL_LOCK: 5,
  /** Non-zero: the sanitizer is off (only benchmarks measuring its cost turn it off). */
  OFF: 6,
} as const;

/** Bytes of the sanitizer region for a layout's memory size. */
export function sanitizerBytes(memBytes: number): number {
  const pages = memBytes >>> PAGE_SHIFT;
  return SAN.HEADER_WORDS * 4 + 2 * SAN.SIDS + 2 * SAN.TAGS * pages * 2 + pages * 4 + SAN.LABELS * SAN.LABEL_UNITS * 2;
}

/** What a DMA access to one page is, for the sanitizer. */
export const VERDICT = { OK: 0, LAZY: 1, FREED: 2 } as const;

export class Sanitizer {
  readonly pages: number;
  private readonly header: Int32Array;
  private readonly sidTag: Int8Array;
  private readonly sidNext: Int8Array;
  private readonly mapped: Uint16Array;
  private readonly lazy: Uint16Array;
  private readonly owner: Int32Array;
  private readonly labels: Uint16Array;
  /** Labels this thread has interned, by text (a label's number never changes). */
  private readonly labelIds = new Map<string, number>();

  constructor(sab: SharedArrayBuffer, offset: number, memBytes: number) {
    this.pages = memBytes >>> PAGE_SHIFT;
    let at = offset;
    this.header = new Int32Array(sab, at, SAN.HEADER_WORDS);
    at += SAN.HEADER_WORDS * 4;
    this.sidTag = new Int8Array(sab, at, SAN.SIDS);
    at += SAN.SIDS;
    this.sidNext = new Int8Array(sab, at, SAN.SIDS);
    at += SAN.SIDS;
    this.mapped = new Uint16Array(sab, at, SAN.TAGS * this.pages);
    at += SAN.TAGS * this.pages * 2;
    this.lazy = new Uint16Array(sab, at, SAN.TAGS * this.pages);
    at += SAN.TAGS * this.pages * 2;
    this.owner = new Int32Array(sab, at, this.pages);
    at += this.pages * 4;
    this.labels = new Uint16Array(sab, at, SAN.LABELS * SAN.LABEL_UNITS);
  }

  /** Marks every StreamID untracked (a fresh buffer is all zeroes, tag 0); `on` false turns the sanitizer off. */
  init(on = true): void {
    this.sidTag.fill(-1);
    this.sidNext.fill(-1);
    Atomics.store(this.header, SAN.OFF, on ? 0 : 1);
  }

  /** Whether the sanitizer is on (fixed at boot). */
  get on(): boolean {
    return this.header[SAN.OFF] === 0;
  }

  // ---- the driver: domains, attachment, mappings ----

  /** A tag for a new domain, or -1 when all SAN.TAGS are in use (the domain is then not tracked). */
  allocTag(): number {
    if (!this.on) return -1;
    for (let w = 0; w < SAN.TAGS / 32; w++) {
      for (;;) {
        const used = Atomics.load(this.header, SAN.TAG_WORDS + w);
        if (used === -1) break;
        const bit = 31 - Math.clz32(~used & (used + 1));
        if (Atomics.compareExchange(this.header, SAN.TAG_WORDS + w, used, used | (1 << bit)) === used) return w * 32 + bit;
      }
    }
    return -1;
  }

  /** Releases a domain's tag (its mappings are all gone). */
  freeTag(tag: number): void {
    if (tag < 0) return;
    this.mapped.fill(0, tag * this.pages, (tag + 1) * this.pages);
    this.lazy.fill(0, tag * this.pages, (tag + 1) * this.pages);
    Atomics.and(this.header, SAN.TAG_WORDS + (tag >>> 5), ~(1 << (tag & 31)));
  }

  /** StreamID sid starts moving to the domain of `tag` (-1: a domain the sanitizer does not track). */
  attachBegin(sid: number, tag: number): void {
    if (sid < SAN.SIDS) Atomics.store(this.sidNext, sid, tag);
  }

  /** StreamID sid is now attached to the domain of `tag`. */
  attach(sid: number, tag: number): void {
    if (sid >= SAN.SIDS) return;
    Atomics.store(this.sidTag, sid, tag);
    Atomics.store(this.sidNext, sid, -1);
  }

  /** The pages of [pa, pa + bytes) that are DRAM, as first page index and count. */
  private span(pa: number, bytes: number): [first: number, count: number] {
    const first = Math.max(0, Math.floor((pa - PA.DRAM_BASE) / PAGE_SIZE));
    const end = Math.min(this.pages, Math.ceil((pa + bytes - PA.DRAM_BASE) / PAGE_SIZE));
    return [first, Math.max(0, end - first)];
  }

  /** A mapping of [pa, pa + bytes) in the domain of `tag` appeared (+1) or went away (-1). */
  map(tag: number, pa: number, bytes: number, delta: 1 | -1): void {
    if (tag < 0) return;
    const [first, n] = this.span(pa, bytes);
    for (let i = 0; i < n; i++) Atomics.add(this.mapped, tag * this.pages + first + i, delta);
  }

  /** An unmapped range of the domain of `tag` waits in a flush queue (+1), or its flush completed (-1). */
  lazyWindow(tag: number, pa: number, bytes: number, delta: 1 | -1): void {
    if (tag < 0) return;
    const [first, n] = this.span(pa, bytes);
    for (let i = 0; i < n; i++) Atomics.add(this.lazy, tag * this.pages + first + i, delta);
  }

  // ---- the page allocator ----

  /** Pages [first, first + n) now belong to `label` (null: freed). */
  setOwner(firstPage: number, n: number, label: string | null): void {
    const id = label === null ? 0 : this.labelId(label) + 1;
    for (let i = 0; i < n; i++) Atomics.store(this.owner, firstPage + i, id);
  }

  private labelId(label: string): number {
    const known = this.labelIds.get(label);
    if (known !== undefined) return known;
    while (Atomics.compareExchange(this.header, SAN.LABEL_LOCK, 0, 1) !== 0) {
      // Another CPU is interning a label: a few instructions.
    }
    try {
      const n = Atomics.load(this.header, SAN.LABEL_COUNT);
      for (let i = 0; i < n; i++) {
        if (this.labelAt(i) === label.slice(0, SAN.LABEL_UNITS)) {
          this.labelIds.set(label, i);
          return i;
        }
      }
      if (n >= SAN.LABELS) return SAN.LABELS - 1; // the last label stands for the overflow
      const s = label.slice(0, SAN.LABEL_UNITS);
      for (let k = 0; k < SAN.LABEL_UNITS; k++) this.labels[n * SAN.LABEL_UNITS + k] = k < s.length ? s.charCodeAt(k) : 0;
      Atomics.store(this.header, SAN.LABEL_COUNT, n + 1);
      this.labelIds.set(label, n);
      return n;
    } finally {
      Atomics.store(this.header, SAN.LABEL_LOCK, 0);
    }
  }

  private labelAt(i: number): string {
    let s = '';
    for (let k = 0; k < SAN.LABEL_UNITS; k++) {
      const c = this.labels[i * SAN.LABEL_UNITS + k]!;
      if (c === 0) break;
      s += String.fromCharCode(c);
    }
    return s;
  }

  // ---- the hardware: one check per page-sized piece of DMA ----

  /**
   * Whether an access by StreamID sid to the page holding pa is mapped by its domain (or the one it is
   * moving to), in the lazy window, or a use after free. Untracked StreamIDs and non-RAM are OK.
   */
  verdict(sid: number, pa: number): number {
    const tag = sid < SAN.SIDS ? this.sidTag[sid]! : -1;
    const page = Math.floor((pa - PA.DRAM_BASE) / PAGE_SIZE);
    if (tag < 0 || page < 0 || page >= this.pages) return VERDICT.OK;
    const i = tag * this.pages + page;
    if (this.mapped[i]! > 0) return VERDICT.OK;
    const next = this.sidNext[sid]!;
    if (next >= 0 && this.mapped[next * this.pages + page]! > 0) return VERDICT.OK;
    return this.lazy[i]! > 0 ? VERDICT.LAZY : VERDICT.FREED;
  }

  /** What the page holding pa is now: 'free', or the label of whoever allocated it. */
  pageState(pa: number): string {
    const page = Math.floor((pa - PA.DRAM_BASE) / PAGE_SIZE);
    if (page < 0 || page >= this.pages) return 'not RAM';
    const id = Atomics.load(this.owner, page);
    return id === 0 ? 'free' : `allocated to ${this.labelAt(id - 1)}`;
  }
}
