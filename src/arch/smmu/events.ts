// Event records (IHI 0070 7.3): 32 bytes, little-endian; event numbers and the record's fields.
// Positions the markdown spec lost with its figures (STAG, Stall, S2, CLASS, TTRnW, IPA) follow Linux's
// EVTQ_* definitions, which agree with every figure that survived.

import { bits, range } from '../bits.ts';

export const EVT_BYTES = 32;

/** Event numbers (7.3). F_TLB_CONFLICT is 0x20 (7.3.17). */
export const EVT = {
  F_UUT: 0x01,
  C_BAD_STREAMID: 0x02,
  F_STE_FETCH: 0x03,
  C_BAD_STE: 0x04,
  F_BAD_ATS_TREQ: 0x05,
  F_STREAM_DISABLED: 0x06,
  F_TRANSL_FORBIDDEN: 0x07,
  C_BAD_SUBSTREAMID: 0x08,
  F_CD_FETCH: 0x09,
  C_BAD_CD: 0x0a,
  F_WALK_EABT: 0x0b,
  F_TRANSLATION: 0x10,
  F_ADDR_SIZE: 0x11,
  F_ACCESS: 0x12,
  F_PERMISSION: 0x13,
  F_TLB_CONFLICT: 0x20,
  F_CFG_CONFLICT: 0x21,
  E_PAGE_REQUEST: 0x24,
  F_VMS_FETCH: 0x25,
} as const;
export type EventName = keyof typeof EVT;

export const EVT_NAME: Record<number, EventName> = Object.fromEntries(
  Object.entries(EVT).map(([n, id]) => [id, n as EventName]),
) as Record<number, EventName>;

/** Event record fields (7.3), by bit position in the 256-bit record. */
export const EVTF = {
  TYPE: range('Type', 7, 0),
  SSV: bits('SSV', 11),
  SSID: range('SubstreamID', 31, 12),
  SID: range('StreamID', 63, 32),
  STAG: range('STAG', 79, 64),
  /** F_STE_FETCH / F_CD_FETCH / F_VMS_FETCH / F_CFG_CONFLICT reason (7.3.4). */
  REASON: range('Reason', 79, 64),
  STALL: bits('Stall', 95),
  PNU: bits('PnU', 97),
  IND: bits('InD', 98),
  /** 1 = read. */
  RNW: bits('RnW', 99),
  S2: bits('S2', 103),
  CLASS: range('CLASS', 105, 104),
  /** F_PERMISSION with CLASS=TT: 1 = the stage 2 fault was on a descriptor read. */
  TTRNW: bits('TTRnW', 108),
  INPUT_ADDR: range('InputAddr', 191, 128),
  /** IPA[51:12] at [243:204]. */
  IPA: range('IPA', 243, 204),
  /** FetchAddr[55:3] at [247:195]. */
  FETCH_ADDR: range('FetchAddr', 247, 195),
} as const;

/** Event CLASS (7.3): what the faulting access was for. */
export const EVT_CLASS = { CD: 0, TT: 1, IN: 2 } as const;
export const EVT_CLASS_NAME = ['CD fetch', 'Stage 1 translation table fetch', 'Input address caused fault', 'Reserved'] as const;
