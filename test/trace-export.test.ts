// Trace records as Chrome trace-event JSON (src/host/trace-export.ts): tracks per CPU, SMMU and
// endpoint, spans that nest on every thread, the atc-timeout story in order (fault, ATC invalidation,
// failed CMD_SYNC wait, fence), `--trace`/`--trace-out` on `run` and `run --scenario`, and lockstep
// runs that export the same bytes every time.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScenario } from '../src/host/scenario/catalogue.ts';
import { runScenario } from '../src/host/scenario/run.ts';
import { EXPORT_POINTS, chromeTrace, type ChromeEvent, type ChromeTrace } from '../src/host/trace-export.ts';
import { POINT_NAMES, type TracePointName } from '../src/protocol/trace-points.ts';
import type { RawTraceRecord } from '../src/machine/trace-ring.ts';
import { runCli } from './fixtures/run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'smmulab-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a built-in scenario in lockstep with tracing; returns its records and report. */
async function traced(name: string, points = EXPORT_POINTS) {
  const loaded = loadScenario(name);
  const records: RawTraceRecord[] = [];
  let lost = -1;
  const report = await runScenario(loaded.scenario, loaded.name, {
    baseDir: loaded.baseDir,
    // A small ring, so the run must drain it several times as it goes (the lockstep hook).
    trace: { points, records: 1024 },
    onTrace: (r, l) => {
      for (const x of r) records.push(x);
      lost = l;
    },
  });
  return { records, report, lost };
}

/** The tid of a named thread of a process. */
function tidOf(t: ChromeTrace, pid: number, name: string): number {
  const m = t.traceEvents.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === pid && e.args?.name === name);
  if (!m) throw new Error(`no thread ${name} in process ${pid}`);
  return m.tid;
}

/** What every trace file must satisfy, whatever it holds (each rule collects what breaks it). */
function checkWellFormed(t: ChromeTrace): void {
  expect(Array.isArray(t.traceEvents)).toBe(true);
  expect(t.displayTimeUnit).toBe('ns');
  const timed = t.traceEvents.filter((e) => e.ph !== 'M');
  expect(timed.length).toBeGreaterThan(0);
  const malformed = t.traceEvents.filter(
    (e) => !['X', 'i', 'M'].includes(e.ph) || !Number.isInteger(e.pid) || !Number.isInteger(e.tid) || typeof e.name !== 'string' || (e.ph === 'X' && !(e.dur! >= 0)) || (e.ph === 'i' && e.s !== 't') || (e.ph !== 'M' && typeof e.ts !== 'number'),
  );
  expect(malformed).toEqual([]);
  // Metadata first, then events in time order.
  const firstTimed = t.traceEvents.findIndex((e) => e.ph !== 'M');
  expect(t.traceEvents.slice(firstTimed).filter((e) => e.ph === 'M')).toEqual([]);
  expect(timed.filter((e, i) => i > 0 && e.ts! < timed[i - 1]!.ts!)).toEqual([]);
  // Every thread an event uses is named.
  const named = new Set(t.traceEvents.filter((e) => e.name === 'thread_name').map((e) => `${e.pid}/${e.tid}`));
  expect(timed.filter((e) => !named.has(`${e.pid}/${e.tid}`))).toEqual([]);
  // On each thread, spans nest: a span that starts inside another ends inside it too. (Compared with
  // a tolerance far below the files' ns resolution: ts + dur is a float sum.)
  const EPS = 1e-6;
  const byThread = new Map<string, ChromeEvent[]>();
  for (const e of timed) if (e.ph === 'X') (byThread.get(`${e.pid}/${e.tid}`) ?? byThread.set(`${e.pid}/${e.tid}`, []).get(`${e.pid}/${e.tid}`)!).push(e);
  const crossing: [ChromeEvent, ChromeEvent][] = [];
  for (const spans of byThread.values()) {
    const open: ChromeEvent[] = [];
    const end = (e: ChromeEvent) => e.ts! + e.dur!;
    for (const s of [...spans].sort((a, b) => a.ts! - b.ts! || b.dur! - a.dur!)) {
      while (open.length && end(open[open.length - 1]!) <= s.ts! + EPS) open.pop();
      if (open.length && end(s) > end(open[open.length - 1]!) + EPS) crossing.push([open[open.length - 1]!, s]);
      open.push(s);
    }
  }
  expect(crossing).toEqual([]);
}

