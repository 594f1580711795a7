// PCI/PCIe configuration-space registers as data: offsets, capability IDs and the bit fields of every
// register this model implements. Both the hardware model (hw/pcie) and the PCI core (drivers/pci)
// use these declarations, so a bit position is written down once.
//
// Sources: PCI Local Bus 3.0 chapter 6 (Type 0/1 headers), PCIe Base r6.0 chapter 7 (7.5.1 common
// header, 7.5.2 PM, 7.7.1 MSI, 7.5.3 PCI Express Capability, 7.8.4 AER, 7.7.8 ACS, 10.5.1 ATS,
// 10.5.2 PRI, 7.8.8 PASID), cross-checked against the constant names of Linux's pci_regs.h and against
// what lspci 3.9 decodes (see /work/shared/reference/pcie-config-ats-flr-facts.md).

import { bits, range } from '../bits.ts';

/** Bytes of configuration space per function (PCIe extended configuration space). */
export const CONFIG_BYTES = 4096;
/** Legacy (PCI-compatible) configuration space; extended capabilities start here. */
export const LEGACY_BYTES = 256;
export const EXT_CAP_START = 0x100;
/** First byte after the 64-byte standard header, where legacy capabilities may start. */
export const HEADER_BYTES = 0x40;

/** Vendor ID meaning "no function here" (and the all-ones a master abort returns). */
export const VENDOR_NONE = 0xffff;
/** Vendor ID a Root Port returns for a config read completed with RRS when RRS SV is on (r6.0 2.3.2). */
export const VENDOR_RRS = 0x0001;

/** Common header offsets (7.5.1.1). */
export const HDR = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION: 0x08,
  CLASS: 0x09,
  CACHE_LINE: 0x0c,
  LATENCY: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BAR0: 0x10,
  CAP_PTR: 0x34,
  INT_LINE: 0x3c,
  INT_PIN: 0x3d,
  // Type 0 only (7.5.1.2).
  SUBSYS_VENDOR: 0x2c,
  SUBSYS_ID: 0x2e,
  ROM: 0x30,
  // Type 1 only (7.5.1.3).
  PRIMARY_BUS: 0x18,
  SECONDARY_BUS: 0x19,
  SUBORDINATE_BUS: 0x1a,
  SEC_LATENCY: 0x1b,
  IO_BASE: 0x1c,
  IO_LIMIT: 0x1d,
  SEC_STATUS: 0x1e,
  MEM_BASE: 0x20,
  MEM_LIMIT: 0x22,
  PREF_BASE: 0x24,
  PREF_LIMIT: 0x26,
  PREF_BASE_UPPER: 0x28,
  PREF_LIMIT_UPPER: 0x2c,
  IO_BASE_UPPER: 0x30,
  IO_LIMIT_UPPER: 0x32,
  ROM1: 0x38,
  BRIDGE_CONTROL: 0x3e,
} as const;

/**
 * The header registers of a function's map (hw/pcie/config-space.ts declares them at the HDR offsets):
 * Revision ID and Class Code are one register there (CLASS_REV), and the expansion ROM BARs and the
 * upper halves of the I/O and prefetchable windows are not implemented.
 */
export type HeaderRegName =
  | Exclude<keyof typeof HDR, 'REVISION' | 'CLASS' | 'ROM' | 'ROM1' | 'PREF_BASE_UPPER' | 'PREF_LIMIT_UPPER' | 'IO_BASE_UPPER' | 'IO_LIMIT_UPPER'>
  | 'CLASS_REV';

/** Header Type register (7.5.1.1.9): layout in [6:0], multi-function device in bit 7. */
export const HEADER_TYPE = { LAYOUT: range('Layout', 6, 0), MFD: bits('MFD', 7) } as const;
export const HEADER_LAYOUT = { NORMAL: 0, BRIDGE: 1 } as const;

