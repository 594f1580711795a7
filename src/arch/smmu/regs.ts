// SMMUv3 programming interface: register offsets and fields (IHI 0070 chapter 6), as data.
//
// Field constants describe the whole architecture and are what the driver uses to build and parse
// values; which of them one implementation has is implementation.ts.

import { bits, range } from '../bits.ts';

/** Page 1 starts 64 KiB after page 0 (6.2). */
export const SMMU_PAGE1 = 0x10000;
/** Two 64 KiB register pages (6.2). */
export const SMMU_MMIO_SIZE = 0x20000;

export const OFF = {
  IDR0: 0x00,
  IDR1: 0x04,
  IDR2: 0x08,
  IDR3: 0x0c,
  IDR4: 0x10,
  IDR5: 0x14,
  IIDR: 0x18,
  AIDR: 0x1c,
  CR0: 0x20,
  CR0ACK: 0x24,
  CR1: 0x28,
  CR2: 0x2c,
  STATUSR: 0x40,
  GBPA: 0x44,
  AGBPA: 0x48,
  IRQ_CTRL: 0x50,
  IRQ_CTRLACK: 0x54,
  GERROR: 0x60,
  GERRORN: 0x64,
  GERROR_IRQ_CFG0: 0x68,
  GERROR_IRQ_CFG1: 0x70,
  GERROR_IRQ_CFG2: 0x74,
  STRTAB_BASE: 0x80,
  STRTAB_BASE_CFG: 0x88,
  CMDQ_BASE: 0x90,
  CMDQ_PROD: 0x98,
  CMDQ_CONS: 0x9c,
  EVENTQ_BASE: 0xa0,
  EVENTQ_IRQ_CFG0: 0xb0,
  EVENTQ_IRQ_CFG1: 0xb8,
  EVENTQ_IRQ_CFG2: 0xbc,
  PRIQ_BASE: 0xc0,
  PRIQ_IRQ_CFG0: 0xd0,
  PRIQ_IRQ_CFG1: 0xd8,
  PRIQ_IRQ_CFG2: 0xdc,
  // Page 1 (6.2.2). The page-0 offsets 0xa8/0xac/0xc8/0xcc are "optional alias, otherwise RAZ/WI";
  // this model picks RAZ/WI, as Linux programs page 1 unless told the SMMU only has page 0.
  EVENTQ_PROD: SMMU_PAGE1 + 0xa8,
  EVENTQ_CONS: SMMU_PAGE1 + 0xac,
  PRIQ_PROD: SMMU_PAGE1 + 0xc8,
  PRIQ_CONS: SMMU_PAGE1 + 0xcc,
} as const;

export type SmmuRegName = keyof typeof OFF;

/** IDR0 (6.3.1). */
export const IDR0 = {
  S2P: bits('S2P', 0),
  S1P: bits('S1P', 1),
  TTF: range('TTF', 3, 2),
  COHACC: bits('COHACC', 4),
  BTM: bits('BTM', 5),
  HTTU: range('HTTU', 7, 6),
  DORMHINT: bits('DORMHINT', 8),
  HYP: bits('HYP', 9),
  ATS: bits('ATS', 10),
  NS1ATS: bits('NS1ATS', 11),
  ASID16: bits('ASID16', 12),
  MSI: bits('MSI', 13),
  SEV: bits('SEV', 14),
  ATOS: bits('ATOS', 15),
  PRI: bits('PRI', 16),
  VMW: bits('VMW', 17),
  VMID16: bits('VMID16', 18),
  CD2L: bits('CD2L', 19),
  VATOS: bits('VATOS', 20),
  TTENDIAN: range('TTENDIAN', 22, 21),
  ATSRECERR: bits('ATSRECERR', 23),
  STALL_MODEL: range('STALL_MODEL', 25, 24),
  TERM_MODEL: bits('TERM_MODEL', 26),
  ST_LEVEL: range('ST_LEVEL', 28, 27),
} as const;

/** IDR0.TTF encodings (6.3.1). */
export const TTF_AARCH64 = 2;
/** IDR0.TTENDIAN: little-endian only (6.3.1). */
export const TTENDIAN_LE = 2;
/** IDR0.STALL_MODEL: stall not supported (6.3.1). */
export const STALL_MODEL_NONE = 1;

