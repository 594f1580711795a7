// Scenarios through the paths a user takes: the API (loadScenario / checkScenario + runScenario) and
// the command line (`node bin/smmulab.mjs ...` in a child process). Every built-in scenario is run and
// its documented outcome (the `expect` of its JSON file, read here as plain JSON) re-checked against
// the report field by field, rather than trusting report.ok; then determinism, the sanitizer's
// negative control, malformed files, the committed JSON Schema and the CLI's listings and reports.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { runCli } from './fixtures/run-cli.ts';
import { BUILTIN_DIR, builtinNames, loadScenario } from '../src/host/scenario/catalogue.ts';
import { runScenario } from '../src/host/scenario/run.ts';
import { checkScenario, scenarioSchema, type ScenarioReport } from '../src/protocol/scenario.ts';
import { CATALOGUE, FAULT_KINDS } from '../src/protocol/faults.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../src/protocol/topology.ts';
import { PA } from '../src/arch/platform.ts';

const SCHEMA_FILE = new URL('../examples/scenario.schema.json', import.meta.url);

/** A scenario file as written (not as the checker returns it): what the test judges against. */
interface RawScenario {
  workload: { do: string; fault?: { kind: string } }[];
  faults?: { kind: string }[];
  expect?: {
    violations?: 'none' | 'some';
    errors?: 'none' | 'some';
    devices?: { bdf: string; state?: string; atsEnabled?: boolean; fenced?: boolean; resets?: number }[];
  };
}

function rawBuiltin(name: string): RawScenario {
  return JSON.parse(readFileSync(`${BUILTIN_DIR}${name}.json`, 'utf8')) as RawScenario;
}

/**
 * Fault kinds a scenario names (its `faults` and its `inject` steps) that must show up in
 * faultsByKind, and the kinds allowed to show up at all. Exceptions:
 * - 'clear' disarms other faults; it never fires, so it is never counted.
 * - 'fail-nth' is counted under the should-fail point whose nth call it failed (the report counts
 *   driver faults by point: fail-blocking-attach, fail-page-alloc or fail-iova-alloc), never under its
 *   own name; one of those must have fired instead.
 */
const NTH_FIRES_AS = ['fail-blocking-attach', 'fail-page-alloc', 'fail-iova-alloc'];
function faultKindsOf(s: RawScenario): { mustFire: string[]; anyOf: string[][]; allowed: Set<string> } {
  const named = [...(s.faults ?? []).map((f) => f.kind), ...s.workload.flatMap((st) => (st.do === 'inject' && st.fault ? [st.fault.kind] : []))];
  const mustFire = [...new Set(named.filter((k) => k !== 'clear' && k !== 'fail-nth'))];
  const anyOf = named.includes('fail-nth') ? [NTH_FIRES_AS] : [];
  return { mustFire, anyOf, allowed: new Set([...mustFire, ...anyOf.flat()]) };
}

/**
 * The report without its host times (hostMs, and any other *HostMs such as the boot's share): the
 * only fields allowed to differ between two runs of a seed.
 */
function withoutHostTime(r: ScenarioReport): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (/hostMs$/i.test(k)) expect(typeof v, k).toBe('number');
    else out[k] = v;
  }
  expect(r.hostMs).toBeGreaterThan(0);
  expect(Object.keys(out)).toContain('platformMs');
  return out;
}

