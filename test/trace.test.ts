// Trace points (src/protocol/trace-points.ts): declared once, off by default at no cost, recorded into
// shared-buffer rings by the hardware and every CPU, and read back by the host on one platform-time
// timeline, in lockstep and threaded runs alike; `--trace PATTERN` prints them.

import { describe, expect, it } from 'vitest';
import { createLockstep } from '../src/host/lockstep.ts';
import { System } from '../src/host/system.ts';
import { toBody, toEvent, toLine } from '../src/host/trace.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { SharedViews, computeLayout } from '../src/machine/layout.ts';
import { TraceRingReader, TraceRingWriter } from '../src/machine/trace-ring.ts';
import { POINT_NAMES, TRACE_POINTS, matchPoints, stringFields } from '../src/protocol/trace-points.ts';
import { createTracer, enablePoints } from '../src/protocol/tracer.ts';
import { VirtualClock } from '../src/machine/clock.ts';
import { ArmSmmuDevice } from '../drivers/arm-smmu-v3/smmu.ts';
import { buildCmd } from '../drivers/arm-smmu-v3/cmds.ts';
import { runCli } from './fixtures/run-cli.ts';

describe('trace point declarations', () => {
  it('every point has a side, named fields of known kinds, help, and at most the fields a record holds', () => {
    for (const name of POINT_NAMES) {
      const d = TRACE_POINTS[name];
      expect(['hw', 'driver']).toContain(d.side);
      expect(d.help.length).toBeGreaterThan(10);
      expect(d.fields.length).toBeLessThanOrEqual(10);
      expect(new Set(d.fields.map(([n]) => n)).size).toBe(d.fields.length);
    }
    // QEMU's names where QEMU traces the same event.
    for (const q of ['smmuv3_cmdq_consume', 'smmuv3_cmdq_opcode', 'smmuv3_cmdq_consume_error', 'smmuv3_record_event', 'smmuv3_translate_success']) expect(POINT_NAMES).toContain(q);
  });

  it('patterns: globs, comma lists, removal with -, and an error for a glob that matches nothing', () => {
    expect(matchPoints('smmuv3_cmdq_*')).toEqual(['smmuv3_cmdq_consume', 'smmuv3_cmdq_opcode', 'smmuv3_cmdq_consume_error', 'smmuv3_cmdq_inconsistent']);
    expect(matchPoints('smmuv3_cmdq_*,-smmuv3_cmdq_opcode,printk')).toEqual(['smmuv3_cmdq_consume', 'smmuv3_cmdq_consume_error', 'smmuv3_cmdq_inconsistent', 'printk']);
    expect(matchPoints('*')).toEqual(POINT_NAMES);
    expect(() => matchPoints('smmuv4_*')).toThrow("trace pattern 'smmuv4_*' matches no trace point");
  });
});

describe('tracers', () => {
  const views = (records: number) => SharedViews.create(computeLayout({ memBytes: 1 << 20, ncpus: 1, traceRecords: records }));

  it('a disabled point is undefined (its site costs one property load); an enabled one emits', () => {
    const v = views(64);
    enablePoints(v, ['smmuv3_atc_inv']);
    const hw = createTracer(v, 'hw', 0, new VirtualClock());
    const drv = createTracer(v, 'driver', 1, new VirtualClock());
    expect(hw.smmuv3_cmdq_opcode).toBeUndefined();
    expect(drv.printk).toBeUndefined();
    expect(typeof hw.smmuv3_atc_inv).toBe('function');
    // A side never holds the other side's points.
    expect(Object.keys(drv)).not.toContain('smmuv3_atc_inv');
    expect(Object.keys(hw)).not.toContain('printk');
  });

  it('no trace rings without tracing, and enabling points then is an error', () => {
    const v = views(0);
    expect(v.layout.traceRingBytes).toBe(0);
    expect(() => enablePoints(v, ['printk'])).toThrow('no trace rings');
  });

  it('a full ring overwrites the oldest records and counts them lost; strings survive as long as their records', () => {
    const v = views(16);
    const w = new TraceRingWriter(v.sab, v.traceRing(0), 16, v.traceHeader);
    const r = new TraceRingReader(v.sab, v.traceRing(0), 16, 0);
    const printk = POINT_NAMES.indexOf('printk');
    for (let i = 0; i < 40; i++) w.write(i, printk, [0, w.string(`line ${i}`)]);
    const got = r.read(stringFields);
    expect(r.lost).toBe(24);
    expect(got.map((x) => x.t)).toEqual(Array.from({ length: 16 }, (_, i) => 24 + i));
    expect(got.map((x) => x.fields[1])).toEqual(Array.from({ length: 16 }, (_, i) => `line ${24 + i}`));
    expect(r.read(stringFields)).toEqual([]);
  });
});