/** Command register (7.5.1.1.3). */
export const COMMAND = {
  IO: bits('IO', 0),
  MEMORY: bits('Memory', 1),
  MASTER: bits('BusMaster', 2),
  SPECIAL: bits('SpecialCycle', 3),
  MWI: bits('MemWINV', 4),
  VGA_SNOOP: bits('VGASnoop', 5),
  PARITY: bits('ParErr', 6),
  SERR: bits('SERR', 8),
  FAST_B2B: bits('FastB2B', 9),
  INTX_DISABLE: bits('DisINTx', 10),
} as const;

/** Status register (7.5.1.1.4); the error bits are RW1C. */
export const STATUS = {
  IMM_READY: bits('ImmReady', 0),
  INTERRUPT: bits('INTx', 3),
  CAP_LIST: bits('CapList', 4),
  MDPE: bits('MasterDataParityError', 8),
  SIG_TARGET_ABORT: bits('SignaledTargetAbort', 11),
  REC_TARGET_ABORT: bits('ReceivedTargetAbort', 12),
  REC_MASTER_ABORT: bits('ReceivedMasterAbort', 13),
  SIG_SYSTEM_ERROR: bits('SignaledSystemError', 14),
  DETECTED_PARITY: bits('DetectedParityError', 15),
} as const;

/** Class code and revision dword at 0x08 (7.5.1.1.5-6). */
export const CLASS_REV = {
  REVISION: range('RevisionID', 7, 0),
  PROG_IF: range('ProgIF', 15, 8),
  SUBCLASS: range('SubClass', 23, 16),
  BASE_CLASS: range('BaseClass', 31, 24),
} as const;

/** A 32-bit memory BAR (7.5.1.2.1): space indicator, type, prefetchable, then the address. */
export const BAR = {
  IO_SPACE: bits('IOSpace', 0),
  TYPE: range('Type', 2, 1),
  PREFETCH: bits('Prefetchable', 3),
  ADDR: range('Address', 31, 4),
} as const;
export const BAR_TYPE = { MEM32: 0, MEM64: 2 } as const;

/** Bridge Control (7.5.1.3.13). */
export const BRIDGE_CONTROL = {
  PARITY: bits('ParityErrorResponse', 0),
  SERR: bits('SERR', 1),
  ISA: bits('ISA', 2),
  VGA: bits('VGA', 3),
  MASTER_ABORT: bits('MasterAbortMode', 5),
  BUS_RESET: bits('SecondaryBusReset', 6),
} as const;

/** Memory Base/Limit of a Type 1 header (7.5.1.3.8): address bits [31:20] in [15:4]. */
export const MEM_WINDOW = { ADDR: range('Address', 15, 4) } as const;

/** Legacy capability IDs (PCI Code and ID Assignment). */
export const CAP_ID = { PM: 0x01, MSI: 0x05, EXP: 0x10, MSIX: 0x11, AF: 0x13 } as const;
/** Extended capability IDs. */
export const EXT_CAP_ID = { AER: 0x0001, ACS: 0x000d, ATS: 0x000f, PRI: 0x0013, PASID: 0x001b, DVSEC: 0x0023 } as const;

/** Legacy capability header: ID, next pointer (7.5.1.1.11). */
export const CAP_HDR = { ID: range('CapID', 7, 0), NEXT: range('Next', 15, 8) } as const;
/** Extended capability header (7.6.3): ID, version, next offset. */
export const EXT_HDR = { ID: range('CapID', 15, 0), VERSION: range('Version', 19, 16), NEXT: range('Next', 31, 20) } as const;

// ---- Power Management (7.5.2) ----

