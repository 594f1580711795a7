// The conventions every smmulab command follows (issue 11): -h/--help and --version on every command,
// `--` ends the options, an empty value is a missing one, one bound per timer option on every command,
// names from the command line never find JavaScript's inherited properties, and the benchmark scripts
// answer --help. Driven as a user does (a child process per command line), plus the parser itself.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './fixtures/run-cli.ts';
import { runNode } from './fixtures/run-node.ts';
import { COMMANDS } from '../src/host/cli/commands.ts';
import { HELP_SPEC, UsageError, VersionRequest, parseArgs, versionLine, type OptSpec } from '../src/host/cli/args.ts';
import { MAX_TIMER_MS, SECONDS_MAX, TIME_SCALE_SPEC, atcTimeoutOption, pollTimeoutOption, runCallTimeoutMs } from '../src/host/cli/timeout-options.ts';
import { PCIE_COMMON } from '../src/host/cli/pcie-boot.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
/** Refusals happen before anything boots: a few seconds even on a loaded machine, never a hang. */
const QUICK_MS = 20_000;

/** Exit 2 with exactly one line on stderr, containing `what`, and nothing on stdout. */
function expectOneLine(r: CliResult, what: string | RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  if (typeof what === 'string') expect(r.stderr).toContain(what);
  else expect(r.stderr).toMatch(what);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
}

describe('-h, --help and --version', () => {
  it.each([...COMMANDS.keys()])('%s answers -h, --help and --version', async (name) => {
    const [h, help, version, late] = await Promise.all([
      runCli([name, '-h'], QUICK_MS),
      runCli([name, '--help'], QUICK_MS),
      runCli([name, '--version'], QUICK_MS),
      // After an argument: still the version, before anything checks the arguments.
      runCli([name, 'arg', '--version'], QUICK_MS),
    ]);
    for (const r of [h, help]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.startsWith(`usage: smmulab ${name}`), r.stdout).toBe(true);
      expect(r.stdout).toContain('-h, --help');
      expect(r.stdout).toContain('--version');
      expect(r.stderr).toBe('');
    }
    expect(h.stdout).toBe(help.stdout);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toBe(`smmulab ${VERSION}\n`);
    expect(late.code, late.stderr).toBe(0);
    expect(late.stdout).toBe(`smmulab ${VERSION}\n`);
  });

  it('the top level and the sub-forms answer too', async () => {
    const [version, h, help, merge, scenario] = await Promise.all([
      runCli(['--version'], QUICK_MS),
      runCli(['-h'], QUICK_MS),
      runCli(['--help'], QUICK_MS),
      runCli(['campaign', 'merge', '-h'], QUICK_MS),
      runCli(['run', '--scenario', 'x', '--version'], QUICK_MS),
    ]);
    expect(version.code).toBe(0);
    expect(version.stdout).toBe(`smmulab ${VERSION}\n`);
    for (const r of [h, help]) {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('usage: smmulab COMMAND');
      expect(r.stdout).toContain('smmulab --version');
      for (const name of COMMANDS.keys()) expect(r.stdout).toContain(`  ${name} `);
    }
    expect(merge.code).toBe(0);
    expect(merge.stdout).toMatch(/^usage: smmulab campaign merge FILE/);
    expect(scenario.code).toBe(0);
    expect(scenario.stdout).toBe(`smmulab ${VERSION}\n`);
  });

  it('versionLine reads package.json', () => {
    expect(versionLine()).toBe(`smmulab ${VERSION}`);
  });
});

describe('-- ends the options', () => {
  it('everything after it is an argument', async () => {
    const [scenario, faults, replay, trailing] = await Promise.all([
      // Without `--`, run would take --scenario as the option and look for scenario x.
      runCli(['run', '--', '--scenario', 'x'], QUICK_MS),
      runCli(['faults', '--', '--json'], QUICK_MS),
      // A file whose name looks like an option.
      runCli(['replay', '--', '--no-such-file.jsonl'], QUICK_MS),
      runCli(['faults', '--json', '--'], QUICK_MS),
    ]);
    expectOneLine(scenario, "run: unexpected argument '--scenario'");
    expectOneLine(faults, "faults: unexpected argument '--json'");
    expectOneLine(replay, '--no-such-file.jsonl: cannot read');
    expect(trailing.code, trailing.stderr).toBe(0);
    expect(JSON.parse(trailing.stdout)).toBeInstanceOf(Array);
  });

  it('parseArgs: options before it, arguments after it, -h and --version included', () => {
    const spec: Record<string, OptSpec> = { json: { type: 'boolean', help: '' }, n: { type: 'number', help: '' }, help: HELP_SPEC };
    const p = parseArgs(['--n', '3', 'a', '--', '--json', '-h', '--version', '--'], spec, 'cmd');
    expect(p.opts).toEqual({ n: 3 });
    expect(p.positional).toEqual(['a', '--json', '-h', '--version', '--']);
  });
});

