// Every operation a driver CPU serves, declared once: its name, the checker of its request (which is
// its request type) and its result type. The host calls them through System.cpu(n).op(name, request),
// checked by the compiler; the CPU worker implements the same table (drivers/ops) and checks every
// request at its boundary, so a bad request is an error naming the field, never a crash in a worker.

import type { OpArgs, OpImpls, ReqOf, ResOf } from './decl.ts';
import { CPU_OPS } from './cpu.ts';
import { IOMMU_OPS } from './iommu.ts';
import { PCI_OPS } from './pci.ts';
import { SMMU_OPS } from './smmu.ts';

export const KERNEL_OPS = { ...CPU_OPS, ...SMMU_OPS, ...IOMMU_OPS, ...PCI_OPS };

export type KernelOps = typeof KERNEL_OPS;
export type KernelOpName = keyof KernelOps;
export type KernelReq<K extends KernelOpName> = ReqOf<KernelOps, K>;
export type KernelRes<K extends KernelOpName> = ResOf<KernelOps, K>;
export type KernelOpArgs<K extends KernelOpName> = OpArgs<KernelOps, K>;
export type KernelOpImpls<Ctx> = OpImpls<KernelOps, Ctx>;