/** IDR1 (6.3.2). Queue sizes are log2 of the maximum entries, at most 19. */
export const IDR1 = {
  SIDSIZE: range('SIDSIZE', 5, 0),
  SSIDSIZE: range('SSIDSIZE', 10, 6),
  PRIQS: range('PRIQS', 15, 11),
  EVENTQS: range('EVENTQS', 20, 16),
  CMDQS: range('CMDQS', 25, 21),
  ATTR_PERMS_OVR: bits('ATTR_PERMS_OVR', 26),
  ATTR_TYPES_OVR: bits('ATTR_TYPES_OVR', 27),
  REL: bits('REL', 28),
  QUEUES_PRESET: bits('QUEUES_PRESET', 29),
  TABLES_PRESET: bits('TABLES_PRESET', 30),
} as const;
export const QUEUE_LOG2_MAX = 19;

/** IDR3 (6.3.4). */
export const IDR3 = {
  HAD: bits('HAD', 2),
  RIL: bits('RIL', 10),
  BBML: range('BBML', 12, 11),
} as const;

/** IDR5 (6.3.6). */
export const IDR5 = {
  OAS: range('OAS', 2, 0),
  GRAN4K: bits('GRAN4K', 4),
  GRAN16K: bits('GRAN16K', 5),
  GRAN64K: bits('GRAN64K', 6),
  VAX: range('VAX', 11, 10),
  STALL_MAX: range('STALL_MAX', 31, 16),
} as const;

/** IDR5.OAS encoding to output address bits (6.3.6). */
export const OAS_BITS = [32, 36, 40, 42, 44, 48, 52] as const;

/** IIDR (6.3.7): Arm's JEP106 implementer code is 0x43B. */
export const IIDR = {
  Implementer: range('Implementer', 11, 0),
  Revision: range('Revision', 15, 12),
  Variant: range('Variant', 19, 16),
  ProductID: range('ProductID', 31, 20),
} as const;

/** AIDR (6.3.8): ArchMinorRev 0..4 = SMMUv3.0..v3.4, ArchMajorRev 0 = SMMUv3. */
export const AIDR = {
  ArchMinorRev: range('ArchMinorRev', 3, 0),
  ArchMajorRev: range('ArchMajorRev', 7, 4),
} as const;

/** CR0 and CR0ACK (6.3.9, 6.3.10). */
export const CR0 = {
  SMMUEN: bits('SMMUEN', 0),
  PRIQEN: bits('PRIQEN', 1),
  EVENTQEN: bits('EVENTQEN', 2),
  CMDQEN: bits('CMDQEN', 3),
  ATSCHK: bits('ATSCHK', 4),
  VMW: range('VMW', 8, 6),
} as const;

/** CR1 (6.3.11): cacheability and shareability of table and queue accesses. */
export const CR1 = {
  QUEUE_IC: range('QUEUE_IC', 1, 0),
  QUEUE_OC: range('QUEUE_OC', 3, 2),
  QUEUE_SH: range('QUEUE_SH', 5, 4),
  TABLE_IC: range('TABLE_IC', 7, 6),
  TABLE_OC: range('TABLE_OC', 9, 8),
  TABLE_SH: range('TABLE_SH', 11, 10),
} as const;
/** Cacheability and shareability encodings (6.3.11). */
export const CACHE_WB = 1;
export const SH_ISH = 3;

/** CR2 (6.3.12). */
export const CR2 = {
  E2H: bits('E2H', 0),
  RECINVSID: bits('RECINVSID', 1),
  PTM: bits('PTM', 2),
  REC_CFG_ATS: bits('REC_CFG_ATS', 3),
} as const;

/** GBPA (6.3.14): written whole with Update=1; the SMMU clears Update once applied. */
export const GBPA = {
  MemAttr: range('MemAttr', 3, 0),
  MTCFG: bits('MTCFG', 4),
  ALLOCCFG: range('ALLOCCFG', 11, 8),
  SHCFG: range('SHCFG', 13, 12),
  PRIVCFG: range('PRIVCFG', 17, 16),
  INSTCFG: range('INSTCFG', 19, 18),
  ABORT: bits('ABORT', 20),
  Update: bits('Update', 31),
} as const;