describe('parseArgs: -h, --version, short options', () => {
  const spec: Record<string, OptSpec> = { json: { type: 'boolean', help: '' }, help: HELP_SPEC };

  it('-h is --help where the command has --help, an unknown option where not', () => {
    expect(parseArgs(['-h'], spec, 'cmd').opts.help).toBe(true);
    expect(() => parseArgs(['-h'], { json: spec.json! }, 'cmd')).toThrow(/^cmd: unknown option -h \(known: --json\)$/);
  });

  it('--version throws VersionRequest wherever it is, unless the command declares --version', () => {
    expect(() => parseArgs(['--json', '--version'], spec, 'cmd')).toThrow(VersionRequest);
    expect(parseArgs(['--version'], { version: { type: 'boolean', help: '' } }, 'cmd').opts.version).toBe(true);
  });

  it('another short option is unknown, a lone - is an argument', () => {
    expect(() => parseArgs(['-x'], spec, 'cmd')).toThrow(/^cmd: unknown option -x /);
    expect(parseArgs(['-'], spec, 'cmd').positional).toEqual(['-']);
  });
});

describe('an empty value is a missing value', () => {
  const spec: Record<string, OptSpec> = { cpus: { type: 'number', help: '', default: 2 }, features: { type: 'string', help: '' }, json: { type: 'boolean', help: '' } };

  it.each([[['--cpus=']], [['--cpus', '']], [['--cpus', '  ']], [['--cpus']], [['--cpus', '--json']], [['--features=']], [['--features', '']]])('parseArgs %j', (argv) => {
    const name = argv[0]!.replace(/=.*/, '');
    expect(() => parseArgs(argv, spec, 'cmd')).toThrow(UsageError);
    expect(() => parseArgs(argv, spec, 'cmd')).toThrow(`cmd: ${name} is missing its value`);
  });

  it('from the command line: exit 2 naming the option, never 0 CPUs', async () => {
    const rs = await Promise.all([
      runCli(['run', '--cpus='], QUICK_MS),
      runCli(['run', '--cpus', ''], QUICK_MS),
      runCli(['lspci', '--topology='], QUICK_MS),
      runCli(['run', '--cpus', '--json'], QUICK_MS),
    ]);
    expectOneLine(rs[0]!, 'run: --cpus is missing its value');
    expectOneLine(rs[1]!, 'run: --cpus is missing its value');
    expectOneLine(rs[2]!, 'lspci: --topology is missing its value');
    expectOneLine(rs[3]!, 'run: --cpus is missing its value (the next argument, --json, is an option)');
  });
});

describe('timer options: one bound each, the same on every command', () => {
  const SCALE = '--time-scale must be a number from 0.05 to 1000000';
  const TIMEOUT = (name: string) => `--${name} must be a number of ms from 0.000001 to 1000000`;

  it.each([
    // Each hung or failed falsely before: 1e-9 hung, 1e-6 overflowed run's host timer ("did not answer").
    [['run', '--time-scale', '1e-9'], `run: ${SCALE} (got 1e-9)`],
    [['run', '--time-scale', '1e-6', '--seconds', '0.01'], `run: ${SCALE} (got 0.000001)`],
    [['run', '--time-scale', '1e12'], `run: ${SCALE} (got 1000000000000)`],
    [['lspci', '--time-scale', '1e12'], `lspci: ${SCALE} (got 1000000000000)`],
    [['lspci', '--time-scale', '1e-9'], `lspci: ${SCALE} (got 1e-9)`],
    [['run', '--atc-timeout-ms', '1e308'], `run: ${TIMEOUT('atc-timeout-ms')} (got 1e+308)`],
    [['run', '--poll-timeout-ms', '1e308'], `run: ${TIMEOUT('poll-timeout-ms')} (got 1e+308)`],
    [['lspci', '--atc-timeout-ms', '1e308'], `lspci: ${TIMEOUT('atc-timeout-ms')} (got 1e+308)`],
    [['reset', '01:00.0', '--poll-timeout-ms', '1e308'], `reset: ${TIMEOUT('poll-timeout-ms')} (got 1e+308)`],
    [['dump-config', '01:00.0', '--poll-timeout-ms', '1e-9'], `dump-config: ${TIMEOUT('poll-timeout-ms')} (got 1e-9)`],
  ])('%j is refused', async (argv, message) => {
    const r = await runCli(argv, QUICK_MS);
    expectOneLine(r, message);
    expect(r.stderr).not.toContain('TimeoutOverflowWarning');
  });

  it('the PCIe commands and run share the specs', () => {
    expect(PCIE_COMMON['time-scale']).toBe(TIME_SCALE_SPEC);
    expect(PCIE_COMMON['atc-timeout-ms']).toBe(atcTimeoutOption.spec);
    expect(PCIE_COMMON['poll-timeout-ms']).toBe(pollTimeoutOption.spec);
  });

  it('within the bounds, no derived host timer exceeds setTimeout’s maximum', () => {
    const slowest = TIME_SCALE_SPEC.min!;
    // run's workload call: the longest run at the slowest clock.
    expect(runCallTimeoutMs(SECONDS_MAX, slowest)).toBeLessThanOrEqual(MAX_TIMER_MS);
    // The driver's and the SMMU's waits, in host time.
    for (const s of [atcTimeoutOption.spec, pollTimeoutOption.spec]) expect(s.max! / slowest).toBeLessThanOrEqual(MAX_TIMER_MS);
    // And the bounds themselves are accepted.
    const spec = { 'time-scale': TIME_SCALE_SPEC, 'poll-timeout-ms': pollTimeoutOption.spec };
    const p = parseArgs(['--time-scale', String(slowest), '--poll-timeout-ms', String(pollTimeoutOption.spec.max)], spec, 'cmd');
    expect(p.opts).toEqual({ 'time-scale': slowest, 'poll-timeout-ms': 1e6 });
    expect(parseArgs(['--time-scale=1e6', '--poll-timeout-ms=0.000001'], spec, 'cmd').opts).toEqual({ 'time-scale': 1e6, 'poll-timeout-ms': 1e-6 });
  });
});

