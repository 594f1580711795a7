// `smmulab run --scenario NAME|FILE [--seed N] [--inject JSON|FILE ...] [--json]`: one scenario in
// lockstep (src/host/scenario/run.ts). Exit 0 when its expectation and the invariants hold, 1 when not
// (the report says which), 2 for bad input. --trace prints trace records on stderr as the run drains
// them, --trace-out writes them as Chrome trace-event JSON (trace-options.ts).

import { parseArgs, noArguments, intOpt, HELP_SPEC, usage, type OptSpec } from './args.ts';
import { loadScenario, parseInjectOption } from '../scenario/catalogue.ts';
import { runScenario } from '../scenario/run.ts';
import { textReport } from '../scenario/report.ts';
import { InputError } from '../../protocol/check.ts';
import { ATC_RECOVERY } from '../../protocol/ops/smmu.ts';
import { atcRecoveryOption } from './timeout-options.ts';
import type { ScenarioReport } from '../../protocol/scenario.ts';
import { TRACE_SPEC } from './boot.ts';
import type { RawTraceRecord } from '../../machine/trace-ring.ts';
import { TRACE_OUT_SPEC, tracePlan, writeTraceOut } from './trace-options.ts';

const NAME = 'run --scenario';

export const SCENARIO_SPEC: Record<string, OptSpec> = {
  scenario: { type: 'string', help: 'a built-in scenario (smmulab scenarios) or a scenario file' },
  seed: { type: 'number', help: "seed of the fault draws (default: the scenario's)" },
  'atc-recovery': { type: 'string', help: `override the scenario's ATC invalidation timeout recovery (${ATC_RECOVERY.join(', ')})` },
  inject: { type: 'string', repeatable: true, help: 'one more fault: JSON, or a file with a fault or a list of them' },
  json: { type: 'boolean', help: 'print the report as one JSON object' },
  trace: TRACE_SPEC,
  'trace-out': TRACE_OUT_SPEC,
  help: HELP_SPEC,
};

export async function runScenarioCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, SCENARIO_SPEC, NAME);
  if (p.opts.help) {
    process.stdout.write(usage('run', '--scenario NAME|FILE [options]', SCENARIO_SPEC) + '\n');
    return 0;
  }
  noArguments(p, 'run');
  const loaded = loadScenario(String(p.opts.scenario));
  const seed = p.opts.seed === undefined ? undefined : intOpt(p, 'seed', 0, 0xffff_ffff, NAME);
  const extra = (p.lists.inject ?? []).flatMap((v, i) => parseInjectOption(v, i));
  const scenario = extra.length ? { ...loaded.scenario, faults: [...(loaded.scenario.faults ?? []), ...extra] } : loaded.scenario;
  const trace = tracePlan('run', { trace: p.opts.trace, traceOut: p.opts['trace-out'] });
  let r: ScenarioReport;
  try {
    const atcRecovery = p.opts['atc-recovery'] === undefined ? undefined : atcRecoveryOption('run', p.opts['atc-recovery']);
    const tracing = trace.options ? { trace: trace.options, onTrace: (recs: RawTraceRecord[], lost: number) => trace.sink.take(recs, lost) } : {};
    r = await runScenario(scenario, loaded.name, { ...(seed !== undefined ? { seed } : {}), ...(atcRecovery ? { atcRecovery } : {}), baseDir: loaded.baseDir, ...tracing });
  } catch (e) {
    // What only a run can check (topology files, feature profiles) names the scenario file too.
    if (e instanceof InputError) throw new InputError(`${loaded.file}: ${e.message}`);
    throw e;
  }
  process.stdout.write(p.opts.json ? JSON.stringify(r) + '\n' : textReport(r));
  // (The file is written whatever the verdict: a failing run is the one worth looking at.)
  const traced = writeTraceOut('run', trace, `scenario ${r.scenario} seed ${r.seed}`);
  if (!r.ok) {
    process.stderr.write(`run: scenario ${r.scenario} (seed ${r.seed}) did not hold: ${r.problems[0]}${r.problems.length > 1 ? ` (+${r.problems.length - 1} more)` : ''}\n`);
    process.stderr.write(`  reproduce: smmulab run --scenario ${loaded.file} --seed ${r.seed} --atc-recovery ${r.atcRecovery}${(p.lists.inject ?? []).map((v) => ` --inject '${v}'`).join('')}\n`);
    return 1;
  }
  return traced;
}
