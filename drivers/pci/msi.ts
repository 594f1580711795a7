// MSI setup (Linux drivers/pci/msi): one vector per device, the MSI capability pointed at the
// platform's MSI doorbell with the vector number as data (the doorbell is modelled on a GICv3 ITS
// GITS_TRANSLATER), INTx disabled; and restoring it after a reset (pci_restore_msi_state).

import { PA } from '../../src/arch/platform.ts';
import { COMMAND, HDR, MSI, MSI_CONTROL } from '../../src/arch/pcie/regs.ts';
import type { PciCore } from './core.ts';
import { type PciDev } from './pci.ts';
import { E } from '../../src/protocol/errno.ts';

function program(dev: PciDev, vector: number): void {
  const base = dev.msiCap;
  const ctl = dev.read16(base + MSI.CONTROL);
  dev.write16(base + MSI.CONTROL, ctl & ~MSI_CONTROL.ENABLE.bits);
  dev.write32(base + MSI.ADDR_LO, PA.MSI_DOORBELL & ~3);
  const is64 = (ctl & MSI_CONTROL.ADDR64.bits) !== 0;
  if (is64) dev.write32(base + MSI.ADDR_HI, 0);
  // The data register follows the address: +0x0c with a 64-bit address, +0x08 without.
  dev.write16(base + (is64 ? MSI.DATA : MSI.ADDR_HI), vector);
  dev.write16(base + MSI.CONTROL, (ctl & ~MSI_CONTROL.MME.bits) | MSI_CONTROL.ENABLE.bits);
  dev.update16(HDR.COMMAND, 0, COMMAND.INTX_DISABLE.bits);
}

/** pci_alloc_irq_vectors(dev, 1, 1, PCI_IRQ_MSI): returns the vector, or -errno. */
export function pciAllocIrqVector(core: PciCore, dev: PciDev): number {
  if (!dev.msiCap) return -E.EINVAL;
  if (dev.irq >= 0) return -E.EINVAL;
  const v = core.allocVector();
  if (v < 0) return v;
  program(dev, v);
  dev.irq = v;
  return v;
}

/** pci_free_irq_vectors: MSI off (the vector number is not reused). */
export function pciFreeIrqVectors(dev: PciDev): void {
  if (dev.irq < 0) return;
  dev.update16(dev.msiCap + MSI.CONTROL, MSI_CONTROL.ENABLE.bits, 0);
  dev.irq = -1;
}

/** pci_restore_msi_state: an FLR disabled MSI; program it again. */
export function pciRestoreMsiState(dev: PciDev): void {
  if (dev.irq >= 0) program(dev, dev.irq);
}
