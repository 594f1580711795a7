// Bit fields, declared once as data and used by both the hardware models and the driver.
//
// A Field names a run of bits by absolute position: inside a 32- or 64-bit register, or inside a
// structure held as little-endian 32-bit words (a 128-bit command, a 512-bit STE, a 256-bit event
// record). Positions follow the Arm convention the spec uses: bit 0 of word 0 is bit 0, bit 64 is
// bit 0 of the second 64-bit word, and so on.
//
// Values up to 53 bits travel as `number` (exact in a double); wider values use the bigint accessors.

const MAX_NUMBER_BITS = 53;

export class Field {
  /** Index of the 32-bit word holding the least significant bit. */
  readonly word: number;
  /** Bit offset of the field inside that word. */
  readonly shift: number;
  /** Mask of the field once shifted down (only for fields that fit in one word). */
  readonly mask: number;
  /** True when the field lies inside one 32-bit word. */
  readonly inWord: boolean;
  /** Largest value the field can hold, as a number (fields up to 53 bits). */
  readonly max: number;
  /** For fields spanning exactly two words: bits in the first word, 2^that, and the second word's mask. */
  private readonly twoWords: boolean;
  private readonly loWidth: number;
  private readonly loPow: number;
  private readonly loInv: number;
  private readonly hiMask: number;

  constructor(
    readonly name: string,
    readonly lsb: number,
    readonly width: number,
  ) {
    if (!Number.isInteger(lsb) || lsb < 0) throw new RangeError(`field ${name}: bad lsb ${lsb}`);
    if (!Number.isInteger(width) || width < 1 || width > 64) throw new RangeError(`field ${name}: bad width ${width}`);
    this.word = lsb >>> 5;
    this.shift = lsb & 31;
    this.inWord = this.shift + width <= 32;
    this.mask = width >= 32 ? 0xffffffff : (1 << width) - 1;
    this.max = width > MAX_NUMBER_BITS ? Number.MAX_SAFE_INTEGER : 2 ** width - 1;
    this.twoWords = !this.inWord && this.shift + width <= 64;
    this.loWidth = 32 - this.shift;
    this.loPow = 2 ** this.loWidth;
    this.loInv = 2 ** -this.loWidth;
    const hiBits = width - this.loWidth;
    this.hiMask = hiBits >= 32 ? 0xffffffff : (1 << hiBits) - 1;
  }

  get msb(): number {
    return this.lsb + this.width - 1;
  }

  /** Field value from a 32-bit register value (the field must lie in bits [31:0]). */
  get(value: number): number {
    return this.width >= 32 ? value >>> 0 : (value >>> this.shift) & this.mask;
  }

  /** A 32-bit register value with this field replaced; throws when x does not fit the field. */
  set(value: number, x: number): number {
    this.check(x);
    if (this.width >= 32) return x >>> 0;
    const m = this.mask << this.shift;
    return ((value & ~m) | ((x << this.shift) & m)) >>> 0;
  }

  /** The field's bits in place, as a 32-bit mask (for fields inside one word). */
  get bits(): number {
    return this.width >= 32 ? 0xffffffff : ((this.mask << this.shift) >>> 0);
  }

  /** Field value from a 64-bit register value. */
  get64(value: bigint): bigint {
    return (value >> BigInt(this.lsb)) & ((1n << BigInt(this.width)) - 1n);
  }

  /** A 64-bit register value with this field replaced; throws when x does not fit. */
  set64(value: bigint, x: bigint | number): bigint {
    const v = BigInt(x);
    const m = (1n << BigInt(this.width)) - 1n;
    if (v < 0n || v > m) throw new RangeError(`${this.name}: value 0x${v.toString(16)} does not fit ${this.width} bits`);
    return (value & ~(m << BigInt(this.lsb))) | (v << BigInt(this.lsb));
  }

  /** Field value from a structure held as 32-bit words starting at words[base]. */
  read(words: Uint32Array | Int32Array, base = 0): number {
    // Kept small so that hot callers inline it; wider fields take the out-of-line path.
    if (this.inWord) return ((words[base + this.word]! >>> this.shift) & this.mask) >>> 0;
    return this.readWide(words, base);
  }

