// The board the driver sees: page size, the physical address map and the interrupt vectors.
//
// Physical addresses follow QEMU's Arm "virt" board where it has an equivalent, so numbers in logs
// look familiar: DRAM at 0x4000_0000, the SMMU at 0x0905_0000, ECAM at 0x3f00_0000.

import { SMMU_MMIO_SIZE } from './smmu/regs.ts';

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
export const IRQ_VECTORS = 256;

/** Physical address map. */
export const PA = {
  DRAM_BASE: 0x4000_0000,
  SMMU_BASE: 0x0905_0000,
  /** MSI doorbell, modelled on a GICv3 ITS GITS_TRANSLATER: a 32-bit write of N raises vector N. */
  MSI_DOORBELL: 0x0809_0040,
  ECAM_BASE: 0x3f00_0000,
  BAR_BASE: 0x1000_0000,
  /** Non-PCI platform devices (e.g. a DMA test engine), 4 KiB each. */
  PLATDEV_BASE: 0x0a00_0000,
} as const;

/**
 * Buses the ECAM window can hold: 16 MiB below DRAM, as QEMU virt's (low) ECAM. A machine's window
 * covers only buses 0 up to the highest its topology uses (what firmware's MCFG bus range says), 1 MiB
 * each, so ECAM does not grow with buses nobody uses.
 */
export const ECAM_MAX_BUSES = 16;
export const ECAM_BUS_BYTES = 1 << 20;
export const BAR_BYTES = 1 << 20;
/** The SMMU's two 64 KiB register pages (6.2). */
export const SMMU_BYTES = SMMU_MMIO_SIZE;
export const PLATDEV_BYTES = 0x10000;

/** Interrupt vectors of the SMMU's wired lines (SPI-like numbers); MSIs use vectors from VECTOR.MSI_BASE. */
export const VECTOR = {
  SMMU_EVTQ: 32,
  SMMU_PRIQ: 33,
  SMMU_CMD_SYNC: 34,
  SMMU_GERROR: 35,
  MSI_BASE: 64,
} as const;
