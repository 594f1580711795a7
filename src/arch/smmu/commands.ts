// SMMUv3 commands (IHI 0070 chapter 4) as data: opcode, name, fields, and what makes them legal.
//
// A command is 16 bytes, little-endian, held as four 32-bit words; field positions are bits of the
// 128-bit command (dword 1 starts at bit 64). The spec's command figures are not in the markdown copy,
// so positions beyond those the text states (opcode, TLBI range fields, NH_ASID's VMID/ASID) were
// cross-checked against Linux's arm-smmu-v3.h and QEMU's smmuv3-internal.h, which agree.
//
// What a command needs to be legal (an implemented feature, the Secure queue) and which field values are
// reserved is declared here; the consumer compiles it into its checks (hw/smmu/legality.ts).

import { bits, hex, range, type Field } from '../bits.ts';

/** Common fields (4.1.6 and the per-command sections). */
export const F = {
  OP: range('OP', 7, 0),
  GLOBAL: bits('Global', 9),
  SSEC: bits('SSec', 10),
  SSV: bits('SSV', 11),
  SSID: range('SubstreamID', 31, 12),
  SID: range('StreamID', 63, 32),
  // TLBI (4.4.1.1): range and level hint, VMID/ASID tags.
  NUM: range('NUM', 16, 12),
  SCALE: range('SCALE', 24, 20),
  VMID: range('VMID', 47, 32),
  ASID: range('ASID', 63, 48),
  LEAF: bits('Leaf', 64),
  TTL128: bits('TTL128', 71),
  TTL: range('TTL', 73, 72),
  TG: range('TG', 75, 74),
  /** VA[63:12] (4.1.6). */
  VA: range('Address', 127, 76),
  /** IPA[55:12] (4.1.6): bits above are RES0. */
  IPA: range('Address', 119, 76),
  // CFGI_STE_RANGE (4.3.2): invalidates 2^(Range+1) StreamIDs; Range=31 is CFGI_ALL (4.3.6).
  RANGE: range('Range', 68, 64),
  // PREFETCH_ADDR (4.2.2).
  PF_SIZE: range('Size', 68, 64),
  // ATC_INV (4.5.1): span 4 KiB * 2^Size; Size=52 invalidates everything.
  ATC_SIZE: range('Size', 69, 64),
  // PRI_RESP (4.5.2).
  PRG_INDEX: range('PRGIndex', 72, 64),
  PRI_RESP: range('Resp', 77, 76),
  // RESUME (4.7.1).
  AC: bits('Ac', 12),
  AB: bits('Ab', 13),
  STAG: range('STAG', 79, 64),
  // CMD_SYNC (4.7.3).
  CS: range('CS', 13, 12),
  MSH: range('MSH', 23, 22),
  MSIATTR: range('MSIAttr', 27, 24),
  MSIDATA: range('MSIData', 63, 32),
  /** MSIAddress[55:2], in dword 1 bits [55:2]. */
  MSIADDR: range('MSIAddress', 119, 66),
} as const;

/** CMD_SYNC completion signal (4.7.3). */
export const CS = { SIG_NONE: 0, SIG_IRQ: 1, SIG_SEV: 2 } as const;
/** ATC_INV Size meaning "the whole address space" (4.5.1). */
export const ATC_INV_SIZE_ALL = 52;
/** CFGI_STE_RANGE Range value meaning all StreamIDs, i.e. CMD_CFGI_ALL (4.3.6). */
export const CFGI_RANGE_ALL = 31;

/** What a command needs from the implementation (or the queue it is on) to be legal. */
export type Need =
  | 'stage1'
  | 'stage2'
  | 'hyp'
  | 'ats'
  | 'pri'
  | 'stall' // STALL_MODEL != 0b01: this model implements no stalls
  | 'secureQueue' // only legal on the Secure command queue; this model has only the Non-secure one
  | 'mpam'
  | 'dpt'
  | 'secureEl2';

