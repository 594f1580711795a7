// smmulab's public API: boot the emulated system, inject faults, read statistics, run in lockstep,
// add your own kernel operations. Everything a user's tests need comes from here (`import ... from
// 'smmulab'`): the installed package serves it as JavaScript with type declarations (dist/).

export { System, type SystemOptions } from './system.ts';
export { executedByOpcode, cerrorsByName, statsSnapshot, type StatsSnapshot } from './stats.ts';
export { createLockstep, LockstepPlatform, type LockstepOptions, type LockstepSystem } from './lockstep.ts';
export { lockstepStats, parseLockstepSpec, type LockstepNOptions, type LockstepStats, type LockstepStrategyName, type ReplayStats, type ReplayDivergence } from './lockstep-n.ts';
export { checkScheduleRecord, diffSchedules, SCHEDULE_FORMAT, SCHEDULE_VERSION, type ScheduleRecord, type ScheduleDiff, type EventsDiff, type WriterRun } from '../protocol/schedule.ts';
export { type Fault, type FaultKind, FAULT_KINDS, checkFault, describeFault, validateFault } from '../protocol/faults.ts';
export { InputError } from '../protocol/check.ts';
export { DEFAULT_FEATURES, PROFILES, parseFeatures, validateFeatures, type SmmuFeatures } from '../arch/smmu/features.ts';
export { formatLog, type LogEntry, type LogLevel } from '../protocol/log.ts';
export { TIMEOUT, NS_PER_US, NS_PER_MS, NS_PER_S } from '../arch/time.ts';
export { writeEntry } from '../../drivers/arm-smmu-v3/entry-writer.ts';
export { defaultTopology, parseTopology, type Topology } from '../protocol/topology.ts';
export { E, errName } from '../protocol/errno.ts';

// The machine as numbers: SMMU register offsets and fields, command opcodes, the physical map,
// interrupt vectors, the shared buffer's statistics counters (read them with sys.stat(slot)).
export { OFF, SMMU_PAGE1, CERROR, CERROR_NAMES, GERROR, CR0, type SmmuRegName } from '../arch/smmu/regs.ts';
export { OP, commandName, type CommandName } from '../arch/smmu/commands.ts';
export { PA, VECTOR, PAGE_SIZE } from '../arch/platform.ts';
export { STAT, XSTAT } from '../machine/layout.ts';

// The typed protocol: the operations a CPU serves (sys.cpu(n).op(name, request)) and the hardware's.
export type { KernelOps, KernelOpName, KernelReq, KernelRes } from '../protocol/ops/index.ts';
export type { HwOps, HwOpName, HwReq, HwRes, HwReport, UafRecord } from '../protocol/ops/hw.ts';
export type { SmmuDriverOptions, SmmuShared, AtcRecovery, TlbiWorkload, TlbiResult, ReplayResult, CmdqErrorRecord, RecoveryStats, DriverStats } from '../protocol/ops/smmu.ts';
export type { DmaDirection, DmaStats, IommuStats, DomainInfo, TestDmaRequest, TestDmaResult, DmaMapWorkload, DmaMapResult } from '../protocol/ops/iommu.ts';
export type { ResetMethod, PciDeviceInfo, ResetReport, RecoveryReport, AtsDmaRequest, AtsDmaResult } from '../protocol/ops/pci.ts';
export type { OpDecl, ReqOf, ResOf } from '../protocol/ops/decl.ts';

// Your own kernel code (SystemOptions.extraOps): what an operation of an extra-operations module
// receives, the CPU's kernel context.
export type { ExtraOp, ExtraOps } from '../../drivers/extra-ops.ts';
export type { Kernel } from '../../drivers/kernel.ts';
export type { Platform } from '../../drivers/platform/platform.ts';
