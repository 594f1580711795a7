// Device-specific resets (Linux drivers/pci/quirks.c, pci_dev_reset_methods[]): matched by vendor and
// device ID, bracketed by the IOMMU hooks as v7.0's __pci_dev_specific_reset does. Both quirks here
// call pcie_flr() inside, so the hooks nest (the depth counter of iommu-reset.ts handles it):
//
// - EP_FW_ACK, like reset_hinic_vf_dev: tell the firmware a reset is coming (FW_MAILBOX), FLR, then
//   wait for the firmware to acknowledge — after the inner FLR's done(), which is why the outer
//   bracket is needed. It returns 0 whatever the FLR did.
// - EP_FLR_IGNORE, like reset_intel_82599_sfp_virtfn: FLR and report success whatever happened, the
//   swallowed inner error the review of the nesting fix pointed at.

import { COMMAND, HDR } from '../../src/arch/pcie/regs.ts';
import { DMA_ID, DMA_REG, FW_MAILBOX } from '../../src/arch/pcie/dma-engine.ts';
import { IDS } from '../../src/arch/pcie/ids.ts';
import { NS_PER_MS } from '../../src/arch/time.ts';
import type { PciCore } from './core.ts';
import { pciResetWithIommuBlocked } from './iommu-reset.ts';
import { type PciDev } from './pci.ts';
import { E, errName } from '../../src/protocol/errno.ts';
import { pcieFlr } from './flr.ts';

/** How long the firmware-ack quirk waits for the firmware (HINIC_OPERATION_TIMEOUT in Linux). */
const FW_ACK_TIMEOUT_MS = 15000;

type QuirkReset = (core: PciCore, dev: PciDev, probe: boolean) => number;

function resetFwAck(core: PciCore, dev: PciDev, probe: boolean): number {
  if (probe) return 0;
  const bar = dev.resources.find((r) => r.index === 0);
  if (!bar || bar.start === 0) return -E.ENOTTY;
  const io = dev.platform.ioremap(bar.start, bar.size);
  // Memory decoding is off during pci_reset_function(), and the FLR clears BAR0 and Command again: the
  // quirk programs BAR0 and turns decoding on for its own accesses each time.
  const enableMemory = () => {
    dev.write32(HDR.BAR0, bar.start);
    dev.update16(HDR.COMMAND, 0, COMMAND.MEMORY.bits);
  };
  enableMemory();
  if (io.read32(DMA_REG.ID) !== DMA_ID) return -E.ENOTTY;
  io.write32(DMA_REG.FW_MAILBOX, FW_MAILBOX.RESET_PENDING.bits);
  const rc = pcieFlr(core, dev);
  if (rc) dev.log('debug', `FLR returned ${errName(rc)}; waiting for the firmware anyway`);
  enableMemory();
  const p = dev.platform;
  const deadline = p.clock.now() + FW_ACK_TIMEOUT_MS * NS_PER_MS;
  for (;;) {
    const v = io.read32(DMA_REG.FW_MAILBOX);
    if (!(v & FW_MAILBOX.RESET_PENDING.bits)) break;
    if (p.clock.now() > deadline) {
      dev.log('warn', `Reset dev timeout, FLR ack reg: 0x${(v >>> 0).toString(16).padStart(8, '0')}`);
      break;
    }
    p.sleep(20 * NS_PER_MS);
  }
  return 0;
}

function resetFlrIgnoringResult(core: PciCore, dev: PciDev, probe: boolean): number {
  if (!probe) pcieFlr(core, dev);
  return 0;
}

const QUIRKS: readonly { vendor: number; device: number; reset: QuirkReset }[] = [
  { vendor: IDS.EP_VENDOR, device: IDS.EP_FW_ACK, reset: resetFwAck },
  { vendor: IDS.EP_VENDOR, device: IDS.EP_FLR_IGNORE, reset: resetFlrIgnoringResult },
];

/** pci_dev_specific_reset (through __pci_dev_specific_reset's IOMMU bracket). */
export function pciDevSpecificReset(core: PciCore, dev: PciDev, probe: boolean): number {
  const q = QUIRKS.find((x) => x.vendor === dev.vendor && x.device === dev.device);
  if (!q) return -E.ENOTTY;
  return pciResetWithIommuBlocked(core, dev, () => q.reset(core, dev, probe));
}
