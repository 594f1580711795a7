// Stream table structures (IHI 0070 5.1, 5.2): the Level-1 stream table descriptor and the STE, as
// fields of their 64-bit / 512-bit little-endian layouts.

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
} as const;

/** STE.Config encodings (5.2): 0b0xx abort (no event), then bypass, stage 1, stage 2, nested. */
export const STE_CONFIG = { ABORT: 0b000, BYPASS: 0b100, S1_TRANS: 0b101, S2_TRANS: 0b110, NESTED: 0b111 } as const;