describe('Chrome trace export of a lockstep scenario (atc-timeout)', () => {
  let records: RawTraceRecord[];
  let report: Awaited<ReturnType<typeof traced>>['report'];
  let lost: number;
  let t: ChromeTrace;
  let ev: ChromeEvent[];
  beforeAll(async () => {
    ({ records, report, lost } = await traced('atc-timeout'));
    // Through JSON and back, as a viewer reads it.
    t = JSON.parse(JSON.stringify(chromeTrace(records, { lost, source: 'test' }))) as ChromeTrace;
    ev = t.traceEvents;
  }, 60_000);

  it('the scenario held, and the rings were drained before they filled', () => {
    expect(report.ok).toBe(true);
    expect(records.length).toBeGreaterThan(1024);
    expect(lost).toBe(0);
    expect(t.otherData).toMatchObject({ generator: 'smmulab', lostRecords: 0 });
  });

  it('is well formed: metadata, time order, named threads, nested spans', () => {
    checkWellFormed(t);
  });

  it('has a track per CPU, one for the SMMU and one per endpoint', () => {
    const processes = ev.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args?.name]);
    expect(processes).toEqual([
      [1, 'CPUs (driver)'],
      [2, 'SMMU'],
      [3, 'PCIe endpoints'],
    ]);
    const threads = ev.filter((e) => e.name === 'thread_name').map((e) => String(e.args?.name));
    expect(threads).toEqual(expect.arrayContaining(['cpu0', 'SMMU', '01:00.0', '02:00.0', '03:00.0', '04:00.0']));
    // What goes where: the command queue path on the CPU, consumption on the SMMU, DMA and ATC
    // invalidations on the endpoints.
    const cpu0 = tidOf(t, 1, 'cpu0');
    for (const n of ['cmdq reserve', 'cmdq write', 'cmdq publish', 'CMD_SYNC wait']) expect(ev.some((e) => e.ph === 'X' && e.pid === 1 && e.tid === cpu0 && e.name === n), n).toBe(true);
    expect(ev.some((e) => e.ph === 'X' && e.pid === 1 && e.name.startsWith('irq ') && e.name.includes('smmulab-dma'))).toBe(true);
    expect(ev.some((e) => e.ph === 'X' && e.pid === 2 && e.name === 'consume' && (e.args?.commands as number) > 0)).toBe(true);
    expect(ev.some((e) => e.ph === 'i' && e.pid === 2 && e.name === 'ATC_INV')).toBe(true);
    const ep1 = tidOf(t, 3, '01:00.0');
    const inv = ev.find((e) => e.ph === 'X' && e.pid === 3 && e.tid === ep1 && e.name === 'ATC invalidation')!;
    expect(inv.args).toMatchObject({ bdf: '01:00.0', sid: '0x100' });
    expect(inv.dur).toBeGreaterThan(0);
    expect(ev.some((e) => e.ph === 'X' && e.pid === 3 && e.tid === ep1 && e.name === 'DMA' && e.args?.ok === true)).toBe(true);
    // The culprit's FLR: 100 ms of platform time.
    const flr = ev.find((e) => e.ph === 'X' && e.pid === 3 && e.tid === tidOf(t, 3, '03:00.0') && e.name === 'FLR')!;
    expect(flr.dur).toBe(100_000);
  });

  it('tells the story in order: fault, unanswered ATC invalidation, failed CMD_SYNC wait, fence', () => {
    const cpu0 = tidOf(t, 1, 'cpu0');
    const culprit = tidOf(t, 3, '03:00.0');
    const fault = ev.findIndex((e) => e.ph === 'i' && e.cat === 'fault' && e.name === 'fault atc-inv-no-answer');
    const atc = ev.findIndex((e, i) => i > fault && e.pid === 3 && e.tid === culprit && e.name.startsWith('ATC invalidation'));
    const sync = ev.findIndex((e, i) => i > atc && e.ph === 'X' && e.pid === 1 && e.tid === cpu0 && e.name === 'CMD_SYNC wait' && e.args?.ret !== 0);
    const fence = ev.findIndex((e, i) => i > sync && e.ph === 'i' && e.name === 'fence');
    expect([fault, atc, sync, fence].every((i) => i >= 0), JSON.stringify([fault, atc, sync, fence])).toBe(true);
    expect(ev[fault]!).toMatchObject({ pid: 3, tid: culprit, args: { kind: 'atc-inv-no-answer', dev: '03:00.0' } });
    expect(ev[atc]!).toMatchObject({ name: 'ATC invalidation unanswered', args: { why: 'atc-inv-no-answer (fault)' } });
    // The SYNC that covered it failed with -EIO (CERROR_ATC_INV_SYNC) after the driver's 1 s poll.
    expect(ev[sync]!.args).toMatchObject({ ret: 5, waitNs: 1e9 });
    expect(ev[fence]!).toMatchObject({ pid: 3, tid: culprit, cat: 'fence', args: { dev: '0000:03:00.0', sid: '0x300' } });
    expect(ev[fault]!.ts! <= ev[atc]!.ts! && ev[atc]!.ts! <= ev[sync]!.ts! && ev[sync]!.ts! + ev[sync]!.dur! <= ev[fence]!.ts!).toBe(true);
    // The fence lifts after the reset.
    expect(ev.findIndex((e, i) => i > fence && e.name === 'unfence' && e.tid === culprit)).toBeGreaterThan(fence);
  });

  it('gives every record it has no rule for an instant on its producer track', () => {
    // smmuv3_cmdq_consume_error has no span: an error instant on the SMMU track.
    expect(ev.find((e) => e.name === 'smmuv3_cmdq_consume_error')).toMatchObject({ ph: 'i', pid: 2, cat: 'error', args: { error: 'CERROR_ATC_INV_SYNC' } });
  });
});

