// What every subcommand that boots the emulator shares: the options that choose what boots (--features,
// --time-scale) and the boot, probe, shutdown sequence around the command's work.

import { UsageError, type OptSpec } from './args.ts';
import { System, type SystemOptions } from '../system.ts';
import { parseFeatures } from '../../arch/smmu/features.ts';
import { formatLog } from '../../protocol/log.ts';
import type { SmmuDriverOptions } from '../../protocol/ops/smmu.ts';

export const FEATURES_SPEC: OptSpec = { type: 'string', help: 'SMMU feature profile, optionally with +feature/-feature', default: 'default' };
export const TIME_SCALE_SPEC: OptSpec = { type: 'number', help: 'platform time runs this many times faster than host time', default: 1 };

/** The feature set a --features value names, or a UsageError saying what is wrong with it. */
export function featuresFromOption(command: string, value: unknown): ReturnType<typeof parseFeatures> {
  try {
    return parseFeatures(String(value));
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}

/**
 * Boots the system, probes the SMMU, runs `body` and always shuts the workers down; resolves to the
 * body's exit code. A failed probe is reported on stderr with the kernel log, and the command exits 1.
 */
export async function withProbedSystem(command: string, boot: SystemOptions, probe: SmmuDriverOptions, body: (sys: System) => Promise<number>): Promise<number> {
  const sys = await System.boot(boot);
  try {
    try {
      await sys.probe(probe);
    } catch (e) {
      const log = (await sys.dmesg()).map(formatLog);
      process.stderr.write(`${command}: probe failed: ${(e as Error).message}\n${log.join('\n')}\n`);
      return 1;
    }
    return await body(sys);
  } finally {
    await sys.shutdown();
  }
}
