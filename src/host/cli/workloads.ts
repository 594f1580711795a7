// What `smmulab run` can run: a registry of workloads and of extra run options (what their modules
// export is declared in workload-api.ts).
//
// Adding a workload — write a module (e.g. src/host/cli/workloads/dma-map.ts) exporting
//
//   export const workload: Workload = {
//     summary: 'one line for `smmulab run --help`',
//     options: { pages: { type: 'number', help: 'pages per map', default: 16 } },  // optional: --pages
//     prepare(p, setup) { ... },   // optional, before boot: check options (throw UsageError), adjust setup
//     async run(ctx) {             // after probe: drive the CPUs, return what they issued
//       const per = await Promise.all(ctx.sys.cpus.map((c) => c.op('myOp', {...}, ctx.callTimeoutMs)));
//       return { issuedByOpcode: sumCounts(per.map((r) => r.issuedByOpcode)), perCpu: per, extra: {...} };
//     },
//   };
//
// and add one line to the table at the bottom of this file:
//
//   registerWorkload('dma-map', async () => (await import('./workloads/dma-map.ts')).workload);
//
// `run` then accepts `--workload dma-map` and that workload's options (and only with that workload).
// It boots, probes, snapshots the hardware counters, calls run(), and reports: the hardware's executed
// commands per opcode during run() are compared with the returned issuedByOpcode (summed over CPUs,
// CMD_SYNCs under "SYNC"); a mismatch fails the run. `extra` fields go into the JSON report and are
// printed as "key: value" lines in the text report.
//
// Adding a run option that changes how the system boots (e.g. --topology) — a module exporting
// `option: RunOption` and one line in the table:
//
//   registerRunOption('topology', async () => (await import('./topology-option.ts')).option);
//
// Its apply() runs before boot with the option's value (or its default) and edits setup.boot
// (System.boot options) and setup.probe (the driver's probe options).

import type { RunOption, Workload } from './workload-api.ts';

const WORKLOADS = new Map<string, () => Promise<Workload>>();
const RUN_OPTIONS = new Map<string, () => Promise<RunOption>>();

export function registerWorkload(name: string, load: () => Promise<Workload>): void {
  if (WORKLOADS.has(name)) throw new Error(`workload '${name}' registered twice`);
  WORKLOADS.set(name, load);
}

export function registerRunOption(name: string, load: () => Promise<RunOption>): void {
  if (RUN_OPTIONS.has(name)) throw new Error(`run option --${name} registered twice`);
  RUN_OPTIONS.set(name, load);
}

export async function loadWorkloads(): Promise<Map<string, Workload>> {
  const out = new Map<string, Workload>();
  for (const [name, load] of WORKLOADS) out.set(name, await load());
  return out;
}

export async function loadRunOptions(): Promise<Map<string, RunOption>> {
  const out = new Map<string, RunOption>();
  for (const [name, load] of RUN_OPTIONS) out.set(name, await load());
  return out;
}

// ---- the table: one line per workload and per run option ----

registerWorkload('tlbi', async () => (await import('./workloads/tlbi.ts')).workload);
registerWorkload('dma-map', async () => (await import('./workloads/dma-map.ts')).workload);
registerWorkload('ats-dma', async () => (await import('./workloads/ats-dma.ts')).workload);
registerRunOption('topology', async () => (await import('./topology-option.ts')).option);
registerRunOption('atc-timeout-ms', async () => (await import('./timeout-options.ts')).atcTimeoutOption);
registerRunOption('poll-timeout-ms', async () => (await import('./timeout-options.ts')).pollTimeoutOption);
registerRunOption('atc-recovery', async () => (await import('./timeout-options.ts')).atcRecoveryRunOption);
registerRunOption('lockstep', async () => (await import('./lockstep-option.ts')).lockstepOption);
registerRunOption('seed', async () => (await import('./lockstep-option.ts')).seedOption);
