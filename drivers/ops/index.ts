// Every operation a CPU worker serves (src/protocol/ops declares them): each driver area contributes
// its part, and the whole must implement the protocol's table exactly (a missing or mistyped
// operation is a compile error).

import type { KernelOpImpls } from '../../src/protocol/ops/index.ts';
import type { Kernel } from '../kernel.ts';
import { cpuOps } from './cpu.ts';
import { iommuOps } from './iommu.ts';
import { pciOps } from './pci.ts';
import { smmuOps } from './smmu.ts';

export const KERNEL_IMPLS: KernelOpImpls<Kernel> = { ...cpuOps, ...smmuOps, ...iommuOps, ...pciOps };