export interface CommandDef<N extends string = string> {
  readonly op: number;
  /** The spec's name without "CMD_". */
  readonly name: N;
  readonly spec: string;
  readonly fields: readonly Field[];
  readonly needs?: readonly Need[];
  /** An address-based TLBI with the range and level-hint fields (4.4.1.1). */
  readonly range?: boolean;
  /** Field values that are reserved (CERROR_ILL). */
  readonly reserved?: readonly { field: Field; above?: number; equals?: number }[];
}

/** The range and level-hint fields of an address-based TLBI (4.4.1.1). */
export const TLBI_RANGE = [F.NUM, F.SCALE, F.TTL128, F.TTL, F.TG] as const;
const c = <N extends string>(op: number, name: N, spec: string, fields: Field[], extra: Partial<Omit<CommandDef, 'op' | 'name'>> = {}): CommandDef<N> => ({
  op,
  name,
  spec,
  fields: [F.OP, ...fields],
  ...extra,
});

/** Every architected opcode (4.1.1). */
export const COMMANDS = [
  c(0x01, 'PREFETCH_CONFIG', '4.2.1', [F.SSEC, F.SSV, F.SSID, F.SID]),
  // PREFETCH_ADDR's Stride and NS fields are not located in the markdown spec; this model treats the
  // stride as 0 (4 KiB) and those bits as reserved.
  c(0x02, 'PREFETCH_ADDR', '4.2.2', [F.SSEC, F.SSV, F.SSID, F.SID, F.PF_SIZE, F.VA]),
  c(0x03, 'CFGI_STE', '4.3.1', [F.SSEC, F.SID, F.LEAF]),
  c(0x04, 'CFGI_STE_RANGE', '4.3.2', [F.SSEC, F.SID, F.RANGE]),
  c(0x05, 'CFGI_CD', '4.3.3', [F.SSEC, F.SSID, F.SID, F.LEAF], { needs: ['stage1'] }),
  c(0x06, 'CFGI_CD_ALL', '4.3.4', [F.SSEC, F.SID], { needs: ['stage1'] }),
  c(0x07, 'CFGI_VMS_PIDM', '4.3.5', [F.SSEC, F.VMID], { needs: ['mpam'] }),
  c(0x10, 'TLBI_NH_ALL', '4.4.2.1', [F.VMID], { needs: ['stage1'] }),
  c(0x11, 'TLBI_NH_ASID', '4.4.2.2', [F.VMID, F.ASID], { needs: ['stage1'] }),
  c(0x12, 'TLBI_NH_VA', '4.4.2.3', [F.VMID, F.ASID, F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['stage1'], range: true }),
  c(0x13, 'TLBI_NH_VAA', '4.4.2.4', [F.VMID, F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['stage1'], range: true }),
  c(0x18, 'TLBI_EL3_ALL', '4.4.2.5', [], { needs: ['stage1', 'secureQueue'] }),
  c(0x1a, 'TLBI_EL3_VA', '4.4.2.6', [F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['stage1', 'secureQueue'], range: true }),
  c(0x20, 'TLBI_EL2_ALL', '4.4.2.7', [], { needs: ['stage1', 'hyp'] }),
  c(0x21, 'TLBI_EL2_ASID', '4.4.2.8', [F.ASID], { needs: ['stage1', 'hyp'] }),
  c(0x22, 'TLBI_EL2_VA', '4.4.2.9', [F.ASID, F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['stage1', 'hyp'], range: true }),
  c(0x23, 'TLBI_EL2_VAA', '4.4.2.10', [F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['stage1', 'hyp'], range: true }),
  c(0x28, 'TLBI_S12_VMALL', '4.4.3.2', [F.VMID], { needs: ['stage2'] }),
  c(0x2a, 'TLBI_S2_IPA', '4.4.3.1', [F.VMID, F.LEAF, F.IPA, ...TLBI_RANGE], { needs: ['stage2'], range: true }),
  c(0x30, 'TLBI_NSNH_ALL', '4.4.4.1', []),
  c(0x40, 'ATC_INV', '4.5.1', [F.GLOBAL, F.SSV, F.SSID, F.SID, F.ATC_SIZE, F.VA], {
    needs: ['ats'],
    // Size > 52: the spec allows CERROR_ILL or an UNKNOWN span; this model reports CERROR_ILL.
    reserved: [{ field: F.ATC_SIZE, above: ATC_INV_SIZE_ALL }],
  }),
  c(0x41, 'PRI_RESP', '4.5.2', [F.SSV, F.SSID, F.SID, F.PRG_INDEX, F.PRI_RESP], {
    needs: ['pri'],
    reserved: [{ field: F.PRI_RESP, equals: 3 }],
  }),
  c(0x44, 'RESUME', '4.7.1', [F.SSEC, F.AC, F.AB, F.SID, F.STAG], { needs: ['stall'] }),
  c(0x45, 'STALL_TERM', '4.7.2', [F.SSEC, F.SID], { needs: ['stall'] }),
  c(0x46, 'SYNC', '4.7.3', [F.CS, F.MSH, F.MSIATTR, F.MSIDATA, F.MSIADDR], { reserved: [{ field: F.CS, equals: 3 }] }),
  c(0x50, 'TLBI_S_EL2_ALL', '4.4.2.11', [], { needs: ['secureQueue', 'secureEl2'] }),
  c(0x51, 'TLBI_S_EL2_ASID', '4.4.2.12', [F.ASID], { needs: ['secureQueue', 'secureEl2'] }),
  c(0x52, 'TLBI_S_EL2_VA', '4.4.2.13', [F.ASID, F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['secureQueue', 'secureEl2'], range: true }),
  c(0x53, 'TLBI_S_EL2_VAA', '4.4.2.14', [F.LEAF, F.VA, ...TLBI_RANGE], { needs: ['secureQueue', 'secureEl2'], range: true }),
  c(0x58, 'TLBI_S_S12_VMALL', '4.4.3.4', [F.VMID], { needs: ['secureQueue'] }),
  c(0x5a, 'TLBI_S_S2_IPA', '4.4.3.3', [F.VMID, F.LEAF, F.IPA, ...TLBI_RANGE], { needs: ['secureQueue'], range: true }),
  c(0x60, 'TLBI_SNH_ALL', '4.4.4.2', [], { needs: ['secureQueue'] }),
  c(0x70, 'DPTI_ALL', '4.6.1', [], { needs: ['dpt'] }),
  // DPTI_PA's field positions are not in the markdown spec; the model has no DPT, so it is illegal anyway.
  c(0x73, 'DPTI_PA', '4.6.2', [], { needs: ['dpt'] }),
] as const;