describe('sanitizer violations and overlapping spans', () => {
  it('a use-after-free is an instant on the endpoint that made the access (skip-invalidation)', async () => {
    const { records, report } = await traced('skip-invalidation', 'sanitizer_dma_uaf');
    expect(report.dmaUseAfterFree).toBeGreaterThan(0);
    const t = chromeTrace(records);
    checkWellFormed(t);
    const uaf = t.traceEvents.filter((e) => e.name === 'DMA use-after-free');
    expect(uaf.length).toBe(report.dmaUseAfterFree);
    expect(uaf[0]).toMatchObject({ ph: 'i', pid: 3, cat: 'sanitizer' });
    expect(uaf[0]!.args).toMatchObject({ dev: report.violations[0]!.bdf });
  });

  it('two ATC invalidations in flight at one function go to two threads of its track', () => {
    const at = (t: number, point: TracePointName, fields: number[], seq: number): RawTraceRecord => ({ t, point: POINT_NAMES.indexOf(point), fields, ring: 0, seq });
    const rid = 0x100;
    const t = chromeTrace([
      at(1000, 'pcie_atc_inv', [rid, 0x100, 0x1000, 0], 0),
      at(2000, 'pcie_atc_inv', [rid, 0x100, 0x2000, 0], 1),
      at(3000, 'pcie_atc_inv_done', [rid, 0x100, 0x1000], 2),
      at(4000, 'pcie_atc_inv_done', [rid, 0x100, 0x2000], 3),
    ]);
    checkWellFormed(t);
    const spans = t.traceEvents.filter((e) => e.name === 'ATC invalidation');
    expect(spans.map((s) => [s.ts, s.dur, s.args?.addr])).toEqual([
      [1, 2, '0x1000'],
      [2, 2, '0x2000'],
    ]);
    expect(spans[0]!.tid).not.toBe(spans[1]!.tid);
    expect(t.traceEvents.filter((e) => e.name === 'thread_name').map((e) => e.args?.name)).toEqual(['01:00.0', '01:00.0 (2)']);
  });
});

