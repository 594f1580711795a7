// Function reset as Linux does it (drivers/pci/pci.c, v6.18 with the v7.0 IOMMU hooks):
// pci_reset_function() saves and quiesces the device, walks the device's reset methods in order
// (device-specific, FLR, PM, bus, CXL bus) until one works — -ENOTTY means "try the next", any other
// error stops — and restores the saved state whatever happened. Each method brackets its reset with
// pci_dev_reset_iommu_prepare()/done() (iommu-reset.ts).
//
// Linux's "acpi" (_RST) and "af_flr" (conventional PCI Advanced Features) methods are not modelled:
// there is no ACPI, and the functions here are PCI Express.

import {
  AER, BRIDGE_CONTROL, COMMAND, CXL_DVSEC_PORT, CXL_PORT_CTL, DEVCAP, DVSEC, DVSEC_HDR1, DVSEC_HDR2, EXP, EXP_TYPE,
  EXT_CAP_ID, HDR, LNKCAP, LNKSTA, PCI_VENDOR_ID_CXL, PMCSR, PM, POWER_STATE,
} from '../../src/arch/pcie/regs.ts';
import type { PciCore } from './core.ts';
import { pciRestoreAtsState, pciRestorePasidState } from './ats.ts';
import { pciResetWithIommuBlocked } from './iommu-reset.ts';
import { PCI_RESET_WAIT_MS, RESET_READY_POLL_MS, msleep, pciDevWait, pcieFlr } from './flr.ts';
import { pciRestoreMsiState } from './msi.ts';
import type { ResetMethod } from '../../src/protocol/ops/pci.ts';
import { possibleError, type PciDev } from './pci.ts';
import { E, errName } from '../../src/protocol/errno.ts';
import { pciDevSpecificReset } from './quirks.ts';

type MethodFn = (core: PciCore, dev: PciDev, probe: boolean) => number;

/** pci_reset_fn_methods[], in Linux's order. */
const METHODS: readonly { name: ResetMethod; fn: MethodFn }[] = [
  { name: 'device_specific', fn: (c, d, p) => pciDevSpecificReset(c, d, p) },
  { name: 'flr', fn: (c, d, p) => pcieResetFlr(c, d, p) },
  { name: 'pm', fn: (c, d, p) => pciPmReset(c, d, p) },
  { name: 'bus', fn: (c, d, p) => pciResetBusFunction(c, d, p) },
  { name: 'cxl_bus', fn: (c, d, p) => cxlResetBusFunction(c, d, p) },
];

/**
 * pci_init_reset_methods: probe each method at enumeration; the ones that answer 0 are kept, -ENOTTY
 * skips one, any other error ends the list. (At enumeration the device is not yet behind the IOMMU,
 * so the IOMMU hooks of a probe do nothing.)
 */
export function pciInitResetMethods(core: PciCore, dev: PciDev): void {
  dev.resetMethods = [];
  for (const m of METHODS) {
    const rc = m.fn(core, dev, true);
    if (rc === 0) dev.resetMethods.push(m.name);
    else if (rc !== -E.ENOTTY) break;
  }
}

/** pcie_reset_flr: only for functions whose Device Capabilities (cached at enumeration) say FLR. */
function pcieResetFlr(core: PciCore, dev: PciDev, probe: boolean): number {
  if (!(dev.devcap & DEVCAP.FLR.bits)) return -E.ENOTTY;
  if (probe) return 0;
  return pcieFlr(core, dev);
}

// ---- PM reset ----

function pmProbe(dev: PciDev): number {
  if (!dev.pmCap) return -E.ENOTTY;
  // No_Soft_Reset: D3hot -> D0 keeps the function's state, so it is no reset (-ENOTTY).
  const csr = dev.read16(dev.pmCap + PM.PMCSR);
  return csr & PMCSR.NO_SOFT_RESET.bits ? -E.ENOTTY : 0;
}

