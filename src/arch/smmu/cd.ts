// Context descriptors (IHI 0070 5.3, 5.4): the Level-1 CD descriptor and the CD, as fields of their
// 64-bit / 512-bit little-endian layouts. Fields beyond MAIR (AMAIR, PARTID, permission indirection)
// are not modelled.

import { bits, range } from '../bits.ts';
import { OAS_BITS } from './regs.ts';

export const CD_BYTES = 64;
export const CD_QWORDS = 8;
export const L1CD_BYTES = 8;

/** Level-1 context descriptor (5.3). */
export const L1CD = {
  V: bits('V', 0),
  L2PTR: range('L2Ptr', 55, 12),
} as const;

/** CD fields (5.4), by bit position in the 512-bit entry. */
export const CD = {
  T0SZ: range('T0SZ', 5, 0),
  TG0: range('TG0', 7, 6),
  IR0: range('IR0', 9, 8),
  OR0: range('OR0', 11, 10),
  SH0: range('SH0', 13, 12),
  EPD0: bits('EPD0', 14),
  ENDI: bits('ENDI', 15),
  T1SZ: range('T1SZ', 21, 16),
  TG1: range('TG1', 23, 22),
  IR1: range('IR1', 25, 24),
  OR1: range('OR1', 27, 26),
  SH1: range('SH1', 29, 28),
  EPD1: bits('EPD1', 30),
  V: bits('V', 31),
  IPS: range('IPS', 34, 32),
  AFFD: bits('AFFD', 35),
  WXN: bits('WXN', 36),
  UWXN: bits('UWXN', 37),
  TBI0: bits('TBI0', 38),
  TBI1: bits('TBI1', 39),
  PAN: bits('PAN', 40),
  AA64: bits('AA64', 41),
  HD: bits('HD', 42),
  HA: bits('HA', 43),
  S: bits('S', 44),
  R: bits('R', 45),
  A: bits('A', 46),
  ASET: bits('ASET', 47),
  ASID: range('ASID', 63, 48),
  NSCFG0: bits('NSCFG0', 64),
  HAD0: bits('HAD0', 65),
  E0PD0: bits('E0PD0', 66),
  /** TTB0: address bits [51:4] at CD bits [115:68] (v3.1+). */
  TTB0: range('TTB0', 115, 68),
  NSCFG1: bits('NSCFG1', 128),
  HAD1: bits('HAD1', 129),
  E0PD1: bits('E0PD1', 130),
  TTB1: range('TTB1', 179, 132),
  MAIR0: range('MAIR0', 223, 192),
  MAIR1: range('MAIR1', 255, 224),
} as const;

/** CD.TG0 encodings (5.4): 4 KiB, 64 KiB, 16 KiB. TG1 uses a different encoding (01 16K, 10 4K, 11 64K). */
export const TG0 = { G4K: 0, G64K: 1, G16K: 2 } as const;
/** IPS / S2PS encodings to address bits (5.4, 5.2): the IDR5.OAS encoding. */
export const PS_BITS = OAS_BITS;


/** Bits of an address size encoding (IPS, S2PS: 5.2, 5.4); 0b111 is 56 bits (v3.4), capped by OAS anyway. */
export function psBits(enc: number): number {
  return PS_BITS[enc] ?? 56;
}

/** Largest T0SZ/S2T0SZ without IDR3.STT, and the smallest for 4 KiB granules without DS (5.2, 5.4). */
export const TXSZ_MAX = 39;
export const TXSZ_MIN = 16;
