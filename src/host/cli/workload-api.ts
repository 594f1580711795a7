// What a workload module and a run option module export (the table is src/host/cli/workloads.ts).

import type { OptSpec, Parsed } from './args.ts';
import type { System, SystemOptions } from '../system.ts';
import type { SmmuDriverOptions } from '../../protocol/ops/smmu.ts';

/** What `run` is about to boot and probe with; workloads and run options may adjust it before boot. */
export interface RunSetup {
  boot: SystemOptions;
  probe: SmmuDriverOptions;
}

export interface WorkloadContext {
  sys: System;
  /** Every option `run` parsed (common ones, run options and this workload's), defaults applied. */
  opts: Parsed['opts'];
  /** --seconds, in platform ns. */
  durationNs: number;
  /** --batch. */
  batch: number;
  /** Host ms a CPU may take to answer a call that lasts the whole workload (duration at this time scale, plus margin). */
  callTimeoutMs: number;
}

export interface WorkloadReport {
  /** Commands the CPUs issued, summed over CPUs, by spec name without CMD_ (CMD_SYNCs as SYNC). */
  issuedByOpcode: Record<string, number>;
  /** What each CPU reported (JSON-serialisable). */
  perCpu: unknown[];
  /** More report fields (JSON-serialisable). */
  extra?: Record<string, unknown>;
}

export interface Workload {
  summary: string;
  options?: Record<string, OptSpec>;
  prepare?(p: Parsed, setup: RunSetup): void;
  run(ctx: WorkloadContext): Promise<WorkloadReport>;
}

export interface RunOption {
  spec: OptSpec;
  apply(value: string | number | boolean | undefined, setup: RunSetup): void;
}

/** Adds up per-CPU command counts. */
export function sumCounts(parts: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p)) out[k] = (out[k] ?? 0) + v;
  return out;
}
