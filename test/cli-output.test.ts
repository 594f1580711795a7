// What the commands print besides their reports: `run --dmesg` and `replay --dmesg` (the kernel log,
// where event and command-error lines are otherwise out of sight), JSON log entries with time, CPU and
// level, and progress lines, which go to stderr only on a terminal or with --progress (runCli's stderr
// is a pipe) and end with a final line.

import { describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import type { LogEntry } from '../src/protocol/log.ts';

const SMALL = 'test/fixtures/replay-small.jsonl';
/** A dmesg line: "[    1.234567] message". */
const DMESG_LINE = /^\[ *\d+\.\d{6}\] /;

function expectEntries(entries: LogEntry[]): void {
  expect(entries.length).toBeGreaterThan(0);
  for (const e of entries) expect(Object.keys(e).sort()).toEqual(['cpu', 'level', 'msg', 't']);
  expect(entries.every((e) => Number.isInteger(e.t) && Number.isInteger(e.cpu) && ['err', 'warn', 'info', 'debug'].includes(e.level))).toBe(true);
  expect(entries.map((e) => e.t)).toEqual([...entries.map((e) => e.t)].sort((a, b) => a - b));
}

describe('--dmesg', () => {
  it('replay: the command error and skip_err lines, on stderr and as entries in the JSON report', async () => {
    const plain = await runCli(['replay', SMALL], 120_000);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toBe('');
    const r = await runCli(['replay', SMALL, '--dmesg'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.every((l) => DMESG_LINE.test(l)), r.stderr).toBe(true);
    expect(r.stderr).toMatch(/arm-smmu-v3 9050000\.smmuv3: ias 48-bit/);
    expect(r.stderr).toContain('arm-smmu-v3 9050000.smmuv3: CMDQ error (cons 0x0100000b): Illegal command');
    expect(r.stderr).toContain('skipping command in error state:');
    const j = await runCli(['replay', SMALL, '--dmesg', '--json'], 120_000);
    expect(j.code, j.stderr).toBe(0);
    const out = JSON.parse(j.stdout) as { dmesg: LogEntry[]; errors: unknown[] };
    expectEntries(out.dmesg);
    // The GERROR handler runs on CPU 1 in a replay: the entry says so.
    expect(out.dmesg.find((e) => e.msg.includes('CMDQ error'))).toMatchObject({ cpu: 1, level: 'err' });
    expect(Object.keys(JSON.parse((await runCli(['replay', SMALL, '--json'], 120_000)).stdout))).not.toContain('dmesg');
  });

  it('run: the kernel log on stderr; with --json, probeLog and dmesg as entries', async () => {
    const r = await runCli(['run', '--workload', 'dma-map', '--fault-every', '1', '--cpus', '1', '--seconds', '0.3', '--dmesg'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.every((l) => DMESG_LINE.test(l)), r.stderr).toBe(true);
    expect(r.stderr).toMatch(/arm-smmu-v3 9050000\.smmuv3: allocated \d+ entries for cmdq/);
    // DMA to a buffer just unmapped faults: the event queue thread's lines are in the log.
    expect(r.stderr).toContain('arm-smmu-v3 9050000.smmuv3: event 0x10 received:');
    expect(r.stderr).toMatch(/event: F_TRANSLATION client: testdev0 sid: 0x100 /);
    const j = await runCli(['run', '--cpus', '1', '--seconds', '0.1', '--json', '--dmesg'], 120_000);
    expect(j.code, j.stderr).toBe(0);
    const out = JSON.parse(j.stdout) as { probeLog: LogEntry[]; dmesg: LogEntry[] };
    expectEntries(out.probeLog);
    expectEntries(out.dmesg);
    expect(out.dmesg.slice(0, out.probeLog.length)).toEqual(out.probeLog);
    expect(j.stderr.trimEnd().split('\n')).toHaveLength(out.dmesg.length);
  });
});

describe('progress lines', () => {
  it('run: none on a pipe; with --progress about once a second and a final line', async () => {
    const quiet = await runCli(['run', '--cpus', '1', '--seconds', '1.5'], 120_000);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    const r = await runCli(['run', '--cpus', '1', '--seconds', '2.5', '--progress'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(2);
    for (const l of lines.slice(0, -1)) expect(l).toMatch(/^run: [\d.]+ s of 2\.5 s, \d+ commands executed$/);
    expect(lines.at(-1)).toMatch(/^run: done, [\d.]+ s of 2\.5 s, \d+ commands executed$/);
    expect(r.stdout).not.toMatch(/^run: [\d.]+ s of/m);
    // A short run prints none, even when asked: it is over within a second.
    const short = await runCli(['run', '--cpus', '1', '--seconds', '0.1', '--progress'], 120_000);
    expect(short.stderr).toBe('');
  });

  it('campaign: none on a pipe; with --progress counting lines and a final line', async () => {
    const base = ['campaign', '--count', '3', '--seed-start', '100001', '--workers', '1', '--json'];
    const quiet = await runCli(base, 120_000);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    const r = await runCli([...base, '--progress'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.at(-2)).toMatch(/^campaign: 3\/3 schedules, [\d.]+\/s$/);
    expect(lines.at(-1)).toMatch(/^campaign: done, 3 schedules \(0 failed\) in [\d.]+ s$/);
    expect(JSON.parse(r.stdout).schedules).toBe(3);
  });

  it('compare: none on a pipe; with --progress a line per step and a final line', async () => {
    const base = ['compare', '--count', '0', '--policies', 'none', '--scenario', 'atc-inv-no-answer'];
    const quiet = await runCli(base, 120_000);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    const r = await runCli([...base, '--progress'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'compare: atc-inv-no-answer done',
      'compare: campaign under none done',
      expect.stringMatching(/^compare: done, 1 policies on 1 scenarios and 0 seeds in [\d.]+ s$/),
    ]);
  });
});