/** pci_pm_reset: D0 -> D3hot -> D0, sleeping d3hot_delay after each, then poll for readiness. */
function pciPmReset(core: PciCore, dev: PciDev, probe: boolean): number {
  const rc = pmProbe(dev);
  if (rc || probe) return rc;
  if (dev.currentState !== POWER_STATE.D0) return -E.EINVAL;
  return pciResetWithIommuBlocked(core, dev, () => {
    const pos = dev.pmCap + PM.PMCSR;
    let csr = dev.read16(pos) & ~PMCSR.STATE.bits;
    dev.write16(pos, csr | POWER_STATE.D3HOT);
    msleep(dev, dev.d3hotDelayMs);
    csr &= ~PMCSR.STATE.bits;
    dev.write16(pos, csr | POWER_STATE.D0);
    msleep(dev, dev.d3hotDelayMs);
    return pciDevWait(dev, 'PM D3hot->D0', RESET_READY_POLL_MS);
  });
}

// ---- bus reset ----

/** pci_reset_secondary_bus: pulse Secondary Bus Reset for 2 ms (PCI 3.0 Trst is 1 ms; Linux doubles it). */
function pciResetSecondaryBus(bridge: PciDev): void {
  const ctrl = bridge.read16(HDR.BRIDGE_CONTROL);
  bridge.write16(HDR.BRIDGE_CONTROL, ctrl | BRIDGE_CONTROL.BUS_RESET.bits);
  msleep(bridge, 2);
  bridge.write16(HDR.BRIDGE_CONTROL, ctrl & ~BRIDGE_CONTROL.BUS_RESET.bits);
}

/**
 * pci_bridge_wait_for_secondary_bus: after a reset below a Downstream Port at <= 5 GT/s, wait 100 ms
 * (the children's d3cold delay), then for the first child: 1 s in all, up to 60 s if the link is up.
 */
function pciBridgeWaitForSecondaryBus(bridge: PciDev, resetType: string): number {
  const bus = bridge.subordinate;
  if (bridge.disconnected || !bus || bus.devices.length === 0) return 0;
  const delay = Math.max(...bus.devices.map((d) => d.d3coldDelayMs));
  if (delay === 0) return 0;
  const child = bus.devices[0]!;
  if (!bridge.pcieCap) {
    msleep(bridge, 1000 + delay);
    return 0;
  }
  if (bridge.pcieType !== EXP_TYPE.ROOT_PORT) return 0;
  const lnkcap = bridge.read32(bridge.pcieCap + EXP.LNKCAP);
  if (LNKCAP.SLS.get(lnkcap) <= 2) {
    msleep(bridge, delay);
    if (pciDevWait(child, resetType, PCI_RESET_WAIT_MS - delay) === 0) return 0;
    if (!LNKCAP.DLLLARC.get(lnkcap)) return -E.ENOTTY;
    if (!(bridge.read16(bridge.pcieCap + EXP.LNKSTA) & LNKSTA.DLLLA.bits)) {
      child.log('info', `waiting for link to train`);
      return -E.ENOTTY;
    }
    return pciDevWait(child, resetType, RESET_READY_POLL_MS - PCI_RESET_WAIT_MS);
  }
  // Faster links wait for Data Link Layer Link Active first; the ports modelled here run at 5 GT/s.
  return pciDevWait(child, resetType, RESET_READY_POLL_MS - delay);
}

/** pci_bridge_secondary_bus_reset: the SBR pulse, then wait for the secondary bus. */
export function pciBridgeSecondaryBusReset(bridge: PciDev): number {
  pciResetSecondaryBus(bridge);
  return pciBridgeWaitForSecondaryBus(bridge, 'bus reset');
}

/** pci_parent_bus_reset: only for a function alone on a non-root bus, and not a bridge. */
function pciParentBusReset(dev: PciDev, probe: boolean): number {
  const bridge = dev.upstream;
  if (!bridge || dev.subordinate) return -E.ENOTTY;
  if (dev.bus.devices.some((d) => d !== dev)) return -E.ENOTTY;
  if (probe) return 0;
  return pciBridgeSecondaryBusReset(bridge);
}

