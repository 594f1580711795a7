// The one generic write path every device model uses, compiled from a register map (src/arch/regmap.ts).
//
// The RegisterFile compiles a map into per-dword masks once (in the spirit of QEMU's wmask/w1cmask
// and hw/registerfields.h) and applies every software write through them: RO and HwInit bits keep
// their value, RW bits take the written value, W1C bits clear where a 1 is written, W1T bits are never
// stored (a 1 written there is handed to the register's hook), bits that no field names are RES0 (read
// as zero, writes ignored). While any guard field of a register reads 1 the whole write to that
// register is ignored (SMMUv3 6.3). Side effects (doorbells, request/acknowledge, toggle-acknowledge)
// are hooks the device model binds by register name; they run after the masked value is stored.
//
// The current register values live in a "read view": an Int32Array that is part of the shared
// SharedArrayBuffer, so the driver reads registers with a plain Atomics.load and only the hardware
// side ever stores to it.

import { hex } from '../src/arch/bits.ts';
import { resolveFieldRef, validateMap, type RegisterDef, type RegisterMap } from '../src/arch/regmap.ts';

/** regAt value of a dword that several narrower registers share. */
const SHARED = -2;

/** A register of up to 32 bits, taken from the dword that holds it. */
function regValue(r: RegisterDef, dword: number): number {
  const w = dword >>> 0;
  if (r.width === 32) return w;
  return (w >>> ((r.offset & 3) * 8)) & ((1 << r.width) - 1);
}

/** Byte lanes a register narrower than 32 bits covers in its dword. */
function regLanes(r: RegisterDef): number {
  return r.width >= 32 ? 0xffffffff : ((((1 << r.width) - 1) << ((r.offset & 3) * 8)) >>> 0);
}

/** Byte-enable mask for an access of `size` bytes at byte `offset & 3` within a dword. */
function laneMask(offset: number, size: number): number {
  const lanes = size >= 4 ? 0xffffffff : ((1 << (size * 8)) - 1) << ((offset & 3) * 8);
  return lanes >>> 0;
}

/** A register's side effect; `triggered` holds the W1T bits written as 1, at the register's bit positions. */
export type WriteHook = (file: RegisterFile, reg: RegisterDef, triggered: number) => void;

/** Why a write did not change a register, for tracing and tests. */
export type WriteOutcome = 'applied' | 'guarded' | 'unmapped' | 'no-update';

/** The registers of one device; N names them, so an access by a name the map lacks does not compile. */
export class RegisterFile<N extends string = string> {
  readonly byName = new Map<string, RegisterDef>();
  /** Per dword: bits software may write (RW, RWS). */
  private readonly wmask: Uint32Array;
  /** Per dword: bits a written 1 clears (W1C, W1CS). */
  private readonly w1cmask: Uint32Array;
  /** Per dword: write-1-to-trigger bits (W1T), passed to the hook and never stored. */
  private readonly w1tmask: Uint32Array;
  /** Per dword: sticky bits, kept across a function-level reset (RWS, W1CS). */
  readonly stickyMask: Uint32Array;
  /** Per dword: the register covering it, -1 for none, or SHARED when several narrower ones do. */
  private readonly regAt: Int16Array;
  /** Dwords holding several 8/16-bit registers (PCIe config space): each register and its byte lanes. */
  private readonly sharedAt = new Map<number, { idx: number; lanes: number }[]>();
  /** Per register index: guard (dword, bit mask) pairs. */
  private readonly guards: { dword: number; bits: number }[][];
  /** Per register index: the Update bit (as a dword mask) a write must set to take effect, or 0. */
  private readonly updateBit: Uint32Array;
  /** Reset image, per dword. */
  readonly resetImage: Uint32Array;
  /** Per register index: the side effect bound with onWrite, if any (indexed: no name lookup per write). */
  private readonly hooks: (WriteHook | undefined)[];
  private readonly regs: readonly RegisterDef[];

