// AER-style error recovery (Linux drivers/pci/pcie/aer.c and err.c: pcie_do_recovery): read what the
// function logged, broadcast error_detected to every driver below the affected port, reset the link
// for fatal errors (a Secondary Bus Reset of the Root Port, as aer_root_reset -> pci_bus_error_reset
// does when there are no hotplug slots), then mmio_enabled or slot_reset, then resume, merging the
// drivers' votes as merge_result() does. As in Linux, this reset does not go through
// pci_reset_function, so neither reset_prepare/done nor the IOMMU reset hooks run.

import { AER, AER_UNCOR, DEVSTA, EXP, EXP_TYPE } from '../../src/arch/pcie/regs.ts';
import { PCI_CHANNEL, PCI_ERS, PCI_ERS_NAMES, pciDevCheckPresent, possibleError, type PciChannelState, type PciErsResult } from './pci.ts';
import type { PciDev } from './pci.ts';
import { enterRecovery } from '../fault-inject.ts';
import { pciBridgeSecondaryBusReset } from './reset.ts';

function mergeResult(orig: PciErsResult, next: PciErsResult): PciErsResult {
  if (next === PCI_ERS.NO_AER_DRIVER) return PCI_ERS.NO_AER_DRIVER;
  if (next === PCI_ERS.NONE) return orig;
  if (orig === PCI_ERS.CAN_RECOVER || orig === PCI_ERS.RECOVERED) return next;
  if (orig === PCI_ERS.DISCONNECT && next === PCI_ERS.NEED_RESET) return PCI_ERS.NEED_RESET;
  return orig;
}

/** The devices a recovery covers: everything below the bridge (pci_walk_bridge). */
function affected(bridge: PciDev): PciDev[] {
  return bridge.subordinate ? [...bridge.subordinate.devices] : [bridge];
}

export interface RecoveryReport {
  /** The merged vote at the end: RECOVERED on success. */
  result: string;
  /** Callbacks called, in order: "01:00.0 error_detected -> NEED_RESET", ... */
  steps: string[];
  reset: boolean;
}

/** pcie_do_recovery(dev, state) with aer_root_reset as the reset. */
function pcieDoRecovery(dev: PciDev, state: PciChannelState): RecoveryReport {
  const isPort = dev.pcieCap !== 0 && dev.pcieType === EXP_TYPE.ROOT_PORT;
  const bridge = isPort ? dev : dev.upstream;
  const steps: string[] = [];
  if (!bridge) throw new Error(`${dev.bdf}: no upstream port to recover through`);
  const devs = affected(bridge);
  let status: PciErsResult = PCI_ERS.CAN_RECOVER;
  let reset = false;
  // The votes change status inside callbacks; read it through this so each test sees the latest.
  const current = (): PciErsResult => status;
  const vote = (d: PciDev, what: string, r: PciErsResult) => {
    steps.push(`${d.bdf} ${what} -> ${PCI_ERS_NAMES[r]}`);
    status = mergeResult(status, r);
  };
  dev.log('debug', 'broadcast error_detected message');
  for (const d of devs) {
    const eh = d.driver?.errHandler;
    if (!eh?.errorDetected) {
      if (!d.isBridge) d.log('info', "can't recover (no error_detected callback)");
      vote(d, 'error_detected', d.isBridge ? PCI_ERS.NONE : PCI_ERS.NO_AER_DRIVER);
      continue;
    }
    vote(d, 'error_detected', eh.errorDetected(d, state));
  }
  const finish = (ok: boolean): RecoveryReport => {
    dev.log('info', ok ? 'device recovery successful' : 'device recovery failed');
    return { result: PCI_ERS_NAMES[status]!, steps, reset };
  };
  if (state === PCI_CHANNEL.FROZEN) {
    // aer_root_reset: no hotplug slots here, so a Secondary Bus Reset of the port.
    const rc = pciBridgeSecondaryBusReset(bridge);
    reset = true;
    bridge.log('info', `Root Port link has been reset (${rc})`);
    if (rc !== 0) {
      dev.log('warn', 'subordinate device reset failed');
      status = PCI_ERS.DISCONNECT;
      return finish(false);
    }
  }
  if (current() === PCI_ERS.CAN_RECOVER) {
    status = PCI_ERS.RECOVERED;
    for (const d of devs) {
      const eh = d.driver?.errHandler;
      if (eh?.mmioEnabled) vote(d, 'mmio_enabled', eh.mmioEnabled(d));
    }
  }
  if (current() === PCI_ERS.NEED_RESET) {
    status = PCI_ERS.RECOVERED;
    for (const d of devs) {
      const eh = d.driver?.errHandler;
      if (eh?.slotReset) vote(d, 'slot_reset', eh.slotReset(d));
    }
  }
  if (current() !== PCI_ERS.RECOVERED) return finish(false);
  for (const d of devs) {
    const eh = d.driver?.errHandler;
    if (eh?.resume) {
      eh.resume(d);
      steps.push(`${d.bdf} resume`);
    }
  }
  // pcie_clear_device_status, then the logged uncorrectable status (the sticky AER bits survive the
  // link reset, so they are cleared explicitly).
  for (const d of devs) {
    if (d.pcieCap) d.write16(d.pcieCap + EXP.DEVSTA, DEVSTA.CED.bits | DEVSTA.NFED.bits | DEVSTA.FED.bits | DEVSTA.URD.bits);
    if (d.aerCap) d.write32(d.aerCap + AER.UNCOR_STATUS, d.read32(d.aerCap + AER.UNCOR_STATUS));
  }
  return finish(true);
}

