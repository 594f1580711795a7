// What smmulab does with input it should not trust (issue 11): files that are not regular files or are
// too big, JSON with a key given twice, JavaScript property names where a name is expected, topologies
// and feature specs that were silently accepted, BARs that did not fit, and error messages that echoed
// megabytes or terminal escapes. Every refusal is one short line on stderr naming the file and the
// field, exit 2, through the CLI as a user meets it.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './fixtures/run-cli.ts';
import { pcieRig } from './helpers/pcie-rig.ts';
import { INPUT_LIMITS, duplicateKey, parseJsonText, readInputFile } from '../src/host/input-file.ts';
import { InputError, clip, show } from '../src/protocol/check.ts';
import { checkFault } from '../src/protocol/faults.ts';
import { TopologyError, parseTopology } from '../src/protocol/topology.ts';
import { parseFeatures } from '../src/arch/smmu/features.ts';
import { summarize } from '../src/host/campaign/summary.ts';
import type { ScheduleResult } from '../src/host/campaign/run-one.ts';
import type { PciDeviceInfo } from '../src/protocol/ops/pci.ts';

const dir = mkdtempSync(join(tmpdir(), 'smmulab-input-'));
const file = (name: string, content: string | Buffer | object) => {
  const f = join(dir, name);
  writeFileSync(f, typeof content === 'string' || Buffer.isBuffer(content) ? content : JSON.stringify(content));
  return f;
};
/** A FIFO nobody writes to: opening it for reading the ordinary way blocks for ever. */
const fifo = (name: string) => {
  const f = join(dir, name);
  execFileSync('mkfifo', [f]);
  return f;
};
/** A sparse file of `bytes` bytes (no disk space used). */
const sparse = (name: string, bytes: number) => {
  const f = file(name, '');
  truncateSync(f, bytes);
  return f;
};

/** C0 and C1 controls and DEL, the final newline aside: what must never reach a terminal from input. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** A refusal: exit 2, one short line on stderr (no stack trace, no raw control character) holding `needles`. */
function expectRefusal(r: CliResult, ...needles: string[]): string {
  const err = r.stderr;
  expect(r.code, `stderr: ${err.slice(0, 500)}`).toBe(2);
  expect(err.endsWith('\n')).toBe(true);
  expect(err.trimEnd().split('\n'), err.slice(0, 500)).toHaveLength(1);
  expect(err.length).toBeLessThan(400);
  expect(CONTROL.test(err.trimEnd()), JSON.stringify(err)).toBe(false);
  expect(err).not.toMatch(/\n\s+at /);
  for (const n of needles) expect(err).toContain(n);
  return err;
}

const SCENARIO = { workload: [{ do: 'sleep', ms: 1 }] };

// ---------------------------------------------------------------------------------------------------

