// A device the IOMMU layer reports broken (Linux v4's iommu_report_device_broken): after an ATC
// invalidation timeout fenced it (drivers/arm-smmu-v3/atc-recovery.ts), or, under the v1 design, the
// reset work skip_err queued. Either runs later, as work on the CPU (never inside the unmap that found
// the failure), and recovers the device through pci_reset_function, whose IOMMU prepare/done lift a
// fence only when the reset succeeded.

import type { PciCore } from './core.ts';
import { PCI_CHANNEL, PCI_ERS, PCI_ERS_NAMES, type PciDev } from './pci.ts';
import { pciResetFunction } from './reset.ts';
import { pciSetMaster } from './probe.ts';
import { enterRecovery } from '../fault-inject.ts';
import { errName } from '../../src/protocol/errno.ts';

/**
 * The v4 flow: the device's driver hears that the channel is frozen (error_detected), and when it asks
 * for a reset, the function is reset (pci_reset_function with its IOMMU prepare/done); on success the
 * driver re-initialises it (slot_reset, resume). A failed reset leaves the device fenced. Returns
 * false, to be run again later, while a reset holds the device (pci_dev_lock).
 */
export function pciRecoverBroken(core: PciCore, dev: PciDev): boolean {
  if (dev.locked) return false;
  if (dev.disconnected) return true;
  dev.log('err', 'IOMMU reports the device broken (ATC invalidation timeout): ATS fenced until a reset');
  enterRecovery(dev.platform, dev.rid);
  const eh = dev.driver?.errHandler;
  const vote = eh?.errorDetected ? eh.errorDetected(dev, PCI_CHANNEL.FROZEN) : PCI_ERS.NEED_RESET;
  if (vote !== PCI_ERS.NEED_RESET) {
    dev.log('warn', `driver answered ${PCI_ERS_NAMES[vote]}: no reset, the device stays fenced`);
    return true;
  }
  const rc = pciResetFunction(core, dev);
  if (rc) {
    dev.log('warn', `reset after the ATC invalidation timeout failed (${errName(rc)}): the device stays fenced`);
    return true;
  }
  eh?.slotReset?.(dev);
  eh?.resume?.(dev);
  return true;
}

/**
 * The v1 flow (atcRecovery 'reset'): the IOMMU driver's own work item stops the device's DMA (Bus
 * Master off), resets it (pci_reset_function: the reset blocks it in the IOMMU first), and lets it
 * master again when the reset worked. Returns false, to be run again later, while a reset holds the
 * device.
 */
export function pciResetAfterAtcTimeout(core: PciCore, dev: PciDev): boolean {
  if (dev.locked) return false;
  if (dev.disconnected) return true;
  dev.log('err', 'ATC invalidation timeout: resetting the device');
  pciSetMaster(dev, false);
  const rc = pciResetFunction(core, dev);
  if (rc) {
    dev.log('warn', `reset after the ATC invalidation timeout failed (${errName(rc)})`);
    return true;
  }
  pciSetMaster(dev, true);
  return true;
}