/**
 * Handles an error a function reported (the AER service driver's aer_isr path, entered directly):
 * reads its AER status, logs it as Linux does, and recovers — fatal errors with the link reset
 * (frozen channel), non-fatal ones without. Returns null when the function logged no uncorrectable
 * error (correctable ones are only logged and cleared).
 */
export function aerHandleError(dev: PciDev): RecoveryReport | null {
  if (!dev.aerCap) throw new Error(`${dev.bdf}: no AER capability`);
  const uncor = dev.read32(dev.aerCap + AER.UNCOR_STATUS);
  if (possibleError(uncor, 4) && !pciDevCheckPresent(dev)) {
    // The function is gone (surprise removal): its drivers are told the channel failed for good.
    enterRecovery(dev.platform, dev.rid);
    return pcieDoRecovery(dev, PCI_CHANNEL.PERM_FAILURE);
  }
  const cor = dev.read32(dev.aerCap + AER.COR_STATUS);
  if (uncor === 0) {
    if (cor) {
      dev.log('warn', `PCIe Bus Error: severity=Correctable, type=Physical Layer, (Receiver ID)`);
      dev.log('warn', `  device [${dev.vendor.toString(16)}:${dev.device.toString(16)}] error status/mask=0x${cor.toString(16).padStart(8, '0')}/0x${dev.read32(dev.aerCap + AER.COR_MASK).toString(16).padStart(8, '0')}`);
      dev.write32(dev.aerCap + AER.COR_STATUS, cor);
    }
    return null;
  }
  const fatal = (uncor & dev.read32(dev.aerCap + AER.UNCOR_SEVER)) !== 0;
  dev.log('err', `PCIe Bus Error: severity=${fatal ? 'Uncorrectable (Fatal)' : 'Uncorrectable (Non-Fatal)'}, type=Transaction Layer, (Requester ID)`);
  dev.log('err', `  device [${dev.vendor.toString(16)}:${dev.device.toString(16)}] error status/mask=0x${uncor.toString(16).padStart(8, '0')}/0x${dev.read32(dev.aerCap + AER.UNCOR_MASK).toString(16).padStart(8, '0')}`);
  for (const [name, f] of Object.entries(AER_UNCOR)) if (uncor & f.bits) dev.log('err', `   [${Math.log2(f.bits)}] ${name}`);
  enterRecovery(dev.platform, dev.rid);
  return pcieDoRecovery(dev, fatal ? PCI_CHANNEL.FROZEN : PCI_CHANNEL.NORMAL);
}