export const PM = { PMC: 0x02, PMCSR: 0x04, DATA: 0x06, SIZE: 8 } as const;
export type PmRegName = Exclude<keyof typeof PM, 'SIZE'>;
export const PMC = {
  VERSION: range('Version', 2, 0),
  PME_CLOCK: bits('PMEClk', 3),
  DSI: bits('DSI', 5),
  AUX_CURRENT: range('AuxCurrent', 8, 6),
  D1: bits('D1', 9),
  D2: bits('D2', 10),
  PME_SUPPORT: range('PMESupport', 15, 11),
} as const;
export const PMCSR = {
  STATE: range('PowerState', 1, 0),
  NO_SOFT_RESET: bits('NoSoftReset', 3),
  PME_ENABLE: bits('PMEEnable', 8),
  DATA_SELECT: range('DataSelect', 12, 9),
  DATA_SCALE: range('DataScale', 14, 13),
  PME_STATUS: bits('PMEStatus', 15),
} as const;
export const POWER_STATE = { D0: 0, D1: 1, D2: 2, D3HOT: 3 } as const;

// ---- MSI (7.7.1), 64-bit address, one vector, no per-vector masking ----

export const MSI = { CONTROL: 0x02, ADDR_LO: 0x04, ADDR_HI: 0x08, DATA: 0x0c, EXT_DATA: 0x0e, SIZE: 16 } as const;
export type MsiRegName = Exclude<keyof typeof MSI, 'SIZE'>;
export const MSI_CONTROL = {
  ENABLE: bits('Enable', 0),
  MMC: range('MultipleMessageCapable', 3, 1),
  MME: range('MultipleMessageEnable', 6, 4),
  ADDR64: bits('64bit', 7),
  PVM: bits('PerVectorMasking', 8),
} as const;
export const MSI_ADDR_LO = { ADDR: range('Address', 31, 2) } as const;

// ---- PCI Express Capability (7.5.3), version 2 ----

