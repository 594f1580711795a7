// `smmulab run`: boot the hardware worker and N driver CPUs, probe the SMMU, run a workload
// (src/host/cli/workloads.ts), and report what the hardware executed, with a cross-check against what the
// CPUs issued.
//
// Counting: the hardware's per-opcode counters are snapshotted after probe, so the report covers the
// workload only. cmdsPerSec counts every command executed during the workload, CMD_SYNCs included,
// per second of platform time; nonSyncCmdsPerSec leaves the CMD_SYNCs out (for the default workload,
// the TLBI rate).

import { HELP_SPEC, parseArgs, intOpt, noArguments, optionLines, positiveNumber, usage, UsageError, type OptSpec } from './args.ts';
import { FEATURES_SPEC, TRACE_SPEC, featuresFromOption, withProbedSystem } from './boot.ts';
import { TRACE_OUT_SPEC, tracePlan, writeTraceOut } from './trace-options.ts';
import { formatHistograms, histogramBuckets, histogramsSince, latencyHistograms } from '../histogram.ts';
import { MAX_TIMER_MS, SECONDS_MAX, TIME_SCALE_SPEC, runCallTimeoutMs } from './timeout-options.ts';
import { loadRunOptions, loadWorkloads } from './workloads.ts';
import { sumCounts, type RunSetup, type Workload, type WorkloadReport } from './workload-api.ts';
import { cerrorsByName, executedByOpcode, type StatsSnapshot } from '../stats.ts';
import { archMinorRev } from '../../arch/smmu/implementation.ts';
import { formatLog, type LogEntry } from '../../protocol/log.ts';
import { DMESG_SPEC, printDmesg, reportLog } from './dmesg.ts';
import { PROGRESS_SPEC, Progress } from './progress.ts';
import { MAX_CPUS } from '../../machine/layout.ts';
import type { CliCommand } from './command.ts';
import type { DriverStats } from '../../protocol/ops/smmu.ts';
import type { UafRecord } from '../../protocol/ops/hw.ts';
import { parseInjectOption } from '../scenario/catalogue.ts';
import { clip } from '../../protocol/check.ts';
import { formatViolation } from '../scenario/report.ts';
import { runScenarioCommand } from './run-scenario.ts';
import { lockstepStats } from '../lockstep-n.ts';

const NAME = 'run';

const COMMON: Record<string, OptSpec> = {
  cpus: { type: 'number', help: 'simulated CPUs, one driver worker each', default: 2 },
  features: FEATURES_SPEC,
  'time-scale': TIME_SCALE_SPEC,
  trace: TRACE_SPEC,
  'trace-out': TRACE_OUT_SPEC,
  histogram: { type: 'boolean', help: 'print bpftrace-style histograms of CMD_SYNC wait and ATC invalidation latency over the workload' },
  mem: { type: 'number', help: 'DMA-able memory in MiB', default: 64 },
  'irq-cpu': { type: 'number', help: 'CPU that takes the GERROR and event queue interrupts', default: 0 },
  'no-msipoll': { type: 'boolean', help: 'complete CMD_SYNC by polling CONS even with MSIs (Linux disable_msipolling)' },
  batch: { type: 'number', help: 'commands per batch (each batch ends with a CMD_SYNC)', default: 8 },
  seconds: { type: 'number', help: 'platform seconds the workload runs', default: 3 },
  workload: { type: 'string', help: 'what the CPUs run (see below)', default: 'tlbi' },
  json: { type: 'boolean', help: 'print one JSON object on stdout instead of the text report' },
  dmesg: DMESG_SPEC,
  progress: PROGRESS_SPEC,
  inject: { type: 'string', repeatable: true, help: 'a fault injected after probe (JSON, or a file with a fault or a list; see smmulab faults)' },
  scenario: { type: 'string', help: 'run a scenario in lockstep instead (see smmulab run --scenario X --help)' },
  schedule: { type: 'string', help: 'replay a schedule recorded by run --scenario X --threaded --record FILE (see smmulab run --scenario X --help)' },
  help: HELP_SPEC,
};

