// A memory BAR's register block and where the BAR window shows it.
//
// The registers live in a RegisterFile with a private view (the BAR can move: software programs its
// address). While the function decodes memory (Command.Memory, D0, not in reset, address inside the
// BAR window) the register dwords are mirrored into the shared BAR read view at that address; otherwise
// the window shows all-ones there, as reads that complete with UR do.

import { type RegisterMap } from '../../src/arch/regmap.ts';
import { RegisterFile, type WriteOutcome } from '../regfile.ts';
import { BAR_BYTES, PA } from '../../src/arch/platform.ts';

/** N names the block's registers (the map's), so an access by a name the map lacks does not compile. */
export class MemBar<N extends string> {
  readonly regs: RegisterFile<N>;
  /** Byte offset in the BAR window where the BAR decodes, or null. */
  private at: number | null = null;
  /** Dwords that hold registers (mirrored on every change). */
  private readonly regDwords: number[];

  constructor(
    private readonly window: Int32Array,
    map: RegisterMap<N>,
  ) {
    this.regs = new RegisterFile(map, new Int32Array(map.size / 4));
    const ds = new Set<number>();
    for (const r of map.registers) for (let b = 0; b < r.width / 8; b += 4) ds.add((r.offset + b) >>> 2);
    this.regDwords = [...ds].sort((a, b) => a - b);
  }

  get size(): number {
    return this.regs.map.size;
  }

  /** PA the BAR decodes at, or null. */
  get decodedAt(): number | null {
    return this.at === null ? null : PA.BAR_BASE + this.at;
  }

  /** Starts decoding at pa (null: stop). Returns false if pa is outside the BAR window. */
  place(pa: number | null): boolean {
    const off = pa === null ? null : pa - PA.BAR_BASE;
    const inside = off !== null && off >= 0 && off + this.size <= BAR_BYTES;
    const next = inside ? off : null;
    if (next === this.at) return pa === null || inside;
    if (this.at !== null) this.paint(this.at, true);
    this.at = next;
    if (this.at !== null) this.paint(this.at, false);
    return pa === null || inside;
  }

  private paint(off: number, ones: boolean): void {
    const first = off >>> 2;
    const n = this.size >>> 2;
    for (let d = 0; d < n; d++) Atomics.store(this.window, first + d, ones ? -1 : Atomics.load(this.regs.view, d));
  }

  /** Mirrors the register dwords into the window after they changed. */
  sync(): void {
    if (this.at === null) return;
    const first = this.at >>> 2;
    for (const d of this.regDwords) Atomics.store(this.window, first + d, Atomics.load(this.regs.view, d));
  }

  /** True when pa falls inside the decoded BAR. */
  decodes(pa: number): boolean {
    const a = this.decodedAt;
    return a !== null && pa >= a && pa < a + this.size;
  }

  write(off: number, size: number, lo: number, hi: number): WriteOutcome {
    const o = this.regs.write(off, size, lo, hi);
    this.sync();
    return o;
  }
}