export const EXP = {
  FLAGS: 0x02,
  DEVCAP: 0x04,
  DEVCTL: 0x08,
  DEVSTA: 0x0a,
  LNKCAP: 0x0c,
  LNKCTL: 0x10,
  LNKSTA: 0x12,
  SLTCAP: 0x14,
  SLTCTL: 0x18,
  SLTSTA: 0x1a,
  RTCTL: 0x1c,
  RTCAP: 0x1e,
  RTSTA: 0x20,
  DEVCAP2: 0x24,
  DEVCTL2: 0x28,
  DEVSTA2: 0x2a,
  LNKCAP2: 0x2c,
  LNKCTL2: 0x30,
  LNKSTA2: 0x32,
  SLTCAP2: 0x34,
  SLTCTL2: 0x38,
  SLTSTA2: 0x3a,
  SIZE: 0x3c,
} as const;
export type ExpRegName = Exclude<keyof typeof EXP, 'SIZE'>;
export const EXP_FLAGS = { VERSION: range('Version', 3, 0), TYPE: range('DevicePortType', 7, 4), SLOT: bits('SlotImplemented', 8), IRQ: range('InterruptMessageNumber', 13, 9) } as const;
export const EXP_TYPE = { ENDPOINT: 0, ROOT_PORT: 4, RC_END: 9 } as const;
export const DEVCAP = {
  PAYLOAD: range('MaxPayloadSupported', 2, 0),
  PHANTOM: range('PhantomFunctions', 4, 3),
  EXT_TAG: bits('ExtTag', 5),
  L0S: range('L0sLatency', 8, 6),
  L1: range('L1Latency', 11, 9),
  RBER: bits('RoleBasedErrorReporting', 15),
  PWR_VAL: range('CapturedSlotPowerLimitValue', 25, 18),
  PWR_SCL: range('CapturedSlotPowerLimitScale', 27, 26),
  FLR: bits('FLR', 28),
} as const;
export const DEVCTL = {
  CERE: bits('CorrErrReport', 0),
  NFERE: bits('NonFatalErrReport', 1),
  FERE: bits('FatalErrReport', 2),
  URRE: bits('UnsupReqReport', 3),
  RELAX_EN: bits('RelaxedOrdering', 4),
  PAYLOAD: range('MaxPayloadSize', 7, 5),
  EXT_TAG: bits('ExtTag', 8),
  PHANTOM: bits('PhantomFunctions', 9),
  AUX_PME: bits('AuxPower', 10),
  NOSNOOP_EN: bits('NoSnoop', 11),
  READRQ: range('MaxReadRequestSize', 14, 12),
  /** Initiate Function Level Reset: write 1 to start an FLR; always reads 0 (7.5.3.4). */
  BCR_FLR: bits('InitiateFLR', 15),
} as const;
export const DEVSTA = {
  CED: bits('CorrectableErrorDetected', 0),
  NFED: bits('NonFatalErrorDetected', 1),
  FED: bits('FatalErrorDetected', 2),
  URD: bits('UnsupportedRequestDetected', 3),
  AUXPD: bits('AuxPowerDetected', 4),
  /** Transactions Pending: the function has issued non-posted requests not yet completed (7.5.3.5). */
  TRPND: bits('TransactionsPending', 5),
} as const;
export const LNKCAP = {
  SLS: range('MaxLinkSpeed', 3, 0),
  MLW: range('MaxLinkWidth', 9, 4),
  ASPMS: range('ASPMSupport', 11, 10),
  L0S_EL: range('L0sExitLatency', 14, 12),
  L1_EL: range('L1ExitLatency', 17, 15),
  DLLLARC: bits('DataLinkLayerLinkActiveReporting', 20),
  LBNC: bits('LinkBandwidthNotification', 21),
  PN: range('PortNumber', 31, 24),
} as const;
export const LNKCTL = {
  ASPMC: range('ASPMControl', 1, 0),
  RCB: bits('ReadCompletionBoundary', 3),
  LD: bits('LinkDisable', 4),
  RL: bits('RetrainLink', 5),
  CCC: bits('CommonClock', 6),
  ES: bits('ExtendedSynch', 7),
} as const;
export const LNKSTA = {
  CLS: range('CurrentLinkSpeed', 3, 0),
  NLW: range('NegotiatedLinkWidth', 9, 4),
  LT: bits('LinkTraining', 11),
  SLC: bits('SlotClock', 12),
  DLLLA: bits('DataLinkLayerLinkActive', 13),
} as const;
export const RTCTL = {
  SECEE: bits('SystemErrorOnCorrectable', 0),
  SENFEE: bits('SystemErrorOnNonFatal', 1),
  SEFEE: bits('SystemErrorOnFatal', 2),
  PMEIE: bits('PMEInterrupt', 3),
  /** Configuration RRS Software Visibility Enable (7.5.3.12). */
  RRS_SVE: bits('RRSSoftwareVisibility', 4),
} as const;
export const RTCAP = { RRS_SV: bits('RRSSoftwareVisibility', 0) } as const;
export const DEVCTL2 = { COMP_TIMEOUT: range('CompletionTimeoutValue', 3, 0), COMP_TMOUT_DIS: bits('CompletionTimeoutDisable', 4) } as const;
export const LNKCAP2 = { SPEEDS: range('SupportedLinkSpeeds', 7, 1) } as const;
export const LNKCTL2 = { TLS: range('TargetLinkSpeed', 3, 0) } as const;
/** Link speed encodings of LNKCAP.SLS / LNKSTA.CLS: 1 = 2.5 GT/s, 2 = 5 GT/s, 3 = 8 GT/s. */
export const LINK_SPEED = { GT2_5: 1, GT5: 2, GT8: 3 } as const;

// ---- AER (7.8.4) ----