describe('JavaScript property names are unknown names', () => {
  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])('command %s', async (name) => {
    expectOneLine(await runCli([name], QUICK_MS), `smmulab: unknown command "${name}"`);
  });

  it.each([
    [['lspci', '--constructor', 'x'], 'lspci: unknown option --constructor'],
    [['lspci', '--__proto__', '5'], 'lspci: unknown option --__proto__'],
    [['run', '--toString'], 'run: unknown option --toString'],
    [['run', '--workload', 'constructor'], "run: --workload 'constructor' is unknown"],
    [['run', '--features', 'toString'], "run: --features: unknown profile 'toString'"],
    [['reset', '01:00.0', '--method', 'constructor'], "reset: --method 'constructor' is not one of"],
    [['reset', '01:00.0', '--fault', 'toString'], "reset: --fault 'toString' is not one of"],
  ])('%j', async (argv, message) => {
    expectOneLine(await runCli(argv, QUICK_MS), message);
  });

  it('parseArgs looks options up among the spec’s own keys', () => {
    const spec: Record<string, OptSpec> = { json: { type: 'boolean', help: '' } };
    for (const name of ['constructor', '__proto__', 'toString', 'valueOf']) {
      expect(() => parseArgs([`--${name}`, '5'], spec, 'cmd')).toThrow(`cmd: unknown option --${name} (known: --json)`);
    }
  });
});

describe('benchmark scripts answer --help', () => {
  const bench = (script: string, ...args: string[]) => runNode(['bin/run-ts.mjs', `bench/${script}.ts`, ...args], REPO, QUICK_MS);

  it('npm run bench -- --help and -h', async () => {
    const [help, h, bad] = await Promise.all([bench('all', '--help'), bench('all', '-h'), bench('all', '--bogus')]);
    for (const r of [help, h]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('usage: npm run bench [-- --quick]');
    }
    expectOneLine(bad, 'bench: unknown option --bogus');
  });

  it.each(['cmdq', 'faults', 'micro', 'recovery'])('bench:%s --help, -h, and an unknown option', async (suite) => {
    const [help, h, bad] = await Promise.all([bench(suite, '--help'), bench(suite, '-h'), bench(suite, '--bogus')]);
    for (const r of [help, h]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.startsWith(`usage: npm run bench:${suite} -- [options]\n`), r.stdout).toBe(true);
      expect(r.stdout).toContain('-h, --help');
      expect(r.stderr).toBe('');
    }
    expectOneLine(bad, `bench:${suite}: unknown option --bogus`);
  });

  it.each([
    ['cmdq', '--trials', 'bench:cmdq: --trials must be an integer from 1 to 100 (got 0)'],
    ['lockstep', '--batches', 'bench:lockstep: --batches must be an integer from 1 to 10000000 (got 0)'],
    ['recovery', '--trials', 'bench:recovery: --trials must be an integer from 1 to 101 (got 0)'],
  ])('bench:%s %s 0: one line, exit 2, nothing measured', async (suite, option, line) => {
    expectOneLine(await bench(suite, option, '0'), line);
  });
});
