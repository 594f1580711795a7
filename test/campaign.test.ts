// Campaigns through the paths a user takes: the command line (`node bin/smmulab.mjs campaign ...` in a
// child process) for a CI-sized run, shards and their merge, failure reports and shrinking, named
// scenarios and bad input; the API (scheduleOf / toScenario / runScenario) for what a seed stands for
// and for re-running a shrunk schedule. The launch files that run campaigns on a CI system are checked
// in launch-files.test.ts.

import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, type CliResult } from './fixtures/run-cli.ts';
import { summaryOf } from './fixtures/campaign-summary.ts';
import { tempDirs } from './fixtures/temp-dir.ts';
import { functionsOf, scheduleOf, toScenario } from '../src/host/campaign/schedule.ts';
import { runScenario } from '../src/host/scenario/run.ts';
import { checkScenario, type Scenario } from '../src/protocol/scenario.ts';
import type { CampaignSummary } from '../src/host/campaign/summary.ts';
import type { ScheduleResult } from '../src/host/campaign/run-one.ts';

/** A fresh directory under this file's temp dir. */
const dir = tempDirs('smmulab-campaign-');

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
