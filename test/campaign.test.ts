// Campaigns through the paths a user (or a CI system) takes: the command line (`node bin/smmulab.mjs
// campaign ...` in a child process) for a CI-sized run, shards and their merge, failure reports and
// shrinking, named scenarios and bad input; the API (scheduleOf / toScenario / runScenario) for what a
// seed stands for and for re-running a shrunk schedule; and the launch files (the GitHub Actions
// workflow and the Kubernetes Indexed Job), parsed as YAML and their shell scripts executed with
// `node`, `git`, `npm` and `cd` stubbed out, so that the command lines they would run are checked
// rather than their text.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runCli, type CliResult } from './fixtures/run-cli.ts';
import { functionsOf, scheduleOf, toScenario } from '../src/host/campaign/schedule.ts';
import { runScenario } from '../src/host/scenario/run.ts';
import { checkScenario, type Scenario } from '../src/protocol/scenario.ts';
import type { CampaignSummary } from '../src/host/campaign/summary.ts';
import type { ScheduleResult } from '../src/host/campaign/run-one.ts';

const REPO = new URL('../', import.meta.url);
const WORKFLOW = new URL('.github/workflows/campaign.yml', REPO);
const K8S_JOB = new URL('launch/kubernetes/campaign-job.yaml', REPO);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'smmulab-campaign-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A fresh directory under this file's temp dir. */
function dir(name: string): string {
  return mkdtempSync(join(tmp, `${name}-`));
}

/** The JSON summary a campaign (or merge) printed on stdout with --json. */
function summaryOf(r: CliResult, what: string): CampaignSummary {
  try {
    return JSON.parse(r.stdout) as CampaignSummary;
  } catch {
    throw new Error(`${what}: stdout is not one JSON object (exit ${r.code})\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`);
  }
}

/** The summary without its host timing: what a run and merged shards must agree on. */
function withoutTiming(s: CampaignSummary): Omit<CampaignSummary, 'timing'> {
  const { timing, ...rest } = s;
  expect(typeof timing.hostSeconds).toBe('number');
  return rest;
}

interface ShardFile {
  header: { type: string; count: number; seedStart: number; scenarios: string[]; noViolations: boolean; atcRecovery: string; faults: string[]; shard: string };
  results: (ScheduleResult & { type: string })[];
}

/** A shard's JSON Lines: the header line, one result per seed, then the line saying how long it took. */
function readJsonl(file: string): ShardFile {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const first = parsed[0];
  const last = parsed[parsed.length - 1];
  const rest = parsed.slice(1, -1);
  expect(first?.type, `${file}: the first line is the campaign header`).toBe('campaign');
  expect(last?.type, `${file}: the last line is the done line`).toBe('done');
  expect(last?.hostSeconds, `${file}: the done line says how long the shard took`).toBeGreaterThan(0);
  for (const r of rest) expect(r.type, `${file}: every line between is a result`).toBe('result');
  return { header: first as unknown as ShardFile['header'], results: rest as unknown as ShardFile['results'] };
}

/** Functions in a scenario's (inline) topology. */
const countFns = (s: Scenario) => (s.topology as { ports: { functions: unknown[] }[] }).ports.reduce((n, p) => n + p.functions.length, 0);

/** An error exit for bad input: code 2, exactly one stderr line, no stack trace, nothing on stdout. */
function expectInputError(r: CliResult, what: string, mentions: string[]): string {
  expect(r.code, `${what}: ${r.stderr}`).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, `${what}: one stderr line\n${r.stderr}`).toHaveLength(1);
  expect(r.stderr, what).not.toMatch(/^\s+at /m);
  expect(r.stderr, what).not.toContain('Error:');
  expect(r.stdout, `${what}: nothing on stdout`).toBe('');
  for (const m of mentions) expect(lines[0], `${what}: the message names '${m}'`).toContain(m);
  return lines[0]!;
}

// ---------------------------------------------------------------------------------------------------