  constructor(
    readonly map: RegisterMap<N>,
    /** The read view: map.size / 4 Int32 words, usually inside the shared buffer. */
    readonly view: Int32Array,
  ) {
    validateMap(map);
    if (view.length * 4 < map.size) throw new Error(`${map.name}: read view of ${view.length * 4} bytes, need ${map.size}`);
    const dwords = map.size / 4;
    this.wmask = new Uint32Array(dwords);
    this.w1cmask = new Uint32Array(dwords);
    this.w1tmask = new Uint32Array(dwords);
    this.stickyMask = new Uint32Array(dwords);
    this.resetImage = new Uint32Array(dwords);
    this.regAt = new Int16Array(dwords).fill(-1);
    this.regs = map.registers;
    this.guards = [];
    map.registers.forEach((r, idx) => {
      this.byName.set(r.name, r);
      const first = r.offset >>> 2;
      const last = (r.offset + r.width / 8 - 1) >>> 2;
      for (let d = first; d <= last; d++) {
        const prev = this.regAt[d]!;
        if (prev === -1) {
          this.regAt[d] = idx;
          continue;
        }
        // Narrower registers sharing a dword: a write goes to each register whose bytes it covers.
        let list = this.sharedAt.get(d);
        if (!list) {
          list = [{ idx: prev, lanes: regLanes(this.regs[prev]!) }];
          this.sharedAt.set(d, list);
          this.regAt[d] = SHARED;
        }
        list.push({ idx, lanes: regLanes(r) });
      }
      const shiftInDword = (r.offset & 3) * 8;
      for (const f of r.fields) {
        const fieldMask = ((1n << BigInt(f.field.width)) - 1n) << BigInt(f.field.lsb + shiftInDword);
        for (let d = first; d <= last; d++) {
          const part = Number((fieldMask >> BigInt((d - first) * 32)) & 0xffffffffn) >>> 0;
          if (!part) continue;
          if (f.access === 'RW' || f.access === 'RWS') this.wmask[d]! |= part;
          if (f.access === 'W1C' || f.access === 'W1CS') this.w1cmask[d]! |= part;
          if (f.access === 'W1T') this.w1tmask[d]! |= part;
          if (f.access === 'RWS' || f.access === 'W1CS') this.stickyMask[d]! |= part;
        }
      }
      this.setResetValue(r.name, r.reset);
    });
    this.hooks = new Array<WriteHook | undefined>(map.registers.length).fill(undefined);
    this.updateBit = new Uint32Array(map.registers.length);
    map.registers.forEach((r, idx) => {
      const role = r.role;
      if (role?.kind !== 'update') return;
      const f = r.fields.find((x) => x.field.name === role.bit)!.field;
      this.updateBit[idx] = (1 << ((f.lsb + (r.offset & 3) * 8) & 31)) >>> 0;
    });
    this.guards = map.registers.map((r) =>
      (r.guards ?? []).map((ref) => {
        const { reg: gr, field } = resolveFieldRef(map, ref);
        const bit = field.lsb + (gr.offset & 3) * 8;
        return { dword: (gr.offset >>> 2) + (bit >>> 5), bits: (1 << (bit & 31)) >>> 0 };
      }),
    );
  }

  /** Binds a side effect to writes of a register (runs after the masked value is stored). */
  onWrite(name: N, hook: WriteHook): void {
    const r = this.byName.get(name);
    if (!r) throw new Error(`${this.map.name}: no register ${name} to hook`);
    this.hooks[this.regs.indexOf(r)] = hook;
  }

  /** Replaces a register's reset value (e.g. ID registers computed from a feature set). */
  setResetValue(name: N, value: bigint | number): void {
    const r = this.def(name);
    const v = BigInt(value);
    // Bits no field names, RAZ/WI fields and W1T fields (which always read 0) cannot be set at reset.
    let readable = 0n;
    for (const f of r.fields) if (f.access !== 'RAZ/WI' && f.access !== 'W1T') readable |= ((1n << BigInt(f.field.width)) - 1n) << BigInt(f.field.lsb);
    if ((v & ~readable) !== 0n) throw new Error(`${this.map.name}.${name}: reset value ${hex(v, 0)} sets bits ${hex(v & ~readable, 0)} that no readable field names`);
    const shift = BigInt((r.offset & 3) * 8);
    const first = r.offset >>> 2;
    const last = (r.offset + r.width / 8 - 1) >>> 2;
    const lanes = ((1n << BigInt(r.width)) - 1n) << shift;
    for (let d = first; d <= last; d++) {
      const k = BigInt((d - first) * 32);
      const m = Number((lanes >> k) & 0xffffffffn) >>> 0;
      const bitsV = Number(((v << shift) >> k) & 0xffffffffn) >>> 0;
      this.resetImage[d] = ((this.resetImage[d]! & ~m) | (bitsV & m)) >>> 0;
    }
  }

  /** Loads the reset image; with keepSticky, sticky bits keep their current value (PCIe FLR). */
  reset(keepSticky = false): void {
    for (let d = 0; d < this.resetImage.length; d++) {
      const keep = keepSticky ? this.stickyMask[d]! : 0;
      const cur = Atomics.load(this.view, d) >>> 0;
      Atomics.store(this.view, d, ((cur & keep) | (this.resetImage[d]! & ~keep)) | 0);
    }
  }

