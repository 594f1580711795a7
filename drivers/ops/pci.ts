// CPU operations for the PCI core: enumerate (and put the functions behind the SMMU), list the tree,
// read config space, reset functions the way pci_reset_function does, run AER recovery, and the
// ats-dma workload.

import { CAP_NAMES, DEVCTL, EXP, EXT_CAP_NAMES } from '../../src/arch/pcie/regs.ts';
import { NS_PER_MS, TIMEOUT } from '../../src/arch/time.ts';
import type { PciDeviceInfo, UnassignedBar } from '../../src/protocol/ops/pci.ts';
import type { KernelOpImpls } from '../../src/protocol/ops/index.ts';
import type { Kernel, PciState } from '../kernel.ts';
import { pciBindDrivers, pciUnbindDriver } from '../pci/driver.ts';
import { pciAtsQueueDepth, pciAtsSupported } from '../pci/ats.ts';
import { aerHandleError } from '../pci/aer.ts';
import type { PciDev } from '../pci/pci.ts';
import { pciResetFunctionOutcome } from '../pci/reset.ts';
import { pciDevWait } from '../pci/flr.ts';
import { runAtsDma } from '../workloads/ats-dma.ts';

const PCIE_TYPES: Record<number, string> = { 0: 'Endpoint', 4: 'Root Port', 9: 'Root Complex Integrated Endpoint' };

function info(st: PciState, d: PciDev): PciDeviceInfo {
  const { caps, looped } = d.listCapabilities();
  // Behind the IOMMU only if its probe succeeded (a StreamID the SMMU cannot hold leaves it outside).
  const m = st.iommu?.behind(d) ? st.iommu.master(d) : null;
  const dom = m?.domain ?? null;
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
    bars: d.resources.map((r) => ({ index: r.index, start: r.start, size: r.size, assigned: r.start !== 0 })),
    driver: d.driver?.name ?? null,
    gone: d.disconnected,
    sid: d.sid,
    irq: d.irq,
    resetMethods: [...d.resetMethods],
    ats: pciAtsSupported(d) ? { enabled: d.atsEnabled, stu: d.atsStu, queueDepth: pciAtsQueueDepth(d) } : null,
    iommu:
      d.iommu && m
        ? {
            depth: d.iommu.depth,
            blocked: d.iommu.blocked,
            domain: dom ? (dom.type === 'paging' ? `paging ${dom.id}` : dom.type) : 'none',
            fenced: m.fenced,
            fences: m.fences,
          }
        : null,
  };
}

const tree = (st: PciState) => st.core.devices.map((d) => info(st, d));

/** BARs pciAssignResources found no room for (start stays 0): the reports say so, not only the log. */
const unassignedBars = (st: PciState): UnassignedBar[] =>
  st.core.devices.flatMap((d) => d.resources.filter((r) => r.start === 0).map((r) => ({ bdf: d.bdf, bar: r.index, size: r.size })));

export const pciOps = {
  pciInit: (k, r) => tree(k.initPci(r.iommuMap, r.strict ?? true)),
  pciTree: (k) => tree(k.pciState()),
  pciConfigRead: (k, r) => {
    const d = k.pciState().core.dev(r.bdf);
    return Array.from({ length: d.cfgSize / 4 }, (_, i) => d.read32(i * 4));
  },
  pciRawFlr: (k, r) => {
    const d = k.pciState().core.dev(r.bdf);
    if (!d.resetMethods.includes('flr')) throw new Error(`${r.bdf}: no FLR (Device Capabilities)`);
    d.update16(d.pcieCap + EXP.DEVCTL, 0, DEVCTL.BCR_FLR.bits);
    k.platform.sleep(TIMEOUT.FLR);
    return pciDevWait(d, 'FLR', TIMEOUT.RESET_READY_POLL / NS_PER_MS);
  },
  pciReset: (k, r) => {
    const d = k.pciState().core.dev(r.bdf);
    const t0 = k.platform.clock.now();
    const { rc, method } = pciResetFunctionOutcome(k.pciState().core, d, r.method === undefined ? undefined : [r.method]);
    return {
      ok: rc === 0,
      method,
      rc,
      ms: Math.round(((k.platform.clock.now() - t0) / NS_PER_MS) * 1000) / 1000,
      depth: d.iommu?.depth ?? 0,
      blocked: d.iommu?.blocked ?? false,
    };
  },
  pciUnbind: (k, r) => {
    pciUnbindDriver(k.pciState().core.dev(r.bdf));
    return true;
  },
  pciBind: (k) => {
    const st = k.pciState();
    pciBindDrivers(st.core);
    return tree(st);
  },
  pciAerRecover: (k, r) => aerHandleError(k.pciState().core.dev(r.bdf)),
  atsDmaWorkload: (k, r) => {
    const s = k.iommu();
    const issued0 = { ...s.iommu.cmds.issued };
    const evtq = k.device().evtq;
    const events0 = new Map(evtq.counts);
    if (!k.pci) k.initPci(r.iommuMap, true);
    const res = runAtsDma(k, k.pciState(), r);
    // Let the event queue thread drain what the workload caused.
    k.platform.sleep(NS_PER_MS);
    return { ...res, unassignedBars: unassignedBars(k.pciState()), issuedByOpcode: s.iommu.cmds.issuedSince(issued0), events: evtq.countsByName(events0) };
  },
} satisfies Partial<KernelOpImpls<Kernel>>;
