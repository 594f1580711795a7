// The per-CPU kernel context: the platform this CPU runs on and the drivers bound on it. Operations
// the main thread can ask a CPU to perform (drivers/ops/*) receive it.

import type { Platform } from './platform/platform.ts';
import type { ArmSmmuDevice } from './arm-smmu-v3/smmu.ts';
import type { IommuState } from './ops/iommu.ts';
import type { PciState } from './ops/pci.ts';

export class Kernel {
  /** The SMMU as probed (CPU 0) or joined (other CPUs). */
  smmu: ArmSmmuDevice | null = null;
  /** The IOMMU layer on this CPU (masters, domains, DMA API, test-engine drivers), created on first use. */
  iommu: IommuState | null = null;
  /** The PCI core, its IOMMU glue and device drivers (CPU 0, after pciInit). */
  pci: PciState | null = null;

  constructor(readonly platform: Platform) {}

  device(): ArmSmmuDevice {
    if (!this.smmu) throw new Error(`cpu${this.platform.cpu}: no SMMU probed or attached on this CPU`);
    return this.smmu;
  }
}

/** An operation a CPU performs on request: synchronous kernel code, given its arguments. */
export type KernelOp = (k: Kernel, args: any) => unknown;
