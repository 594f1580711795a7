// CPU operations for the PCI core: enumerate (and put the functions behind the SMMU), list the tree,
// read config space, reset functions the way pci_reset_function does, run AER recovery, inject
// driver-side faults, and the ats-dma workload.

import type { Kernel, KernelOp } from '../kernel.ts';
import { PciCore } from '../pci/core.ts';
import { PciIommu } from '../pci/iommu.ts';
import { EpDriver } from '../pci/ep-driver.ts';
import { pciBindDrivers, pciUnbindDriver } from '../pci/driver.ts';
import { pciAtsQueueDepth, pciAtsSupported } from '../pci/ats.ts';
import { aerHandleError, type RecoveryReport } from '../pci/aer.ts';
import { errName, type PciDev } from '../pci/pci.ts';
import { pciDevWait, pciResetFunction, type ResetMethod } from '../pci/reset.ts';
import { iommuState } from './iommu.ts';
import { runAtsDma, type AtsDmaRequest, type AtsDmaResult } from '../workloads/ats-dma.ts';
import { CAP_NAMES, DEVCTL, EXP, EXT_CAP_NAMES } from '../../src/arch/pcie/regs.ts';
import { NS_PER_MS, TIMEOUT } from '../../src/arch/time.ts';

export class PciState {
  constructor(
    readonly core: PciCore,
    readonly iommu: PciIommu | null,
    readonly ep: EpDriver,
  ) {}
}

function pciState(k: Kernel): PciState {
  if (!k.pci) throw new Error(`cpu${k.platform.cpu}: PCI not initialised on this CPU (pciInit)`);
  return k.pci;
}

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
  bars: { index: number; start: number; size: number }[];
  driver: string | null;
  sid: number;
  irq: number;
  resetMethods: string[];
  ats: { enabled: boolean; stu: number; queueDepth: number } | null;
  iommu: { depth: number; blocked: boolean; domain: string } | null;
}

const PCIE_TYPES: Record<number, string> = { 0: 'Endpoint', 4: 'Root Port', 9: 'Root Complex Integrated Endpoint' };

function info(st: PciState, d: PciDev): PciDeviceInfo {
  const { caps, looped } = d.listCapabilities();
  const dom = st.iommu && d.sid >= 0 ? st.iommu.domainOf(d) : null;
  return {
    bdf: d.bdf,
    vendor: d.vendor,
    device: d.device,
    classCode: d.classCode,
    revision: d.revision,
    headerType: d.hdrType,
    multifunction: d.multifunction,
    pcieType: d.pcieCap ? (PCIE_TYPES[d.pcieType] ?? 'PCIe') : '',
    secondaryBus: d.subordinate?.number ?? null,
    caps: caps.map((c) => ({ ...c, name: (c.ext ? EXT_CAP_NAMES : CAP_NAMES)[c.id] ?? `id 0x${c.id.toString(16)}` })),
    capsLooped: looped,
    bars: d.resources.map((r) => ({ index: r.index, start: r.start, size: r.size })),
    driver: d.driver?.name ?? null,
    sid: d.sid,
    irq: d.irq,
    resetMethods: [...d.resetMethods],
    ats: pciAtsSupported(d) ? { enabled: d.atsEnabled, stu: d.atsStu, queueDepth: pciAtsQueueDepth(d) } : null,
    iommu: d.iommu ? { depth: d.iommu.depth, blocked: d.iommu.blocked, domain: dom ? (dom.type === 'paging' ? `paging ${dom.id}` : dom.type) : 'none' } : null,
  };
}

/** Sets up PCI on this CPU: the core, the SMMU glue (when the SMMU is probed here), the endpoint driver; scans. */
export function pciInit(k: Kernel, a: { iommuMap: { rid: number; sid: number }[]; strict?: boolean }): PciState {
  if (k.pci) throw new Error(`cpu${k.platform.cpu}: PCI already initialised`);
  const core = new PciCore(k.platform, { iommuMap: a.iommuMap });
  const glue = k.smmu ? new PciIommu(iommuState(k).iommu, k.platform, a.strict ?? true) : null;
  core.iommu = glue;
  const ep = new EpDriver(core);
  core.registerDriver(ep);
  core.scan();
  k.pci = new PciState(core, glue, ep);
  return k.pci;
}

/** CLI and user-facing names of the reset methods. */
const METHOD_ALIASES: Record<string, ResetMethod> = { specific: 'device_specific', flr: 'flr', pm: 'pm', bus: 'bus', cxl: 'cxl_bus' };

