// smmulab's public API: boot the emulated system, inject faults, read statistics, run in lockstep.

export { System, type SystemOptions } from './system.ts';
export { executedByOpcode, cerrorsByName, type StatsSnapshot } from './stats.ts';
export { createLockstep, LockstepPlatform, type LockstepOptions } from './lockstep.ts';
export { type Fault, describeFault, validateFault } from '../protocol/faults.ts';
export { DEFAULT_FEATURES, PROFILES, parseFeatures, validateFeatures, type SmmuFeatures } from '../arch/smmu/features.ts';
export { formatLog, type LogEntry } from '../protocol/log.ts';
export { TIMEOUT } from '../arch/time.ts';
export { writeEntry } from '../../drivers/arm-smmu-v3/entry-writer.ts';