export const AER = {
  UNCOR_STATUS: 0x04,
  UNCOR_MASK: 0x08,
  UNCOR_SEVER: 0x0c,
  COR_STATUS: 0x10,
  COR_MASK: 0x14,
  CAP: 0x18,
  HEADER_LOG: 0x1c,
  ROOT_COMMAND: 0x2c,
  ROOT_STATUS: 0x30,
  ERR_SRC: 0x34,
  SIZE_ENDPOINT: 0x2c,
  SIZE_ROOT: 0x38,
} as const;
/** AER registers; the Header Log is four dword registers from HEADER_LOG. */
export type AerRegName = Exclude<keyof typeof AER, 'HEADER_LOG' | 'SIZE_ENDPOINT' | 'SIZE_ROOT'> | `HEADER_LOG${0 | 1 | 2 | 3}`;
/** Uncorrectable error bits (7.8.4.2) this model implements. */
export const AER_UNCOR = {
  DLP: bits('DLP', 4),
  SDES: bits('SDES', 5),
  POISON_TLP: bits('PoisonedTLP', 12),
  FCP: bits('FCP', 13),
  COMP_TIME: bits('CompletionTimeout', 14),
  COMP_ABORT: bits('CompleterAbort', 15),
  UNX_COMP: bits('UnexpectedCompletion', 16),
  RX_OVER: bits('ReceiverOverflow', 17),
  MALF_TLP: bits('MalformedTLP', 18),
  ECRC: bits('ECRC', 19),
  UNSUP: bits('UnsupportedRequest', 20),
  ACSV: bits('ACSViolation', 21),
} as const;
/**
 * Uncorrectable Internal Error (7.8.4.2 bit 22): this model never reports it, so it has no status or
 * mask bit here; its severity bit reads its default and ignores writes.
 */
export const AER_UNCOR_UIE = bits('UncorrectableInternalError', 22);
/** Default Uncorrectable Error Severity (7.8.4.4): DLP, SDES, FCP, RxOF, MalfTLP and internal errors fatal. */
export const AER_UNCOR_SEVER_DEFAULT = 0x00462030;
/** Correctable error bits (7.8.4.5). */
export const AER_COR = {
  RCVR: bits('ReceiverError', 0),
  BAD_TLP: bits('BadTLP', 6),
  BAD_DLLP: bits('BadDLLP', 7),
  REP_ROLL: bits('ReplayNumRollover', 8),
  REP_TIMER: bits('ReplayTimerTimeout', 12),
  ADV_NFAT: bits('AdvisoryNonFatal', 13),
  INTERNAL: bits('CorrectedInternal', 14),
  LOG_OVER: bits('HeaderLogOverflow', 15),
} as const;
/** Advisory Non-Fatal is masked by default (7.8.4.6). */
export const AER_COR_MASK_DEFAULT = 0x00002000;
export const AER_CAP = {
  FEP: range('FirstErrorPointer', 4, 0),
  ECRC_GENC: bits('ECRCGenerationCapable', 5),
  ECRC_GENE: bits('ECRCGenerationEnable', 6),
  ECRC_CHKC: bits('ECRCCheckCapable', 7),
  ECRC_CHKE: bits('ECRCCheckEnable', 8),
} as const;
export const AER_ROOT_COMMAND = { COR_EN: bits('CorrectableEnable', 0), NONFATAL_EN: bits('NonFatalEnable', 1), FATAL_EN: bits('FatalEnable', 2) } as const;
export const AER_ROOT_STATUS = {
  COR_RCV: bits('CorReceived', 0),
  MULTI_COR_RCV: bits('MultipleCorReceived', 1),
  UNCOR_RCV: bits('UncorReceived', 2),
  MULTI_UNCOR_RCV: bits('MultipleUncorReceived', 3),
  FIRST_FATAL: bits('FirstUncorFatal', 4),
  NONFATAL_RCV: bits('NonFatalReceived', 5),
  FATAL_RCV: bits('FatalReceived', 6),
} as const;

// ---- ACS (7.7.8) ----

export const ACS = { CAP: 0x04, CTRL: 0x06, SIZE: 8 } as const;
export type AcsRegName = Exclude<keyof typeof ACS, 'SIZE'>;
export const ACS_BITS = {
  SV: bits('SourceValidation', 0),
  TB: bits('TranslationBlocking', 1),
  RR: bits('P2PRequestRedirect', 2),
  CR: bits('P2PCompletionRedirect', 3),
  UF: bits('UpstreamForwarding', 4),
  EC: bits('P2PEgressControl', 5),
  DT: bits('DirectTranslatedP2P', 6),
} as const;

// ---- ATS (10.5.1) ----