export interface RunReport {
  workload: string;
  profile: string;
  features: Record<string, unknown>;
  archVersion: string;
  cpus: number;
  batch: number;
  timeScale: number;
  /** The probe's kernel log (text report: dmesg lines). */
  probeLog: LogEntry[];
  /** With --dmesg: the whole kernel log, boot to the end of the workload. */
  dmesg?: LogEntry[];
  executedByOpcode: Record<string, number>;
  issuedByOpcode: Record<string, number>;
  check: 'OK' | 'MISMATCH';
  mismatches: { opcode: string; issued: number; executed: number }[];
  syncs: number;
  errors: { cerrors: Record<string, number>; gerrors: Record<string, number>; syncTimeouts: number };
  cmdsPerSec: number;
  nonSyncCmdsPerSec: number;
  seconds: number;
  hostSeconds: number;
  perCpu: unknown[];
  /** The DMA sanitizer: use-after-free accesses (the first ones in full) and lazy-window accesses. */
  dmaUseAfterFree: number;
  lazyWindowAccesses: number;
  violations: UafRecord[];
  /** Hardware faults that fired, by kind. */
  faultsFired: Record<string, number>;
  [extra: string]: unknown;
}

function help(workloads: Map<string, Workload>, spec: Record<string, OptSpec>): string {
  const lines = [usage(NAME, '[options]', spec), '', 'workloads (--workload NAME):'];
  for (const [name, w] of workloads) lines.push(`  ${name.padEnd(14)}${w.summary}`, ...optionLines(w.options ?? {}, '      ', 30));
  return lines.join('\n');
}

function sumDriverStats(all: DriverStats[]): { gerrors: Record<string, number>; syncTimeouts: number } {
  return { gerrors: sumCounts(all.map((s) => s.gerrors)), syncTimeouts: all.reduce((n, s) => n + s.syncTimeouts, 0) };
}

