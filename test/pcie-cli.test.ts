// The PCIe features the way a user reaches them, with real workers: `smmulab lspci`, `smmulab reset`,
// `smmulab run --workload ats-dma`, `--topology` files (good and bad), and, through the System API with
// the GERROR interrupt on a second CPU, an ATC invalidation timeout handled there that the issuing CPU
// still learns of (SYNC_ATC_TIMEOUT) once the re-executed CMD_SYNC completes.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import { waitFor } from './helpers/system.ts';
import { System } from '../src/host/system.ts';
import { STAT } from '../src/machine/layout.ts';
import { PCIE_STAT, pcieStat } from '../src/machine/pcie-stats.ts';
import { atcInvEnt, buildCmd } from '../drivers/arm-smmu-v3/cmds.ts';
import { SYNC_ATC_TIMEOUT } from '../drivers/arm-smmu-v3/cmdq.ts';
import { NS_PER_MS } from '../src/arch/time.ts';
import type { LspciJson } from '../src/host/cli/lspci.ts';

const dir = mkdtempSync(join(tmpdir(), 'smmulab-pcie-'));
const file = (name: string, json: unknown) => {
  const f = join(dir, name);
  writeFileSync(f, typeof json === 'string' ? json : JSON.stringify(json));
  return f;
};