describe('every built-in scenario (API)', () => {
  const names = builtinNames();

  it('the catalogue is the examples/scenarios directory', () => {
    expect(names.length).toBeGreaterThanOrEqual(15);
    expect(names).toContain('atc-inv-no-answer');
    expect(names).toContain('atc-timeout');
  });

  it.each(names)('%s: runs, keeps the invariants, and its documented outcome holds', async (name) => {
    const raw = rawBuiltin(name);
    const loaded = loadScenario(name);
    expect(loaded.name).toBe(name);
    const r = await runScenario(loaded.scenario, loaded.name, { baseDir: loaded.baseDir });

    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.scenario).toBe(name);
    expect(r.hangs).toBe(0);
    expect(r.lostCommands).toBe(0);
    expect(r.duplicatedCommands).toBe(0);

    // The expectation, re-judged here from the file itself.
    const exp = raw.expect ?? {};
    if (exp.violations === 'none') {
      expect(r.dmaUseAfterFree, 'violations: none').toBe(0);
      expect(r.violations).toEqual([]);
    } else if (exp.violations === 'some') {
      expect(r.dmaUseAfterFree, 'violations: some').toBeGreaterThan(0);
      expect(r.violations.length).toBeGreaterThan(0);
      expect(r.violations.length).toBeLessThanOrEqual(r.dmaUseAfterFree);
    }
    if (exp.errors === 'none') expect(r.errors, 'errors: none').toEqual([]);
    else if (exp.errors === 'some') expect(r.errors.length, 'errors: some').toBeGreaterThan(0);
    for (const want of exp.devices ?? []) {
      const got = r.devices.find((d) => d.bdf === want.bdf);
      expect(got, `device ${want.bdf} in the report`).toBeDefined();
      for (const k of ['state', 'atsEnabled', 'fenced', 'resets'] as const) {
        if (want[k] !== undefined) expect(got![k], `${want.bdf} ${k}`).toBe(want[k]);
      }
    }

    // The faults it names fired, and nothing else did.
    const kinds = faultKindsOf(raw);
    for (const k of kinds.mustFire) expect(r.faultsByKind[k] ?? 0, `faultsByKind['${k}']`).toBeGreaterThan(0);
    for (const group of kinds.anyOf) expect(group.some((k) => (r.faultsByKind[k] ?? 0) > 0), `one of ${group.join(', ')} fired (fail-nth)`).toBe(true);
    for (const k of Object.keys(r.faultsByKind)) expect(kinds.allowed.has(k), `fault '${k}' fired but the scenario does not name it`).toBe(true);
    expect(r.faultsInjected).toBe(Object.values(r.faultsByKind).reduce((a, b) => a + b, 0));
  });
});

describe('determinism', () => {
  it("two runs of 'atc-timeout' with the same seed give the same report (host time aside)", async () => {
    const l = loadScenario('atc-timeout');
    const a = await runScenario(l.scenario, l.name, { seed: 12345, baseDir: l.baseDir });
    const b = await runScenario(l.scenario, l.name, { seed: 12345, baseDir: l.baseDir });
    expect(a.seed).toBe(12345);
    // Something happened worth comparing: the culprit was found and fenced.
    expect(a.recovery.fences).toBeGreaterThan(0);
    expect(a.recovery.extraSyncs).toBeGreaterThan(0);
    expect(a.log.length).toBeGreaterThan(0);
    expect(withoutHostTime(b)).toEqual(withoutHostTime(a));
  });

  it('a fault with a probability: the same seed draws the same, another seed differently', async () => {
    const s = checkScenario(
      {
        smmu: { atcTimeoutUs: 1000 },
        workload: [{ do: 'ats-dma', rounds: 4 }],
        faults: [{ kind: 'atc-inv-no-answer', bdf: '02:00.0', trigger: { count: 'forever', probability: 0.3 } }],
      },
      'scenario',
    );
    const a = await runScenario(s, 'probabilistic', { seed: 1 });
    const b = await runScenario(s, 'probabilistic', { seed: 1 });
    const c = await runScenario(s, 'probabilistic', { seed: 3 });
    expect(a.faultsByKind['atc-inv-no-answer']).toBeGreaterThan(0);
    expect(withoutHostTime(b)).toEqual(withoutHostTime(a));
    expect(c.faultsByKind['atc-inv-no-answer']).not.toBe(a.faultsByKind['atc-inv-no-answer']);
  });
});

