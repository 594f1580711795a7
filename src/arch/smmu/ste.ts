// Stream table structures (IHI 0070 5.1, 5.2): the Level-1 stream table descriptor and the STE, as
// fields of their 64-bit / 512-bit little-endian layouts (bit N of the STE is bit N%64 of qword N/64).
// Non-secure fields only; Secure, Realm, D128 and MPAM fields are not modelled.

import { bits, range } from '../bits.ts';

export const STE_BYTES = 64;
export const STE_QWORDS = 8;
export const L1STD_BYTES = 8;

/** Level-1 stream table descriptor (5.1). Span 0 = invalid; 1..11 = 2^(Span-1) STEs; 12..31 behave as 0. */
export const L1STD = {
  SPAN: range('Span', 4, 0),
  L2PTR: range('L2Ptr', 55, 6),
} as const;
export const L1STD_SPAN_MAX = 11;

/** STE fields (5.2), by bit position in the 512-bit entry. */
export const STE = {
  V: bits('V', 0),
  CONFIG: range('Config', 3, 1),
  S1FMT: range('S1Fmt', 5, 4),
  S1CTXPTR: range('S1ContextPtr', 55, 6),
  S1CDMAX: range('S1CDMax', 63, 59),
  S1DSS: range('S1DSS', 65, 64),
  S1CIR: range('S1CIR', 67, 66),
  S1COR: range('S1COR', 69, 68),
  S1CSH: range('S1CSH', 71, 70),
  DRE: bits('DRE', 76),
  CONT: range('CONT', 80, 77),
  DCP: bits('DCP', 81),
  PPAR: bits('PPAR', 82),
  MEV: bits('MEV', 83),
  S2FWB: bits('S2FWB', 89),
  S1MPAM: bits('S1MPAM', 90),
  S1STALLD: bits('S1STALLD', 91),
  EATS: range('EATS', 93, 92),
  STRW: range('STRW', 95, 94),
  MEMATTR: range('MemAttr', 99, 96),
  MTCFG: bits('MTCFG', 100),
  ALLOCCFG: range('ALLOCCFG', 104, 101),
  SHCFG: range('SHCFG', 109, 108),
  NSCFG: range('NSCFG', 111, 110),
  PRIVCFG: range('PRIVCFG', 113, 112),
  INSTCFG: range('INSTCFG', 115, 114),
  S2VMID: range('S2VMID', 143, 128),
  S2T0SZ: range('S2T0SZ', 165, 160),
  S2SL0: range('S2SL0', 167, 166),
  S2IR0: range('S2IR0', 169, 168),
  S2OR0: range('S2OR0', 171, 170),
  S2SH0: range('S2SH0', 173, 172),
  S2TG: range('S2TG', 175, 174),
  S2PS: range('S2PS', 178, 176),
  S2AA64: bits('S2AA64', 179),
  S2ENDI: bits('S2ENDI', 180),
  S2AFFD: bits('S2AFFD', 181),
  S2PTW: bits('S2PTW', 182),
  S2HD: bits('S2HD', 183),
  S2HA: bits('S2HA', 184),
  S2S: bits('S2S', 185),
  S2R: bits('S2R', 186),
  /** S2TTB: address bits [51:4] at STE bits [243:196] (v3.1+). */
  S2TTB: range('S2TTB', 243, 196),
} as const;

/** STE.Config encodings (5.2): 0b0xx abort (no event), then bypass, stage 1, stage 2, nested. */
export const STE_CONFIG = { ABORT: 0b000, BYPASS: 0b100, S1_TRANS: 0b101, S2_TRANS: 0b110, NESTED: 0b111 } as const;
/** STE.S1Fmt (5.2): linear CD table, 2-level with 4 KiB or 64 KiB leaf tables. */
export const S1FMT = { LINEAR: 0, L2_4K: 1, L2_64K: 2 } as const;
/** STE.S1DSS (5.2): transactions without a SubstreamID are terminated, bypass stage 1, or use CD 0. */
export const S1DSS = { TERMINATE: 0, BYPASS: 1, SSID0: 2 } as const;
/** STE.EATS (5.2): ATS not allowed, full ATS, split-stage (S1CHK), full ATS with DPT checks. */
export const EATS = { ABT: 0, TRANS: 1, S1CHK: 2, DPT: 3 } as const;
/** STE.STRW (5.2): NS-EL1, EL2 (E2H) StreamWorlds. */
export const STRW = { NSEL1: 0, EL2: 2 } as const;
/** Translation regimes a stage 1 context belongs to: STE.STRW, and for EL2 CR2.E2H (5.2). */
export const REGIME = { EL1: 0, EL2: 1, EL2_E2H: 2 } as const;
/** STE.SHCFG: use the incoming shareability (5.2). */
export const SHCFG_INCOMING = 1;
/** S2TG granule encodings (5.2): 4 KiB, 64 KiB, 16 KiB. */
export const S2TG = { G4K: 0, G64K: 1, G16K: 2 } as const;
