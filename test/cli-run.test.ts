// smmulab run through the CLI, as `npm start` runs it: the JSON report's shape, the hardware's counts
// against what the CPUs issued, and option errors.

import { describe, expect, it, vi } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import { registerRunOption, registerWorkload } from '../src/host/cli/workloads.ts';
import { sumCounts, type Workload } from '../src/host/cli/workload-api.ts';
import type { LogEntry } from '../src/protocol/log.ts';

interface RunJson {
  features: Record<string, unknown>;
  profile: string;
  probeLog: LogEntry[];
  executedByOpcode: Record<string, number>;
  issuedByOpcode: Record<string, number>;
  check: string;
  syncs: number;
  errors: { cerrors: Record<string, number>; gerrors: Record<string, number>; syncTimeouts: number };
  cmdsPerSec: number;
  nonSyncCmdsPerSec: number;
  seconds: number;
  cpus: number;
  perCpu: { cpu: number; batches: number; issuedByOpcode: Record<string, number> }[];
}

function checkReport(out: RunJson, cpus: number, batch: number): void {
  expect(out.cpus).toBe(cpus);
  expect(out.probeLog.some((l) => /arm-smmu-v3 .*: ias \d+-bit, oas \d+-bit \(features 0x[0-9a-f]{8}\)/.test(l.msg))).toBe(true);
  // JSON log entries carry their platform time (whole ns), CPU and level.
  for (const l of out.probeLog) expect(l).toEqual({ t: expect.any(Number), cpu: expect.any(Number), level: expect.stringMatching(/^(err|warn|info|debug)$/), msg: expect.any(String) });
  expect(out.probeLog.find((l) => l.msg.includes('ias '))).toMatchObject({ cpu: 0, level: 'info' });
  expect(out.probeLog.every((l) => Number.isInteger(l.t) && l.t > 0)).toBe(true);
  expect(out.check).toBe('OK');
  // Only the workload's commands: TLBI_NH_VA and its CMD_SYNCs (the probe's CFGI_ALL etc. excluded).
  expect(Object.keys(out.executedByOpcode).sort()).toEqual(['SYNC', 'TLBI_NH_VA']);
  expect(out.executedByOpcode).toEqual(out.issuedByOpcode);
  expect(out.executedByOpcode.SYNC).toBeGreaterThan(0);
  expect(out.executedByOpcode.TLBI_NH_VA).toBe(out.executedByOpcode.SYNC! * batch);
  expect(out.syncs).toBe(out.executedByOpcode.SYNC);
  // The per-CPU results add up to the totals, and every CPU took part.
  expect(out.perCpu).toHaveLength(cpus);
  for (const c of out.perCpu) expect(c.batches).toBeGreaterThan(0);
  expect(out.perCpu.reduce((n, c) => n + c.batches, 0)).toBe(out.syncs);
  expect(out.errors).toEqual({ cerrors: {}, gerrors: {}, syncTimeouts: 0 });
  expect(out.seconds).toBeGreaterThan(0);
  const total = out.executedByOpcode.SYNC! + out.executedByOpcode.TLBI_NH_VA!;
  // cmdsPerSec counts every executed command, SYNCs included (seconds is rounded to 1 ms in the report).
  expect(Math.abs(out.cmdsPerSec * out.seconds - total) / total).toBeLessThan(0.01);
  expect(out.cmdsPerSec).toBeGreaterThan(out.nonSyncCmdsPerSec);
}