describe('smmulab run --trace / --trace-out', () => {
  it('run --scenario: --trace prints lines as it goes, --trace-out writes the same bytes for the same seed', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const r1 = await runCli(['run', '--scenario', 'atc-timeout', '--seed', '7', '--json', '--trace', 'fault_fire', '--trace-out', a], 120_000);
    const r2 = await runCli(['run', '--scenario', 'atc-timeout', '--seed', '7', '--json', '--trace-out', b], 120_000);
    expect(r1.code).toBe(0);
    expect(r2.code).toBe(0);
    expect(JSON.parse(r1.stdout).ok).toBe(true);
    // Printed: only the --trace points, as text lines.
    const lines = r1.stderr.split('\n').filter((l) => /^\d+\.\d{9} /.test(l));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => / hw {3}fault_fire kind=atc-inv-no-answer dev="03:00\.0"$/.test(l))).toBe(true);
    expect(r1.stderr).toContain(`run: wrote `);
    // Recorded: --trace's points in one file, the export's default set in the other.
    const ta = JSON.parse(readFileSync(a, 'utf8')) as ChromeTrace;
    expect(new Set(ta.traceEvents.filter((e) => e.ph !== 'M').map((e) => e.name))).toEqual(new Set(['fault atc-inv-no-answer']));
    const bytes = readFileSync(b);
    const again = await runCli(['run', '--scenario', 'atc-timeout', '--seed', '7', '--json', '--trace-out', a], 120_000);
    expect(again.code).toBe(0);
    expect(readFileSync(a).equals(bytes)).toBe(true);
    checkWellFormed(JSON.parse(bytes.toString('utf8')) as ChromeTrace);
  }, 300_000);

  it('threaded run: --trace-out holds CPU command-queue spans and SMMU consumption', async () => {
    const f = join(dir, 'run.json');
    const r = await runCli(['run', '--cpus', '2', '--seconds', '0.01', '--json', '--trace-out', f]);
    expect(r.code).toBe(0);
    const t = JSON.parse(readFileSync(f, 'utf8')) as ChromeTrace;
    checkWellFormed(t);
    for (const cpu of ['cpu0', 'cpu1']) {
      const tid = tidOf(t, 1, cpu);
      expect(t.traceEvents.some((e) => e.ph === 'X' && e.pid === 1 && e.tid === tid && e.name === 'CMD_SYNC wait'), cpu).toBe(true);
    }
    expect(t.traceEvents.some((e) => e.ph === 'X' && e.pid === 2 && e.name === 'consume')).toBe(true);
  }, 120_000);

  it('refuses a --trace-out path it cannot write, in one line naming the option', async () => {
    for (const argv of [
      ['run', '--seconds', '0.01', '--trace-out', join(dir, 'missing', 'x.json')],
      ['run', '--scenario', 'atc-timeout', '--trace-out', join(dir, 'missing', 'x.json')],
    ]) {
      const r = await runCli(argv);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(`run: --trace-out: directory '${join(dir, 'missing')}' does not exist`);
    }
    const bad = await runCli(['run', '--scenario', 'atc-timeout', '--trace', 'smmuv4_*']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe("run: --trace: trace pattern 'smmuv4_*' matches no trace point (smmulab trace-points lists them)");
  }, 60_000);
});
