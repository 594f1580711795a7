// `smmulab run --scenario NAME|FILE [--seed N] [--inject JSON|FILE ...] [--json]`: one scenario in
// lockstep (src/host/scenario/run.ts). Exit 0 when its expectation and the invariants hold, 1 when not
// (the report says which), 2 for bad input.

import { parseArgs, noArguments, intOpt, HELP_SPEC, usage, type OptSpec } from './args.ts';
import { loadScenario, parseInjectOption } from '../scenario/catalogue.ts';
import { runScenario } from '../scenario/run.ts';
import { textReport } from '../scenario/report.ts';
import { InputError } from '../../protocol/check.ts';
import { ATC_RECOVERY } from '../../protocol/ops/smmu.ts';
import { atcRecoveryOption } from './timeout-options.ts';
import type { ScenarioReport } from '../../protocol/scenario.ts';

const NAME = 'run --scenario';

export const SCENARIO_SPEC: Record<string, OptSpec> = {
  scenario: { type: 'string', help: 'a built-in scenario (smmulab scenarios) or a scenario file' },
  seed: { type: 'number', help: "seed of the fault draws (default: the scenario's)" },
  'atc-recovery': { type: 'string', help: `override the scenario's ATC invalidation timeout recovery (${ATC_RECOVERY.join(', ')})` },
  inject: { type: 'string', repeatable: true, help: 'one more fault: JSON, or a file with a fault or a list of them' },
  json: { type: 'boolean', help: 'print the report as one JSON object' },
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
  let r: ScenarioReport;
  try {
    const atcRecovery = p.opts['atc-recovery'] === undefined ? undefined : atcRecoveryOption('run', p.opts['atc-recovery']);
    r = await runScenario(scenario, loaded.name, { ...(seed !== undefined ? { seed } : {}), ...(atcRecovery ? { atcRecovery } : {}), baseDir: loaded.baseDir });
  } catch (e) {
    // What only a run can check (topology files, feature profiles) names the scenario file too.
    if (e instanceof InputError) throw new InputError(`${loaded.file}: ${e.message}`);
    throw e;
  }
  process.stdout.write(p.opts.json ? JSON.stringify(r) + '\n' : textReport(r));
  if (!r.ok) {
    process.stderr.write(`run: scenario ${r.scenario} (seed ${r.seed}) did not hold: ${r.problems[0]}${r.problems.length > 1 ? ` (+${r.problems.length - 1} more)` : ''}\n`);
    process.stderr.write(`  reproduce: smmulab run --scenario ${loaded.file} --seed ${r.seed} --atc-recovery ${r.atcRecovery}${(p.lists.inject ?? []).map((v) => ` --inject '${v}'`).join('')}\n`);
    return 1;
  }
  return 0;
}