/** IRQ_CTRL and IRQ_CTRLACK (6.3.16, 6.3.18). */
export const IRQ_CTRL = {
  GERROR_IRQEN: bits('GERROR_IRQEN', 0),
  PRIQ_IRQEN: bits('PRIQ_IRQEN', 1),
  EVENTQ_IRQEN: bits('EVENTQ_IRQEN', 2),
} as const;

/** GERROR and GERRORN (6.3.19, 6.3.20): an error is active while the two bits differ. */
export const GERROR = {
  CMDQ_ERR: bits('CMDQ_ERR', 0),
  EVENTQ_ABT_ERR: bits('EVENTQ_ABT_ERR', 2),
  PRIQ_ABT_ERR: bits('PRIQ_ABT_ERR', 3),
  MSI_CMDQ_ABT_ERR: bits('MSI_CMDQ_ABT_ERR', 4),
  MSI_EVENTQ_ABT_ERR: bits('MSI_EVENTQ_ABT_ERR', 5),
  MSI_PRIQ_ABT_ERR: bits('MSI_PRIQ_ABT_ERR', 6),
  MSI_GERROR_ABT_ERR: bits('MSI_GERROR_ABT_ERR', 7),
  SFM_ERR: bits('SFM_ERR', 8),
} as const;

/** *_IRQ_CFG0/1/2 (6.3.21-23): MSI address [55:2] (0 = no MSI), data, shareability and attributes. */
export const IRQ_CFG0 = { ADDR: range('ADDR', 55, 2) } as const;
export const IRQ_CFG1 = { DATA: range('DATA', 31, 0) } as const;
export const IRQ_CFG2 = {
  MemAttr: range('MemAttr', 3, 0),
  SH: range('SH', 5, 4),
  LO: bits('LO', 31),
} as const;
/** Device-nGnRE memory attribute, and the Normal inner/outer write-back encoding (6.3.23). */
export const MEMATTR_DEVICE_nGnRE = 0x1;
export const MEMATTR_OIWB = 0xf;

/** STRTAB_BASE (6.3.24) and STRTAB_BASE_CFG (6.3.25). */
export const STRTAB_BASE = {
  ADDR: range('ADDR', 55, 6),
  RA: bits('RA', 62),
} as const;
export const STRTAB_BASE_CFG = {
  LOG2SIZE: range('LOG2SIZE', 5, 0),
  SPLIT: range('SPLIT', 10, 6),
  FMT: range('FMT', 17, 16),
} as const;
export const STRTAB_FMT_LINEAR = 0;
export const STRTAB_FMT_2LVL = 1;
/** Legal SPLIT values (6.3.25); anything else behaves as 6. */
export const STRTAB_SPLITS = [6, 8, 10] as const;

/** Queue base registers (6.3.26, 6.3.29, 6.3.33): RA/WA hint, address [55:5], log2 of entries. */
export const Q_BASE = {
  LOG2SIZE: range('LOG2SIZE', 4, 0),
  ADDR: range('ADDR', 55, 5),
  RWA: bits('RWA', 62),
} as const;

/** Queue index registers (6.3.27/28, 6.3.95-98): index [QS-1:0] with the wrap flag at bit QS. */
export const Q_IDX = { WR: range('WR', 19, 0) } as const;
export const CMDQ_CONS = { RD: range('RD', 19, 0), ERR: range('ERR', 30, 24) } as const;
/** EVENTQ_PROD.OVFLG / EVENTQ_CONS.OVACKFLG (7.4). */
export const Q_OVFLG = bits('OVFLG', 31);

/** CMDQ_CONS.ERR codes (7.1). */
export const CERROR = { NONE: 0, ILL: 1, ABT: 2, ATC_INV_SYNC: 3 } as const;
export const CERROR_NAMES: Record<number, string> = Object.fromEntries(Object.entries(CERROR).map(([name, code]) => [code, `CERROR_${name}`]));
