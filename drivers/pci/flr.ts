// Waiting for a function to come back after a reset, and Function Level Reset itself (Linux
// pci_dev_wait, pci_wait_for_pending_transaction, pcie_flr): what the reset methods (reset.ts) and the
// device-specific resets (quirks.ts) both build on.

import { TIMEOUT, NS_PER_MS } from '../../src/arch/time.ts';
import { DEVCTL, DEVSTA, EXP, EXP_TYPE, HDR, VENDOR_RRS } from '../../src/arch/pcie/regs.ts';
import { E } from '../../src/protocol/errno.ts';
import type { PciCore } from './core.ts';
import { pciResetWithIommuBlocked } from './iommu-reset.ts';
import { pciDevCheckPresent, possibleError, type PciDev } from './pci.ts';

export const RESET_READY_POLL_MS = TIMEOUT.RESET_READY_POLL / NS_PER_MS;
/** Linux PCI_RESET_WAIT (ms): after a conventional reset a function must be ready within 1 s (r6.0 6.6.1). */
export const PCI_RESET_WAIT_MS = 1000;
export const msleep = (dev: PciDev, ms: number) => dev.platform.sleep(ms * NS_PER_MS);

/** The Root Port above a device (pcie_find_root_port). */
export function rootPortOf(dev: PciDev): PciDev | null {
  for (let b = dev.upstream; b; b = b.upstream) if (b.pcieCap && b.pcieType === EXP_TYPE.ROOT_PORT) return b;
  return null;
}

/**
 * pci_dev_wait: poll until the function answers config reads. With RRS Software Visibility at the Root
 * Port, the Vendor ID is polled until it is not the RRS value; otherwise the Command dword until it is
 * not all-ones. Delays double from 1 ms; past the timeout it gives up with -ENOTTY.
 */
export function pciDevWait(dev: PciDev, resetType: string, timeoutMs: number): number {
  let delay = 1;
  const root = rootPortOf(dev);
  for (;;) {
    if (dev.disconnected) {
      dev.log('debug', 'disconnected; not waiting');
      return -E.ENOTTY;
    }
    if (root?.configRrsSv) {
      if ((dev.read32(HDR.VENDOR_ID) & 0xffff) !== VENDOR_RRS) break;
    } else if (!possibleError(dev.read32(HDR.COMMAND), 4)) {
      break;
    }
    if (delay > timeoutMs) {
      dev.log('warn', `not ready ${delay - 1}ms after ${resetType}; giving up`);
      pciDevCheckPresent(dev);
      return -E.ENOTTY;
    }
    if (delay > PCI_RESET_WAIT_MS) dev.log('info', `not ready ${delay - 1}ms after ${resetType}; waiting`);
    msleep(dev, delay);
    delay *= 2;
  }
  if (delay > PCI_RESET_WAIT_MS) dev.log('info', `ready ${delay - 1}ms after ${resetType}`);
  return 0;
}

/** pci_wait_for_pending: up to 4 reads, sleeping 100, 200, 400 ms between them; true when clear. */
function pciWaitForPending(dev: PciDev, pos: number, mask: number): boolean {
  for (let i = 0; i < 4; i++) {
    if (i) msleep(dev, (1 << (i - 1)) * 100);
    if (!(dev.read16(pos) & mask)) return true;
  }
  return false;
}

/** pci_wait_for_pending_transaction: Device Status Transactions Pending. */
function pciWaitForPendingTransaction(dev: PciDev): boolean {
  if (!dev.pcieCap) return true;
  return pciWaitForPending(dev, dev.pcieCap + EXP.DEVSTA, DEVSTA.TRPND.bits);
}

// ---- FLR ----

/**
 * pcie_flr: wait for pending transactions (then FLR anyway), block the IOMMU, Initiate FLR, wait
 * 100 ms (a function must complete FLR within 100 ms, r6.0 6.6.2), then poll for readiness.
 */
export function pcieFlr(core: PciCore, dev: PciDev): number {
  if (!pciWaitForPendingTransaction(dev)) dev.log('err', 'timed out waiting for pending transaction; performing function level reset anyway');
  return pciResetWithIommuBlocked(core, dev, () => {
    dev.update16(dev.pcieCap + EXP.DEVCTL, 0, DEVCTL.BCR_FLR.bits);
    if (dev.immReady) return 0;
    msleep(dev, TIMEOUT.FLR / NS_PER_MS);
    return pciDevWait(dev, 'FLR', RESET_READY_POLL_MS);
  });
}