describe('smmulab run (CLI)', () => {
  it('--json prints one object whose executed counts equal what the CPUs issued', async () => {
    const r = await runCli(['run', '--json', '--seconds', '0.5', '--cpus', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const out = JSON.parse(r.stdout) as RunJson;
    expect(out.profile).toBe('default');
    expect(out.features.msi).toBe(true);
    checkReport(out, 2, 8);
  });

  it('runs another profile, batch size and CPU count (CONS polling without MSI or SEV)', async () => {
    const r = await runCli(['run', '--json', '--seconds', '0.3', '--cpus', '1', '--batch', '3', '--features', 'poll-only']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as RunJson;
    expect(out.profile).toBe('poll-only');
    expect(out.features.msi).toBe(false);
    expect(out.features.sev).toBe(false);
    checkReport(out, 1, 3);
  });

  it('text report: probe log, per-opcode counts and the cross-check', async () => {
    const r = await runCli(['run', '--seconds', '0.2', '--cpus', '1', '--features', 'qemu-like', '--no-msipoll']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('features qemu-like (SMMUv3.2)');
    expect(r.stdout).toMatch(/^ {2}TLBI_NH_VA +[\d,]+$/m);
    expect(r.stdout).toContain('issued by the CPUs = executed by the SMMU: OK');
    expect(r.stdout).toContain('errors: none');
  });

  it('a bad option exits 2 with a message naming it', async () => {
    const unknown = await runCli(['run', '--cpu', '2']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown option --cpu');
    const range = await runCli(['run', '--cpus', '0']);
    expect(range.code).toBe(2);
    expect(range.stderr).toContain('--cpus must be an integer from 1 to 16');
    const irq = await runCli(['run', '--cpus', '2', '--irq-cpu', '2']);
    expect(irq.code).toBe(2);
    expect(irq.stderr).toContain('--irq-cpu must be an integer from 0 to 1');
    const wl = await runCli(['run', '--workload', 'nope']);
    expect(wl.code).toBe(2);
    expect(wl.stderr).toContain("--workload 'nope' is unknown (known: tlbi");
    const feat = await runCli(['run', '--features', 'default+warp']);
    expect(feat.code).toBe(2);
    expect(feat.stderr).toContain("'+warp' names no boolean feature");
    const secs = await runCli(['run', '--seconds', 'x']);
    expect(secs.code).toBe(2);
    expect(secs.stderr).toContain("--seconds 'x' is not a number");
  });
});

describe('workload registry (in-process)', () => {
  // Registers test workloads and a run option the way another area does, then runs `run` in this
  // process (real workers) and captures what it prints.
  const capture = async (argv: string[]) => {
    const { command } = await import('../src/host/cli/run.ts');
    let stdout = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      stdout += String(s);
      return true;
    });
    try {
      return { code: await command.run(argv), stdout };
    } finally {
      spy.mockRestore();
    }
  };
  const seen: { value: unknown; cpus: number | undefined }[] = [];
  registerRunOption('test-tag', async () => ({
    spec: { type: 'string', help: 'test option', default: 'none' },
    apply: (value, setup) => seen.push({ value, cpus: setup.boot.cpus }),
  }));
  const fixed = (lie: number): Workload => ({
    summary: 'test: a fixed number of batches per CPU',
    options: { iterations: { type: 'number', help: 'batches per CPU', default: 5 } },
    async run(ctx) {
      const n = Number(ctx.opts.iterations);
      const per = await Promise.all(ctx.sys.cpus.map((c) => c.op('workload', { batch: ctx.batch, iterations: n }, ctx.callTimeoutMs)));
      const issued = sumCounts(per.map((r) => r.issuedByOpcode));
      issued.TLBI_NH_VA! += lie;
      return { issuedByOpcode: issued, perCpu: per.map((r) => r.batches), extra: { iterations: n } };
    },
  });
  registerWorkload('test-fixed', async () => fixed(0));
  registerWorkload('test-liar', async () => fixed(1));

  it('runs a registered workload with its own option; run options are applied before boot', async () => {
    const r = await capture(['--workload', 'test-fixed', '--iterations', '7', '--batch', '4', '--cpus', '2', '--test-tag', 'x', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.executedByOpcode).toEqual({ TLBI_NH_VA: 2 * 7 * 4, SYNC: 2 * 7 });
    expect(out.check).toBe('OK');
    expect(out.perCpu).toEqual([7, 7]);
    expect(out.iterations).toBe(7);
    expect(seen.at(-1)).toEqual({ value: 'x', cpus: 2 });
  });

  it('a workload whose issued counts disagree with the hardware fails the run with MISMATCH', async () => {
    const r = await capture(['--workload', 'test-liar', '--iterations', '2', '--cpus', '1', '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.check).toBe('MISMATCH');
    expect(out.mismatches).toEqual([{ opcode: 'TLBI_NH_VA', issued: 2 * 8 + 1, executed: 2 * 8 }]);
  });

  it("another workload's option is refused", async () => {
    await expect(capture(['--workload', 'tlbi', '--iterations', '3'])).rejects.toThrow(/unknown option --iterations/);
  });
});
