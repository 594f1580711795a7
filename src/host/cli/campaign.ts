// `smmulab campaign [--count N] [--seed-start S] [--scenario NAME ...] [--shard K/N] [--json]` and
// `smmulab campaign merge FILE... [--json]`: many seeded schedules in lockstep (src/host/campaign).
// Progress goes to stderr when it is a terminal or with --progress (progress.ts), ending with a final
// line; the summary (text, or JSON with --json) to stdout. With --shard the seeds
// are one shard's, and stdout gets JSON Lines (a header, then one result per seed) for `merge`, unless
// --out names the file for them. Exit 0 when every schedule held, 1 when one did not, 2 for bad input.

import { availableParallelism } from 'node:os';
import { writeFileSync } from 'node:fs';
import { HELP_SPEC, intOpt, parseArgs, usage, type OptSpec, UsageError } from './args.ts';
import type { CliCommand } from './command.ts';
import { parseShard, runSeeds, seedsOf, shrinkFailures, type CampaignParams, type Shard } from '../campaign/campaign.ts';
import { doneLine, headerLine, readShards, resultLine, summarize, textSummary, type CampaignSummary } from '../campaign/summary.ts';
import { loadScenario } from '../scenario/catalogue.ts';
import { SCHEDULE_FAULTS } from '../campaign/schedule.ts';
import { ATC_RECOVERY, DEFAULT_ATC_RECOVERY, DRIVER_BUGS } from '../../protocol/ops/smmu.ts';
import { SCENARIO_MAX_CPUS } from '../../protocol/scenario.ts';
import { driverBugOption, lockstepOptionValue } from './lockstep-option.ts';
import { atcRecoveryOption } from './timeout-options.ts';
import { clip } from '../../protocol/check.ts';
import { PROGRESS_SPEC, Progress } from './progress.ts';

const NAME = 'campaign';

const SPEC: Record<string, OptSpec> = {
  count: { type: 'number', help: 'schedules (seeds) in the whole campaign', default: 100 },
  'seed-start': { type: 'number', help: 'first seed', default: 1 },
  scenario: { type: 'string', repeatable: true, help: 'run these built-in scenarios (or files) with the seeds instead of generated schedules' },
  shard: { type: 'string', help: 'run shard K of N (seeds i with i mod N = K-1) and write JSON Lines' },
  out: { type: 'string', help: 'write the JSON Lines (header and one result per seed) to this file' },
  'no-violations': { type: 'boolean', help: 'fail every schedule with a DMA use-after-free, whatever its faults' },
  'atc-recovery': { type: 'string', help: `ATC invalidation timeout recovery: ${ATC_RECOVERY.join(', ')}`, default: DEFAULT_ATC_RECOVERY },
  faults: { type: 'string', help: `comma-separated fault kinds generated schedules draw from (default all: ${SCHEDULE_FAULTS.join(',')})` },
  cpus: { type: 'number', help: 'driver CPUs; those beyond a scenario\'s own run a command-queue stress alongside it (default 1)' },
  lockstep: { type: 'string', help: 'how several CPUs interleave: round-robin, random, pct, pct:D, pct:D:K (default random), seeded by each seed' },
  'driver-bug': { type: 'string', help: `run a known-broken driver variant, to test that a campaign catches it (${DRIVER_BUGS.join(', ')})` },
  workers: { type: 'number', help: 'worker threads (default: one per core)' },
  json: { type: 'boolean', help: 'print the summary as one JSON object' },
  progress: PROGRESS_SPEC,
  help: HELP_SPEC,
};
const MERGE_SPEC: Record<string, OptSpec> = { json: SPEC.json!, progress: PROGRESS_SPEC, help: HELP_SPEC };

/** --faults: known kinds only, each named once. */
function faultsOption(v: unknown): string[] {
  if (v === undefined) return [];
  const kinds = String(v).split(',').map((k) => k.trim());
  for (const k of kinds) if (!SCHEDULE_FAULTS.includes(k)) throw new UsageError(`${NAME}: --faults: '${clip(k)}' is not a fault schedules draw (known: ${SCHEDULE_FAULTS.join(', ')})`);
  if (new Set(kinds).size !== kinds.length) throw new UsageError(`${NAME}: --faults: a kind is named twice`);
  return kinds;
}