function diffCounts(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

function totalOf(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

export const command: CliCommand = {
  name: NAME,
  summary: 'boot, probe, run a workload on every CPU and report what the SMMU executed',
  async run(argv) {
    // Only before `--`: after it, `--scenario` is an argument, not the option.
    const optionArgs = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
    if (optionArgs.some((a) => /^--(scenario|schedule)(=|$)/.test(a))) return runScenarioCommand(argv);
    const workloads = await loadWorkloads();
    const runOptions = await loadRunOptions();
    const base: Record<string, OptSpec> = { ...COMMON };
    for (const [k, o] of runOptions) base[k] = o.spec;
    // First pass (every workload's options allowed) only to learn the workload; the second pass
    // accepts that workload's options alone, so another workload's option is an error naming it.
    const all: Record<string, OptSpec> = { ...base };
    for (const w of workloads.values()) Object.assign(all, w.options ?? {});
    const first = parseArgs(argv, all, NAME);
    if (first.opts.help) {
      process.stdout.write(help(workloads, base) + '\n');
      return 0;
    }
    const wname = String(first.opts.workload);
    const workload = workloads.get(wname);
    if (!workload) throw new UsageError(`${NAME}: --workload '${clip(wname)}' is unknown (known: ${[...workloads.keys()].join(', ')})`);
    const p = parseArgs(argv, { ...base, ...(workload.options ?? {}) }, NAME);
    noArguments(p, NAME);

    const cpus = intOpt(p, 'cpus', 1, MAX_CPUS, NAME);
    const irqCpu = intOpt(p, 'irq-cpu', 0, cpus - 1, NAME);
    const batch = intOpt(p, 'batch', 1, 1 << 16, NAME);
    const memMiB = intOpt(p, 'mem', 1, 1024, NAME);
    // A default, so never undefined; --time-scale's bounds are its spec's, checked when parsed.
    const seconds = positiveNumber(NAME, 'seconds', p.opts.seconds, { max: SECONDS_MAX })!;
    const timeScale = Number(p.opts['time-scale']);
    const histogram = p.opts.histogram === true;
    const tracing = tracePlan(NAME, { trace: p.opts.trace, traceOut: p.opts['trace-out'], histogram });
    const feat = featuresFromOption(NAME, p.opts.features);
    const setup: RunSetup = {
      boot: { cpus, features: feat.features, timeScale, memBytes: memMiB << 20, ...(tracing.options ? { trace: tracing.options } : {}) },
      probe: { irqCpu, disableMsiPolling: p.opts['no-msipoll'] === true },
    };
    for (const [k, o] of runOptions) o.apply(p.opts[k], setup);
    workload.prepare?.(p, setup);

    const json = p.opts.json === true;
    const faults = (p.lists.inject ?? []).flatMap((v, i) => parseInjectOption(v, i));
    const code = await withProbedSystem(NAME, setup.boot, setup.probe, async (sys) => {
      let progress: NodeJS.Timeout | undefined;
      try {
        const probeLog = reportLog(await sys.dmesg());
        const hw0 = await sys.hw.op('report');
        for (const f of faults) await sys.inject(f);
        const driverStats = () => Promise.all(sys.cpus.map((c) => c.op('driverStats')));
        const before = sys.stats();
        const hist0 = histogram ? latencyHistograms(sys.views.stats) : null;
        const dBefore = await driverStats();
        const hostMs = (seconds * 1000) / timeScale;
        const t0 = sys.clock.now();
        const h0 = performance.now();
        // Progress about once a second, for runs that last longer than that (on a terminal, or with
        // --progress), and a final line when the workload is over.
        const lines = Progress.of(p);
        const long = lines.enabled && hostMs > 1000;
        const progressLine = (what: string) => `${NAME}: ${what}${((sys.clock.now() - t0) / 1e9).toFixed(1)} s of ${seconds} s, ${totalOf(executedByOpcode(before, sys.stats()))} commands executed`;
        if (long) {
          progress = setInterval(() => lines.line(progressLine('')), 1000);
          progress.unref();
        }
        // A workload starts no round after its duration, but the last one lasts as long as its waits (a
        // stopped queue: a poll timeout per CMD_SYNC): the call's limit covers them too (rpc-limit.ts).
        const callTimeoutMs = Math.min(MAX_TIMER_MS, runCallTimeoutMs(seconds, timeScale) + (sys.cpu(0).limitMs?.('workload') ?? 0));
        const rep: WorkloadReport = await workload.run({ sys, opts: p.opts, durationNs: seconds * 1e9, batch, callTimeoutMs });
        const lockstep = lockstepStats(sys); // --lockstep: grants, switches, platform time, MMIO write hash
        if (lockstep) rep.extra = { ...rep.extra, lockstep };
        clearInterval(progress);
        if (long) lines.done(progressLine('done, '));
        const elapsedS = (sys.clock.now() - t0) / 1e9;
        const hostSeconds = (performance.now() - h0) / 1000;
        const after: StatsSnapshot = sys.stats();
        const dAfter = await driverStats();
        const hw1 = await sys.hw.op('report');
        const executed = executedByOpcode(before, after);
        const mismatches = [...new Set([...Object.keys(executed), ...Object.keys(rep.issuedByOpcode)])]
          .sort()
          .map((opcode) => ({ opcode, issued: rep.issuedByOpcode[opcode] ?? 0, executed: executed[opcode] ?? 0 }))
          .filter((m) => m.issued !== m.executed);
        const sb = sumDriverStats(dBefore);
        const sa = sumDriverStats(dAfter);
        const total = totalOf(executed);
        const syncs = after.syncs - before.syncs;
        const report: RunReport = {
          workload: wname,
          profile: feat.name,
          features: { ...feat.features },
          archVersion: `SMMUv3.${archMinorRev(feat.features)}`,
          cpus,
          batch,
          timeScale,
          probeLog,
          executedByOpcode: executed,
          issuedByOpcode: rep.issuedByOpcode,
          check: mismatches.length ? 'MISMATCH' : 'OK',
          mismatches,
          syncs,
          errors: {
            cerrors: cerrorsByName(before, after),
            gerrors: diffCounts(sa.gerrors, sb.gerrors),
            syncTimeouts: sa.syncTimeouts - sb.syncTimeouts,
          },
          cmdsPerSec: Math.round(total / elapsedS),
          nonSyncCmdsPerSec: Math.round((total - (executed.SYNC ?? 0)) / elapsedS),
          seconds: Number(elapsedS.toFixed(3)),
          hostSeconds: Number(hostSeconds.toFixed(3)),
          perCpu: rep.perCpu,
          dmaUseAfterFree: hw1.uaf - hw0.uaf,
          lazyWindowAccesses: hw1.lazyWindow - hw0.lazyWindow,
          violations: hw1.records.slice(hw0.records.length),
          faultsFired: hw1.faultsFired,
          ...(rep.extra ?? {}),
        };
        if (p.opts.dmesg === true) {
          report.dmesg = [...probeLog, ...reportLog(await sys.dmesg())];
          printDmesg(report.dmesg);
        }
        const hists = hist0 ? histogramsSince(hist0, latencyHistograms(sys.views.stats)) : null;
        if (hists) report.histograms = { cmdSyncWaitNs: histogramBuckets(hists.cmdSyncWaitNs), atcInvLatencyNs: histogramBuckets(hists.atcInvLatencyNs) };
        process.stdout.write(json ? JSON.stringify(report) + '\n' : textReport(report, rep.extra ?? {}) + (hists ? `\n${formatHistograms(hists)}` : ''));
        if (mismatches.length) {
          process.stderr.write(`${NAME}: MISMATCH between what the CPUs issued and what the hardware executed\n`);
          return 1;
        }
        return 0;
      } finally {
        if (progress) clearInterval(progress);
      }
    }, tracing.sink);
    // (Written after the system stopped: the last records are drained at shutdown.)
    const traced = writeTraceOut(NAME, tracing, 'run');
    return code !== 0 ? code : traced;
  },
};

function textReport(r: RunReport, extra: Record<string, unknown>): string {
  const out: string[] = [];
  const n = (v: number) => v.toLocaleString('en-US');
  out.push(`smmulab run: workload ${r.workload}, ${r.cpus} CPU(s), batch ${r.batch}, features ${r.profile} (${r.archVersion}), time scale ${r.timeScale}`);
  out.push(`DMA use-after-free: ${r.dmaUseAfterFree ? `${r.dmaUseAfterFree} access(es)` : 'none'}; lazy-window accesses: ${r.lazyWindowAccesses}`);
  for (const v of r.violations) out.push(`  ${formatViolation(v)}`);
  out.push('', 'probe log:', ...r.probeLog.map((l) => `  ${formatLog(l)}`));
  out.push('', `commands executed by the SMMU during the workload (${r.seconds} s platform time, ${r.hostSeconds} s host time):`);
  const names = Object.keys(r.executedByOpcode).sort();
  for (const k of names) out.push(`  ${k.padEnd(18)}${n(r.executedByOpcode[k]!).padStart(14)}`);
  if (!names.length) out.push('  (none)');
  out.push(`  ${'total'.padEnd(18)}${n(totalOf(r.executedByOpcode)).padStart(14)}`);
  if (r.check === 'OK') {
    out.push(`issued by the CPUs = executed by the SMMU: OK`);
  } else {
    out.push(`issued by the CPUs = executed by the SMMU: MISMATCH`);
    for (const m of r.mismatches) out.push(`  ${m.opcode}: issued ${m.issued}, executed ${m.executed}`);
  }
  out.push(`syncs: ${n(r.syncs)}`);
  const errs = [
    ...Object.entries(r.errors.cerrors).map(([k, v]) => `${k} ${v}`),
    ...Object.entries(r.errors.gerrors).map(([k, v]) => `GERROR.${k} ${v}`),
    ...(r.errors.syncTimeouts ? [`CMD_SYNC timeouts ${r.errors.syncTimeouts}`] : []),
  ];
  out.push(`errors: ${errs.length ? errs.join(', ') : 'none'}`);
  out.push(`throughput: ${n(r.cmdsPerSec)} commands/s (${n(r.nonSyncCmdsPerSec)}/s without CMD_SYNCs), per platform second`);
  out.push('per CPU:');
  for (const c of r.perCpu) out.push(`  ${JSON.stringify(c)}`);
  const fired = Object.entries(r.faultsFired).map(([k, n]) => `${k} ${n}`);
  if (fired.length) out.push(`hardware faults fired: ${fired.join(', ')}`);
  for (const [k, v] of Object.entries(extra)) out.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return out.join('\n') + '\n';
}
