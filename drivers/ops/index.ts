// Every operation a CPU worker serves, by name. Each driver area contributes its own table.

import type { KernelOp } from '../kernel.ts';
import { smmuOps } from './smmu.ts';
import { iommuOps } from './iommu.ts';
import { pciOps } from './pci.ts';

export const KERNEL_OPS: Record<string, KernelOp> = {
  ...smmuOps,
  ...iommuOps,
  ...pciOps,
};
