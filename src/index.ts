// smmulab's public API: boot the emulated system, inject faults, read statistics, run in lockstep.

export { System, executedByOpcode, cerrorsByName, type SystemOptions, type StatsSnapshot } from './system.ts';
export { createLockstep, LockstepPlatform, type LockstepOptions } from './lockstep.ts';
export { type Fault, describeFault, validateFault } from './faults.ts';
export { DEFAULT_FEATURES, PROFILES, parseFeatures, validateFeatures, type SmmuFeatures } from './smmu/features.ts';
export { formatLog, type LogEntry } from './cpu.ts';
export { TIMEOUT } from './time.ts';
export { writeEntry } from '../drivers/arm-smmu-v3/entry-writer.ts';
