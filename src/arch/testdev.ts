// The DMA test engine's programming interface, as data (behaviour in hw/testdev.ts).
//
// A platform device (not PCI), in the spirit of QEMU's iommu-testdev: software programs a StreamID
// (and SubstreamID), an IOVA, a length, a direction and a data source, rings the doorbell, and the
// engine performs the transfer as untranslated DMA through the SMMU, then reports completion in
// STATUS/COUNT (and optionally with an MSI). Instance i decodes at PA.PLATDEV_BASE + i * 4 KiB.
//
// Data: a DMA write sends PATTERN repeated (CTRL.SRC=0) or the bytes of the engine's local buffer at
// physical address BUF (CTRL.SRC=1: the engine's own memory port, not translated). A DMA read stores
// what it read into BUF (CTRL.SRC=1) and always reports a checksum (RESULT: 32-bit FNV-1a of the
// bytes) and, with CTRL.SRC=0, how many 32-bit words differ from PATTERN (MISMATCHES).

import { bits, range } from './bits.ts';
import { fieldDef as fd, reg, type RegisterMap } from './regmap.ts';
import { PA } from './platform.ts';

export const TESTDEV_BYTES = 0x1000;
/** ID register value: "TDMA" in ASCII, little-endian. */
export const TESTDEV_ID = 0x414d4454;
export const TESTDEV_VERSION = 1;
/** Longest transfer the engine accepts, in bytes. */
export const TESTDEV_MAX_LEN = 1 << 20;

export function testdevBase(index: number): number {
  return PA.PLATDEV_BASE + index * TESTDEV_BYTES;
}

export const TD_OFF = {
  ID: 0x00,
  VERSION: 0x04,
  SID: 0x08,
  SSID: 0x0c,
  IOVA_LO: 0x10,
  IOVA_HI: 0x14,
  LEN: 0x18,
  CTRL: 0x1c,
  PATTERN: 0x20,
  BUF_LO: 0x24,
  BUF_HI: 0x28,
  DOORBELL: 0x2c,
  STATUS: 0x30,
  COUNT: 0x34,
  XFERRED: 0x38,
  RESULT: 0x3c,
  MISMATCHES: 0x40,
  FAULT_CODE: 0x44,
  FAULT_EVENT: 0x48,
  FAULT_ADDR_LO: 0x50,
  FAULT_ADDR_HI: 0x54,
  MSI_ADDR_LO: 0x58,
  MSI_ADDR_HI: 0x5c,
  MSI_DATA: 0x60,
} as const;

/** A register of the engine: TESTDEV_MAP declares one at each TD_OFF offset, so the names are its keys. */
export type TestdevRegName = keyof typeof TD_OFF;

export const TD_SSID = { SSID: range('SSID', 19, 0), SSV: bits('SSV', 31) } as const;
export const TD_CTRL = {
  /** 0: read from the IOVA (device reads memory); 1: write to the IOVA. */
  DIR: bits('DIR', 0),
  /** 0: PATTERN is the data; 1: the local buffer at BUF is. */
  SRC: bits('SRC', 1),
  /** Transaction attributes: privileged, instruction fetch (reads only). */
  PRIV: bits('PRIV', 2),
  INSTR: bits('INSTR', 3),
  /** Send an MSI (MSI_DATA to MSI_ADDR) on completion. */
  MSI_EN: bits('MSI_EN', 4),
} as const;
export const TD_DOORBELL = { GO: bits('GO', 0) } as const;
export const TD_STATUS = {
  BUSY: bits('BUSY', 0),
  DONE: bits('DONE', 1),
  /** The transfer stopped early: FAULT_CODE says why, XFERRED how far it got. */
  ERROR: bits('ERROR', 2),
  /** A pattern read found MISMATCHES != 0. */
  MISMATCH: bits('MISMATCH', 3),
} as const;
/** FAULT_CODE values. */
export const TD_FAULT = {
  NONE: 0,
  /** The SMMU terminated the transaction (FAULT_EVENT holds the event type it recorded, or 0). */
  SMMU: 1,
  /** The (translated) address, or the local buffer, is not RAM. */
  BUS: 2,
  /** LEN is 0 or above TESTDEV_MAX_LEN. */
  PARAM: 3,
} as const;