/** The CXL Extensions DVSEC for Ports of a bridge (pci_find_dvsec_capability), or 0. */
function cxlPortDvsec(bridge: PciDev | null): number {
  if (!bridge) return 0;
  const isCxlPort = (pos: number) =>
    DVSEC_HDR1.VENDOR.get(bridge.read32(pos + DVSEC.HDR1)) === PCI_VENDOR_ID_CXL && DVSEC_HDR2.ID.get(bridge.read16(pos + DVSEC.HDR2)) === CXL_DVSEC_PORT;
  return bridge.extendedCapabilities().caps.find((c) => c.id === EXT_CAP_ID.DVSEC && isCxlPort(c.offset))?.offset ?? 0;
}

/** cxl_sbr_masked: the port is CXL and its Unmask SBR is 0, so SBR would do nothing. */
function cxlSbrMasked(dev: PciDev): boolean {
  const bridge = dev.upstream;
  const dvsec = cxlPortDvsec(bridge);
  return dvsec !== 0 && !(bridge!.read16(dvsec + DVSEC.PORT_CTL) & CXL_PORT_CTL.UNMASK_SBR.bits);
}

/**
 * pci_reset_bus_function: a masked CXL SBR probes as supported but cannot be done; otherwise (no
 * hotplug slots here) the parent bus reset, bracketed by the IOMMU hooks (also in probe mode, as in
 * the v7.0 code).
 */
function pciResetBusFunction(core: PciCore, dev: PciDev, probe: boolean): number {
  if (cxlSbrMasked(dev)) return probe ? 0 : -E.ENOTTY;
  return pciResetWithIommuBlocked(core, dev, () => pciParentBusReset(dev, probe));
}

/**
 * cxl_reset_bus_function: below a CXL port, temporarily set Unmask SBR and do the bus reset; it
 * brackets with the IOMMU hooks itself, so they nest with pci_reset_bus_function's.
 */
function cxlResetBusFunction(core: PciCore, dev: PciDev, probe: boolean): number {
  const bridge = dev.upstream;
  const dvsec = cxlPortDvsec(bridge);
  if (!dvsec) return -E.ENOTTY;
  if (probe) return 0;
  const ctl = bridge!.read16(dvsec + DVSEC.PORT_CTL);
  if (possibleError(ctl, 2)) return -E.ENOTTY;
  return pciResetWithIommuBlocked(core, dev, () => {
    const unmask = !(ctl & CXL_PORT_CTL.UNMASK_SBR.bits);
    if (unmask) bridge!.write16(dvsec + DVSEC.PORT_CTL, ctl | CXL_PORT_CTL.UNMASK_SBR.bits);
    const rc = pciResetBusFunction(core, dev, probe);
    if (unmask) bridge!.write16(dvsec + DVSEC.PORT_CTL, ctl);
    return rc;
  });
}

// ---- save / restore and pci_reset_function ----

/** The PCI Express control registers pci_save_pcie_state keeps, in its order. */
const SAVED_EXP_REGS = [EXP.DEVCTL, EXP.LNKCTL, EXP.SLTCTL, EXP.RTCTL, EXP.DEVCTL2, EXP.LNKCTL2, EXP.SLTCTL2];

/** pci_save_state: the config header and the PCIe control registers. */
export function pciSaveState(dev: PciDev): void {
  dev.savedConfig = Array.from({ length: 16 }, (_, i) => dev.read32(i * 4));
  if (dev.pcieCap) dev.savedExp = SAVED_EXP_REGS.map((r) => dev.expRead16(r));
}

/**
 * pci_restore_state, in Linux's order: PCIe controls, PASID, (PRI: never enabled here), ATS, AER
 * (status cleared first), the header (dwords 15..0, each only if it differs; Command last), MSI.
 */