  private readWide(words: Uint32Array | Int32Array, base: number): number {
    const i = base + this.word;
    if (this.twoWords) {
      const v = ((words[i + 1]! & this.hiMask) >>> 0) * this.loPow + (words[i]! >>> this.shift);
      if (v > Number.MAX_SAFE_INTEGER) throw new RangeError(`${this.name}: value exceeds 53 bits, use read64`);
      return v;
    }
    // Spans two (or, for >32-bit fields at an odd shift, three) words: assemble low to high.
    let value = 0;
    let got = 0;
    let w = i;
    let sh = this.shift;
    while (got < this.width) {
      const take = Math.min(32 - sh, this.width - got);
      const part = take >= 32 ? words[w]! >>> 0 : (words[w]! >>> sh) & ((1 << take) - 1);
      value += (part >>> 0) * 2 ** got;
      got += take;
      w++;
      sh = 0;
    }
    if (value > Number.MAX_SAFE_INTEGER) throw new RangeError(`${this.name}: value exceeds 53 bits, use read64`);
    return value;
  }

  /** Stores x into a structure held as 32-bit words; throws when x does not fit. */
  write(words: Uint32Array | Int32Array, base: number, x: number): void {
    // Kept small so that hot callers inline it: an integer that fits a field of one or two words is
    // stored here; wider fields, and values that do not fit (which throw), go out of line.
    if (x >= 0 && x <= this.max && Number.isInteger(x)) {
      const i = base + this.word;
      if (this.inWord) {
        const m = this.mask << this.shift;
        words[i] = (words[i]! & ~m) | ((x << this.shift) & m);
        return;
      }
      if (this.twoWords) {
        // Split by multiplying with 2^-loWidth (exact): no integer or float division per write.
        const hi = Math.floor(x * this.loInv);
        const lo = x - hi * this.loPow;
        words[i] = (words[i]! & ~(-1 << this.shift)) | (lo << this.shift);
        words[i + 1] = (words[i + 1]! & ~this.hiMask) | hi;
        return;
      }
    }
    this.writeWide(words, base, x);
  }

  /** Fields of three words (over 32 bits at an odd shift), and values that do not fit (which throw). */
  private writeWide(words: Uint32Array | Int32Array, base: number, x: number): void {
    this.check(x);
    const i = base + this.word;
    let rest = x;
    let done = 0;
    let w = i;
    let sh = this.shift;
    while (done < this.width) {
      const take = Math.min(32 - sh, this.width - done);
      const pow = 2 ** take;
      const part = rest % pow;
      rest = Math.floor(rest / pow);
      const m = take >= 32 ? 0xffffffff : ((1 << take) - 1) << sh;
      words[w] = (words[w]! & ~m) | ((part << sh) & m);
      done += take;
      w++;
      sh = 0;
    }
  }

  /**
   * read() specialized to this field: a function with the field's word, shift and mask captured as
   * constants. A per-command hot path that always calls the same reader compiles it down to a load, a
   * shift and a mask (read() is generic over every field shape, and about five times slower there).
   */
  reader(): (words: Uint32Array | Int32Array, base?: number) => number {
    const { word, shift, mask } = this;
    if (this.inWord) return (words, base = 0) => ((words[base + word]! >>> shift) & mask) >>> 0;
    if (this.twoWords && this.width <= MAX_NUMBER_BITS) {
      const { hiMask, loPow } = this;
      return (words, base = 0) => ((words[base + word + 1]! & hiMask) >>> 0) * loPow + (words[base + word]! >>> shift);
    }
    return (words, base = 0) => this.read(words, base);
  }

  /** write() specialized to this field, like reader(); throws as write() does. */
  writer(): (words: Uint32Array | Int32Array, base: number, x: number) => void {
    const { word, shift, mask, max } = this;
    if (this.inWord) {
      const m = mask << shift;
      return (words, base, x) => {
        if (!(x >= 0 && x <= max && Number.isInteger(x))) this.check(x);
        const i = base + word;
        words[i] = (words[i]! & ~m) | ((x << shift) & m);
      };
    }
    if (this.twoWords) {
      const { hiMask, loPow, loInv } = this;
      const loKeep = ~(-1 << shift);
      return (words, base, x) => {
        if (!(x >= 0 && x <= max && Number.isInteger(x))) this.check(x);
        const i = base + word;
        const hi = Math.floor(x * loInv);
        words[i] = (words[i]! & loKeep) | ((x - hi * loPow) << shift);
        words[i + 1] = (words[i + 1]! & ~hiMask) | hi;
      };
    }
    return (words, base, x) => this.write(words, base, x);
  }