describe("the sanitizer's negative control", () => {
  // One endpoint (01:00.0, SID 0x100) in a paging domain shared by... itself; two rounds of one copy
  // per mapping. ATC invalidations it receives: nth 1 is the ATC flush at attach to the shared
  // domain, nth 2 the source buffer's unmap, nth 3 the destination's. Ignoring the 3rd leaves a stale
  // ATC entry for the destination IOVA; the next round reuses that IOVA for its destination, the
  // device writes through the stale entry to the page freed meanwhile (now page cache): exactly one
  // use-after-free write. This is the mainline driver's behaviour (atcRecovery 'none'); the default
  // recovery fences the device before the unmap returns (checked below).
  const scenario = (faults: unknown[], atcRecovery = 'none') =>
    checkScenario(
      {
        topology: { ports: DEFAULT_TOPOLOGY_JSON.ports.slice(0, 1) },
        smmu: { atcTimeoutUs: 1000 },
        driver: { atcRecovery },
        workload: [{ do: 'ats-dma', rounds: 2, transfersPerMap: 1 }],
        faults,
      },
      'scenario',
    );
  const noAnswer = (nth: number) => ({ kind: 'atc-inv-no-answer', bdf: '01:00.0', trigger: { after: { event: 'atc-inv', nth } } });

  it('an ignored ATC invalidation of the destination buffer: exactly one violation, every field', async () => {
    const r = await runScenario(scenario([noAnswer(3)]), 'negative-control');
    expect(r.devices.map((d) => d.bdf)).toEqual(['01:00.0']);
    expect(r.faultsByKind).toEqual({ 'atc-inv-no-answer': 1 });
    expect(r.dmaUseAfterFree).toBe(1);
    expect(r.violations).toHaveLength(1);
    const v = r.violations[0]!;
    expect(v.bdf).toBe('01:00.0');
    expect(v.sid).toBe(0x100);
    expect(v.write).toBe(true);
    expect(v.translated).toBe(true);
    expect(typeof v.iova).toBe('number');
    expect(v.iova! % 4096).toBe(0);
    expect(v.pa).toBeGreaterThanOrEqual(PA.DRAM_BASE);
    expect(v.pa).toBeLessThan(PA.DRAM_BASE + (16 << 20));
    expect(v.t).toBeGreaterThan(0);
    expect(v.page).toBe('allocated to page cache');
    expect(Object.keys(v).sort()).toEqual(['bdf', 'iova', 'pa', 'page', 'sid', 't', 'translated', 'write']);

    // Cross-check that nth 3 is the destination: ignoring nth 2 (the source's unmap) instead gives
    // one read through another IOVA (the source's).
    const src = await runScenario(scenario([noAnswer(2)]), 'negative-control-src');
    expect(src.violations).toHaveLength(1);
    expect(src.violations[0]!.write).toBe(false);
    expect(src.violations[0]!.iova).not.toBe(v.iova);
  });

  it('the same fault under each recovery policy: the quarantines fence the device before the unmap returns', async () => {
    const by: Record<string, ScenarioReport> = {};
    for (const policy of ['none', 'reset', 'quarantine', 'quarantine-bisect']) by[policy] = await runScenario(scenario([noAnswer(3)], policy), `negative-control-${policy}`);
    // v1 resets the device later, from a work item: the unmap has returned, the write already happened.
    expect(by.none!.dmaUseAfterFree).toBe(1);
    expect(by.reset!.dmaUseAfterFree).toBe(1);
    expect(by.reset!.devices[0]!.resets).toBe(1);
    for (const p of ['quarantine', 'quarantine-bisect']) {
      expect(by[p]!.dmaUseAfterFree, p).toBe(0);
      // One device in the batch: nothing to bisect, it is fenced at once and reset back to health.
      expect(by[p]!.recovery.fences, p).toBe(1);
      expect(by[p]!.devices[0], p).toMatchObject({ state: 'ok', fenced: false, fences: 1, resets: 1, atsEnabled: true });
      expect(by[p]!.recovery.staleReturns, p).toBe(0);
    }
    expect(by.none!.recovery.staleReturns).toBe(1);
  });

  it('the same scenario with no faults: no violation', async () => {
    const r = await runScenario(scenario([]), 'negative-control-clean');
    expect(r.ok).toBe(true);
    expect(r.faultsInjected).toBe(0);
    expect(r.dmaUseAfterFree).toBe(0);
    expect(r.violations).toEqual([]);
    expect(r.errors).toEqual([]);
    expect(r.lazyWindowAccesses).toBe(0);
  });
});