const word = (name: string) => range(name, 31, 0);

export const TESTDEV_MAP: RegisterMap<TestdevRegName> = {
  name: 'testdev',
  size: TESTDEV_BYTES,
  registers: [
    reg('ID', TD_OFF.ID, 32, [fd(word('ID'), 'RO')], { reset: TESTDEV_ID }),
    reg('VERSION', TD_OFF.VERSION, 32, [fd(word('VERSION'), 'RO')], { reset: TESTDEV_VERSION }),
    reg('SID', TD_OFF.SID, 32, [fd(word('SID'), 'RW')]),
    reg('SSID', TD_OFF.SSID, 32, [fd(TD_SSID.SSID, 'RW'), fd(TD_SSID.SSV, 'RW')]),
    reg('IOVA_LO', TD_OFF.IOVA_LO, 32, [fd(word('IOVA_LO'), 'RW')]),
    reg('IOVA_HI', TD_OFF.IOVA_HI, 32, [fd(word('IOVA_HI'), 'RW')]),
    reg('LEN', TD_OFF.LEN, 32, [fd(word('LEN'), 'RW')]),
    reg('CTRL', TD_OFF.CTRL, 32, Object.values(TD_CTRL).map((f) => fd(f, 'RW'))),
    reg('PATTERN', TD_OFF.PATTERN, 32, [fd(word('PATTERN'), 'RW')]),
    reg('BUF_LO', TD_OFF.BUF_LO, 32, [fd(word('BUF_LO'), 'RW')]),
    reg('BUF_HI', TD_OFF.BUF_HI, 32, [fd(word('BUF_HI'), 'RW')]),
    reg('DOORBELL', TD_OFF.DOORBELL, 32, [fd(TD_DOORBELL.GO, 'W1T')], { role: { kind: 'doorbell' } }),
    reg('STATUS', TD_OFF.STATUS, 32, Object.values(TD_STATUS).map((f) => fd(f, 'RO'))),
    reg('COUNT', TD_OFF.COUNT, 32, [fd(word('COUNT'), 'RO')]),
    reg('XFERRED', TD_OFF.XFERRED, 32, [fd(word('XFERRED'), 'RO')]),
    reg('RESULT', TD_OFF.RESULT, 32, [fd(word('RESULT'), 'RO')]),
    reg('MISMATCHES', TD_OFF.MISMATCHES, 32, [fd(word('MISMATCHES'), 'RO')]),
    reg('FAULT_CODE', TD_OFF.FAULT_CODE, 32, [fd(word('FAULT_CODE'), 'RO')]),
    reg('FAULT_EVENT', TD_OFF.FAULT_EVENT, 32, [fd(word('FAULT_EVENT'), 'RO')]),
    reg('FAULT_ADDR_LO', TD_OFF.FAULT_ADDR_LO, 32, [fd(word('FAULT_ADDR_LO'), 'RO')]),
    reg('FAULT_ADDR_HI', TD_OFF.FAULT_ADDR_HI, 32, [fd(word('FAULT_ADDR_HI'), 'RO')]),
    reg('MSI_ADDR_LO', TD_OFF.MSI_ADDR_LO, 32, [fd(word('MSI_ADDR_LO'), 'RW')]),
    reg('MSI_ADDR_HI', TD_OFF.MSI_ADDR_HI, 32, [fd(word('MSI_ADDR_HI'), 'RW')]),
    reg('MSI_DATA', TD_OFF.MSI_DATA, 32, [fd(word('MSI_DATA'), 'RW')]),
  ],
};

/** 32-bit FNV-1a of a byte array (the engine's RESULT for reads). */
export function fnv1a(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return h >>> 0;
}
