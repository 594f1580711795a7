// Operations of the PCI core: enumerate (and put the functions behind the SMMU), list the tree, read
// config space, reset functions the way pci_reset_function does, bind and unbind drivers, run AER
// recovery, and the ats-dma workload.

import { arr, bdf, bool, int, none, obj, oneOf, opt, type Infer } from '../check.ts';
import { op } from './decl.ts';

/** Linux's reset method names (sysfs reset_method), in pci_reset_function's order. */
export const RESET_METHODS = ['device_specific', 'flr', 'pm', 'bus', 'cxl_bus'] as const;
export type ResetMethod = (typeof RESET_METHODS)[number];

/** The firmware's RID -> StreamID table (what IORT or a DT iommu-map gives Linux). */
export const iommuMapTable = arr(obj({ rid: int(0, 0xffff), sid: int(0, 0xffff_ffff) }), 1 << 16);

export interface PciDeviceInfo {
  bdf: string;
  vendor: number;
  device: number;
  classCode: number;
  revision: number;
  headerType: number;
  multifunction: boolean;
  /** PCIe Device/Port Type name, or '' for conventional PCI. */
  pcieType: string;
  secondaryBus: number | null;
  caps: { id: number; offset: number; ext: boolean; name: string }[];
  capsLooped: boolean;
  /** assigned: false when the PCI core found no room for it in the BAR window (start is then 0). */
  bars: { index: number; start: number; size: number; assigned: boolean }[];
  driver: string | null;
  /** The driver found the function gone (surprise removal: pci_dev_is_disconnected). */
  gone: boolean;
  sid: number;
  irq: number;
  resetMethods: ResetMethod[];
  ats: { enabled: boolean; stu: number; queueDepth: number } | null;
  /** Reset blocking depth and state; fenced after ATC invalidation timeouts, and how often. */
  iommu: { depth: number; blocked: boolean; domain: string; fenced: boolean; fences: number } | null;
}

export interface ResetReport {
  ok: boolean;
  /**
   * The method that did the reset, or whose error ended pci_reset_function's walk (the last one tried
   * when all said -ENOTTY); null when none was tried (e.g. a method the function does not support).
   */
  method: ResetMethod | null;
  /** pci_reset_function's return value: 0 or a negative errno. */
  rc: number;
  /** Platform ms the reset took. */
  ms: number;
  /** pci_dev_reset_iommu_prepare depth afterwards, and whether the device is still blocked. */
  depth: number;
  blocked: boolean;
}

export interface RecoveryReport {
  /** The merged vote at the end: RECOVERED on success. */
  result: string;
  /** Callbacks called, in order: "01:00.0 error_detected -> NEED_RESET", ... */
  steps: string[];
  reset: boolean;
}

/** The ats-dma workload: every ATS endpoint copies buffers through its ATC while the driver maps and unmaps. */
export const atsDmaRequest = obj({
  /** The firmware's RID -> StreamID map (used when PCI is not initialised yet). */
  iommuMap: iommuMapTable,
  /** Stop after this much platform time... */
  durationNs: opt(int()),
  /** ...or after this many rounds. */
  rounds: opt(int()),
  /** Pages per buffer. */
  pages: int(1, 64),
  transfersPerMap: int(1, 1024),
  /** All endpoints in one paging domain (one CMD_SYNC for every endpoint's ATC_INVs) or each in its own. */
  sharedDomain: bool,
  /** Platform ns to wait for one copy. */
  timeoutNs: opt(int(1, 1e15)),
});
export type AtsDmaRequest = Infer<typeof atsDmaRequest>;

/** What the ats-dma workload itself reports. */
export interface AtsDmaRun {
  endpoints: string[];
  rounds: number;
  transfers: number;
  bytes: number;
  /** Copies whose destination did not match the source afterwards. */
  verifyFailures: number;
  /** Copies that reported an error or timed out: "BDF: error". */
  errors: string[];
  elapsedNs: number;
}

/** A BAR the PCI core could not place: no room left in the BAR window ("can't assign; no space"). */
export interface UnassignedBar {
  bdf: string;
  bar: number;
  size: number;
}

/** The workload's report with what the IOMMU layer saw meanwhile. */
export interface AtsDmaResult extends AtsDmaRun {
  /** BARs left unassigned: their functions have no driver, so they take no part in the workload. */
  unassignedBars: UnassignedBar[];
  /** Commands the IOMMU layer issued meanwhile (setup included), by opcode name. */
  issuedByOpcode: Record<string, number>;
  /** Events the event queue thread decoded meanwhile, by name. */
  events: Record<string, number>;
}

const target = obj({ bdf });

export const PCI_OPS = {
  /** Sets up PCI on this CPU (the core, the SMMU glue when the SMMU is probed here, the endpoint driver) and scans. */
  pciInit: op(obj({ iommuMap: iommuMapTable, strict: opt(bool) })).returns<PciDeviceInfo[]>(),
  pciTree: op(none).returns<PciDeviceInfo[]>(),
  /** The function's config space as dwords (256 or 4096 bytes, as the core sized it). */
  pciConfigRead: op(target).returns<number[]>(),
  /**
   * Initiate FLR written directly (as `setpci` would), 100 ms, then the readiness poll: no save/restore
   * and no IOMMU hooks, so config space shows what the FLR left. Returns the poll's result (0 or -errno).
   */
  pciRawFlr: op(target).returns<number>(),
  /** pci_reset_function, optionally restricted to one method. */
  pciReset: op(obj({ bdf, method: opt(oneOf(RESET_METHODS)) })).returns<ResetReport>(),
  /** Releases the device's driver (its remove()), as writing sysfs unbind does. */
  pciUnbind: op(target).returns<true>(),
  /** Offers unbound devices to the drivers again (sysfs drivers_probe); returns the device records. */
  pciBind: op(none).returns<PciDeviceInfo[]>(),
  /** AER recovery for the errors the function logged (null when it logged none). */
  pciAerRecover: op(target).returns<RecoveryReport | null>(),
  /** The ats-dma workload (PCI set up first if needed). */
  atsDmaWorkload: op(atsDmaRequest).returns<AtsDmaResult>(),
};