describe('1. only regular files, and never more than a cap', () => {
  it('replay /dev/zero and replay a FIFO: refused at once, naming the file', async () => {
    expectRefusal(await runCli(['replay', '/dev/zero'], 20_000), '/dev/zero', 'a character device, not a regular file', 'replay file');
    const f = fifo('cmds.jsonl');
    expectRefusal(await runCli(['replay', f], 20_000), f, 'a FIFO, not a regular file');
    expectRefusal(await runCli(['replay', dir], 20_000), dir, 'a directory, not a regular file');
  });

  it('every kind of input file has its cap, named in the message', async () => {
    const replay = sparse('big.jsonl', INPUT_LIMITS.replay + 1);
    expectRefusal(await runCli(['replay', replay], 20_000), replay, `${INPUT_LIMITS.replay + 1} bytes, more than a replay file may have (64 MiB)`);
    const topo = sparse('big-topology.json', INPUT_LIMITS.topology + 1);
    expectRefusal(await runCli(['lspci', '--topology', topo], 20_000), topo, 'more than a topology file may have (1 MiB)');
    const scen = sparse('big-scenario.json', INPUT_LIMITS.scenario + 1);
    expectRefusal(await runCli(['run', '--scenario', scen], 20_000), scen, 'more than a scenario file may have (1 MiB)');
    const faults = sparse('big-faults.json', INPUT_LIMITS.faults + 1);
    expectRefusal(await runCli(['run', '--inject', faults], 20_000), faults, 'more than a fault file may have (1 MiB)');
    const shard = sparse('big-shard.jsonl', INPUT_LIMITS.shard + 1);
    expectRefusal(await runCli(['campaign', 'merge', shard], 20_000), shard, 'more than a shard file may have (256 MiB)');
  });

  it('FIFOs and devices as topology, scenario, --inject and shard files: refused, never waited on', async () => {
    const f = fifo('pipe.json');
    expectRefusal(await runCli(['lspci', '--topology', f], 20_000), `--topology ${f}: a FIFO, not a regular file (a topology file`);
    expectRefusal(await runCli(['run', '--scenario', f], 20_000), f, 'a FIFO', 'scenario file');
    expectRefusal(await runCli(['run', '--inject', '/dev/zero'], 20_000), '/dev/zero', 'a character device', 'fault file');
    expectRefusal(await runCli(['campaign', 'merge', f], 20_000), f, 'a FIFO', 'shard file');
  });

  it('reads to the end rather than trusting the size stat gives, and refuses what is not UTF-8', () => {
    // /proc files say 0 bytes and have content.
    expect(readInputFile('/proc/self/status', 'status file', 1 << 20)).toMatch(/^Name:/);
    expect(() => readInputFile('/proc/self/status', 'status file', 10)).toThrow(/more than a status file may have \(10 bytes\)/);
    const latin1 = file('latin1.json', Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]));
    expect(() => readInputFile(latin1, 'topology file', 1 << 20)).toThrow(new InputError(`${latin1}: not UTF-8 text`));
    expect(() => readInputFile(join(dir, 'missing.json'), 'topology file', 1 << 20)).toThrow(/missing\.json: cannot read \(ENOENT\)/);
  });

  it('no file in src/host is read but through readInputFile', () => {
    // The one exception: args.ts reads smmulab's own package.json for --version, never user input.
    const readers: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|mjs)$/.test(e.name) && /\b(readFileSync|readFile|createReadStream)\(/.test(readFileSync(p, 'utf8'))) readers.push(p.slice(p.indexOf('src/host/')));
      }
    };
    walk(new URL('../src/host', import.meta.url).pathname);
    expect(readers.sort()).toEqual(['src/host/cli/args.ts']);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('2. a key given twice in a JSON object is refused, naming its path', () => {
  it('the scanner: nesting, array indexes, escaped keys, strings that look like syntax', () => {
    const t = '{"ports":[{"bdf":"00:01.0","functions":[{"bdf":"01:00.0","flr":true,\n"flr":false}]}]}';
    expect(duplicateKey(t)).toEqual({ path: 'ports[0].functions[0].flr', firstLine: 1, line: 2 });
    expect(duplicateKey('{"a":1,"\\u0061":2}')).toEqual({ path: 'a', firstLine: 1, line: 1 });
    expect(duplicateKey('[{"a":1},{"a":2}]')).toBeNull();
    expect(duplicateKey('{"a":"}{\\",\\"a\\":","b":{"a":[1,{"a":2}]}}')).toBeNull();
    expect(duplicateKey('[[1],[2,{"k":{"x":1,"x":2}}]]')?.path).toBe('[1][1].k.x');
    expect(() => parseJsonText('{"kind":"sfm","kind":"hang"}', '--inject #1')).toThrow(new InputError('--inject #1: kind: key given twice in one object'));
  });

  it('topology, scenario, --inject (inline and file), replay and shard files', async () => {
    const topo = file('dup-topology.json', '{"ports":[{"bdf":"00:01.0","secondaryBus":1,\n  "functions":[{"bdf":"01:00.0","flr":true,\n  "flr":false}]}]}');
    expectRefusal(await runCli(['lspci', '--topology', topo], 20_000), `${topo}: ports[0].functions[0].flr: key given twice in one object (lines 2 and 3)`);
    const scen = file('dup-scenario.json', '{"workload":[{"do":"sleep","ms":1}],"seed":1,"seed":2}');
    expectRefusal(await runCli(['run', '--scenario', scen], 20_000), `${scen}: seed: key given twice`);
    expectRefusal(await runCli(['run', '--inject', '{"kind":"sfm","trigger":{"count":1,"count":2}}'], 20_000), '--inject #1: trigger.count: key given twice');
    const faults = file('dup-faults.json', '[{"kind":"sfm"},{"kind":"hang","forNs":1,"forNs":2}]');
    expectRefusal(await runCli(['run', '--inject', faults], 20_000), `${faults}: [1].forNs: key given twice`);
    const replay = file('dup.jsonl', '{"w0":"0x46","w1":"0"}\n{"w0":"0x46","w1":"0","w0":"0x3046"}\n');
    expectRefusal(await runCli(['replay', replay], 20_000), `${replay}:2: w0: key given twice`);
    const shard = file('dup-shard.jsonl', '{"type":"campaign","count":1,"count":2}\n');
    expectRefusal(await runCli(['campaign', 'merge', shard], 20_000), `${shard}:1: count: key given twice`);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('3. JavaScript property names are unknown names like any other', () => {
  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty'])('aer error %s is refused (checker, and the hardware model itself)', (error) => {
    expect(() => checkFault({ kind: 'aer', bdf: '01:00.0', error }, 'fault')).toThrow(/^fault\.error: must be one of DLP, /);
    const r = pcieRig();
    try {
      expect(() => r.ep('01:00.0').recordError(error)).toThrow(`unknown AER error '${error}'`);
    } finally {
      r.dispose();
    }
  });

  it('through the CLI: run --inject with error "__proto__", a fault with a "__proto__" key', async () => {
    expectRefusal(await runCli(['run', '--inject', '{"kind":"aer","bdf":"01:00.0","error":"__proto__"}'], 20_000), '--inject #1.error: must be one of', '(got "__proto__")');
    expectRefusal(await runCli(['run', '--inject', '{"kind":"sfm","__proto__":{"trigger":1}}'], 20_000), '--inject #1.__proto__: unknown field');
  });

  it('--features: +constructor names no feature', () => {
    expect(() => parseFeatures('default+constructor')).toThrow("--features: '+constructor' names no boolean feature");
    expect(() => parseFeatures('default-toString')).toThrow("--features: '-toString' names no boolean feature");
  });

  it('fault kinds read back from shard files cannot reach Object.prototype', () => {
    const result = { seed: 1, scenario: 'campaign-1', summary: '', ok: true, problems: [], faultsByKind: JSON.parse('{"__proto__":2,"toString":1}'), dmaUseAfterFree: 0 } as unknown as ScheduleResult;
    const s = summarize({ count: 1, seedStart: 1, scenarios: [], noViolations: false, atcRecovery: 'none', faults: [] }, [result], 1);
    expect(Object.hasOwn(s.byFault, '__proto__')).toBe(true);
    expect(Object.entries(s.byFault)).toEqual([
      ['__proto__', { schedules: 1, fired: 2, withViolations: 0, failed: 0 }],
      ['toString', { schedules: 1, fired: 1, withViolations: 0, failed: 0 }],
    ]);
    expect(({} as Record<string, unknown>).schedules).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------

describe('4. what was silently accepted', () => {
  it('a Root Port at function 1 without function 0 on its device', async () => {
    const only1 = { ports: [{ bdf: '00:01.1', secondaryBus: 1, functions: [{ bdf: '01:00.0' }] }] };
    expect(() => parseTopology(only1, 't')).toThrow(new TopologyError('t.ports[0].bdf: Root Port 00:01.1 is a function of device 00:01 without a function 0 (00:01.0), so software would never find it'));
    const f = file('fn1-only.json', only1);
    expectRefusal(await runCli(['lspci', '--topology', f], 20_000), `${f}.ports[0].bdf: Root Port 00:01.1`, 'without a function 0 (00:01.0)');
  });

  it('two Root Ports on one device: function 0 says multi-function, so lspci finds both', async () => {
    const two = {
      ports: [
        { bdf: '00:01.1', secondaryBus: 2, functions: [{ bdf: '02:00.0' }] },
        { bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0' }] },
      ],
    };
    const t = parseTopology(two, 't');
    expect(t.ports.map((p) => [p.bdf, p.multifunction])).toEqual([['00:01.0', true], ['00:01.1', false]]);
    const r = await runCli(['lspci', '--json', '--topology', file('two-ports.json', two)], 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as PciDeviceInfo[]).map((d) => d.bdf)).toEqual(['00:01.0', '00:01.1', '01:00.0', '02:00.0']);
  });

  it('--features with a feature set twice, or an empty modifier', async () => {
    expect(() => parseFeatures('default+ats-ats')).toThrow("--features: '-ats' sets ats again (after '+ats')");
    expect(() => parseFeatures('default+ats+ats')).toThrow("--features: '+ats' sets ats again (after '+ats')");
    expect(() => parseFeatures('default+')).toThrow("--features: '+' names no boolean feature");
    expect(parseFeatures('default-pri+btm').features.btm).toBe(true);
    expectRefusal(await runCli(['replay', '--features', 'default+ats-ats', 'test/fixtures/replay-small.jsonl'], 20_000), "replay: --features: '-ats' sets ats again (after '+ats')");
  });

  /** 17 functions with 64 KiB BARs: 16 fill the 1 MiB BAR window, the 17th (03:00.0) does not fit. */
  const CROWDED = {
    ports: [1, 2, 3].map((bus) => ({
      bdf: `00:0${bus}.0`,
      secondaryBus: bus,
      functions: Array.from({ length: bus === 3 ? 1 : 8 }, (_, fn) => ({ bdf: `0${bus}:00.${fn}`, barBytes: 65536 })),
    })),
  };

  it('a BAR that does not fit the BAR window: lspci says so (JSON and text), not only the log', async () => {
    const f = file('crowded.json', CROWDED);
    const j = await runCli(['lspci', '--json', '--topology', f], 120_000);
    expect(j.code, j.stderr).toBe(0);
    const devs = JSON.parse(j.stdout) as PciDeviceInfo[];
    const unassigned = devs.filter((d) => d.bars.some((b) => !b.assigned)).map((d) => d.bdf);
    expect(unassigned).toEqual(['03:00.0']);
    expect(devs.find((d) => d.bdf === '03:00.0')).toMatchObject({ driver: null, bars: [{ index: 0, start: 0, size: 65536, assigned: false }] });
    expect(devs.find((d) => d.bdf === '02:00.7')!.bars[0]!.assigned).toBe(true);
    const t = await runCli(['lspci', '--verbose', '--topology', f], 120_000);
    expect(t.code, t.stderr).toBe(0);
    const line = t.stdout.split('\n').find((l) => l.includes('03:00.0'))!;
    expect(line).toMatch(/BAR 0 not assigned: no space in the 1 MiB BAR window$/);
    expect(t.stdout).toContain('BAR 0: [size 64K] not assigned: no space in the 1 MiB BAR window');
    expect(t.stdout.split('\n').filter((l) => l.includes('not assigned'))).toHaveLength(2);
  });

  it('run --workload ats-dma reports the unassigned BAR (JSON and text)', async () => {
    const f = file('crowded-run.json', CROWDED);
    const j = await runCli(['run', '--workload', 'ats-dma', '--seconds', '0.1', '--json', '--topology', f], 180_000);
    expect(j.code, j.stderr).toBe(0);
    const rep = JSON.parse(j.stdout) as { unassignedBars: unknown; endpoints: string[] };
    expect(rep.unassignedBars).toEqual([{ bdf: '03:00.0', bar: 0, size: 65536 }]);
    expect(rep.endpoints).toHaveLength(16);
    expect(rep.endpoints).not.toContain('03:00.0');
    const t = await runCli(['run', '--workload', 'ats-dma', '--seconds', '0.1', '--topology', f], 180_000);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain('unassignedBars: [{"bdf":"03:00.0","bar":0,"size":65536}]');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('5. input echoed in errors: short, escaped', () => {
  const MB20 = 20 << 20;

  it('show() and clip(): a prefix and "… (N bytes)", control and format characters escaped', () => {
    const big = 'A'.repeat(MB20);
    expect(show(big)).toBe(`"${'A'.repeat(40)}"… (${MB20} bytes)`);
    expect(show(big).length).toBeLessThanOrEqual(60);
    expect(show('é'.repeat(100))).toMatch(/… \(200 bytes\)$/);
    expect(show('a\u001b[2Jb\u009b\u202e\u2028\n"\\')).toBe('"a\\u001b[2Jb\\u009b\\u202e\\u2028\\n\\"\\\\"');
    expect(clip('k\u0000\u0007')).toBe('k\\u0000\\u0007');
    // An escape is never cut in half.
    expect(show('\u001b'.repeat(100))).toBe(`"${'\\u001b'.repeat(7)}"… (100 bytes)`);
    expect(show({ a: 'x'.repeat(1000) })).toMatch(/^\{"a":"x+… \(1008 bytes\)$/);
  });

  it('the protocol checkers echo through show(): topology, faults, triggers, scenarios', () => {
    const big = 'x'.repeat(MB20);
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    for (const m of [
      msg(() => parseTopology({ ports: [{ bdf: big, secondaryBus: 1, functions: [] }] }, 't')),
      msg(() => parseTopology({ ports: [{ bdf: '00:01.0', secondaryBus: big, functions: [] }] }, 't')),
      msg(() => parseTopology({ ports: [], [`\u001b]0;${big}`]: 1 }, 't')),
      msg(() => checkFault({ kind: 'aer', bdf: '01:00.0', error: big }, 'f')),
      msg(() => checkFault({ kind: 'sfm', trigger: { count: big } }, 'f')),
    ]) {
      expect(m.length).toBeLessThan(300);
      expect(m).toMatch(/… \(2097152\d bytes\)/);
      expect(CONTROL.test(m)).toBe(false);
    }
  });

  it('a 20 MB value in a replay file: one short line', async () => {
    const f = file('huge.jsonl', `{"w0":"${'f'.repeat(MB20)}","w1":"0"}\n`);
    expectRefusal(await runCli(['replay', f], 60_000), `${f}:1: "w0" is '`, `… (${MB20} bytes)', not a 64-bit hex number`);
  });

  it('ESC bytes: raw in a file, escaped in JSON strings and keys, in arguments: never raw on stderr', async () => {
    const raw = file('garbage.json', Buffer.from('\u001b[2J\u001b]0;owned\u0007{"ports":[]}'));
    expectRefusal(await runCli(['lspci', '--topology', raw], 20_000), `${raw}: not valid JSON (`, '\\u001b');
    const inJson = file('esc-value.json', { ports: [{ bdf: '\u001b[2J\u001b[31mred', secondaryBus: 1, functions: [{ bdf: '01:00.0' }] }] });
    expectRefusal(await runCli(['lspci', '--topology', inJson], 20_000), `${inJson}.ports[0].bdf: "\\u001b[2J\\u001b[31mred" is not a BB:DD.F address`);
    const inKey = file('esc-key.json', { ports: [], '\u001b[2J': 1 });
    expectRefusal(await runCli(['lspci', '--topology', inKey], 20_000), `${inKey}.\\u001b[2J: unknown field`);
    const scen = file('esc-scenario.json', { ...SCENARIO, faults: [{ kind: 'aer', bdf: '01:00.0', error: '\u001b[2J' }] });
    expectRefusal(await runCli(['run', '--scenario', scen], 20_000), 'faults[0].error: must be one of', '(got "\\u001b[2J")');
    expectRefusal(await runCli(['run', '--workload', '\u001b[2Jx'], 20_000), "--workload '\\u001b[2Jx' is unknown");
    expectRefusal(await runCli(['dump-config', '\u001b[2J'], 20_000), "'\\u001b[2J' is not a BB:DD.F address");
    expectRefusal(await runCli(['lspci', '--features', 'default\u001b[2J'], 20_000), '--features: must be a profile name');
    const replay = file('esc.jsonl', '{"w0":"\\u001b[2J","w1":"0"}\n\u001b[2J\n');
    const r = await runCli(['replay', replay], 20_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `${replay}:1: "w0" is '\\u001b[2J', not a 64-bit hex number (1 to 16 hex digits, optional 0x prefix)`,
      expect.stringMatching(new RegExp(`^${replay.replace(/[.]/g, '\\.')}:2: not valid JSON \\(.*\\\\u001b`)),
    ]);
    expect(CONTROL.test(r.stderr.trimEnd())).toBe(false);
  });
});
