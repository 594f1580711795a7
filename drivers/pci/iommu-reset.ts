// pci_dev_reset_iommu_prepare() / pci_dev_reset_iommu_done() (Linux drivers/iommu/iommu.c, v7.0 with
// the nesting fix 0d5fd7a9323c, and done() taking the reset's outcome as proposed in review of the
// "do not call done() unless reset succeeds" series).
//
// PCIe lets a function ignore ATC Invalidate Requests while it resets (r6.0 10.3.1 implementation
// note), so before a reset the device is moved to the blocking domain: ATS disabled at the function,
// the STE rewritten without EATS (translated requests and Translation Requests are refused), the ATC
// invalidated. Its own domain is kept and re-attached afterwards.
//
// - prepare is re-entrant through a depth counter: only the outermost call blocks; nested calls (a
//   device-specific reset calling pcie_flr(), a CXL bus reset wrapping the bus reset) only count. A
//   prepare that fails rolls its count back.
// - done(dev, ok) is called with the outcome of the reset it brackets. Only the outermost done with
//   ok=true unblocks, and only if no nested reset inside it failed: a device-specific reset that
//   swallows its inner FLR's failure (reset_intel_82599_sfp_virtfn does) must not lift the block, nor
//   a fence after an ATC invalidation timeout. A failed reset leaves the device blocked with a warning
//   (its ATC may hold stale translations); a later successful reset's outermost done unblocks it.
// - Devices without ATS, or not behind the IOMMU, are left alone.

import type { PciCore } from './core.ts';
import { pciAtsSupported } from './ats.ts';
import { pciDevCheckPresent, type PciDev } from './pci.ts';
import { E, errName } from '../../src/protocol/errno.ts';
import { shouldFail } from '../fault-inject.ts';

/**
 * Runs a reset between pci_dev_reset_iommu_prepare() and pci_dev_reset_iommu_done(dev, ok), as each
 * reset method of Linux brackets itself: a failed prepare is logged and returned with no reset done;
 * done() gets the reset's outcome (0 is ok). Returns the reset's result.
 */
export function pciResetWithIommuBlocked(core: PciCore, dev: PciDev, reset: () => number): number {
  const ret = pciDevResetIommuPrepare(core, dev);
  if (ret) {
    dev.log('err', `failed to stop IOMMU for a PCI reset: ${errName(ret)}`);
    return ret;
  }
  let rc = reset();
  // A function that reads all-ones after its reset is gone, not reset: with RRS Software Visibility
  // on, pci_dev_wait() takes an all-ones Vendor ID for "ready" (it only waits out the RRS value
  // 0x0001), and no hotplug driver here marks the device disconnected first. Its ATC state is
  // unknown: it must stay blocked (and fenced).
  if (rc === 0 && !pciDevCheckPresent(dev)) rc = -E.ENODEV;
  pciDevResetIommuDone(core, dev, rc === 0);
  return rc;
}

/** pci_dev_reset_iommu_prepare; 0 or -errno. */
function pciDevResetIommuPrepare(core: PciCore, dev: PciDev): number {
  const st = dev.iommu;
  if (!pciAtsSupported(dev) || !st || !core.iommu) return 0;
  if (st.depth > 0 && core.iommu.bug === 'prepare-no-reentry') {
    // The broken variant: a nested reset is taken for a concurrent one and refused.
    dev.log('debug', `IOMMU reset prepare: depth ${st.depth}, nested call refused`);
    return -E.EBUSY;
  }
  if (st.depth++ > 0) {
    dev.log('debug', `IOMMU reset prepare: depth ${st.depth} (nested)`);
    return 0;
  }
  if (st.blocked) {
    // Still blocked after an earlier failed reset: nothing to do but count.
    dev.log('debug', `IOMMU reset prepare: depth ${st.depth} (already blocked)`);
    return 0;
  }
  let ret: number;
  if (shouldFail(core.p, 'blocking-attach')) {
    ret = -E.ENOMEM;
  } else {
    ret = core.iommu.block(dev);
  }
  if (ret !== 0) {
    st.depth--;
    dev.log('debug', `IOMMU reset prepare failed (${errName(ret)}): depth ${st.depth}`);
    return ret;
  }
  st.blocked = true;
  dev.log('debug', `IOMMU reset prepare: depth ${st.depth}, blocked`);
  return 0;
}

/** pci_dev_reset_iommu_done(dev, ok). */
function pciDevResetIommuDone(core: PciCore, dev: PciDev, ok: boolean): void {
  const st = dev.iommu;
  if (!pciAtsSupported(dev) || !st || !core.iommu) return;
  if (st.depth === 0) {
    // Unbalanced done() would underflow the counter.
    dev.log('warn', 'WARNING: pci_dev_reset_iommu_done() without a matching prepare');
    return;
  }
  const outcome = ok ? 'ok' : 'failed';
  if (--st.depth > 0) {
    if (!ok) st.innerFailed = true;
    dev.log('debug', `IOMMU reset done (${outcome}): depth ${st.depth}, blocked (nested)`);
    return;
  }
  const innerFailed = st.innerFailed === true;
  st.innerFailed = false;
  if (!st.blocked) return;
  // The broken variant unblocks whatever the outcome: a failed reset lifts the fence.
  const lifts = core.iommu.bug === 'done-lifts-fence';
  if (ok && innerFailed && !lifts) {
    dev.log('warn', 'Reset reported success but a nested reset failed. Blocking ATS to protect memory');
    return;
  }
  if (!ok && !lifts) {
    dev.log('warn', 'Reset failed. Blocking ATS to protect memory');
    dev.log('debug', `IOMMU reset done (failed): depth 0, blocked`);
    return;
  }
  const ret = core.iommu.unblock(dev);
  if (ret !== 0) {
    dev.log('warn', `WARNING: re-attaching the domain after reset failed (${errName(ret)}); device stays blocked`);
    return;
  }
  st.blocked = false;
  dev.log('debug', `IOMMU reset done (ok): depth 0, unblocked`);
}