/** A command's name as the spec writes it, without "CMD_": a literal the compiler checks. */
export type CommandName = (typeof COMMANDS)[number]['name'];

/** Opcodes by name. */
export const OP = Object.fromEntries(COMMANDS.map((d) => [d.name, d.op])) as Record<CommandName, number>;

/** Opcodes by value; undefined for reserved and IMPLEMENTATION DEFINED encodings. */
export const COMMAND_BY_OP: readonly (CommandDef | undefined)[] = (() => {
  const t: (CommandDef | undefined)[] = new Array(256).fill(undefined);
  for (const d of COMMANDS) t[d.op] = d;
  return t;
})();

export function commandName(op: number): string {
  return COMMAND_BY_OP[op]?.name ?? `RESERVED_${hex(op, 2)}`;
}

/** Mask (four words) of the bits a field covers. */
export function fieldMask(fields: readonly Field[]): Uint32Array {
  const m = new Uint32Array(4);
  for (const fl of fields) {
    for (let b = fl.lsb; b <= fl.msb; b++) m[b >>> 5]! |= 1 << (b & 31);
  }
  return m;
}

/** A reserved encoding of a field (CERROR_ILL): any value above `above`, or the value `equals`. */
export type ReservedValue = NonNullable<CommandDef['reserved']>[number];