export const ATS = { CAP: 0x04, CTRL: 0x06, SIZE: 8 } as const;
export type AtsRegName = Exclude<keyof typeof ATS, 'SIZE'>;
export const ATS_CAP = {
  /** Invalidate Queue Depth: outstanding Invalidate Requests the function accepts; 0 means 32. */
  QDEP: range('InvalidateQueueDepth', 4, 0),
  PAGE_ALIGNED: bits('PageAlignedRequest', 5),
  GLOBAL_INV: bits('GlobalInvalidate', 6),
} as const;
export const ATS_CTRL = {
  /** Smallest Translation Unit: 2^(STU+12) bytes. */
  STU: range('STU', 4, 0),
  ENABLE: bits('Enable', 15),
} as const;
/** Linux PCI_ATS_MAX_QDEP: the encoding 0 of QDEP means 32. */
export const ATS_MAX_QDEP = 32;
/** Linux PCI_ATS_MIN_STU: log2 of the smallest translation unit (4 KiB). */
export const ATS_MIN_STU = 12;

// ---- PRI (10.5.2) ----

export const PRI = { CTRL: 0x04, STATUS: 0x06, MAX_REQ: 0x08, ALLOC_REQ: 0x0c, SIZE: 16 } as const;
export type PriRegName = Exclude<keyof typeof PRI, 'SIZE'>;
export const PRI_CTRL = { ENABLE: bits('Enable', 0), RESET: bits('Reset', 1) } as const;
export const PRI_STATUS = {
  RF: bits('ResponseFailure', 0),
  UPRGI: bits('UnexpectedPRGIndex', 1),
  STOPPED: bits('Stopped', 8),
  PASID_REQUIRED: bits('PRGResponsePASIDRequired', 15),
} as const;

// ---- PASID (7.8.8) ----

export const PASID = { CAP: 0x04, CTRL: 0x06, SIZE: 8 } as const;
export type PasidRegName = Exclude<keyof typeof PASID, 'SIZE'>;
export const PASID_CAP = { EXEC: bits('ExecutePermission', 1), PRIV: bits('PrivilegedMode', 2), WIDTH: range('MaxPASIDWidth', 12, 8) } as const;
export const PASID_CTRL = { ENABLE: bits('Enable', 0), EXEC: bits('ExecutePermission', 1), PRIV: bits('PrivilegedMode', 2) } as const;

// ---- CXL Extensions DVSEC for Ports (CXL 2.0 8.1.5): only what Linux's cxl_reset_bus_function uses ----

export const DVSEC = { HDR1: 0x04, HDR2: 0x08, PORT_CTL: 0x0c, SIZE: 0x28 } as const;
export type DvsecRegName = Exclude<keyof typeof DVSEC, 'SIZE'>;
export const DVSEC_HDR1 = { VENDOR: range('DVSECVendorID', 15, 0), REV: range('DVSECRevision', 19, 16), LEN: range('DVSECLength', 31, 20) } as const;
export const DVSEC_HDR2 = { ID: range('DVSECID', 15, 0) } as const;
/** CXL Port Control: Unmask SBR — while 0, Secondary Bus Reset has no effect below a CXL port. */
export const CXL_PORT_CTL = { UNMASK_SBR: bits('UnmaskSBR', 0) } as const;
export const PCI_VENDOR_ID_CXL = 0x1e98;
export const CXL_DVSEC_PORT = 3;

/** Names of the capabilities this model knows, as lspci calls them (for listings). */
export const CAP_NAMES: Record<number, string> = { 0x01: 'Power Management', 0x05: 'MSI', 0x10: 'Express', 0x11: 'MSI-X', 0x13: 'Advanced Features' };
export const EXT_CAP_NAMES: Record<number, string> = {
  0x0001: 'Advanced Error Reporting',
  0x000d: 'Access Control Services',
  0x000f: 'Address Translation Service (ATS)',
  0x0013: 'Page Request Interface (PRI)',
  0x001b: 'Process Address Space ID (PASID)',
  0x0023: 'Designated Vendor-Specific',
};