describe('one timeline from the hardware and the driver', () => {
  it('lockstep: the driver issuing a batch and the SMMU consuming it interleave in platform time', () => {
    const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20, trace: { points: 'smmuv3_cmdq_*,arm_smmu_cmdq_*,printk' } });
    const dev = ArmSmmuDevice.probe(ls.platform, {});
    ls.trace();
    const c = new Uint32Array(4);
    buildCmd(c, 0, { op: 'TLBI_NH_ASID', asid: 5, vmid: 0 });
    expect(dev.issueRaw(c, 1, true)).toBe(0);
    const recs = ls.trace();
    for (let i = 1; i < recs.length; i++) expect(recs[i]!.t).toBeGreaterThanOrEqual(recs[i - 1]!.t);
    const bodies = recs.map(toBody);
    const issue = bodies.findIndex((b) => b.startsWith('arm_smmu_cmdq_issue n=1 sync=1'));
    const tlbi = bodies.findIndex((b) => b.startsWith('smmuv3_cmdq_opcode opcode=TLBI_NH_ASID'));
    const sync = bodies.findIndex((b) => b.startsWith('smmuv3_cmdq_opcode opcode=SYNC'));
    const done = bodies.findIndex((b) => b.startsWith('arm_smmu_cmdq_sync_done') && b.includes(' ret=0 '));
    expect([issue, tlbi, sync, done].every((i) => i >= 0)).toBe(true);
    expect(issue < tlbi && tlbi < sync && sync < done).toBe(true);
    expect(toEvent(recs[tlbi]!)).toMatchObject({ name: 'smmuv3_cmdq_opcode', from: 'hw', fields: { opcode: 0x11 } });
    expect(toEvent(recs[issue]!)).toMatchObject({ name: 'arm_smmu_cmdq_issue', from: 0, fields: { n: 1, sync: 1 } });
  });

  it('threaded: records of the hardware worker and of two CPU workers on one timeline', async () => {
    const sys = await System.boot({ cpus: 2, timeScale: 10, trace: { points: 'smmuv3_cmdq_opcode,arm_smmu_cmdq_issue,printk' } });
    try {
      await sys.probe({ irqCpu: 1 });
      await Promise.all([0, 1].map((c) => sys.cpu(c).op('workload', { batch: 4, iterations: 3 })));
      const recs = sys.trace();
      for (let i = 1; i < recs.length; i++) expect(recs[i]!.t).toBeGreaterThanOrEqual(recs[i - 1]!.t);
      const from = new Set(recs.map((r) => toEvent(r).from));
      expect(from).toEqual(new Set(['hw', 0, 1]));
      const lines = recs.map(toLine);
      expect(lines.some((l) => / cpu0 printk level=info msg="arm-smmu-v3 9050000\.smmuv3: ias 48-bit/.test(l))).toBe(true);
      expect(lines.filter((l) => / hw {3}smmuv3_cmdq_opcode opcode=TLBI_NH_VA /.test(l)).length).toBe(2 * 3 * 4);
      expect(lines.filter((l) => / cpu1 arm_smmu_cmdq_issue n=4 sync=1 /.test(l)).length).toBe(3);
      expect(sys.traceLost()).toBe(0);
    } finally {
      await sys.shutdown();
    }
  });
});

describe('smmulab --trace', () => {
  it('prints matching points on stderr as `seconds producer name field=value`, and refuses a pattern that matches nothing', async () => {
    const r = await runCli(['run', '--cpus', '1', '--seconds', '0.01', '--json', '--trace', 'arm_smmu_cmdq_issue,smmuv3_cmdq_consume']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).check).toBe('OK');
    const lines = r.stderr.split('\n').filter((l) => /^\d+\.\d{9} /.test(l));
    expect(lines.some((l) => /^\d+\.\d{9} cpu0 arm_smmu_cmdq_issue n=\d+ sync=[01] prod=0x[0-9a-f]+$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\d+\.\d{9} hw {3}smmuv3_cmdq_consume prod=0x[0-9a-f]+ cons=0x[0-9a-f]+$/.test(l))).toBe(true);
    const bad = await runCli(['run', '--trace', 'smmuv4_*']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe("run: --trace: trace pattern 'smmuv4_*' matches no trace point (smmulab trace-points lists them)");
  });

  it('trace-points lists every point with its side and fields', async () => {
    const r = await runCli(['trace-points', '--json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; side: string; fields: string[] }[];
    expect(list.map((d) => d.name)).toEqual(POINT_NAMES);
    expect(list.find((d) => d.name === 'smmuv3_cmdq_consume_error')).toMatchObject({ side: 'hw', fields: ['cmd:s', 'error:cerror', 'cons:x', 'reason:s'] });
  });
});