describe('scenario files and the CLI', () => {
  let dir: string;
  const file = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const json = (name: string, v: unknown) => file(name, JSON.stringify(v, null, 2));
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'smmulab-scenarios-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a malformed scenario file: exit 2, one stderr line naming the file and the field, no stack trace', async () => {
    const ok = { do: 'ats-dma', rounds: 1 };
    const cases: { f: string; want: string[] }[] = [];
    const add = (f: string, ...want: string[]) => cases.push({ f, want });
    const invalid = file('invalid.json', '{"workload": [{"do": "ats-dma", "rounds": 1}],');
    add(invalid, `${invalid}: not valid JSON`);
    const unknown = json('unknown.json', { workload: [ok], bogus: 1 });
    add(unknown, `${unknown}: bogus: unknown field`);
    const count = json('count.json', { workload: [ok], faults: [{ kind: 'sfm' }, { kind: 'hang' }, { kind: 'cmd-illegal', trigger: { count: -1 } }] });
    add(count, `${count}: faults[2].trigger.count: `, '(got -1)');
    const badBdf = json('bdf.json', { workload: [ok, { do: 'reset', bdf: '01:00' }] });
    add(badBdf, `${badBdf}: workload[1].bdf: `, '"01:00"');
    const noWorkload = json('no-workload.json', { summary: 'nothing to do', faults: [] });
    add(noWorkload, `${noWorkload}: workload: `);
    const noRounds = json('no-rounds.json', { workload: [ok, { do: 'ats-dma', pages: 2 }] });
    add(noRounds, `${noRounds}: workload[1]: `, 'rounds', 'durationMs');
    // A relative topology path starts from the scenario file's directory. (The message names the
    // missing topology file and the field, but not the scenario file: see the report of this test.)
    const noTopo = json('no-topology.json', { topology: 'missing/topology.json', workload: [ok] });
    add(noTopo, `topology: ${join(dir, 'missing/topology.json')}: cannot read`);

    const results = await Promise.all(cases.map((c) => runCli(['run', '--scenario', c.f])));
    results.forEach((r, i) => {
      const c = cases[i]!;
      expect(r.code, `${c.f}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(r.stderr).not.toContain('    at ');
      for (const w of c.want) expect(lines[0]).toContain(w);
    });
  });

  it('examples/scenario.schema.json is scenarioSchema(); the built-ins validate against it, malformed files do not', () => {
    const committed = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object;
    expect(committed).toEqual(scenarioSchema());
    // ajv is CommonJS: under NodeNext the default import is module.exports, whose `default` is the class.
    const validate = new Ajv2020.default({ allErrors: true }).compile(committed);
    for (const name of builtinNames()) {
      expect(validate(rawBuiltin(name)), `${name}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    const ok = { do: 'ats-dma', rounds: 1 };
    expect(validate({ workload: [ok] })).toBe(true);
    expect(validate({ workload: [ok], bogus: 1 })).toBe(false);
    expect(validate.errors?.some((e) => e.keyword === 'additionalProperties' && e.params.additionalProperty === 'bogus')).toBe(true);
    expect(validate({ workload: [ok], faults: [{ kind: 'sfm', trigger: { count: -1 } }] })).toBe(false);
    expect(validate({ faults: [] })).toBe(false);
  });

  it('smmulab scenarios --json lists the built-ins with a name and a summary', async () => {
    const r = await runCli(['scenarios', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; summary: string }[];
    expect(list.length).toBeGreaterThanOrEqual(15);
    expect(list.map((s) => s.name)).toEqual(builtinNames());
    for (const s of list) {
      expect(s.name).toMatch(/^[a-z0-9-]+$/);
      expect(typeof s.summary).toBe('string');
      expect(s.summary.length, s.name).toBeGreaterThan(10);
    }
  });

  it('smmulab faults --json lists every fault kind with a help line', async () => {
    const r = await runCli(['faults', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; help: string }[];
    expect(list.map((f) => f.kind).sort()).toEqual([...FAULT_KINDS].sort());
    for (const f of list) {
      expect(f.help, f.kind).toBe(CATALOGUE[f.kind as keyof typeof CATALOGUE]);
      expect(f.help.length, f.kind).toBeGreaterThan(10);
      expect(f.help).not.toContain('\n');
    }
  });

  it('run --scenario atc-inv-no-answer --json: exit 0, one JSON report with every field; with the mainline driver, exit 1 and violations', async () => {
    const good = await runCli(['run', '--scenario', 'atc-inv-no-answer', '--json']);
    expect(good.code, good.stderr).toBe(0);
    const def = JSON.parse(good.stdout) as ScenarioReport;
    expect(def.ok).toBe(true);
    expect(def.atcRecovery).toBe('quarantine-bisect');
    expect(def.dmaUseAfterFree).toBe(0);
    expect(def.violations).toEqual([]);
    // The retry of the failed batch was answered: extra SYNCs, nobody fenced.
    expect(def.recovery.extraSyncs).toBeGreaterThan(0);
    expect(def.recovery.fences).toBe(0);
    const r = await runCli(['run', '--scenario', 'atc-inv-no-answer', '--atc-recovery', 'none', '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const out = JSON.parse(r.stdout) as Record<string, unknown> & ScenarioReport;
    for (const k of ['scenario', 'seed', 'faultsInjected', 'dmaUseAfterFree', 'lazyWindowAccesses', 'lostCommands', 'duplicatedCommands', 'hangs', 'devices', 'violations', 'log']) {
      expect(out, k).toHaveProperty(k);
    }
    expect(out.scenario).toBe('atc-inv-no-answer');
    expect(out.seed).toBe(1);
    expect(out.atcRecovery).toBe('none');
    expect(out.ok).toBe(false);
    expect(out.problems).toEqual([`expected no DMA use-after-free, saw ${out.dmaUseAfterFree}`]);
    expect(out.faultsInjected).toBe(1);
    expect(out.faultsByKind).toEqual({ 'atc-inv-no-answer': 1 });
    expect(out.dmaUseAfterFree).toBeGreaterThan(0);
    expect(out.violations.length).toBeGreaterThan(0);
    expect(out.lazyWindowAccesses).toBe(0);
    expect(out.lostCommands).toBe(0);
    expect(out.duplicatedCommands).toBe(0);
    expect(out.hangs).toBe(0);
    expect(out.devices.map((d) => d.bdf)).toEqual(['01:00.0', '02:00.0']);
    for (const d of out.devices) {
      expect(Object.keys(d).sort()).toEqual(['atsEnabled', 'bdf', 'fenced', 'fences', 'resets', 'state']);
      expect(d).toMatchObject({ state: 'ok', atsEnabled: true, fenced: false, fences: 0, resets: 0 });
    }
    for (const v of out.violations) expect(v).toMatchObject({ bdf: '01:00.0', sid: 0x100, translated: true });
    expect(Array.isArray(out.log)).toBe(true);
    expect(out.log.some((l) => /ATC invalidate timeout/.test(l))).toBe(true);
  });

  it('a scenario whose expectation does not hold: exit 1, stderr names the seed and how to reproduce', async () => {
    const s = rawBuiltin('atc-inv-no-answer') as RawScenario & Record<string, unknown>;
    delete s.$schema;
    const f = json('expect-none.json', { ...s, seed: 5, expect: { violations: 'none' }, driver: { atcRecovery: 'none' } });
    const r = await runCli(['run', '--scenario', f]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('scenario expect-none, seed 5: FAILED');
    expect(r.stdout).toContain('expected no DMA use-after-free');
    expect(r.stderr).toContain('(seed 5)');
    expect(r.stderr).not.toContain('    at ');
    const repro = r.stderr.split('\n').find((l) => l.includes('reproduce:'));
    expect(repro).toBe(`  reproduce: smmulab run --scenario ${f} --seed 5 --atc-recovery none`);
    // The command it prints reproduces the failure.
    const again = await runCli([...repro!.replace(/^\s*reproduce: smmulab /, '').split(' '), '--json']);
    expect(again.code).toBe(1);
    const out = JSON.parse(again.stdout) as ScenarioReport;
    expect(out.seed).toBe(5);
    expect(out.ok).toBe(false);
    expect(out.problems[0]).toMatch(/^expected no DMA use-after-free, saw \d+$/);
  });

  it('the text report lists the violations before the devices', async () => {
    const r = await runCli(['run', '--scenario', 'atc-inv-no-answer', '--atc-recovery', 'none']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^scenario atc-inv-no-answer, seed 1: FAILED$/m);
    const uaf = r.stdout.search(/^DMA use-after-free: \d+ access/m);
    const firstViolation = r.stdout.search(/^ {2}01:00\.0 \(SID 0x100\) write, translated/m);
    const devices = r.stdout.search(/^devices:$/m);
    expect(uaf).toBeGreaterThanOrEqual(0);
    expect(firstViolation).toBeGreaterThan(uaf);
    expect(devices).toBeGreaterThan(firstViolation);
    expect(r.stdout.slice(devices)).toMatch(/^ {2}01:00\.0 +ok/m);
  });
});
