// ATS and PASID control (Linux drivers/pci/ats.c): enabling and disabling at the function, the checks
// Linux makes, and restoring the software state after a reset. (PRI is registers only here: nothing
// issues page requests, so nothing enables it.)

import { ATS, ATS_CAP, ATS_CTRL, ATS_MAX_QDEP, ATS_MIN_STU, PASID, PASID_CAP, PASID_CTRL } from '../../src/arch/pcie/regs.ts';
import { type PciDev } from './pci.ts';
import { E } from '../../src/protocol/errno.ts';

/** pci_ats_supported: the function has ATS and is trusted. */
export function pciAtsSupported(dev: PciDev): boolean {
  return dev.atsCap !== 0 && !dev.untrusted;
}

/** pci_ats_queue_depth: Invalidate Queue Depth, 0 encoding 32. */
export function pciAtsQueueDepth(dev: PciDev): number {
  if (!dev.atsCap) return -E.EINVAL;
  return ATS_CAP.QDEP.get(dev.read16(dev.atsCap + ATS.CAP)) || ATS_MAX_QDEP;
}

/** What pci_prepare_ats and pci_enable_ats check first: 0, or -errno. */
function checkAtsStu(dev: PciDev, ps: number, caller: string): number {
  if (!pciAtsSupported(dev)) return -E.EINVAL;
  if (dev.atsEnabled) {
    dev.log('warn', `WARNING: ${caller} with ATS already enabled`);
    return -E.EBUSY;
  }
  return ps < ATS_MIN_STU ? -E.EINVAL : 0;
}

/** pci_prepare_ats: records the STU and programs it without enabling ATS. */
export function pciPrepareAts(dev: PciDev, ps: number): number {
  const rc = checkAtsStu(dev, ps, 'pci_prepare_ats');
  if (rc) return rc;
  dev.atsStu = ps;
  dev.write16(dev.atsCap + ATS.CTRL, ATS_CTRL.STU.set(0, ps - ATS_MIN_STU));
  return 0;
}

/** pci_enable_ats: one write of Enable plus the STU (log2 of the smallest translation). */
export function pciEnableAts(dev: PciDev, ps: number): number {
  const rc = checkAtsStu(dev, ps, 'pci_enable_ats');
  if (rc) return rc;
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
  if ((features & ~pciPasidFeatures(dev)) !== 0) return -E.EINVAL;
  dev.write16(dev.pasidCap + PASID.CTRL, PASID_CTRL.ENABLE.bits | features);
  dev.pasidFeatures = features;
  dev.pasidEnabled = true;
  return 0;
}

/** pci_pasid_features: the Execute and Privileged Mode support the capability reports. */
export function pciPasidFeatures(dev: PciDev): number {
  if (!dev.pasidCap) return -E.EINVAL;
  return dev.read16(dev.pasidCap + PASID.CAP) & (PASID_CAP.EXEC.bits | PASID_CAP.PRIV.bits);
}

/** pci_max_pasids: 2^Max PASID Width. */
export function pciMaxPasids(dev: PciDev): number {
  if (!dev.pasidCap) return -E.EINVAL;
  return 2 ** PASID_CAP.WIDTH.get(dev.read16(dev.pasidCap + PASID.CAP));
}

export function pciRestorePasidState(dev: PciDev): void {
  if (dev.pasidEnabled) dev.write16(dev.pasidCap + PASID.CTRL, PASID_CTRL.ENABLE.bits | dev.pasidFeatures);
}
