// What every subcommand that boots the emulator shares: the options that choose what boots (--features,
// --trace; --time-scale is with the other timer options in timeout-options.ts) and the boot, probe,
// shutdown sequence around the command's work.

import { UsageError, type OptSpec } from './args.ts';
import { System, type SystemOptions } from '../system.ts';
import { parseFeatures } from '../../arch/smmu/features.ts';
import { formatLog } from '../../protocol/log.ts';
import type { SmmuDriverOptions } from '../../protocol/ops/smmu.ts';
import { POINT_NAMES, matchPoints } from '../../protocol/trace-points.ts';
import type { RawTraceRecord } from '../../machine/trace-ring.ts';
import { toLine, type TraceOptions } from '../trace.ts';

export const FEATURES_SPEC: OptSpec = { type: 'string', help: 'SMMU feature profile, optionally with +feature/-feature', default: 'default' };
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

/**
 * Where drained trace records go: printed on stderr (every point, or the points named in `print`, or
 * none), and kept in `keep` for a trace file; records lost to a full ring are reported either way.
 */
export class TraceSink {
  /** Records lost so far, over all rings. */
  lost = 0;

  constructor(
    private readonly print: boolean | ReadonlySet<string>,
    readonly keep: RawTraceRecord[] | null = null,
  ) {}

  /** Takes the records drained since the last call, and the rings' lost count now. */
  take(records: readonly RawTraceRecord[], lost: number): void {
    // (A loop: spreading a long drain into push() overflows the stack.)
    if (this.keep) for (const r of records) this.keep.push(r);
    const print = this.print;
    const shown = print === true ? records : print === false ? [] : records.filter((r) => print.has(POINT_NAMES[r.point]!));
    if (shown.length) process.stderr.write(shown.map(toLine).join('\n') + '\n');
    // (Records enabled only for a histogram's sake go nowhere: their loss is no news.)
    if (lost > this.lost && (print !== false || this.keep)) process.stderr.write(`trace: ${lost - this.lost} record(s) lost (ring full; fewer points or a shorter run keep them)\n`);
    this.lost = lost;
  }
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
export async function withProbedSystem(command: string, boot: SystemOptions, probe: SmmuDriverOptions, body: (sys: System) => Promise<number>, sink = new TraceSink(true)): Promise<number> {
  const sys = await System.boot(boot);
  const drain = () => sink.take(sys.trace(), sys.traceLost());
  const tracing = boot.trace ? setInterval(drain, TRACE_PRINT_MS) : undefined;
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
      drain();
    }
    await sys.shutdown();
  }
}
