// Command legality (IHI 0070 4.1.3, 4.1.5, 7.1) compiled from the command data (src/arch/smmu/commands.ts)
// for one implementation: an opcode that is reserved, or that does not apply to this implementation or
// to the Non-secure queue, is CERROR_ILL; so is a reserved value of a field, and (4.1.5, this model's
// choice of the two permitted behaviours) any non-zero bit outside the command's fields.

import { hex, range, type Field } from '../../src/arch/bits.ts';
import { COMMANDS, F, TLBI_RANGE, fieldMask, type CommandDef, type Need, type ReservedValue } from '../../src/arch/smmu/commands.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';

/** Whether the implementation provides what a command needs. */
function featureHas(f: SmmuFeatures, need: Need): boolean {
  switch (need) {
    case 'stage1':
      return f.stage1;
    case 'stage2':
      return f.stage2;
    case 'hyp':
      return f.hyp;
    case 'ats':
      return f.ats;
    case 'pri':
      return f.pri;
    // This model implements no stalls (IDR0.STALL_MODEL=0b01), no Secure queue, no MPAM, no DPT.
    case 'stall':
    case 'secureQueue':
    case 'mpam':
    case 'dpt':
    case 'secureEl2':
      return false;
  }
}

/**
 * The TLBI range rules of 4.4.1.1 as bit masks over the four command words: TG, and the fields that
 * must be zero when TG is 0 and must not all be zero when it is not (NUM, SCALE, TTL).
 */
const RANGE_TG_MASK = fieldMask([F.TG]);
const RANGE_LEVEL_MASK = fieldMask([F.NUM, F.SCALE, F.TTL]);
// Word by word, for rangeRuleBroken (constants where the consumer inlines it).
const [TG0, TG1, TG2, TG3] = RANGE_TG_MASK;
const [LV0, LV1, LV2, LV3] = RANGE_LEVEL_MASK;

/**
 * Per-opcode legality compiled for one feature set: the reason a command is illegal whatever its
 * operands (or null), the mask of bits that must be zero, and which value checks apply, so the
 * consumer's per-command check is a few mask tests.
 */
export interface CompiledCommand {
  readonly def: CommandDef;
  readonly illegal: string | null;
  readonly res0: Uint32Array;
  /** The command has an SSec field (illegal when set on the Non-secure queue, 4.1.6). */
  readonly hasSsec: boolean;
  /** Reserved field encodings to check (none for most commands). */
  readonly reserved: readonly ReservedValue[];
  /** The TLBI range rules apply: a range command on an SMMU with IDR3.RIL (4.4.1.1). */
  readonly rangeRules: boolean;
  /** Field values need checking beyond RES0: SSec, reserved encodings, TLBI range rules. */
  readonly checkValues: boolean;
}

const NO_RESERVED: readonly ReservedValue[] = [];

export function compileCommands(f: SmmuFeatures): (CompiledCommand | undefined)[] {
  const out: (CompiledCommand | undefined)[] = new Array(256).fill(undefined);
  for (const def of COMMANDS) {
    const missing = (def.needs ?? []).filter((n) => !featureHas(f, n));
    // Fields that exist in the layout but are RES0 in this implementation.
    const res0Fields: Field[] = [];
    if (def.range && !f.ril) res0Fields.push(...TLBI_RANGE); // 4.4.1.1: RES0 without IDR3.RIL
    if (def.range) res0Fields.push(F.TTL128); // 128-bit descriptors (IDR5.D128) are not implemented
    if (!f.asid16 && def.fields.includes(F.ASID)) res0Fields.push(range('ASID[15:8]', 63, 56)); // 4.4
    if ((!f.vmid16 || !f.stage2) && def.fields.includes(F.VMID)) {
      // 4.4.2: without stage 2 the VMID of NH_* is RES0; without VMID16 its upper byte is.
      res0Fields.push(f.stage2 ? range('VMID[15:8]', 47, 40) : F.VMID);
    }
    const used = fieldMask(def.fields);
    const res0Mask = fieldMask(res0Fields);
    const res0 = new Uint32Array(4);
    for (let w = 0; w < 4; w++) res0[w] = (~used[w]! | res0Mask[w]!) >>> 0;
    const hasSsec = def.fields.includes(F.SSEC);
    const reserved = def.reserved ?? NO_RESERVED;
    const rangeRules = def.range === true && f.ril;
    out[def.op] = {
      def,
      illegal: missing.length ? `${def.name} needs ${missing.join(', ')}, which this SMMU does not implement` : null,
      res0,
      hasSsec,
      reserved,
      rangeRules,
      checkValues: hasSsec || reserved.length > 0 || rangeRules,
    };
  }
  return out;
}

/**
 * The consumer's per-command legality pre-check as flat tables over all opcodes, derived from the
 * compiled commands: a command whose opcode is not flagged SLOW, with none of its opcode's `zero`
 * bits set (RES0, and SSec, which the Non-secure queue rejects), and, when flagged RANGE, meeting the
 * 4.4.1.1 range rule, is legal. Anything else goes to the full check, which names the reason.
 */
export interface LegalityTable {
  /** Per opcode, four words (index op * 4 + word): bits that must be zero. */
  readonly zero: Uint32Array;
  /** Per opcode: LEGALITY.SLOW and LEGALITY.RANGE. */
  readonly flags: Uint8Array;
}

