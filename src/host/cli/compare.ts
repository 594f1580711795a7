// `smmulab compare [--policies LIST] [--scenario NAME ...] [--count N] [--seed-start S] [--json]`: the
// ATC invalidation timeout recovery designs side by side on the same scenarios and campaign seeds
// (src/host/campaign/compare.ts). Progress on stderr when it is a terminal or with --progress
// (progress.ts), ending with a final line; tables (or JSON) on stdout; exit 0, 2 for bad input.

import { availableParallelism } from 'node:os';
import { HELP_SPEC, intOpt, noArguments, parseArgs, usage, UsageError, type OptSpec } from './args.ts';
import type { CliCommand } from './command.ts';
import { ATC_SCENARIOS, compare, textComparison } from '../campaign/compare.ts';
import { loadScenario } from '../scenario/catalogue.ts';
import { ATC_RECOVERY, type AtcRecovery } from '../../protocol/ops/smmu.ts';
import { atcRecoveryOption } from './timeout-options.ts';
import { PROGRESS_SPEC, Progress } from './progress.ts';

const NAME = 'compare';

const SPEC: Record<string, OptSpec> = {
  policies: { type: 'string', help: `comma-separated policies (default all: ${ATC_RECOVERY.join(',')})` },
  scenario: { type: 'string', repeatable: true, help: `scenarios to compare on (default: ${ATC_SCENARIOS.join(', ')})` },
  count: { type: 'number', help: 'campaign seeds run under each policy', default: 200 },
  'seed-start': { type: 'number', help: 'first campaign seed', default: 1 },
  workers: { type: 'number', help: 'worker threads for the campaign (default: one per core)' },
  json: { type: 'boolean', help: 'print the comparison as one JSON object' },
  progress: PROGRESS_SPEC,
  help: HELP_SPEC,
};

export const command: CliCommand = {
  name: NAME,
  summary: 'run the ATC timeout recovery designs side by side on the same scenarios and seeds',
  async run(argv) {
    const p = parseArgs(argv, SPEC, NAME);
    if (p.opts.help) {
      process.stdout.write(usage(NAME, '[options]', SPEC) + '\n');
      return 0;
    }
    noArguments(p, NAME);
    const policies: AtcRecovery[] = p.opts.policies === undefined ? [...ATC_RECOVERY] : String(p.opts.policies).split(',').map((x) => atcRecoveryOption(NAME, x.trim()));
    if (new Set(policies).size !== policies.length) throw new UsageError(`${NAME}: --policies names a policy twice`);
    const scenarios = p.lists.scenario ?? ATC_SCENARIOS;
    for (const s of scenarios) loadScenario(s);
    const count = intOpt(p, 'count', 0, 1e6, NAME);
    const seedStart = intOpt(p, 'seed-start', 0, 0xffff_ffff, NAME);
    const workers = p.opts.workers === undefined ? Math.max(1, availableParallelism()) : intOpt(p, 'workers', 0, 64, NAME);
    const progress = Progress.of(p);
    const t0 = performance.now();
    const c = await compare(policies, scenarios, count, seedStart, workers, (l) => progress.line(l));
    progress.done(`${NAME}: done, ${policies.length} policies on ${scenarios.length} scenarios and ${count} seeds in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    process.stdout.write(p.opts.json ? JSON.stringify(c) + '\n' : textComparison(c));
    return 0;
  },
};
