// The configuration cache (IHI 0070 3.21, 4.3): STEs by StreamID, valid L1STDs by the StreamID span they
// cover, CDs by {StreamID, CD table index} and L1CDs by {StreamID, index span}, each kept until a CFGI
// command (or capacity eviction, oldest first) removes it. CFGI_STE also drops the CDs cached through
// that StreamID (5.2.1); the non-leaf forms also drop the L1 descriptors on the path (4.3.1, 4.3.3).

import type { Cd, L1Cd, L1Std, Ste } from './config.ts';

const CONFIG_CAPACITY = 4096;

function evictOldest<K, V>(m: Map<K, V>, capacity: number): void {
  if (m.size < capacity) return;
  const first = m.keys().next();
  if (!first.done) m.delete(first.value);
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