function finish(s: CampaignSummary, json: boolean): number {
  process.stdout.write(json ? JSON.stringify(s) + '\n' : textSummary(s));
  for (const f of s.failures) process.stderr.write(`campaign: seed ${f.seed} failed: ${f.problems[0]}\n  reproduce: ${f.reproduce}\n`);
  return s.failed ? 1 : 0;
}

async function merge(argv: string[]): Promise<number> {
  const p = parseArgs(argv, MERGE_SPEC, `${NAME} merge`);
  if (p.opts.help) {
    process.stdout.write(usage(`${NAME} merge`, 'FILE... [--json]', MERGE_SPEC) + '\n');
    return 0;
  }
  const { params, results, hostSeconds } = readShards(p.positional);
  const progress = Progress.of(p);
  await shrinkFailures(params, results, (l) => progress.line(l));
  progress.done(`${NAME} merge: done, ${results.length} schedules`);
  return finish(summarize(params, results, hostSeconds), p.opts.json === true);
}

export const command: CliCommand = {
  name: NAME,
  summary: 'run many seeded fault schedules in lockstep, or merge the shards of one',
  async run(argv) {
    if (argv[0] === 'merge') return merge(argv.slice(1));
    const p = parseArgs(argv, SPEC, NAME);
    if (p.opts.help) {
      process.stdout.write(usage(NAME, '[options] | merge FILE... [--json]', SPEC) + '\n');
      return 0;
    }
    if (p.positional.length) throw new UsageError(`${NAME}: unexpected argument '${clip(p.positional[0]!)}' (did you mean campaign merge FILE...?)`);
    const scenarios = p.lists.scenario ?? [];
    for (const s of scenarios) loadScenario(s);
    const params: CampaignParams = {
      count: intOpt(p, 'count', 1, 1e7, NAME),
      seedStart: intOpt(p, 'seed-start', 0, 0xffff_ffff, NAME),
      scenarios,
      noViolations: p.opts['no-violations'] === true,
      atcRecovery: atcRecoveryOption(NAME, p.opts['atc-recovery']),
      faults: faultsOption(p.opts.faults),
      ...(p.opts.cpus !== undefined ? { cpus: intOpt(p, 'cpus', 1, SCENARIO_MAX_CPUS, NAME) } : {}),
      ...(p.opts.lockstep !== undefined ? { lockstep: lockstepOptionValue(NAME, p.opts.lockstep) } : {}),
      ...(p.opts['driver-bug'] !== undefined ? { bug: driverBugOption(NAME, p.opts['driver-bug']) } : {}),
    };
    const shard: Shard | null = p.opts.shard === undefined ? null : parseShard(String(p.opts.shard));
    const workers = p.opts.workers === undefined ? Math.max(1, availableParallelism()) : intOpt(p, 'workers', 0, 64, NAME);
    const seeds = seedsOf(params, shard ?? undefined);
    const lines: string[] = [headerLine(params, shard)];
    const t0 = performance.now();
    const progress = Progress.of(p);
    let done = 0;
    const line = () => `${NAME}: ${done}/${seeds.length} schedules, ${((done * 1000) / (performance.now() - t0)).toFixed(1)}/s`;
    const results = await runSeeds(params, seeds, workers, () => {
      done++;
      if (done === seeds.length) progress.line(line());
      else progress.tick(line);
    });
    // A shard leaves shrinking to the merge, which sees the whole campaign's failures in seed order.
    if (!shard) await shrinkFailures(params, results, (l) => progress.line(l));
    const hostSeconds = (performance.now() - t0) / 1000;
    progress.done(`${NAME}: done, ${results.length} schedules (${results.filter((r) => !r.ok).length} failed) in ${hostSeconds.toFixed(1)} s`);
    for (const r of results) lines.push(resultLine(r));
    lines.push(doneLine(hostSeconds));
    const jsonl = lines.join('\n') + '\n';
    if (p.opts.out !== undefined) writeFileSync(String(p.opts.out), jsonl);
    const summary = summarize(params, results, hostSeconds);
    if (shard && p.opts.out === undefined) {
      process.stdout.write(jsonl);
      return summary.failed ? 1 : 0;
    }
    return finish(summary, p.opts.json === true);
  },
};