export interface ResetReport {
  ok: boolean;
  method: string;
  /** pci_reset_function's return value ('0', '-ENOTTY', ...). */
  rc: string;
  /** Platform ms the reset took. */
  ms: number;
  /** pci_dev_reset_iommu_prepare depth afterwards, and whether the device is still blocked. */
  depth: number;
  blocked: boolean;
}

export const pciOps: Record<string, KernelOp> = {
  pciInit: (k, a: { iommuMap: { rid: number; sid: number }[]; strict?: boolean }) => {
    const st = pciInit(k, a);
    return st.core.devices.map((d) => info(st, d));
  },
  pciTree: (k) => {
    const st = pciState(k);
    return st.core.devices.map((d) => info(st, d));
  },
  /** { bdf } -> the function's config space as dwords (256 or 4096 bytes, as the core sized it). */
  pciConfigRead: (k, a: { bdf: string }) => {
    const d = pciState(k).core.dev(a.bdf);
    return Array.from({ length: d.cfgSize / 4 }, (_, i) => d.read32(i * 4));
  },
  /**
   * { bdf } -> Initiate FLR written directly (as `setpci` would), 100 ms, then the readiness poll: no
   * save/restore and no IOMMU hooks, so config space shows what the FLR left. Returns the poll's rc.
   */
  pciRawFlr: (k, a: { bdf: string }) => {
    const d = pciState(k).core.dev(a.bdf);
    if (!d.resetMethods.includes('flr')) throw new Error(`${a.bdf}: no FLR (Device Capabilities)`);
    d.update16(d.pcieCap + EXP.DEVCTL, 0, DEVCTL.BCR_FLR.bits);
    k.platform.sleep(TIMEOUT.FLR);
    return errName(pciDevWait(d, 'FLR', TIMEOUT.RESET_READY_POLL / NS_PER_MS));
  },
  /** { bdf, method? } -> pci_reset_function, optionally restricted to one method. */
  pciReset: (k, a: { bdf: string; method?: string }): ResetReport => {
    const st = pciState(k);
    const d = st.core.dev(a.bdf);
    let methods: ResetMethod[] | undefined;
    if (a.method !== undefined) {
      const m = METHOD_ALIASES[a.method];
      if (!m) throw new Error(`reset method '${a.method}' unknown (known: ${Object.keys(METHOD_ALIASES).join(', ')})`);
      methods = [m];
    }
    const t0 = k.platform.clock.now();
    const rc = pciResetFunction(st.core, d, methods);
    return {
      ok: rc === 0,
      method: a.method ?? 'auto',
      rc: errName(rc),
      ms: Math.round(((k.platform.clock.now() - t0) / NS_PER_MS) * 1000) / 1000,
      depth: d.iommu?.depth ?? 0,
      blocked: d.iommu?.blocked ?? false,
    };
  },
  /** { bdf } -> releases the device's driver (its remove()), as writing sysfs unbind does. */
  pciUnbind: (k, a: { bdf: string }) => {
    pciUnbindDriver(pciState(k).core.dev(a.bdf));
    return true;
  },
  /** Offers unbound devices to the drivers again (sysfs drivers_probe); returns the device records. */
  pciBind: (k) => {
    const st = pciState(k);
    pciBindDrivers(st.core);
    return st.core.devices.map((d) => info(st, d));
  },
  /** { count } -> the next count blocking-domain attaches fail with -ENOMEM (a failing prepare). */
  pciFailBlockingAttach: (k, a: { count: number }) => {
    pciState(k).core.failBlockingAttach = a.count;
    return true;
  },
  /** { bdf } -> AER recovery for the errors the function logged (null when it logged none). */
  pciAerRecover: (k, a: { bdf: string }): RecoveryReport | null => aerHandleError(pciState(k).core.dev(a.bdf)),
  /**
   * The ats-dma workload (PCI set up first if needed). Also reports the commands the IOMMU layer issued
   * meanwhile (setup included) and the events the event queue thread decoded, by name.
   */
  atsDmaWorkload: (k, a: AtsDmaRequest): AtsDmaResult & { issuedByOpcode: Record<string, number>; events: Record<string, number> } => {
    const s = iommuState(k);
    const issued0 = { ...s.iommu.cmds.issued };
    const evtq = k.device().evtq;
    const events0 = new Map(evtq.counts);
    if (!k.pci) pciInit(k, { iommuMap: a.iommuMap, strict: true });
    const r = runAtsDma(k, pciState(k), a);
    // Let the event queue thread drain what the workload caused.
    k.platform.sleep(NS_PER_MS);
    return { ...r, issuedByOpcode: s.iommu.cmds.issuedSince(issued0), events: evtq.countsByName(events0) };
  },
};