  /** Field value as a bigint from 32-bit words (any width). */
  read64(words: Uint32Array | Int32Array, base = 0): bigint {
    let v = 0n;
    const first = base + this.word;
    const last = base + ((this.lsb + this.width - 1) >>> 5);
    for (let w = last; w >= first; w--) v = (v << 32n) | BigInt(words[w]! >>> 0);
    return (v >> BigInt(this.shift)) & ((1n << BigInt(this.width)) - 1n);
  }

  /** Stores a bigint value into 32-bit words (any width); throws when it does not fit. */
  write64(words: Uint32Array | Int32Array, base: number, x: bigint): void {
    const m = (1n << BigInt(this.width)) - 1n;
    if (x < 0n || x > m) throw new RangeError(`${this.name}: value 0x${x.toString(16)} does not fit ${this.width} bits`);
    const first = base + this.word;
    const last = base + ((this.lsb + this.width - 1) >>> 5);
    let span = 0n;
    for (let w = last; w >= first; w--) span = (span << 32n) | BigInt(words[w]! >>> 0);
    const sh = BigInt(this.shift);
    span = (span & ~(m << sh)) | (x << sh);
    for (let w = first; w <= last; w++) {
      words[w] = Number(span & 0xffffffffn);
      span >>= 32n;
    }
  }

  private check(x: number): void {
    if (!Number.isInteger(x) || x < 0 || x > this.max) {
      throw new RangeError(`${this.name}: value ${x} does not fit ${this.width} bits`);
    }
  }
}

/** Declares a field at bits [lsb + width - 1 : lsb]. */
export function bits(name: string, lsb: number, width = 1): Field {
  return new Field(name, lsb, width);
}

/** Declares a field by its [msb:lsb] range, as the spec writes it. */
export function range(name: string, msb: number, lsb: number): Field {
  return new Field(name, lsb, msb - lsb + 1);
}

/** Formats a value as 0x-prefixed hex, zero-padded to `digits` (0: no padding). */
export function hex(v: number | bigint, digits = 8): string {
  // toString(16) is exact for every integer number and bigint, and never throws (an error message
  // that formats a bad, non-integer value must not fail itself).
  return '0x' + v.toString(16).padStart(digits, '0');
}

/** Low and high 32-bit halves of a 64-bit value. */
export function split64(v: bigint): [lo: number, hi: number] {
  return [Number(v & 0xffffffffn), Number((v >> 32n) & 0xffffffffn)];
}

/** Joins 32-bit halves into a 64-bit value. */
export function join64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

// ---- fields of structures held as 64-bit words (STEs, CDs, event records as BigUint64Array) ----

/** The qword a field lives in and its mask there (the field must not straddle qwords). */
export function qwordMask(f: Field): { q: number; mask: bigint } {
  const q = f.lsb >>> 6;
  if ((f.msb >>> 6) !== q) throw new Error(`field ${f.name} straddles qwords ${q} and ${f.msb >>> 6}`);
  return { q, mask: ((1n << BigInt(f.width)) - 1n) << BigInt(f.lsb & 63) };
}

/** A field's value in an entry held as qwords. */
export function qget(e: ArrayLike<bigint>, f: Field): number {
  const { q } = qwordMask(f);
  return Number((e[q]! >> BigInt(f.lsb & 63)) & ((1n << BigInt(f.width)) - 1n));
}

/** Sets a field in an entry held as qwords; throws when the value does not fit. */
export function qset(e: BigUint64Array, f: Field, v: number | bigint): void {
  const { q, mask } = qwordMask(f);
  const x = BigInt(v);
  if (x < 0n || x > mask >> BigInt(f.lsb & 63)) throw new RangeError(`${f.name}: value 0x${x.toString(16)} does not fit ${f.width} bits`);
  e[q] = (e[q]! & ~mask) | (x << BigInt(f.lsb & 63));
}
