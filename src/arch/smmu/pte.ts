// VMSAv8-64 translation table descriptors, 4 KiB granule (Arm ARM D8.3, as the SMMU walks them: IHI
// 0070 3.4, 5.4), and the memory attribute indirection Linux's io-pgtable programs.

import { bits, range } from '../bits.ts';

/** Descriptor bits common to stage 1 and stage 2, and the stage-specific ones. */
export const PTE = {
  VALID: bits('Valid', 0),
  /** Levels 0-2: 1 = table, 0 = block. Level 3: must be 1 (page). */
  TABLE: bits('Table', 1),
  /** Stage 1: MAIR index. */
  ATTRINDX: range('AttrIndx', 4, 2),
  NS: bits('NS', 5),
  /** Stage 1 AP[2:1]: bit 6 = EL0 access, bit 7 = read-only. */
  AP: range('AP', 7, 6),
  AP_UNPRIV: bits('AP[1]', 6),
  AP_RDONLY: bits('AP[2]', 7),
  /** Stage 2 MemAttr[3:0] and S2AP (bit 6 = read, bit 7 = write). */
  S2_MEMATTR: range('MemAttr', 5, 2),
  S2AP: range('S2AP', 7, 6),
  SH: range('SH', 9, 8),
  AF: bits('AF', 10),
  NG: bits('nG', 11),
  /** Output address [47:12] of a page, block or next-level table (48-bit OA, 4 KiB granule). */
  OA: range('OA', 47, 12),
  DBM: bits('DBM', 51),
  CONT: bits('Contiguous', 52),
  PXN: bits('PXN', 53),
  /** Stage 1 UXN (XN at EL2); stage 2 XN[1:0] spans bits [54:53]. */
  UXN: bits('UXN', 54),
  S2XN: range('XN', 54, 53),
  /** Table descriptors: hierarchical permission limits. */
  PXN_TABLE: bits('PXNTable', 59),
  UXN_TABLE: bits('UXNTable', 60),
  AP_TABLE: range('APTable', 62, 61),
} as const;

export const GRANULE_4K = 4096;
/**
 * Output address bits a 4 KiB-granule descriptor holds without FEAT_LPA2 (OA[47:12]): a 52-bit IPS or
 * PS behaves as 48 bits there (Arm ARM VMSAv8-64), so table bases above it are out of range too.
 */
export const OA_BITS_4K = 48;
/** Bits each level resolves with a 4 KiB granule; level 3 maps 4 KiB, level 2 2 MiB, level 1 1 GiB. */
export const LEVEL_BITS_4K = 9;
/** Level whose descriptors map `1 << levelShift(l)` bytes. */
export function levelShift4k(level: number): number {
  return 12 + (3 - level) * LEVEL_BITS_4K;
}
/** Start level of a stage-1 4 KiB walk for an input size of 64 - T0SZ bits (Arm ARM D8.2). */
export function startLevel4k(t0sz: number): number {
  const ia = 64 - t0sz;
  return 3 - Math.floor((ia - 1 - 12) / LEVEL_BITS_4K);
}

/** MAIR attribute indices Linux's io-pgtable-arm uses (ARM_LPAE_MAIR_ATTR_IDX_*). */
export const MAIR_IDX = { NC: 0, CACHE: 1, DEV: 2, INC_OCACHE: 3 } as const;
/** The MAIR value Linux programs into CD.MAIR (io-pgtable-arm: 0xf404ff44). */
export const MAIR_LINUX = 0x00000000f404ff44n;
