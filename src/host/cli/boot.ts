// What every subcommand that boots the emulator shares: the options that choose what boots (--features,
// --time-scale) and the boot, probe, shutdown sequence around the command's work.

import { UsageError, type OptSpec } from './args.ts';
import { System, type SystemOptions } from '../system.ts';
import { parseFeatures } from '../../arch/smmu/features.ts';
import { formatLog } from '../../protocol/log.ts';
import type { SmmuDriverOptions } from '../../protocol/ops/smmu.ts';
import { matchPoints } from '../../protocol/trace-points.ts';
import { toLine, type TraceOptions } from '../trace.ts';

export const FEATURES_SPEC: OptSpec = { type: 'string', help: 'SMMU feature profile, optionally with +feature/-feature', default: 'default' };
export const TIME_SCALE_SPEC: OptSpec = { type: 'number', help: 'platform time runs this many times faster than host time', default: 1 };
export const TRACE_SPEC: OptSpec = { type: 'string', help: 'print trace points matching PATTERN on stderr (globs, comma-separated, -glob removes; smmulab trace-points lists them)' };

/** The trace a --trace value asks for (undefined without one), or a UsageError naming a bad glob. */
export function traceFromOption(command: string, value: unknown): TraceOptions | undefined {
  if (value === undefined) return undefined;
  try {
    matchPoints(String(value));
  } catch (e) {
    throw new UsageError(`${command}: --trace: ${(e as Error).message}`);
  }
  return { points: String(value) };
}

/** How often trace records are printed while a command runs (host ms). */
const TRACE_PRINT_MS = 100;

/** Prints the trace records written since the last call, and how many were lost, on stderr. */
function printTrace(sys: System, lostBefore: { n: number }): void {
  const lines = sys.trace().map(toLine);
  if (lines.length) process.stderr.write(lines.join('\n') + '\n');
  const lost = sys.traceLost();
  if (lost > lostBefore.n) process.stderr.write(`trace: ${lost - lostBefore.n} record(s) lost (ring full; fewer points or a shorter run keep them)\n`);
  lostBefore.n = lost;
}

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
  const lost = { n: 0 };
  const tracing = boot.trace ? setInterval(() => printTrace(sys, lost), TRACE_PRINT_MS) : undefined;
  tracing?.unref();
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
    if (tracing) {
      clearInterval(tracing);
      printTrace(sys, lost);
    }
    await sys.shutdown();
  }
}
