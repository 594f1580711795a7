// An endpoint's Address Translation Cache (PCIe r6.0 10.2): translations returned by ATS Translation
// Requests, each covering an aligned power-of-two range (at least the STU), with the permissions the
// translation granted. Least-recently-used entries make room for new ones. ATC Invalidate Requests drop
// every entry overlapping the invalidated range (10.3.1), whatever their permissions.

import { ATC_INV_SIZE_ALL } from '../../src/arch/smmu/commands.ts';
import type { AtcInvalidation } from '../smmu/services.ts';

export interface AtcEntry {
  /** Untranslated address of the start of the range (aligned to size). */
  base: number;
  size: number;
  /** Translated address of the start of the range. */
  pa: number;
  read: boolean;
  write: boolean;
  /** PASID the translation was requested with, or -1. */
  pasid: number;
}

export class Atc {
  /** Entries by key, in least- to most-recently-used order (Map iteration order). */
  private readonly entries = new Map<string, AtcEntry>();
  /** Range sizes currently cached, so a lookup probes each once. */
  private readonly sizes = new Map<number, number>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`ATC capacity ${capacity} must be a positive integer`);
  }

  get count(): number {
    return this.entries.size;
  }

  private static key(base: number, size: number, pasid: number): string {
    return `${pasid}:${size}:${base}`;
  }

  /** The entry translating addr for the pasid (-1 for none), marking it most recently used. */
  lookup(addr: number, pasid: number): AtcEntry | undefined {
    for (const size of this.sizes.keys()) {
      const base = Math.floor(addr / size) * size;
      const k = Atc.key(base, size, pasid);
      const e = this.entries.get(k);
      if (e) {
        this.entries.delete(k);
        this.entries.set(k, e);
        return e;
      }
    }
    return undefined;
  }

  insert(e: AtcEntry): void {
    const k = Atc.key(e.base, e.size, e.pasid);
    if (this.entries.has(k)) this.remove(k);
    else if (this.entries.size >= this.capacity) this.remove(this.entries.keys().next().value!);
    this.entries.set(k, e);
    this.sizes.set(e.size, (this.sizes.get(e.size) ?? 0) + 1);
  }

  private remove(k: string): void {
    const e = this.entries.get(k)!;
    this.entries.delete(k);
    const n = this.sizes.get(e.size)! - 1;
    if (n === 0) this.sizes.delete(e.size);
    else this.sizes.set(e.size, n);
  }

  /**
   * Drops the entries an Invalidate Request covers; returns how many. Without a PASID the request
   * covers every PASID's entries too (as Linux's arm_smmu_atc_inv_to_cmd relies on).
   */
  invalidate(req: AtcInvalidation): number {
    let dropped = 0;
    const all = req.size >= ATC_INV_SIZE_ALL;
    const start = req.addr;
    const end = all ? Infinity : req.addr + 4096 * 2 ** req.size;
    for (const [k, e] of [...this.entries]) {
      if (req.ssv && e.pasid !== req.ssid) continue;
      if (all || (e.base < end && e.base + e.size > start)) {
        this.remove(k);
        dropped++;
      }
    }
    return dropped;
  }

  clear(): void {
    this.entries.clear();
    this.sizes.clear();
  }
}
