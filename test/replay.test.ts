// smmulab replay: a small hand-written file and a malformed one, through the CLI as a user runs it,
// plus the input parser on its own.

import { describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import { parseReplay } from '../src/host/cli/replay.ts';
import { UsageError } from '../src/host/cli/args.ts';

const SMALL = 'test/fixtures/replay-small.jsonl';
const MALFORMED = 'test/fixtures/replay-malformed.jsonl';

describe('smmulab replay (CLI)', () => {
  it('replays the small file on the default profile: exact counts, the illegal SYNC mapped to its line', async () => {
    const r = await runCli(['replay', SMALL, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    // Every legal command of the file once; the file's two good CMD_SYNCs; neither the driver's final
    // SYNC nor the SYNC skip_err writes over the illegal one.
    expect(out.executedByOpcode).toEqual({
      CFGI_STE: 1,
      TLBI_NH_ASID: 1,
      TLBI_EL2_ALL: 1,
      SYNC: 2,
      TLBI_NSNH_ALL: 1,
      TLBI_NH_ALL: 1,
      CFGI_STE_RANGE: 1,
    });
    expect(out.syncs).toBe(2);
    // Probe on the default profile (HYP) used slots 0-5 (CFGI_ALL, TLBI_EL2_ALL, TLBI_NSNH_ALL, each
    // + SYNC), so the file starts at slot 6 and its 6th command (line 7, CS=0b11) sits in slot 11.
    expect(out.errors).toEqual([{ line: 7, cons: 11, code: 1, name: 'CERROR_ILL' }]);
    // 6 probe + 9 file + 1 final SYNC consumed; CONS.ERR keeps the last error code (CERROR_ILL).
    expect(out.finalCons).toBe((1 << 24) | 16);
    expect(out.commands).toBe(9);
  });

  it('on a profile without HYP, TLBI_EL2_ALL is illegal too and both errors map to their lines', async () => {
    const r = await runCli(['replay', SMALL, '--features', 'qemu-like', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.executedByOpcode).toEqual({ CFGI_STE: 1, TLBI_NH_ASID: 1, SYNC: 2, TLBI_NSNH_ALL: 1, TLBI_NH_ALL: 1, CFGI_STE_RANGE: 1 });
    // Probe without HYP: 4 slots; the file's commands start at slot 4.
    expect(out.errors).toEqual([
      { line: 3, cons: 6, code: 1, name: 'CERROR_ILL' },
      { line: 7, cons: 9, code: 1, name: 'CERROR_ILL' },
    ]);
    expect(out.syncs).toBe(2);
    expect(out.finalCons).toBe((1 << 24) | 14);
  });

  it('prints a text report by default', async () => {
    const r = await runCli(['replay', SMALL]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}TLBI_NSNH_ALL +1$/m);
    expect(r.stdout).toContain('line 7: CERROR_ILL (code 1) at CONS 0x0000000b');
    expect(r.stdout).toContain('final CMDQ_CONS: 0x01000010');
  });

  it('rejects a malformed file with exit 2, naming every bad line, before booting anything', async () => {
    const r = await runCli(['replay', MALFORMED, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines.map((l) => l.split(': ')[0])).toEqual([2, 3, 4, 5, 7, 8].map((n) => `${MALFORMED}:${n}`));
    expect(lines[0]).toContain('not valid JSON');
    expect(lines[1]).toContain('missing "w1"');
    expect(lines[2]).toContain('"w0" must be a hex string');
    expect(lines[3]).toContain("'0x10000000000000000', not a 64-bit hex number");
    expect(lines[4]).toContain('expected a JSON object');
    expect(lines[5]).toContain("'0x4 6'");
  });

  it('exit 2 for a missing file, a bad profile and a missing FILE argument', async () => {
    const missing = await runCli(['replay', 'test/fixtures/no-such-file.jsonl']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('test/fixtures/no-such-file.jsonl: cannot read');
    const prof = await runCli(['replay', SMALL, '--features', 'nope']);
    expect(prof.code).toBe(2);
    expect(prof.stderr).toContain("unknown profile 'nope'");
    const none = await runCli(['replay']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('expected exactly one FILE');
  });
});

describe('replay input parser', () => {
  it('splits each 64-bit word into low and high 32-bit halves, with or without 0x', () => {
    const p = parseReplay('{"w0":"0x0000000100000003","w1":"1"}\n{"w0":"FFFFFFFFFFFFFFFF","w1":"0Xabcdef0012345678","x":5}\n', 'f');
    expect(p.words).toEqual([3, 1, 1, 0, 0xffffffff, 0xffffffff, 0x12345678, 0xabcdef00]);
    expect(p.lines).toEqual([1, 2]);
  });

  it('skips blank lines but counts them, accepts CRLF, and accepts an empty file', () => {
    const p = parseReplay('\r\n  \n{"w0":"0x46","w1":"0"}\r\n', 'f');
    expect(p.lines).toEqual([3]);
    expect(parseReplay('', 'f')).toEqual({ words: [], lines: [] });
  });

  it('reports every malformed line as FILE:LINE: reason in one UsageError', () => {
    const run = () => parseReplay('{"w0":"0x46"}\n{"w0":"","w1":"0"}\n{"w0":"-1","w1":"0"}\nnull\n', 'in.jsonl');
    expect(run).toThrow(UsageError);
    expect(run).toThrow(/^in\.jsonl:1: missing "w1"\nin\.jsonl:2: "w0" is '', not a 64-bit hex number.*\nin\.jsonl:3: "w0" is '-1'.*\nin\.jsonl:4: expected a JSON object/);
  });
});
