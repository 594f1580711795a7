// ATS, PRI and PASID control (Linux drivers/pci/ats.c): enabling and disabling at the function, the
// checks Linux makes, and restoring the software state after a reset.

import { ATS, ATS_CAP, ATS_CTRL, ATS_MAX_QDEP, ATS_MIN_STU, PASID, PASID_CAP, PASID_CTRL, PRI, PRI_CTRL, PRI_STATUS } from '../../src/pcie/regs.ts';
import { E, type PciDev } from './pci.ts';

/** pci_ats_supported: the function has ATS and is trusted. */
export function pciAtsSupported(dev: PciDev): boolean {
  return dev.atsCap !== 0 && !dev.untrusted;
}

/** pci_ats_queue_depth: Invalidate Queue Depth, 0 encoding 32. */
export function pciAtsQueueDepth(dev: PciDev): number {
  if (!dev.atsCap) return -E.EINVAL;
  return ATS_CAP.QDEP.get(dev.read16(dev.atsCap + ATS.CAP)) || ATS_MAX_QDEP;
}

/** pci_ats_page_aligned. */
export function pciAtsPageAligned(dev: PciDev): boolean {
  return dev.atsCap !== 0 && ATS_CAP.PAGE_ALIGNED.get(dev.read16(dev.atsCap + ATS.CAP)) === 1;
}

/** pci_prepare_ats: records the STU and programs it without enabling ATS. */
export function pciPrepareAts(dev: PciDev, ps: number): number {
  if (!pciAtsSupported(dev)) return -E.EINVAL;
  if (dev.atsEnabled) {
    dev.log('warn', 'WARNING: pci_prepare_ats with ATS already enabled');
    return -E.EBUSY;
  }
  if (ps < ATS_MIN_STU) return -E.EINVAL;
  dev.atsStu = ps;
  dev.write16(dev.atsCap + ATS.CTRL, ATS_CTRL.STU.set(0, ps - ATS_MIN_STU));
  return 0;
}

/** pci_enable_ats: one write of Enable plus the STU (log2 of the smallest translation). */
export function pciEnableAts(dev: PciDev, ps: number): number {
  if (!pciAtsSupported(dev)) return -E.EINVAL;
  if (dev.atsEnabled) {
    dev.log('warn', 'WARNING: pci_enable_ats with ATS already enabled');
    return -E.EBUSY;
  }
  if (ps < ATS_MIN_STU) return -E.EINVAL;
  dev.atsStu = ps;
  dev.write16(dev.atsCap + ATS.CTRL, ATS_CTRL.ENABLE.bits | ATS_CTRL.STU.set(0, ps - ATS_MIN_STU));
  dev.atsEnabled = true;
  return 0;
}

/** pci_disable_ats: read-modify-write clearing Enable. */
export function pciDisableAts(dev: PciDev): void {
  if (!dev.atsEnabled) {
    dev.log('warn', 'WARNING: pci_disable_ats with ATS not enabled');
    return;
  }
  dev.update16(dev.atsCap + ATS.CTRL, ATS_CTRL.ENABLE.bits, 0);
  dev.atsEnabled = false;
}

/** pci_restore_ats_state. */
export function pciRestoreAtsState(dev: PciDev): void {
  if (!dev.atsEnabled) return;
  dev.write16(dev.atsCap + ATS.CTRL, ATS_CTRL.ENABLE.bits | ATS_CTRL.STU.set(0, dev.atsStu - ATS_MIN_STU));
}

/** pci_enable_pasid: features must be ones the capability offers; PASID goes on before ATS. */
export function pciEnablePasid(dev: PciDev, features: number): number {
  if (dev.pasidEnabled) {
    dev.log('warn', 'WARNING: pci_enable_pasid with PASID already enabled');
    return -E.EBUSY;
  }
  if (!dev.pasidCap) return -E.EINVAL;
  const supported = dev.read16(dev.pasidCap + PASID.CAP) & (PASID_CAP.EXEC.bits | PASID_CAP.PRIV.bits);
  if ((features & ~supported) !== 0) return -E.EINVAL;
  dev.write16(dev.pasidCap + PASID.CTRL, PASID_CTRL.ENABLE.bits | features);
  dev.pasidFeatures = features;
  dev.pasidEnabled = true;
  return 0;
}

export function pciDisablePasid(dev: PciDev): void {
  if (!dev.pasidEnabled) return;
  dev.write16(dev.pasidCap + PASID.CTRL, 0);
  dev.pasidEnabled = false;
}

export function pciRestorePasidState(dev: PciDev): void {
  if (dev.pasidEnabled) dev.write16(dev.pasidCap + PASID.CTRL, PASID_CTRL.ENABLE.bits | dev.pasidFeatures);
}

/** pci_enable_pri: only while PRI is stopped; allocates min(capacity, reqs) requests. */
export function pciEnablePri(dev: PciDev, reqs: number): number {
  if (dev.priEnabled) return -E.EBUSY;
  if (!dev.priCap) return -E.EINVAL;
  if (!(dev.read16(dev.priCap + PRI.STATUS) & PRI_STATUS.STOPPED.bits)) return -E.EBUSY;
  const max = dev.read32(dev.priCap + PRI.MAX_REQ);
  dev.priReqsAlloc = Math.min(max, reqs);
  dev.write32(dev.priCap + PRI.ALLOC_REQ, dev.priReqsAlloc);
  dev.write16(dev.priCap + PRI.CTRL, PRI_CTRL.ENABLE.bits);
  dev.priEnabled = true;
  return 0;
}

export function pciDisablePri(dev: PciDev): void {
  if (!dev.priEnabled) return;
  dev.update16(dev.priCap + PRI.CTRL, PRI_CTRL.ENABLE.bits, 0);
  dev.priEnabled = false;
}

export function pciRestorePriState(dev: PciDev): void {
  if (!dev.priEnabled) return;
  dev.write32(dev.priCap + PRI.ALLOC_REQ, dev.priReqsAlloc);
  dev.write16(dev.priCap + PRI.CTRL, PRI_CTRL.ENABLE.bits);
}
