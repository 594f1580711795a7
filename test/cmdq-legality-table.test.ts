// The command queue's per-command legality pre-check (flat tables over all opcodes) against the full
// check that names the reason (4.1.3, 4.1.5, 4.1.6, 4.4.1.1, 7.1): for every feature profile and
// every opcode, a command the tables pass is legal, and for opcodes the tables do not defer to the
// full check, they pass exactly the legal commands.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { COMMAND_BY_OP, F } from '../src/arch/smmu/commands.ts';
import { LEGALITY, compileCommands, legalityTable, passesLegalityTable, illegalCode } from '../hw/smmu/legality.ts';
import { PROFILES } from '../src/arch/smmu/features.ts';

/** A command of opcode op: random values in its fields, sometimes a few random stray bits. */
const arbCommand = (op: number) =>
  fc
    .tuple(
      fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 16, maxLength: 16 }),
      fc.array(fc.nat({ max: 127 }), { maxLength: 2 }),
      fc.boolean(),
    )
    .map(([values, stray, zeroRange]) => {
      const c = new Uint32Array(4);
      const fields = COMMAND_BY_OP[op]?.fields ?? [];
      fields.forEach((f, i) => f.write64(c, 0, values[i]! & ((1n << BigInt(f.width)) - 1n)));
      // Range TLBIs: often no range at all, so both sides of the 4.4.1.1 rule come up.
      if (zeroRange) for (const f of [F.TG, F.NUM, F.SCALE, F.TTL]) if (fields.includes(f)) f.write(c, 0, 0);
      for (const b of stray) c[b >>> 5]! |= 1 << (b & 31);
      F.OP.write(c, 0, op);
      return c;
    });

describe('legality table pre-check', () => {
  test.each(Object.keys(PROFILES))('profile %s: the tables pass only legal commands, and all of them unless they defer', (name) => {
    const compiled = compileCommands(PROFILES[name]!);
    const table = legalityTable(compiled);
    let passed = 0;
    let illegal = 0;
    for (let op = 0; op < 256; op++) {
      const defers = (table.flags[op]! & LEGALITY.SLOW) !== 0;
      fc.assert(
        fc.property(arbCommand(op), (c) => {
          const ok = illegalCode(compiled[op], c) === 0;
          const pass = passesLegalityTable(table, c);
          if (pass) expect(ok).toBe(true);
          if (!defers) expect(pass).toBe(ok);
          passed += pass ? 1 : 0;
          illegal += ok ? 0 : 1;
        }),
        { numRuns: COMMAND_BY_OP[op] ? 60 : 3 },
      );
    }
    // Both verdicts came up (the generator is not all-legal or all-illegal).
    expect(passed).toBeGreaterThan(0);
    expect(illegal).toBeGreaterThan(0);
  });
});
