// The endpoint's DMA engine: the register block in BAR0 the device driver programs. It copies LEN bytes
// from SRC to DST (bus addresses: IOVAs when the function's requests are translated by the SMMU) when
// GO is written to DOORBELL, and signals completion with an MSI (when IRQ_EN and the function's MSI
// capability are enabled). Modelled on simple teaching devices such as QEMU's "edu" DMA engine.
// SRC and DST are 64-bit registers, but the engine moves only ranges below 2^53 (the addresses this
// model carries exactly); a transfer beyond that ends at once with ERR_CODE ADDRESS.
//
// FW_MAILBOX is the device firmware's mailbox (not function state: an FLR does not clear it). The
// driver sets RESET_PENDING before a device-specific reset; the firmware clears it some time after the
// function comes out of reset.

import { bits, range } from '../bits.ts';
import { fieldDef as fd, reg, type RegisterMap } from '../regmap.ts';

export const DMA_REG = {
  ID: 0x00,
  CTRL: 0x04,
  SRC: 0x08,
  DST: 0x10,
  LEN: 0x18,
  DOORBELL: 0x1c,
  STATUS: 0x20,
  DONE_BYTES: 0x24,
  FW_MAILBOX: 0x28,
} as const;

/** A register of the engine: dmaEngineMap declares one at each DMA_REG offset, so the names are its keys. */
export type DmaRegName = keyof typeof DMA_REG;

/** Value of the ID register: "DMA1". */
export const DMA_ID = 0x31414d44;
/** Largest transfer the engine accepts. */
export const DMA_MAX_LEN = 1 << 20;

export const DMA_CTRL = { IRQ_EN: bits('IRQEnable', 0) } as const;
export const DMA_DOORBELL = { GO: bits('Go', 0) } as const;
export const DMA_STATUS = {
  BUSY: bits('Busy', 0),
  DONE: bits('Done', 1),
  ERROR: bits('Error', 2),
  ERR_CODE: range('ErrorCode', 15, 8),
} as const;
export const FW_MAILBOX = { RESET_PENDING: bits('ResetPending', 0) } as const;

/** STATUS.ERR_CODE values. */
export const DMA_ERR = {
  NONE: 0,
  /** An untranslated request was terminated by the SMMU (translation fault, abort STE, ...). */
  FAULT: 1,
  /** An ATS Translation Request completed with UR or CA. */
  ATS: 2,
  /** A translated request was aborted (ATSCHK, SMMU disabled) or hit no memory. */
  TRANSLATED: 3,
  /** Bus Master Enable was cleared during the transfer, so the engine stopped. */
  BUS_MASTER: 4,
  /** LEN was 0 or larger than DMA_MAX_LEN. */
  LENGTH: 5,
  /** SRC or DST + LEN reaches 2^53: the bus addresses this model carries are below that. */
  ADDRESS: 6,
} as const;
export const DMA_ERR_NAMES: Record<number, string> = {
  0: 'none',
  1: 'translation fault',
  2: 'ATS translation failed',
  3: 'translated request aborted',
  4: 'bus mastering disabled',
  5: 'bad length',
  6: 'bad address',
};

/** The register map of the engine's BAR (the rest of the BAR reads as zero). */
export function dmaEngineMap(barBytes: number): RegisterMap<DmaRegName> {
  const all32 = [fd(range('Value', 31, 0), 'RW')];
  return {
    name: 'dma-engine',
    size: barBytes,
    registers: [
      reg('ID', DMA_REG.ID, 32, [fd(range('Value', 31, 0), 'RO')], { reset: DMA_ID }),
      reg('CTRL', DMA_REG.CTRL, 32, [fd(DMA_CTRL.IRQ_EN, 'RW')]),
      reg('SRC', DMA_REG.SRC, 64, [fd(range('Value', 63, 0), 'RW')]),
      reg('DST', DMA_REG.DST, 64, [fd(range('Value', 63, 0), 'RW')]),
      reg('LEN', DMA_REG.LEN, 32, all32),
      reg('DOORBELL', DMA_REG.DOORBELL, 32, [fd(DMA_DOORBELL.GO, 'W1T')], { role: { kind: 'doorbell' } }),
      reg('STATUS', DMA_REG.STATUS, 32, [fd(DMA_STATUS.BUSY, 'RO'), fd(DMA_STATUS.DONE, 'W1C'), fd(DMA_STATUS.ERROR, 'W1C'), fd(DMA_STATUS.ERR_CODE, 'RO')]),
      reg('DONE_BYTES', DMA_REG.DONE_BYTES, 32, [fd(range('Value', 31, 0), 'RO')]),
      reg('FW_MAILBOX', DMA_REG.FW_MAILBOX, 32, [fd(FW_MAILBOX.RESET_PENDING, 'RW')]),
    ],
  };
}