const THREE = {
  ports: [
    { bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', deviceId: '0x5a11' }, { bdf: '01:00.1', deviceId: '0x5a10', streamId: 0x180 }] },
    { bdf: '00:02.0', secondaryBus: 2, functions: [{ bdf: '02:00.0', deviceId: '0x5a12', capabilities: ['pm', 'msi', 'exp'] }] },
  ],
};

describe('smmulab lspci', () => {
  it('prints the enumerated tree, and the records as JSON', async () => {
    const t = await runCli(['lspci'], 120_000);
    expect(t.code).toBe(0);
    const lines = t.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('0000:00 (PCI host bridge)');
    expect(lines[1]).toMatch(/^\|-- 00:01\.0 PCI bridge \[1b36:000c\] rev 00, Root Port, bus 01 below$/);
    expect(lines[2]).toMatch(/^\| {3}`-- 01:00\.0 System peripheral \[1234:5a11\] rev 01, Endpoint, SID 0x0100, driver smmulab-dma, ATS enabled \(STU 4 KiB\), invalidate queue depth 8, IOMMU paging \d+$/);
    expect(lines[3]).toMatch(/^`-- 00:02\.0 PCI bridge/);
    expect(lines[4]).toMatch(/^ {4}`-- 02:00\.0 .*SID 0x0200/);
    const j = await runCli(['lspci', '--json', '--topology', file('three.json', THREE)], 120_000);
    expect(j.code).toBe(0);
    const devs = JSON.parse(j.stdout) as LspciJson[];
    expect(devs.map((d) => d.bdf)).toEqual(['00:01.0', '00:02.0', '01:00.0', '01:00.1', '02:00.0']);
    // IDs as hex strings, as lspci -n writes them; null for what a function has not (a Root Port's StreamID).
    expect(devs[0]).toMatchObject({ vendor: '0x1b36', device: '0x000c', classCode: '0x060400', revision: '0x00', sid: null, irq: null, iommu: null });
    const [f0, f1, plain] = devs.slice(2);
    expect(f0).toMatchObject({ vendor: '0x1234', device: '0x5a11', sid: '0x0100' });
    expect(f0!.caps.slice(0, 2)).toEqual([expect.objectContaining({ id: '0x01', ext: false }), expect.objectContaining({ id: '0x05' })]);
    expect(typeof f0!.irq).toBe('number');
    expect(f0!.multifunction).toBe(true);
    expect(f1!.sid).toBe('0x0180');
    // Methods are probed as each function is added (Linux does it in pci_device_add): function 0 is still
    // alone on its bus then, so 'bus' is listed for it (and refused with -ENOTTY when tried); function 1
    // already has a sibling.
    expect(f0!.resetMethods).toEqual(['device_specific', 'flr', 'pm', 'bus']);
    expect(f1!.resetMethods).toEqual(['flr', 'pm']);
    expect(plain!.ats).toBe(null);
    expect(plain!.caps.map((c) => c.name)).toEqual(['Power Management', 'MSI', 'Express']);
    expect(plain!.resetMethods).toEqual(['device_specific', 'flr', 'pm', 'bus']);
  });

  it('rejects a bad topology file with the file and the field, and a malformed BDF', async () => {
    const bad = await runCli(['lspci', '--topology', file('bad.json', { ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', invLatencyUs: 'slow' }] }] })]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/lspci: --topology .*bad\.json\.ports\[0\]\.functions\[0\]\.invLatencyUs: must be a number/);
    const notJson = await runCli(['dump-config', '01:00.0', '--topology', file('nj.json', '{ports:')]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/nj\.json: not valid JSON/);
    const missing = await runCli(['reset', '01:00.0', '--topology', join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.json: cannot read \(ENOENT\)/);
    const bdf = await runCli(['dump-config', '1:0.0']);
    expect(bdf.code).toBe(2);
    expect(bdf.stderr).toContain("dump-config: '1:0.0' is not a BB:DD.F address");
    const absent = await runCli(['dump-config', '03:00.0'], 120_000);
    expect(absent.code).toBe(2);
    expect(absent.stderr).toContain('dump-config: no PCI function at 03:00.0 (found: 00:01.0, 00:02.0, 01:00.0, 02:00.0)');
  });
});

describe('smmulab reset', () => {
  it('each method, by its sysfs name, succeeds and leaves the device unblocked at depth 0', async () => {
    for (const [bdf, method] of [['01:00.0', 'flr'], ['01:00.0', 'device_specific'], ['02:00.0', 'pm'], ['02:00.0', 'bus']] as const) {
      const r = await runCli(['reset', bdf, '--method', method, '--json'], 120_000);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(Object.keys(out)).toEqual(['ok', 'method', 'requested', 'rc', 'errno', 'ms', 'depth', 'blocked']);
      expect(out).toMatchObject({ ok: true, method, requested: method, rc: 0, errno: null, depth: 0, blocked: false });
      // An FLR takes Linux's 100 ms wait at least; PM reset two 10 ms d3hot delays.
      expect(out.ms).toBeGreaterThanOrEqual(method === 'pm' ? 20 : 100);
    }
  });

  it('a hung FLR fails and leaves the device blocked; a failed prepare fails without blocking', async () => {
    // At 200x the 60 s readiness poll after the hung FLR takes 0.3 s of host time; the driver's 1 s
    // register and CMD_SYNC timeout would be 5 ms, which a loaded host's scheduler can exceed during
    // probe, so it gets 200 platform s (1 s of host time).
    const hang = await runCli(['reset', '02:00.0', '--method', 'flr', '--fault', 'flr-never-ready', '--time-scale', '200', '--poll-timeout-ms', '200000', '--json', '--dmesg'], 120_000);
    expect(hang.code, hang.stderr).toBe(0);
    // pci_dev_wait gives up with -ENOTTY (Linux's "not ready ... giving up"): the report names it and the method.
    expect(JSON.parse(hang.stdout)).toMatchObject({ ok: false, method: 'flr', requested: 'flr', rc: -25, errno: '-ENOTTY', depth: 0, blocked: true });
    expect(hang.stderr).toContain('pci 0000:02:00.0: Reset failed. Blocking ATS to protect memory');
    const prep = await runCli(['reset', '01:00.0', '--method', 'flr', '--fault', 'fail-blocking-attach', '--json', '--dmesg'], 120_000);
    expect(prep.code, prep.stderr).toBe(0);
    expect(JSON.parse(prep.stdout)).toMatchObject({ ok: false, method: 'flr', errno: '-ENOMEM', depth: 0, blocked: false });
    expect(prep.stderr).toContain('failed to stop IOMMU for a PCI reset: -ENOMEM');
    const text = await runCli(['reset', '01:00.0', '--method', 'pm'], 120_000);
    expect(text.stdout).toMatch(/^01:00\.0: reset via pm succeeded in [\d.]+ ms; IOMMU reset depth 0, device unblocked\n$/);
    const usage = await runCli(['reset', '01:00.0', '--method', 'warm']);
    expect(usage.code).toBe(2);
    expect(usage.stderr.trim()).toBe("reset: --method 'warm' is not one of device_specific, flr, pm, bus, cxl_bus (the sysfs reset_method names)");
  });
});

describe('smmulab run --workload ats-dma', () => {
  it('reports ATC hits, misses, invalidations and their latency; hardware executed what the driver issued', async () => {
    const r = await runCli(['run', '--workload', 'ats-dma', '--cpus', '1', '--seconds', '0.1', '--json', '--topology', file('three2.json', THREE)], 180_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.check).toBe('OK');
    expect(out.executedByOpcode).toEqual(out.issuedByOpcode);
    // Every endpoint copies: two through their ATCs, the third (no ATS) untranslated.
    expect(out.endpoints).toEqual(['01:00.0', '01:00.1', '02:00.0']);
    expect(out.rounds).toBeGreaterThan(0);
    expect(out.transfers).toBe(out.rounds * 4 * 3);
    expect(out.verifyFailures).toBe(0);
    expect(out.dmaErrors).toEqual([]);
    // Per round and endpoint: 8 pages (4 source, 4 destination) miss once, then hit in 3 more copies.
    expect(out.atcMisses).toBe(out.rounds * 2 * 8);
    expect(out.atcHits).toBe(out.rounds * 2 * 8 * 3);
    // Two unmaps per round, each invalidating both endpoints' ATCs, plus the ATC flushes of attaching.
    expect(out.atcInvalidations).toBeGreaterThanOrEqual(out.rounds * 2 * 2);
    expect(out.executedByOpcode.ATC_INV).toBe(out.atcInvalidations);
    expect(out.invLatencyP50Ns).toBeGreaterThan(0);
    expect(out.invLatencyP99Ns).toBeGreaterThanOrEqual(out.invLatencyP50Ns);
    expect(out.events).toEqual({});
    expect(out.atcInvTimeouts).toBe(0);
  });

  it('--atc-timeout-ms shorter than every endpoint answers: each invalidation times out and its CMD_SYNC fails with CERROR_ATC_INV_SYNC', async () => {
    // The mainline driver (--atc-recovery none): the point is the timeouts and how the issuer learns of
    // them; the default policy would fence and reset both endpoints, again and again.
    const r = await runCli(['run', '--workload', 'ats-dma', '--cpus', '1', '--seconds', '0.02', '--atc-timeout-ms', '0.0005', '--poll-timeout-ms', '100', '--atc-recovery', 'none', '--json'], 180_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.check).toBe('OK');
    expect(out.atcInvalidations).toBeGreaterThan(0);
    expect(out.atcInvTimeouts).toBe(out.atcInvalidations);
    expect(out.invLatencyP50Ns).toBe(null);
    const cerrors = out.errors.cerrors.CERROR_ATC_INV_SYNC;
    expect(cerrors).toBeGreaterThan(0);
    // One CPU: the GERROR interrupt waits while it polls, so each of those CMD_SYNCs' polls runs out
    // (here after 100 ms); the CPU then finds the error in GERROR itself and handles it, and the
    // re-executed SYNC completes: each error handled once, by the issuer, and no SYNC timed out.
    expect(out.errors.gerrors.CMDQ_ERR).toBe(cerrors);
    expect(out.errors.syncTimeouts).toBe(0);
    expect(out.seconds).toBeGreaterThanOrEqual(0.1 * cerrors);
    const bad = await runCli(['run', '--poll-timeout-ms', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('run: --poll-timeout-ms must be a number of ms from 0.000001 to 1000000 (got 0)');
  });
});

describe('the device-driver interface through the System API', () => {
  it('unbinding calls remove() (MSI, bus mastering off); binding again probes with a new vector', async () => {
    const sys = await System.boot({ cpus: 1 });
    try {
      await sys.probe();
      const devs = await sys.pciInit();
      const ep = devs.find((d) => d.bdf === '02:00.0')!;
      expect(ep.driver).toBe('smmulab-dma');
      const msi = ep.caps.find((c) => c.name === 'MSI')!.offset;
      const cfg = async () => sys.cpu(0).op('pciConfigRead', { bdf: '02:00.0' });
      expect(((await cfg())[msi / 4]! >>> 16) & 1).toBe(1);
      await sys.cpu(0).op('pciUnbind', { bdf: '02:00.0' });
      const after = (await sys.cpu(0).op('pciTree')).find((d) => d.bdf === '02:00.0')!;
      expect(after.driver).toBe(null);
      expect(after.irq).toBe(-1);
      const c = await cfg();
      expect((c[msi / 4]! >>> 16) & 1).toBe(0);
      expect(c[1]! & 0x4).toBe(0);
      const again = (await sys.cpu(0).op('pciBind')).find((d) => d.bdf === '02:00.0')!;
      expect(again.driver).toBe('smmulab-dma');
      expect(again.irq).toBeGreaterThan(ep.irq);
      expect(((await cfg())[msi / 4]! >>> 16) & 1).toBe(1);
    } finally {
      await sys.shutdown();
    }
  });
});

describe('an ATC invalidation timeout with the GERROR interrupt on another CPU', () => {
  const atcInvWords = (sid: number) => {
    const b = new Uint32Array(4);
    buildCmd(b, 0, atcInvEnt(sid, 0, 0, 0));
    return [...b];
  };

  it('SMMU timeout first: CERROR_ATC_INV_SYNC is handled on CPU 1, the SYNC re-executes, and CPU 0 sees SYNC_ATC_TIMEOUT', async () => {
    const sys = await System.boot({ cpus: 2, timeScale: 10, atcTimeoutNs: 20 * NS_PER_MS });
    try {
      await sys.probe({ irqCpu: 1 });
      await sys.pciInit();
      await sys.inject({ kind: 'atc-inv-no-answer', bdf: '01:00.0', trigger: { count: 'forever' } });
      const before = sys.views.stats[STAT.CERROR + 3]!;
      const r = await sys.cpu(0).op('replay', { words: atcInvWords(0x100) });
      // The SYNC completed, and its issuer learns (from the record CPU 1's skip_err left for that SYNC)
      // that the endpoint never invalidated its ATC.
      expect(r.ret).toBe(SYNC_ATC_TIMEOUT);
      expect(sys.views.stats[STAT.CERROR + 3]! - before).toBe(1);
      expect(pcieStat(sys.views.stats, PCIE_STAT.ATC_INV_TIMEOUTS)).toBe(1);
      const cpu1 = await sys.cpu(1).op('driverStats');
      // The error was reported at the CMD_SYNC right after the ATC_INV.
      expect(cpu1.cmdqErrors).toEqual([{ cons: (r.slots[0]! + 1) & 0x7fff, code: 3 }]);
      // CPU 0's poll did not time out: it neither handled the error nor logged a SYNC timeout.
      expect((await sys.cpu(0).op('driverStats')).cmdqErrors).toEqual([]);
      const entries = await sys.dmesg();
      const log = entries.map((e) => e.msg);
      expect(log.some((m) => /CMDQ error \(cons 0x03[0-9a-f]{6}\): ATC invalidate timeout/.test(m))).toBe(true);
      expect(entries.filter((e) => e.cpu === 0).some((e) => e.msg.includes('CMD_SYNC timeout'))).toBe(false);
    } finally {
      await sys.shutdown();
    }
  });

  it('driver timeout first: CPU 0 gets -ETIMEDOUT, the SMMU reports the error later and the queue recovers', async () => {
    // Real time (scale 1): the driver's short poll timeout also bounds its register handshakes at probe.
    const sys = await System.boot({ cpus: 2, timeScale: 1, atcTimeoutNs: 300 * NS_PER_MS });
    try {
      await sys.probe({ irqCpu: 1, pollTimeoutNs: 100 * NS_PER_MS });
      await sys.pciInit();
      await sys.inject({ kind: 'atc-inv-no-answer', bdf: '02:00.0', trigger: { count: 'forever' } });
      const before = sys.views.stats[STAT.CERROR + 3]!;
      const r = await sys.cpu(0).op('replay', { words: atcInvWords(0x200) });
      expect(r.ret).toBe(-110);
      // The SMMU gives up at 300 ms (after the driver's 100 ms) and CPU 1 acknowledges; then an empty
      // batch completes.
      await waitFor(() => sys.views.stats[STAT.CERROR + 3]! !== before, 'the SMMU to report CERROR_ATC_INV_SYNC', 30_000);
      expect(sys.views.stats[STAT.CERROR + 3]! - before).toBe(1);
      const next = await sys.cpu(0).op('replay', { words: [] });
      expect(next.ret).toBe(0);
    } finally {
      await sys.shutdown();
    }
  });
});