  def(name: N): RegisterDef {
    const r = this.byName.get(name);
    if (!r) throw new Error(`${this.map.name}: no register ${name}`);
    return r;
  }

  /**
   * The generic software write path: an access of `size` bytes (1, 2, 4 or 8) at byte `offset`, value
   * in lo (and hi for 8-byte accesses). Applies guards and masks, stores, then runs hooks.
   */
  write(offset: number, size: number, lo: number, hi = 0): WriteOutcome {
    if (size === 8) {
      const a = this.writeDword(offset, 4, lo);
      const b = this.writeDword(offset + 4, 4, hi);
      return a === 'applied' || b === 'applied' ? 'applied' : a;
    }
    return this.writeDword(offset, size, lo);
  }

  private writeDword(offset: number, size: number, value: number): WriteOutcome {
    const d = offset >>> 2;
    if (d >= this.regAt.length) return 'unmapped';
    const idx = this.regAt[d]!;
    if (idx === -1) return 'unmapped';
    const lanes = laneMask(offset, size);
    const val = (value << ((offset & 3) * 8)) & lanes;
    if (idx !== SHARED) return this.writeReg(idx, d, lanes, val);
    let outcome: WriteOutcome = 'unmapped';
    for (const s of this.sharedAt.get(d)!) {
      if ((s.lanes & lanes) === 0) continue;
      const o = this.writeReg(s.idx, d, s.lanes & lanes, val & s.lanes);
      if (o === 'applied' || outcome === 'unmapped') outcome = o;
    }
    return outcome;
  }

  /** Writes the bytes `lanes` of dword d, all belonging to register idx: guards, masks, store, hook. */
  private writeReg(idx: number, d: number, lanes: number, val: number): WriteOutcome {
    for (const g of this.guards[idx]!) {
      if ((Atomics.load(this.view, g.dword) & g.bits) !== 0) return 'guarded';
    }
    // An update-protocol register ignores writes that do not request an update (GBPA, 6.3.14.1).
    const upd = this.updateBit[idx]!;
    if (upd !== 0 && (val & upd) === 0) return 'no-update';
    const old = Atomics.load(this.view, d) >>> 0;
    const wm = this.wmask[d]! & lanes;
    const next = ((old & ~wm) | (val & wm)) & ~(val & this.w1cmask[d]!);
    Atomics.store(this.view, d, next | 0);
    const hook = this.hooks[idx];
    if (hook !== undefined) {
      const r = this.regs[idx]!;
      hook(this, r, (val & this.w1tmask[d]!) >>> ((r.offset & 3) * 8));
    }
    return 'applied';
  }

  /** Current value of a register up to 32 bits wide. */
  get(name: N): number {
    const r = this.def(name);
    return regValue(r, Atomics.load(this.view, r.offset >>> 2));
  }

  /** Value of a register up to 32 bits wide in `image`, a copy of the register space's dwords. */
  getIn(name: N, image: ArrayLike<number>): number {
    const r = this.def(name);
    return regValue(r, image[r.offset >>> 2]!);
  }

  /** Current value of a 64-bit register. */
  get64(name: N): bigint {
    const r = this.def(name);
    const d = r.offset >>> 2;
    return (BigInt(Atomics.load(this.view, d + 1) >>> 0) << 32n) | BigInt(Atomics.load(this.view, d) >>> 0);
  }

  /** Hardware-side store of a whole register up to 32 bits (bypasses access rules). */
  set(name: N, value: number): void {
    const r = this.def(name);
    const d = r.offset >>> 2;
    if (r.width === 32) {
      Atomics.store(this.view, d, value | 0);
      return;
    }
    const sh = (r.offset & 3) * 8;
    const m = ((1 << r.width) - 1) << sh;
    const old = Atomics.load(this.view, d);
    Atomics.store(this.view, d, (old & ~m) | ((value << sh) & m));
  }

  /** Hardware-side store of a 64-bit register. */
  set64(name: N, value: bigint): void {
    const r = this.def(name);
    const d = r.offset >>> 2;
    Atomics.store(this.view, d, Number(value & 0xffffffffn) | 0);
    Atomics.store(this.view, d + 1, Number((value >> 32n) & 0xffffffffn) | 0);
  }

  /** Dword index of a register in the read view (for hot paths that skip the name lookup). */
  dword(name: N): number {
    return this.def(name).offset >>> 2;
  }
}
