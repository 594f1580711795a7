// The trace options of `run` and `run --scenario`: --trace PATTERN prints records on stderr as they are
// drained, --trace-out FILE writes them as Chrome trace-event JSON (src/host/trace-export.ts) at the
// end, and run's --histogram needs arm_smmu_cmdq_sync_done on (it fills the CMD_SYNC wait histogram).
// One plan says which points to enable and where the records go.

import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError, type OptSpec } from './args.ts';
import { TraceSink, traceFromOption } from './boot.ts';
import { matchPoints } from '../../protocol/trace-points.ts';
import { EXPORT_POINTS, chromeTrace, writeChromeTrace } from '../trace-export.ts';
import type { TraceOptions } from '../trace.ts';

export const TRACE_OUT_SPEC: OptSpec = {
  type: 'string',
  help: 'write the trace as Chrome trace-event JSON to FILE (Perfetto, chrome://tracing): the --trace points, or every point the export draws',
};

/** The smallest ring (trace-ring.ts): enough when records are only enabled for a histogram's sake. */
const MIN_RING_RECORDS = 16;

export interface TracePlan {
  /** What to enable (undefined: no tracing). */
  options: TraceOptions | undefined;
  sink: TraceSink;
  /** Where --trace-out writes (null: nowhere). */
  out: string | null;
}

/** An output file path (--trace-out, --record) whose directory exists and that is not a directory, or a UsageError naming it. */
export function outFile(command: string, value: string, option = '--trace-out'): string {
  const dir = dirname(resolve(value));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${command}: ${option}: directory '${dirname(value)}' does not exist`);
  if (existsSync(value) && statSync(value).isDirectory()) throw new UsageError(`${command}: ${option}: '${value}' is a directory`);
  return value;
}

/** The plan of --trace, --trace-out and --histogram values; UsageError for a bad pattern or path. */
export function tracePlan(command: string, o: { trace: unknown; traceOut: unknown; histogram?: boolean }): TracePlan {
  const shown = traceFromOption(command, o.trace);
  const out = o.traceOut === undefined ? null : outFile(command, String(o.traceOut));
  const recorded = shown?.points ?? (out ? EXPORT_POINTS : null);
  const points = [recorded, o.histogram ? 'arm_smmu_cmdq_sync_done' : null].filter((p) => p !== null).join(',');
  // Points enabled only for the histogram are neither printed nor kept: small rings do.
  const options: TraceOptions | undefined = points === '' ? undefined : { points, ...(recorded ? {} : { records: MIN_RING_RECORDS }) };
  const print = shown ? new Set<string>(matchPoints(shown.points)) : false;
  return { options, sink: new TraceSink(print, out ? [] : null), out };
}

/** Writes --trace-out's file, if asked; returns the exit code (1, with a message, when it cannot). */
export function writeTraceOut(command: string, plan: TracePlan, source: string): number {
  if (plan.out === null || plan.sink.keep === null) return 0;
  const trace = chromeTrace(plan.sink.keep, { lost: plan.sink.lost, source });
  try {
    writeChromeTrace(plan.out, trace);
  } catch (e) {
    process.stderr.write(`${command}: --trace-out: cannot write '${plan.out}': ${(e as Error).message}\n`);
    return 1;
  }
  process.stderr.write(`${command}: wrote ${trace.traceEvents.length} trace events to ${plan.out}\n`);
  return 0;
}