describe('a CI-sized campaign (CLI)', () => {
  // Seeds CI_SEED .. CI_SEED+999: known to hold (every schedule passes) when this test was written.
  const CI_SEED = 100_001;
  const COUNT = 1000;

  it(
    `campaign --count ${COUNT} --seed-start ${CI_SEED} --json: every schedule holds, nothing lost or duplicated, no hangs, the fault catalogue exercised`,
    async () => {
      const t0 = performance.now();
      // --progress: stderr is a pipe here, where progress lines are off unless asked for.
      const r = await runCli(['campaign', '--count', String(COUNT), '--seed-start', String(CI_SEED), '--json', '--progress'], 230_000);
      const seconds = (performance.now() - t0) / 1000;
      const where = `campaign of seeds ${CI_SEED}..${CI_SEED + COUNT - 1} (exit ${r.code}, ${seconds.toFixed(1)} s)\nstderr tail: ${r.stderr.slice(-3000)}`;
      expect(r.code, where).toBe(0);
      const s = summaryOf(r, where);

      expect(s.campaign, where).toEqual({ count: COUNT, seedStart: CI_SEED, scenarios: [], noViolations: false, atcRecovery: 'quarantine-bisect', faults: [] });
      expect(s.schedules, where).toBe(COUNT);
      expect(s.passed, where).toBe(COUNT);
      expect(s.failed, where).toBe(0);
      expect(s.failures, where).toEqual([]);
      expect(s.totals.lostCommands, where).toBe(0);
      expect(s.totals.duplicatedCommands, where).toBe(0);
      expect(s.totals.hangs, where).toBe(0);

      // The schedules really exercise the catalogue: at least 15 kinds fired, each in some schedule.
      const fired = Object.entries(s.byFault).filter(([, b]) => b.fired > 0 && b.schedules > 0);
      expect(fired.length, `${where}\nfault kinds that fired: ${fired.map(([k]) => k).join(', ')}`).toBeGreaterThanOrEqual(15);
      for (const [k, b] of Object.entries(s.byFault)) {
        expect(b.schedules, `${k}: schedules <= campaign`).toBeLessThanOrEqual(COUNT);
        expect(b.fired, `${k}: fired at least once per schedule it counts`).toBeGreaterThanOrEqual(b.schedules);
        expect(b.failed, `${k}: failed`).toBe(0);
      }
      // The totals agree with the table.
      expect(s.totals.faultsInjected, where).toBe(Object.values(s.byFault).reduce((n, b) => n + b.fired, 0));
      expect(s.totals.schedulesWithViolations, where).toBeLessThanOrEqual(COUNT);
      expect(s.totals.dmaUseAfterFree, where).toBeGreaterThanOrEqual(s.totals.schedulesWithViolations);
      expect(s.timing.hostSeconds, where).toBeGreaterThan(0);

      // Progress went to stderr, counting up to the whole campaign.
      const progress = [...r.stderr.matchAll(/^campaign: (\d+)\/(\d+) schedules, [\d.]+\/s$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
      expect(progress.length, `${where}: progress lines on stderr`).toBeGreaterThanOrEqual(2);
      for (const [, of] of progress) expect(of).toBe(COUNT);
      const done = progress.map(([d]) => d!);
      expect(done, 'progress counts up').toEqual([...done].sort((a, b) => a - b));
      expect(done.at(-1), 'the last progress line is the whole campaign').toBe(COUNT);
      expect(r.stderr, 'a final line ends the progress').toMatch(new RegExp(`^campaign: done, ${COUNT} schedules \\(0 failed\\) in [\\d.]+ s$`, 'm'));
      expect(r.stderr, 'progress goes to stderr, not stdout').not.toBe('');
      expect(r.stdout).not.toContain('schedules, ');
      console.log(`campaign of ${COUNT} seeds from ${CI_SEED}: ${seconds.toFixed(1)} s, ${fired.length} fault kinds fired`);
    },
    240_000,
  );
});

// ---------------------------------------------------------------------------------------------------

describe('shards and merge (CLI)', () => {
  const SEED = 501;
  const COUNT = 60;
  const base = ['campaign', '--count', String(COUNT), '--seed-start', String(SEED)];
  let d: string;
  let files: string[];
  let unsharded: CampaignSummary;

  beforeAll(async () => {
    d = dir('shards');
    files = [1, 2, 3].map((k) => join(d, `shard-${k}.jsonl`));
    // The shards run with different worker counts (0: in the main thread): the results must not depend on it.
    const workers = [['--workers', '0'], ['--workers', '1'], []];
    const [u, ...shards] = await Promise.all([
      runCli([...base, '--json'], 120_000),
      ...files.map((f, i) => runCli([...base, '--shard', `${i + 1}/3`, '--out', f, ...workers[i]!], 120_000)),
    ]);
    expect(u!.code, `unsharded: ${u!.stderr}`).toBe(0);
    unsharded = summaryOf(u!, 'unsharded campaign');
    shards.forEach((r, i) => expect(r.code, `shard ${i + 1}/3: ${r.stderr}`).toBe(0));
  }, 150_000);

  it('the shards hold disjoint seeds that cover the campaign, each the i-th seed with i mod 3 = K-1', () => {
    const seen = new Map<number, number>();
    files.forEach((f, i) => {
      const { header, results } = readJsonl(f);
      expect(header).toEqual({ type: 'campaign', count: COUNT, seedStart: SEED, scenarios: [], noViolations: false, atcRecovery: 'quarantine-bisect', faults: [], shard: `${i + 1}/3` });
      expect(results.length, f).toBe(COUNT / 3);
      for (const r of results) {
        expect(seen.has(r.seed), `seed ${r.seed} in shard ${seen.get(r.seed)} and shard ${i + 1}`).toBe(false);
        seen.set(r.seed, i + 1);
        expect((r.seed - SEED) % 3, `seed ${r.seed} belongs to shard ${((r.seed - SEED) % 3) + 1}, found in ${i + 1}`).toBe(i);
        expect(r.scenario).toBe(`campaign-${r.seed}`);
        expect(r.ok, `seed ${r.seed}: ${r.problems.join('; ')}`).toBe(true);
      }
      const seeds = results.map((r) => r.seed);
      expect(seeds, `${f}: results sorted by seed`).toEqual([...seeds].sort((a, b) => a - b));
    });
    expect([...seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: COUNT }, (_, i) => SEED + i));
  });

  it('campaign merge of the three shards gives the unsharded summary (timing aside)', async () => {
    const r = await runCli(['campaign', 'merge', ...files, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const merged = summaryOf(r, 'merge');
    expect(unsharded.schedules).toBe(COUNT);
    expect(unsharded.passed).toBe(COUNT);
    expect(Object.keys(unsharded.byFault).length, 'the campaign fired some faults (else the comparison is weak)').toBeGreaterThanOrEqual(5);
    expect(withoutTiming(merged)).toEqual(withoutTiming(unsharded));
    // In another order, too.
    const r2 = await runCli(['campaign', 'merge', files[2]!, files[0]!, files[1]!, '--json']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(withoutTiming(summaryOf(r2, 'merge 3 1 2'))).toEqual(withoutTiming(unsharded));
  });

  it('merging two of three shards: exit 2, one line saying schedules are missing', async () => {
    const r = await runCli(['campaign', 'merge', files[0]!, files[1]!, '--json']);
    expectInputError(r, 'merge of shards 1 and 2', [`40 of the campaign's ${COUNT} schedules`, 'missing']);
  });

  it('a shard given twice: exit 2, one line naming the file, the line and the repeated seed', async () => {
    const r = await runCli(['campaign', 'merge', ...files, files[1]!]);
    // Its header is the first thing that repeats.
    expectInputError(r, 'shard 2 given twice', [`${files[1]}:1`, 'shard 2/3', 'twice']);
  });

  it('a garbage file: exit 2, one line naming file:line', async () => {
    const g = join(d, 'garbage.jsonl');
    writeFileSync(g, 'this is not JSON\n');
    expectInputError(await runCli(['campaign', 'merge', g]), 'garbage file', [`${g}:1`]);
    // Garbage after good lines: the line number is the garbage's.
    const lines = readFileSync(files[0]!, 'utf8').split('\n');
    const g2 = join(d, 'garbage-at-3.jsonl');
    writeFileSync(g2, [lines[0], lines[1], '{"type": "result", oops', ...lines.slice(2)].join('\n'));
    expectInputError(await runCli(['campaign', 'merge', g2, files[1]!, files[2]!]), 'garbage on line 3', [`${g2}:3`]);
    // A JSON line that is neither a header nor a result.
    const g3 = join(d, 'stranger.jsonl');
    writeFileSync(g3, [lines[0], '{"type":"other"}', ''].join('\n'));
    expectInputError(await runCli(['campaign', 'merge', g3]), 'an unknown line', [`${g3}:2`]);
  });

  it('a shard of another campaign, or of another shard count: exit 2 naming the file', async () => {
    const lines = readFileSync(files[2]!, 'utf8').split('\n');
    const other = join(d, 'other-campaign.jsonl');
    writeFileSync(other, [lines[0]!.replace(`"seedStart":${SEED}`, `"seedStart":${SEED + 1}`), ...lines.slice(1)].join('\n'));
    expect(lines[0]).toContain(`"seedStart":${SEED}`);
    expectInputError(await runCli(['campaign', 'merge', files[0]!, files[1]!, other]), 'another campaign', [`${other}:1`, 'another campaign']);
    const otherN = join(d, 'other-n.jsonl');
    writeFileSync(otherN, [lines[0]!.replace('"shard":"3/3"', '"shard":"3/4"'), ...lines.slice(1)].join('\n'));
    expect(lines[0]).toContain('"shard":"3/3"');
    expectInputError(await runCli(['campaign', 'merge', files[0]!, files[1]!, otherN]), 'another shard count', [`${otherN}:1`, '3/4']);
    expectInputError(await runCli(['campaign', 'merge', join(d, 'no-such-file.jsonl')]), 'a missing file', ['no-such-file.jsonl', 'cannot read']);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('what a seed stands for (API)', () => {
  /** A generated scenario without what names its seed. */
  const body = (seed: number) => {
    const { name: _n, summary: _s, seed: _seed, ...rest } = toScenario(scheduleOf(seed), seed);
    return rest;
  };

  it('the same seed gives the same schedule and scenario; the scenario is valid as a file', () => {
    for (const seed of [1, 2, 17, 292, 4_000_000_000]) {
      const a = scheduleOf(seed);
      const b = scheduleOf(seed);
      expect(a).not.toBe(b);
      expect({ ...a, faults: a.faults.map((f) => f.label), steps: a.steps.map((x) => x.label) }).toEqual({ ...b, faults: b.faults.map((f) => f.label), steps: b.steps.map((x) => x.label) });
      const s = toScenario(a, seed);
      expect(toScenario(b, seed)).toEqual(s);
      expect(s.name).toBe(`campaign-${seed}`);
      expect(s.seed).toBe(seed);
      // As a file would hold it: through JSON, checked again.
      const again = checkScenario(JSON.parse(JSON.stringify(s)), `campaign-${seed}.json`);
      expect(again).toEqual(s);
      expect(s.workload.length).toBe(a.steps.length);
      expect(s.workload[0]!.do, 'the workload starts with DMA').toBe('ats-dma');
      expect((s.faults ?? []).length).toBe(a.faults.length);
    }
  });

  it('different seeds give different schedules', () => {
    expect(body(1)).not.toEqual(body(2));
    const distinct = new Set(Array.from({ length: 100 }, (_, i) => JSON.stringify(body(i + 1))));
    expect(distinct.size, 'distinct scenarios among seeds 1..100').toBeGreaterThanOrEqual(95);
  });

  it('topologies stay within 1..64 functions over seeds 1..300, and span the range', () => {
    const sizes: number[] = [];
    for (let seed = 1; seed <= 300; seed++) {
      const sch = scheduleOf(seed);
      const n = functionsOf(sch).length;
      expect(n, `seed ${seed}`).toBeGreaterThanOrEqual(1);
      expect(n, `seed ${seed}`).toBeLessThanOrEqual(64);
      expect(new Set(functionsOf(sch)).size, `seed ${seed}: distinct BDFs`).toBe(n);
      expect(countFns(toScenario(sch, seed)), `seed ${seed}: the scenario's topology`).toBe(n);
      sizes.push(n);
    }
    expect(Math.min(...sizes)).toBe(1);
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(48);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('failure reports and shrinking', () => {
  // Seeds 285..292 with --no-violations under the mainline driver (--atc-recovery none): 288 and 292
  // leave a DMA use-after-free (atc-inv-no-answer fires; 292 on 3 functions with that one fault).
  // Under the default recovery policy the same seeds pass (tested below). Found by running
  //   smmulab campaign --count 300 --seed-start 1 --shard 1/1 --out F
  // and listing the results with dmaUseAfterFree > 0 (171 185 194 225 234 284 288 292 then); this
  // range was picked for its small topologies, so that shrinking stays quick.
  const START = 285;
  const COUNT = 8;
  const KNOWN_FAILING = 292;
  let r: CliResult;
  let s: CampaignSummary;

  beforeAll(async () => {
    r = await runCli(['campaign', '--count', String(COUNT), '--seed-start', String(START), '--no-violations', '--atc-recovery', 'none', '--json'], 120_000);
    s = summaryOf(r, `campaign --count ${COUNT} --seed-start ${START} --no-violations`);
  }, 130_000);

  it(`campaign --count ${COUNT} --seed-start ${START} --no-violations: exit 1; stderr names each failing seed and its reproduce command`, () => {
    expect(r.code, r.stderr).toBe(1);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.failed).toBe(s.failures.length);
    expect(s.passed + s.failed).toBe(COUNT);
    expect(s.failures.map((f) => f.seed)).toContain(KNOWN_FAILING);
    for (const f of s.failures) {
      expect(f.seed).toBeGreaterThanOrEqual(START);
      expect(f.seed).toBeLessThan(START + COUNT);
      expect(f.problems.join('\n')).toMatch(/DMA use-after-free: \d+ access\(es\) \(none allowed\)/);
      expect(f.reproduce).toBe(`smmulab campaign --seed-start ${f.seed} --count 1 --no-violations --atc-recovery none`);
      expect(r.stderr).toContain(`campaign: seed ${f.seed} failed: ${f.problems[0]}`);
      expect(r.stderr).toContain(`reproduce: smmulab campaign --seed-start ${f.seed} --count 1 --no-violations --atc-recovery none`);
    }
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // The failing seeds' use-after-free is counted in the totals.
    expect(s.totals.schedulesWithViolations).toBeGreaterThanOrEqual(s.failed);
  });

  it('the reproduce command fails again, naming the same seed and printing its smallest failing schedule', async () => {
    const line = r.stderr.split('\n').find((l) => l.includes(`reproduce: smmulab campaign --seed-start ${KNOWN_FAILING} `));
    expect(line, r.stderr).toBeDefined();
    const args = line!.replace(/^\s*reproduce: smmulab /, '').trim().split(/\s+/);
    const again = await runCli(args, 120_000);
    expect(again.code, again.stderr).toBe(1);
    expect(again.stderr).toContain(`campaign: seed ${KNOWN_FAILING} failed:`);
    expect(again.stdout).toContain(`FAILED seed ${KNOWN_FAILING} (campaign-${KNOWN_FAILING})`);
    expect(again.stdout).toContain(`1 schedules from seed ${KNOWN_FAILING}, ATC recovery none, no violations allowed: 0 passed, 1 failed`);
    // The text report carries the shrunk schedule as one JSON line: the same as the --json campaign's
    // (shrinking a seed is deterministic, whichever campaign it failed in).
    const lines = again.stdout.split('\n');
    const i = lines.findIndex((l) => l.includes('smallest failing schedule'));
    expect(i, again.stdout).toBeGreaterThan(0);
    const shrunk = JSON.parse(lines[i + 1]!) as Scenario;
    expect(shrunk).toEqual(s.failures.find((f) => f.seed === KNOWN_FAILING)!.shrunk);
  }, 130_000);

  it('each failure carries a shrunk schedule no larger than its own that still leaves a DMA use-after-free', async () => {
    const shrunkOnes = s.failures.filter((f) => f.shrunk);
    expect(shrunkOnes.length, 'up to three failures are shrunk').toBe(Math.min(3, s.failures.length));
    const d = dir('shrunk');
    for (const f of shrunkOnes) {
      const shrunk = f.shrunk!;
      const original = scheduleOf(f.seed);
      const origScenario = toScenario(original, f.seed);
      expect(countFns(shrunk), `seed ${f.seed}: functions`).toBeLessThanOrEqual(functionsOf(original).length);
      expect(countFns(shrunk)).toBeGreaterThanOrEqual(1);
      expect((shrunk.faults ?? []).length, `seed ${f.seed}: faults`).toBeLessThanOrEqual((origScenario.faults ?? []).length);
      expect(shrunk.workload.length, `seed ${f.seed}: steps`).toBeLessThanOrEqual(origScenario.workload.length);
      // A valid scenario file ...
      const file = join(d, `shrunk-${f.seed}.json`);
      writeFileSync(file, JSON.stringify(shrunk, null, 2));
      expect(checkScenario(JSON.parse(readFileSync(file, 'utf8')), file)).toEqual(shrunk);
      // ... that still fails as the campaign judged it: a use-after-free (API) ...
      const rep = await runScenario(shrunk, shrunk.name ?? `shrunk-${f.seed}`);
      expect(rep.dmaUseAfterFree, `seed ${f.seed}: the shrunk schedule's use-after-free`).toBeGreaterThan(0);
      // ... and through `smmulab run --scenario FILE`: under --no-violations the shrunk schedule expects
      // no use-after-free, so the run fails the same way (exit 1).
      expect(shrunk.expect).toEqual({ violations: 'none' });
      const cli = await runCli(['run', '--scenario', file, '--json']);
      expect(cli.code, `run --scenario ${file}: ${cli.stderr}`).toBe(1);
      const cliReport = JSON.parse(cli.stdout) as { dmaUseAfterFree: number; seed: number };
      expect(cliReport.dmaUseAfterFree, `run --scenario ${file}`).toBeGreaterThan(0);
      expect(cliReport.dmaUseAfterFree).toBe(rep.dmaUseAfterFree);
    }
  }, 120_000);

  it('the same failing campaign in two shards, merged: the same failures, shrunk the same (timing aside)', async () => {
    const d = dir('failing-shards');
    const files = [1, 2].map((k) => join(d, `shard-${k}.jsonl`));
    const runs = await Promise.all(files.map((f, i) => runCli(['campaign', '--count', String(COUNT), '--seed-start', String(START), '--no-violations', '--atc-recovery', 'none', '--shard', `${i + 1}/2`, '--out', f], 120_000)));
    // The failing seeds (288, 292) are at odd offsets (3, 7) from 285: shard 2 fails, shard 1 passes.
    expect(runs.map((x) => x.code)).toEqual([0, 1]);
    const merged = await runCli(['campaign', 'merge', ...files, '--json'], 120_000);
    expect(merged.code, merged.stderr).toBe(1);
    const m = summaryOf(merged, 'campaign merge of the failing shards');
    expect({ ...m, timing: null }).toEqual({ ...s, timing: null });
  }, 130_000);

  it('the same seeds under the default recovery policy: no use-after-free, every schedule holds', async () => {
    const ok = await runCli(['campaign', '--count', String(COUNT), '--seed-start', String(START), '--no-violations', '--json'], 120_000);
    expect(ok.code, ok.stderr).toBe(0);
    const d = summaryOf(ok, 'the default policy');
    expect(d.campaign.atcRecovery).toBe('quarantine-bisect');
    expect(d.failed).toBe(0);
    expect(d.totals.dmaUseAfterFree).toBe(0);
    // The same faults fired as under the mainline driver: the difference is the driver's recovery.
    expect(d.byFault['atc-inv-no-answer']?.fired).toBeGreaterThan(0);
  }, 130_000);
});

// ---------------------------------------------------------------------------------------------------

describe('named scenarios and bad input (CLI)', () => {
  it('campaign --scenario atc-timeout --scenario hang --count 4: runs each named scenario twice', async () => {
    const out = join(dir('named'), 'named.jsonl');
    const r = await runCli(['campaign', '--scenario', 'atc-timeout', '--scenario', 'hang', '--count', '4', '--json', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const s = summaryOf(r, 'named scenarios');
    expect(s.schedules).toBe(4);
    expect(s.passed).toBe(4);
    expect(s.failures).toEqual([]);
    expect(s.campaign.scenarios).toEqual(['atc-timeout', 'hang']);
    const { header, results } = readJsonl(out);
    expect(header.shard).toBe('1/1');
    expect(header.scenarios).toEqual(['atc-timeout', 'hang']);
    // Seed i runs scenario i mod 2: seeds 1 and 3 'hang', 2 and 4 'atc-timeout'.
    expect(results.map((x) => [x.seed, x.scenario])).toEqual([
      [1, 'hang'],
      [2, 'atc-timeout'],
      [3, 'hang'],
      [4, 'atc-timeout'],
    ]);
    expect(s.byFault['atc-inv-no-answer']?.schedules, 'atc-timeout ran twice').toBe(2);
    expect(s.byFault['hang']?.schedules, 'hang ran twice').toBe(2);
  });

  it('bad input: exit 2, one line each, no stack trace', async () => {
    const cases: { args: string[]; mentions: string[] }[] = [
      { args: ['--scenario', 'nope'], mentions: ["'nope'"] },
      { args: ['--shard', '3/2'], mentions: ['--shard', '3/2'] },
      { args: ['--shard', 'x'], mentions: ['--shard', "'x'"] },
      { args: ['--shard', '0/2'], mentions: ['--shard', '0/2'] },
      { args: ['--count', '0'], mentions: ['--count', '0'] },
      { args: ['--count', '2.5'], mentions: ['--count'] },
      { args: ['--seed-start', '-1'], mentions: ['--seed-start'] },
      { args: ['stray'], mentions: ["'stray'"] },
      { args: ['merge'], mentions: ['campaign merge'] },
    ];
    const results = await Promise.all(cases.map((c) => runCli(['campaign', ...c.args])));
    cases.forEach((c, i) => expectInputError(results[i]!, `campaign ${c.args.join(' ')}`, c.mentions));
  });
});

// ---------------------------------------------------------------------------------------------------

/** Stubs for the shell scripts: `node` records its arguments (one a line) and exits with $STUB_RC. */
const NODE_STUB = `node() { printf '%s\\n' "$@" > "$STUB_LOG"; return "$STUB_RC"; }\n`;

interface ScriptRun {
  code: number | null;
  /** The arguments the script gave `node`, or null if it never ran it. */
  nodeArgs: string[] | null;
  stderr: string;
}

function runScript(shell: string[], prelude: string, script: string, cwd: string, env: Record<string, string>, stubRc: number): ScriptRun {
  const log = join(cwd, `node-args-${Math.random().toString(36).slice(2)}.txt`);
  const r = spawnSync(shell[0]!, [...shell.slice(1), prelude + script], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, STUB_LOG: log, STUB_RC: String(stubRc) }, encoding: 'utf8' });
  let nodeArgs: string[] | null = null;
  try {
    nodeArgs = readFileSync(log, 'utf8').split('\n').slice(0, -1);
    rmSync(log);
  } catch {
    nodeArgs = null;
  }
  return { code: r.status, nodeArgs, stderr: r.stderr };
}

/** Substitutes a workflow's `${{ expr }}` from `values`; an expression it does not know fails the test. */
function substitute(script: string, values: Record<string, string>): string {
  return script.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, e: string) => {
    expect(Object.keys(values), `workflow expression '${e}'`).toContain(e);
    return values[e]!;
  });
}

/** A glob with `*` only, as a RegExp over whole names. */
const globRe = (g: string) => new RegExp(`^${g.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** The value of `--name` in an argument list. */
function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
}

interface Step {
  uses?: string;
  run?: string;
  env?: Record<string, unknown>;
  with?: Record<string, unknown>;
}
interface Workflow {
  on: { workflow_dispatch: { inputs: Record<string, { default: string }> } };
  jobs: Record<string, { needs?: string | string[]; strategy?: { matrix: { shard: unknown[] } }; steps: Step[] }>;
}

describe('launch files', () => {
  it('.github/workflows/campaign.yml: N matrix shards run --shard K/N; a merge job after them runs campaign merge on every shard file', () => {
    const wf = parseYaml(readFileSync(WORKFLOW, 'utf8')) as Workflow;
    const inputs = wf.on.workflow_dispatch.inputs;
    expect(Object.keys(inputs).sort()).toEqual(['count', 'seed-start']);
    const shardJob = wf.jobs['shard'];
    expect(shardJob, 'a job named shard').toBeDefined();
    const list = shardJob!.strategy!.matrix.shard;
    const N = list.length;
    expect(N).toBeGreaterThanOrEqual(2);
    expect(list, 'matrix.shard is 1..N').toEqual(Array.from({ length: N }, (_, i) => i + 1));

    const runSteps = shardJob!.steps.filter((s) => s.run?.includes('campaign'));
    expect(runSteps, 'one step runs the campaign').toHaveLength(1);
    const script = runSteps[0]!.run!;
    expect(script).toMatch(new RegExp(`--shard\\s+"?\\$\\{\\{\\s*matrix\\.shard\\s*\\}\\}/${N}"?`));
    const upload = shardJob!.steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
    expect(upload, 'the shard job uploads its JSON Lines').toBeDefined();

    // Run the step's script (GitHub's default bash) with `node` stubbed, once per matrix shard.
    const GH_BASH = ['bash', '--noprofile', '--norc', '-eo', 'pipefail', '-c'];
    const d = dir('workflow');
    const outs: string[] = [];
    const artifacts: string[] = [];
    for (const k of list as number[]) {
      const values = { 'inputs.count': inputs['count']!.default, 'inputs.seed-start': inputs['seed-start']!.default, 'matrix.shard': String(k) };
      // The step's environment (where the inputs go), with GitHub's ${{ }} expressions substituted.
      const stepEnv = Object.fromEntries(Object.entries(runSteps[0]!.env ?? {}).map(([key, v]) => [key, substitute(String(v), values)]));
      const run = runScript(GH_BASH, NODE_STUB, substitute(script, values), d, stepEnv, 0);
      expect(run.code, `shard ${k}: ${run.stderr}`).toBe(0);
      const args = run.nodeArgs!;
      expect(args.slice(0, 2), `shard ${k}`).toEqual(['bin/smmulab.mjs', 'campaign']);
      expect(opt(args, '--shard'), `shard ${k}`).toBe(`${k}/${N}`);
      expect(opt(args, '--count')).toBe(inputs['count']!.default);
      expect(opt(args, '--seed-start')).toBe(inputs['seed-start']!.default);
      const out = opt(args, '--out');
      expect(out, `shard ${k} writes --out`).toBeDefined();
      outs.push(out!);
      // The file it writes is the one it uploads, as an artifact of its own.
      expect(substitute(String(upload!.with!['path']), values), `shard ${k}: the uploaded path`).toBe(out);
      artifacts.push(substitute(String(upload!.with!['name']), values));
      // Exit 1 (failing schedules) is a result for the merge; exit 2 (bad input) fails the job.
      expect(runScript(GH_BASH, NODE_STUB, substitute(script, values), d, stepEnv, 1).code, `shard ${k}, campaign exit 1`).toBe(0);
      expect(runScript(GH_BASH, NODE_STUB, substitute(script, values), d, stepEnv, 2).code, `shard ${k}, campaign exit 2`).not.toBe(0);
    }
    expect(new Set(outs).size, 'every shard writes its own file').toBe(N);
    expect(new Set(artifacts).size, 'every shard uploads its own artifact').toBe(N);

    // The merge job: after the shards, downloads every artifact into one directory and merges them all.
    const mergeJobs = Object.entries(wf.jobs).filter(([, j]) => j.steps.some((s) => s.run?.includes('campaign merge')));
    expect(mergeJobs.map(([n]) => n)).toHaveLength(1);
    const [, mergeJob] = mergeJobs[0]!;
    expect([mergeJob.needs].flat(), 'the merge job needs the shard job').toContain('shard');
    const download = mergeJob.steps.find((s) => s.uses?.startsWith('actions/download-artifact@'));
    expect(download, 'the merge job downloads the shards').toBeDefined();
    const pattern = String(download!.with!['pattern']);
    for (const a of artifacts) expect(a, `artifact ${a} matches the download pattern ${pattern}`).toMatch(globRe(pattern));
    expect(download!.with!['merge-multiple'], 'all artifacts into one directory').toBe(true);
    const mergeScript = mergeJob.steps.find((s) => s.run?.includes('campaign merge'))!.run!;
    // In a directory holding exactly the downloaded files, the merge command names every one of them.
    const md = dir('merge-dir');
    for (const f of outs) writeFileSync(join(md, f), '');
    const merge = runScript(GH_BASH, NODE_STUB, substitute(mergeScript, {}), md, {}, 0);
    expect(merge.code, merge.stderr).toBe(0);
    expect(merge.nodeArgs!.slice(0, 3)).toEqual(['bin/smmulab.mjs', 'campaign', 'merge']);
    expect(merge.nodeArgs!.slice(3).sort()).toEqual([...outs].sort());
    // The merge job fails when a schedule failed (exit 1 is not swallowed there).
    expect(runScript(GH_BASH, NODE_STUB, substitute(mergeScript, {}), md, {}, 1).code).not.toBe(0);
  });

  it('launch/kubernetes/campaign-job.yaml: an Indexed Job of N pods, pod i running shard i+1 of N into the mounted volume', () => {
    const job = parseYaml(readFileSync(K8S_JOB, 'utf8')) as {
      apiVersion: string;
      kind: string;
      spec: {
        completionMode: string;
        completions: number;
        parallelism: number;
        template: {
          spec: {
            restartPolicy: string;
            containers: { command: string[]; args: string[]; env: { name: string; value: string }[]; volumeMounts: { name: string; mountPath: string }[] }[];
            volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
          };
        };
      };
    };
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.kind).toBe('Job');
    expect(job.spec.completionMode).toBe('Indexed');
    const N = job.spec.completions;
    expect(Number.isInteger(N) && N >= 2, `completions ${N}`).toBe(true);
    expect(job.spec.parallelism).toBe(N);
    const pod = job.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0]!;
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    expect(Number(env['SHARDS']), 'SHARDS is the N of completions and parallelism').toBe(N);
    expect(env['JOB_COMPLETION_INDEX'], 'JOB_COMPLETION_INDEX comes from Kubernetes, not the manifest').toBeUndefined();
    const text = [...c.command, ...c.args].join('\n');
    expect(text).toContain('JOB_COMPLETION_INDEX');
    expect(text).toMatch(/--shard\s+"?\$K\/\$SHARDS"?|--shard\s+"?[^"\s]*\$\{?SHARDS\}?/);
    expect(c.command.at(-1), 'the script is the one argument of sh -c').toBe('-c');
    expect(c.args).toHaveLength(1);

    // Run the pod's script as each index would, with git, npm, cd and node stubbed.
    const prelude = `git() { :; }\nnpm() { :; }\ncd() { :; }\n${NODE_STUB}`;
    const d = dir('k8s');
    const baseEnv = { SHARDS: env['SHARDS']!, COUNT: env['COUNT']!, SEED_START: env['SEED_START']!, REPO_URL: env['REPO_URL']! };
    const outs: string[] = [];
    for (let i = 0; i < N; i++) {
      const run = runScript(c.command, prelude, c.args[0]!, d, { ...baseEnv, JOB_COMPLETION_INDEX: String(i) }, 0);
      expect(run.code, `index ${i}: ${run.stderr}`).toBe(0);
      const args = run.nodeArgs!;
      expect(args, `index ${i} runs the campaign`).not.toBeNull();
      expect(args.slice(0, 2)).toEqual(['bin/smmulab.mjs', 'campaign']);
      expect(opt(args, '--shard'), `index ${i}`).toBe(`${i + 1}/${N}`);
      expect(opt(args, '--count')).toBe(env['COUNT']);
      expect(opt(args, '--seed-start')).toBe(env['SEED_START']);
      const out = opt(args, '--out');
      expect(out, `index ${i} writes --out`).toBeDefined();
      outs.push(out!);
      // Exit 1 (failing schedules) leaves the pod successful; exit 2 fails it.
      expect(runScript(c.command, prelude, c.args[0]!, d, { ...baseEnv, JOB_COMPLETION_INDEX: String(i) }, 1).code).toBe(0);
      expect(runScript(c.command, prelude, c.args[0]!, d, { ...baseEnv, JOB_COMPLETION_INDEX: String(i) }, 2).code).not.toBe(0);
    }
    expect(new Set(outs).size, 'every pod writes its own file').toBe(N);
    // Every --out lies in a volume mounted in the container, backed by a volume of the pod.
    for (const out of outs) {
      const m = c.volumeMounts.find((v) => out.startsWith(v.mountPath.replace(/\/?$/, '/')));
      expect(m, `${out} is under a mounted volume (${c.volumeMounts.map((v) => v.mountPath).join(', ')})`).toBeDefined();
      const vol = pod.volumes.find((v) => v.name === m!.name);
      expect(vol, `volume ${m!.name}`).toBeDefined();
      expect(vol!.persistentVolumeClaim?.claimName, 'results outlive the pods').toBeTruthy();
    }
  });
});