export function pciRestoreState(dev: PciDev): void {
  if (!dev.savedConfig) return;
  if (dev.pcieCap && dev.savedExp) {
    SAVED_EXP_REGS.forEach((r, i) => dev.expWrite16(r, dev.savedExp![i]!));
  }
  pciRestorePasidState(dev);
  pciRestoreAtsState(dev);
  if (dev.aerCap) {
    // pci_aer_clear_status: the RW1CS status bits are cleared by writing back what they hold.
    for (const r of [AER.UNCOR_STATUS, AER.COR_STATUS]) dev.write32(dev.aerCap + r, dev.read32(dev.aerCap + r));
  }
  // Highest dword first, so Command (dword 1) is written after the BARs.
  for (let i = 15; i >= 0; i--) {
    const want = dev.savedConfig[i]!;
    if (dev.read32(i * 4) !== want) dev.write32(i * 4, want);
  }
  pciRestoreMsiState(dev);
}

/** pci_dev_save_and_disable: the driver quiesces, state is saved, then Command = INTx Disable only. */
function pciDevSaveAndDisable(dev: PciDev): void {
  const eh = dev.driver?.errHandler;
  if (eh?.resetPrepare) eh.resetPrepare(dev);
  else if (dev.driver) dev.dlog('warn', 'resetting');
  pciSaveState(dev);
  // Stops memory decoding and bus mastering (and with it DMA and MSI).
  dev.write16(HDR.COMMAND, COMMAND.INTX_DISABLE.bits);
}

/** pci_dev_restore: saved state back, then the driver's reset_done. */
function pciDevRestore(dev: PciDev): void {
  pciRestoreState(dev);
  const eh = dev.driver?.errHandler;
  if (eh?.resetDone) eh.resetDone(dev);
  else if (dev.driver) dev.dlog('warn', 'reset done');
}

/**
 * What a pci_reset_function did: its return value, and the method that did the reset, or whose error
 * ended the walk (the last one tried when every method said -ENOTTY; null when none was tried).
 */
export interface PciResetOutcome {
  rc: number;
  method: ResetMethod | null;
}

/** __pci_reset_function_locked: the first method that works, -ENOTTY falling through. */
function pciResetFunctionLocked(core: PciCore, dev: PciDev): PciResetOutcome {
  let method: ResetMethod | null = null;
  for (const name of dev.resetMethods) {
    const m = METHODS.find((x) => x.name === name)!;
    dev.log('debug', `reset via ${name}`);
    method = name;
    const rc = m.fn(core, dev, false);
    if (rc === 0) return { rc, method };
    dev.log('debug', `${name} failed with ${errName(rc)}`);
    if (rc !== -E.ENOTTY) return { rc, method };
  }
  return { rc: -E.ENOTTY, method };
}

/**
 * pci_reset_function, reporting the method that did it. `methods` restricts and orders the walk, as
 * writing the device's sysfs reset_method does; a method the device does not support is -EINVAL.
 */
export function pciResetFunctionOutcome(core: PciCore, dev: PciDev, methods?: readonly ResetMethod[]): PciResetOutcome {
  if (methods) {
    for (const m of methods) {
      if (!dev.resetMethods.includes(m)) {
        dev.log('warn', `reset method ${m} is not supported (supported: ${dev.resetMethods.join(', ') || 'none'})`);
        return { rc: -E.EINVAL, method: null };
      }
    }
  }
  if (dev.resetMethods.length === 0) return { rc: -E.ENOTTY, method: null };
  const saved = dev.resetMethods;
  if (methods) dev.resetMethods = [...methods];
  const wasLocked = dev.locked;
  dev.locked = true;
  try {
    pciDevSaveAndDisable(dev);
    const out = pciResetFunctionLocked(core, dev);
    pciDevRestore(dev);
    return out;
  } finally {
    dev.resetMethods = saved;
    dev.locked = wasLocked;
  }
}

/** pci_reset_function: 0 or a negative errno (pciResetFunctionOutcome without the method). */
export function pciResetFunction(core: PciCore, dev: PciDev, methods?: readonly ResetMethod[]): number {
  return pciResetFunctionOutcome(core, dev, methods).rc;
}