export const LEGALITY = {
  /** Reserved or unimplemented opcode, or one with reserved field values: always the full check. */
  SLOW: 1,
  /** The TLBI range rule of 4.4.1.1 applies. */
  RANGE: 2,
} as const;

/** True when a range TLBI breaks 4.4.1.1: NUM/SCALE/TTL set with TG=0, or all 0 with TG!=0. */
export function rangeRuleBroken(c: Uint32Array): boolean {
  const tg = (c[0]! & TG0) | (c[1]! & TG1) | (c[2]! & TG2) | (c[3]! & TG3);
  const level = (c[0]! & LV0) | (c[1]! & LV1) | (c[2]! & LV2) | (c[3]! & LV3);
  return (tg === 0) !== (level === 0);
}
/** True when the tables alone show command c legal (otherwise the full check decides). */
export function passesLegalityTable(t: LegalityTable, c: Uint32Array): boolean {
  const op = c[0]! & 0xff;
  const fl = t.flags[op]!;
  const z = op << 2;
  const zero = t.zero;
  return (
    (fl & LEGALITY.SLOW) === 0 &&
    ((c[0]! & zero[z]!) | (c[1]! & zero[z + 1]!) | (c[2]! & zero[z + 2]!) | (c[3]! & zero[z + 3]!)) === 0 &&
    ((fl & LEGALITY.RANGE) === 0 || !rangeRuleBroken(c))
  );
}

/** Builds the pre-check tables from one feature set's compiled commands. */
export function legalityTable(compiled: readonly (CompiledCommand | undefined)[]): LegalityTable {
  const zero = new Uint32Array(256 * 4);
  const flags = new Uint8Array(256).fill(LEGALITY.SLOW);
  const ssec = fieldMask([F.SSEC]);
  compiled.forEach((cc, op) => {
    if (cc === undefined || cc.illegal !== null) return;
    for (let w = 0; w < 4; w++) zero[op * 4 + w] = (cc.res0[w]! | (cc.hasSsec ? ssec[w]! : 0)) >>> 0;
    flags[op] = (cc.reserved.length > 0 ? LEGALITY.SLOW : 0) | (cc.rangeRules ? LEGALITY.RANGE : 0);
  });
  return { zero, flags };
}

/** Why a command is illegal (CERROR_ILL), as illegalCode() reports it. */
const ILL = { RESERVED_OP: 1, NOT_IMPLEMENTED: 2, RES0: 3, SSEC: 4, RESERVED_VALUE: 5, RANGE: 6 } as const;

/**
 * Whether a command is CERROR_ILL in this implementation (4.1.3, 4.1.5, 7.1): 0 when legal, else the
 * ILL code of the first rule it breaks. The consumer runs it for commands the legality table's
 * pre-check does not pass, and builds the reason text only for an illegal one.
 */
export function illegalCode(cc: CompiledCommand | undefined, c: Uint32Array): number {
  if (cc === undefined) return ILL.RESERVED_OP;
  if (cc.illegal !== null) return ILL.NOT_IMPLEMENTED;
  const r = cc.res0;
  if ((c[0]! & r[0]!) | (c[1]! & r[1]!) | (c[2]! & r[2]!) | (c[3]! & r[3]!)) return ILL.RES0;
  if (!cc.checkValues) return 0;
  if (cc.hasSsec && F.SSEC.read(c) !== 0) return ILL.SSEC;
  const reserved = cc.reserved;
  for (let i = 0; i < reserved.length; i++) if (isReserved(reserved[i]!, c)) return ILL.RESERVED_VALUE;
  // 4.4.1.1: with TG=0 the range and level fields are RES0; with TG!=0, NUM=SCALE=TTL=0 is reserved.
  if (cc.rangeRules && rangeRuleBroken(c)) return ILL.RANGE;
  return 0;
}

/** True when command c holds the reserved encoding rv of one of its fields. */
function isReserved(rv: ReservedValue, c: Uint32Array): boolean {
  const v = rv.field.read(c);
  return (rv.equals !== undefined && v === rv.equals) || (rv.above !== undefined && v > rv.above);
}

/** The reason for an illegalCode() code, naming the command and the offending field or bits. */
export function illegalReason(cc: CompiledCommand | undefined, code: number, op: number, c: Uint32Array): string {
  if (cc === undefined) return `opcode ${hex(op, 0)} is reserved`;
  const name = cc.def.name;
  switch (code) {
    case ILL.NOT_IMPLEMENTED:
      return cc.illegal!;
    case ILL.RES0: {
      const r = cc.res0;
      return `${name}: reserved (RES0) bits set: ${[0, 1, 2, 3].map((i) => (c[i]! & r[i]!) >>> 0).map((x) => hex(x, 0)).join(' ')}`;
    }
    case ILL.SSEC:
      return `${name}: SSec=1 on the Non-secure command queue (4.1.6)`;
    case ILL.RESERVED_VALUE: {
      const rv = cc.reserved.find((x) => isReserved(x, c))!;
      return `${name}: ${rv.field.name}=${rv.field.read(c)} is reserved`;
    }
    default: {
      const tg = F.TG.read(c);
      return tg === 0 ? `${name}: NUM/SCALE/TTL must be 0 when TG=0 (4.4.1.1)` : `${name}: TG=${tg} with NUM=SCALE=TTL=0 is reserved (4.4.1.1)`;
    }
  }
}
