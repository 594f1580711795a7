import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { Field, bits, range, hex, join64, split64 } from '../src/arch/bits.ts';

// Fields are the one definition both sides use for every register and structure, so the fast paths
// (one word, two words) must agree with the general bigint path for every position and width.
describe('Field', () => {
  const arbField = fc
    .tuple(fc.integer({ min: 0, max: 127 }), fc.integer({ min: 1, max: 53 }))
    .filter(([lsb, w]) => lsb + w <= 128)
    .map(([lsb, w]) => new Field(`f${lsb}_${w}`, lsb, w));

  test('write then read returns the value and leaves other bits alone, on every path', () => {
    fc.assert(
      fc.property(arbField, fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), fc.double({ min: 0, max: 1, noNaN: true }), (f, init, frac) => {
        const words = Uint32Array.from(init);
        const before = join64(words[0]!, words[1]!) | (join64(words[2]!, words[3]!) << 64n);
        const value = Math.floor(frac * f.max);
        f.write(words, 0, value);
        expect(f.read(words, 0)).toBe(value);
        expect(f.read64(words, 0)).toBe(BigInt(value));
        const after = join64(words[0]!, words[1]!) | (join64(words[2]!, words[3]!) << 64n);
        const mask = ((1n << BigInt(f.width)) - 1n) << BigInt(f.lsb);
        expect(after & ~mask).toBe(before & ~mask);
        expect((after & mask) >> BigInt(f.lsb)).toBe(BigInt(value));
      }),
      { numRuns: 2000 },
    );
  });

  test('write64/read64 agree with write/read', () => {
    fc.assert(
      fc.property(arbField, fc.bigInt({ min: 0n, max: (1n << 53n) - 1n }), (f, v) => {
        const x = v & ((1n << BigInt(f.width)) - 1n);
        const a = new Uint32Array(4);
        const b = new Uint32Array(4);
        f.write64(a, 0, x);
        f.write(b, 0, Number(x));
        expect(Array.from(a)).toEqual(Array.from(b));
      }),
      { numRuns: 1000 },
    );
  });

  test('32-bit and 64-bit register accessors', () => {
    const f = range('X', 11, 4);
    expect(f.set(0xffffffff, 0x12)).toBe(0xfffff12f);
    expect(f.get(0xabc)).toBe(0xab);
    expect(f.bits).toBe(0xff0);
    expect(bits('W', 0, 32).set(0, 0xffffffff)).toBe(0xffffffff);
    const g = range('ADDR', 55, 5);
    expect(g.set64(0n, 0x123456789an)).toBe(0x123456789an << 5n);
    expect(g.get64((0x123456789an << 5n) | 0x1fn)).toBe(0x123456789an);
  });

  test('values that do not fit are rejected with the field named', () => {
    expect(() => range('NUM', 16, 12).set(0, 32)).toThrow(/NUM: value 32 does not fit 5 bits/);
    expect(() => bits('V', 0).write(new Uint32Array(1), 0, -1)).toThrow(/V: value -1/);
    expect(() => range('A', 63, 8).set64(0n, 1n << 56n)).toThrow(/A: value/);
    expect(() => new Field('bad', 0, 65)).toThrow(/bad: bad width/);
  });

  test('helpers', () => {
    expect(hex(0x1f, 4)).toBe('0x001f');
    expect(split64(0x1234_5678_9abc_def0n)).toEqual([0x9abcdef0, 0x12345678]);
    expect(join64(0x9abcdef0, 0x12345678)).toBe(0x1234_5678_9abc_def0n);
  });
});
