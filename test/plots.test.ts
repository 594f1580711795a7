// Plots and histograms: the benchmark's hand-written SVG charts (bench/svg.ts, bench/cmdq-plots.ts,
// bench/plot.ts) are well-formed XML holding every series by name; the power-of-two latency histograms
// in the shared buffer (src/machine/histogram.ts) and `run --histogram`'s bpftrace-style text.

import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { lineChart, PALETTE } from '../bench/svg.ts';
import { caseName, checkResults, cmdqCharts, type PlotResults } from '../bench/cmdq-plots.ts';
import { POW2_BUCKETS, atcInvHistogram, pow2Bucket, recordSyncWait, syncWaitHistogram } from '../src/machine/histogram.ts';
import { recordInvLatency } from '../src/machine/pcie-stats.ts';
import { MAX_CPUS, STAT } from '../src/machine/layout.ts';
import { formatHistogram, histogramBuckets } from '../src/host/histogram.ts';
import { runCli } from './fixtures/run-cli.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'smmulab-plots-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A small XML well-formedness check: one root element, every tag closed in order, attributes quoted
 * and unique, no raw `<` or stray `&` in text or attribute values. Returns the elements it saw, each
 * with its attributes and text, for the tests to look into.
 */
function parseXml(xml: string): { name: string; attrs: Record<string, string>; text: string }[] {
  const elements: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const stack: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const entity = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
  const checkText = (s: string, where: string) => {
    if (s.replace(entity, '').includes('&')) throw new Error(`stray & in ${where}: ${s}`);
    if (s.includes('<')) throw new Error(`raw < in ${where}: ${s}`);
  };
  let i = xml.startsWith('<?xml') ? xml.indexOf('?>') + 2 : 0;
  let roots = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = lt < 0 ? xml.slice(i) : xml.slice(i, lt);
    checkText(text, 'text');
    if (stack.length) stack[stack.length - 1]!.text += text;
    else if (text.trim() !== '') throw new Error(`text outside the root: ${text.trim().slice(0, 40)}`);
    if (lt < 0) break;
    const gt = xml.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = xml.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const open = stack.pop();
      if (!open || open.name !== tag.slice(1).trim()) throw new Error(`</${tag.slice(1)}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    const self = tag.endsWith('/');
    const m = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"]*")*)\s*\/?$/.exec(tag);
    if (!m) throw new Error(`malformed tag <${tag}>`);
    const attrs: Record<string, string> = {};
    for (const a of m[2]!.matchAll(/([A-Za-z_][\w:.-]*)="([^"]*)"/g)) {
      if (Object.hasOwn(attrs, a[1]!)) throw new Error(`attribute ${a[1]} twice in <${m[1]}>`);
      checkText(a[2]!, `attribute ${a[1]}`);
      attrs[a[1]!] = a[2]!;
    }
    const el = { name: m[1]!, attrs, text: '' };
    elements.push(el);
    if (stack.length === 0) roots++;
    if (!self) stack.push(el);
  }
  if (stack.length) throw new Error(`<${stack[stack.length - 1]!.name}> never closed`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return elements;
}

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');

/** The series names an SVG chart holds, in its data-name attributes and in its legend. */
function seriesOf(svg: string): { data: string[]; legend: string[] } {
  const els = parseXml(svg);
  expect(els[0]!.name).toBe('svg');
  expect(els[0]!.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
  const data = els.filter((e) => e.name === 'g' && e.attrs.class === 'series').map((e) => unescape(e.attrs['data-name']!));
  // Legend texts follow the <g class="legend"> element.
  const from = els.findIndex((e) => e.name === 'g' && e.attrs.class === 'legend');
  const legend = els.slice(from).filter((e) => e.name === 'text').map((e) => unescape(e.text));
  return { data, legend };
}

describe('the XML check itself', () => {
  it('refuses what is not well-formed', () => {
    expect(() => parseXml('<svg><g></svg></g>')).toThrow('closes');
    expect(() => parseXml('<svg><text>a < b</text></svg>')).toThrow();
    expect(() => parseXml('<svg><text>R&D</text></svg>')).toThrow('stray &');
    expect(() => parseXml('<svg x="1" x="2"/>')).toThrow('twice');
    expect(() => parseXml('<svg x=1/>')).toThrow('malformed');
    expect(() => parseXml('<svg>')).toThrow('never closed');
    expect(parseXml('<svg a="1"><g/><text>x &amp; y</text></svg>').map((e) => e.name)).toEqual(['svg', 'g', 'text']);
  });
});

describe('SVG charts', () => {
  it('a chart is well-formed and names every series, whatever characters the names hold', () => {
    const names = ['plain', 'with <angle> & "quotes"', 'log-scale'];
    const svg = lineChart({
      title: 'T & <t>',
      xLabel: 'x',
      yLabel: 'y',
      xLog: true,
      yLog: true,
      series: names.map((name, i) => ({ name, color: PALETTE[i]!, points: [[1, 10 ** i], [8, 10 ** (i + 1)], [64, 0]] as const })),
    });
    const s = seriesOf(svg);
    expect(s.data).toEqual(names);
    expect(s.legend).toEqual(names);
    // A point a log axis cannot show (y = 0) is left out, not drawn at -Infinity.
    expect(svg).not.toMatch(/NaN|Infinity/);
    // The same input gives the same bytes.
    expect(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', color: '#000', points: [[0, 1], [2, 3]] }] })).toBe(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', color: '#000', points: [[0, 1], [2, 3]] }] }));
  });

  it('the committed cmdq results give a throughput and a latency chart with every producer count and sync mode', () => {
    const r = checkResults(JSON.parse(readFileSync(join(REPO, 'bench/results/cmdq.json'), 'utf8')), 'cmdq.json');
    const charts = new Map(cmdqCharts(r));
    expect([...charts.keys()]).toEqual(['-throughput.svg', '-sync-latency.svg']);
    const groups = [1, 2, 4].flatMap((p) => (['msi-poll', 'cons-poll'] as const).map((m) => caseName(p, m)));
    const tp = seriesOf(charts.get('-throughput.svg')!);
    expect(tp.data).toEqual([...groups, 'raw SPSC ring (ceiling)', 'postMessage emulator']);
    expect(tp.legend).toEqual(tp.data);
    expect(seriesOf(charts.get('-sync-latency.svg')!).data).toEqual(groups.flatMap((g) => [`${g} p50`, `${g} p99`]));
    // Each series has a marker per batch size (4 in the full run).
    const circles = parseXml(charts.get('-throughput.svg')!).filter((e) => e.name === 'circle').length;
    expect(circles).toBe(8 * 4);
  });

  it('results with CMD_SYNC histograms also give one distribution chart per batch size', () => {
    const r: PlotResults = {
      cases: [1, 2].flatMap((producers) =>
        (['msi-poll', 'cons-poll'] as const).flatMap((syncMode) =>
          [1, 64].map((batch) => ({ producers, batch, syncMode, cmdsPerSec: 1e6 * batch, syncP50Ns: 500 * batch, syncP99Ns: 900 * batch, syncLatencyHistNs: { '256': 10, '512': 80 * producers, '1024': 5 } })),
        ),
      ),
    };
    const charts = new Map(cmdqCharts(r));
    expect([...charts.keys()]).toEqual(['-throughput.svg', '-sync-latency.svg', '-sync-histogram-b1.svg', '-sync-histogram-b64.svg']);
    const h = seriesOf(charts.get('-sync-histogram-b64.svg')!);
    expect(h.data).toEqual([caseName(1, 'msi-poll'), caseName(1, 'cons-poll'), caseName(2, 'msi-poll'), caseName(2, 'cons-poll')]);
  });

  it('bench/plot.ts draws the charts next to a results file, and refuses a file that is not one in one line', () => {
    const json = join(dir, 'cmdq.json');
    copyFileSync(join(REPO, 'bench/results/cmdq.json'), json);
    const run = (...args: string[]) => spawnSync(process.execPath, ['bin/run-ts.mjs', 'bench/plot.ts', ...args], { cwd: REPO, encoding: 'utf8' });
    const ok = run(json);
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim().split('\n')).toEqual([`wrote ${join(dir, 'cmdq-throughput.svg')}`, `wrote ${join(dir, 'cmdq-sync-latency.svg')}`]);
    for (const f of ['cmdq-throughput.svg', 'cmdq-sync-latency.svg']) expect(() => parseXml(readFileSync(join(dir, f), 'utf8'))).not.toThrow();
    // The committed charts are what the committed results give.
    expect(readFileSync(join(dir, 'cmdq-throughput.svg'), 'utf8')).toBe(readFileSync(join(REPO, 'bench/results/cmdq-throughput.svg'), 'utf8'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ cases: [{ producers: 1, batch: 8, syncMode: 'spin', cmdsPerSec: 1, syncP50Ns: 1, syncP99Ns: 1 }] }));
    const r = run(bad);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`${bad}: cases[0].syncMode: must be one of msi-poll, cons-poll (got "spin")`);
    expect(existsSync(join(dir, 'bad-throughput.svg'))).toBe(false);
    const none = run();
    expect(none.status).toBe(2);
    expect(none.stderr.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});

describe('power-of-two latency histograms', () => {
  it('buckets as bpftrace hist(): [0], [1], then [2^(k-1), 2^k)', () => {
    expect([0, 0.5, 1, 1.9, 2, 3, 4, 1023, 1024, 1025].map(pow2Bucket)).toEqual([0, 0, 1, 1, 2, 2, 3, 10, 11, 11]);
    expect(pow2Bucket(2 ** 60)).toBe(POW2_BUCKETS - 1);
    // The per-CPU histograms fit between the driver's counters and the PCIe statistics.
    expect(STAT.DRV_SYNC_WAIT).toBeGreaterThanOrEqual(STAT.DRV_SYNC_TIMEOUTS + MAX_CPUS);
    expect(STAT.DRV_SYNC_WAIT + MAX_CPUS * POW2_BUCKETS).toBeLessThanOrEqual(STAT.PCIE);
  });

  it('CMD_SYNC waits sum over CPUs; ATC round trips fold from the finer histogram', () => {
    const stats = new Float64Array(STAT.SLOTS);
    recordSyncWait(stats, 0, 700);
    recordSyncWait(stats, 3, 600);
    recordSyncWait(stats, MAX_CPUS - 1, 5000);
    const h = syncWaitHistogram(stats);
    expect(h[pow2Bucket(700)]).toBe(2);
    expect(h[pow2Bucket(5000)]).toBe(1);
    expect(h.reduce((a, b) => a + b, 0)).toBe(3);
    for (const ns of [1500, 1999, 2048, 1e6]) recordInvLatency(stats, ns);
    const a = atcInvHistogram(stats);
    expect(a[pow2Bucket(1500)]).toBe(2);
    expect(a[pow2Bucket(2048)]).toBe(1);
    expect(a[pow2Bucket(1e6)]).toBe(1);
    expect(histogramBuckets(a)).toEqual([
      { lowNs: 1024, highNs: 2048, count: 2 },
      { lowNs: 2048, highNs: 4096, count: 1 },
      { lowNs: 524288, highNs: 1048576, count: 1 },
    ]);
  });

  it('prints as bpftrace does: @name:, then [low, high) padded to 16, the count to 8, and a 52-column @ bar', () => {
    const h = new Array<number>(POW2_BUCKETS).fill(0);
    h[0] = 1;
    h[1] = 2;
    h[pow2Bucket(3)] = 4;
    h[pow2Bucket(700)] = 104;
    h[pow2Bucket(1.5e6)] = 52;
    const text = formatHistogram('lat_ns', h);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('@lat_ns:');
    expect(lines[1]).toBe(`[0]                    1 |${' '.repeat(52)}|`);
    expect(lines[2]).toBe(`[1]                    2 |@${' '.repeat(51)}|`);
    expect(lines[3]).toBe(`[2, 4)                 4 |@@${' '.repeat(50)}|`);
    expect(lines).toContain(`[512, 1K)            104 |${'@'.repeat(52)}|`);
    expect(lines[lines.length - 1]).toBe(`[1M, 2M)              52 |${'@'.repeat(26)}${' '.repeat(26)}|`);
    // Every bucket from the first non-empty one to the last, empty ones included.
    expect(lines).toHaveLength(1 + (pow2Bucket(1.5e6) + 1));
    for (const l of lines.slice(1)) expect(l).toMatch(/^(\[\d+[KMGT]?(, \d+[KMGT]?)?\)?\]?) +\d+ \|@* *\|$/);
    expect(lines.slice(1).every((l) => l.length === 16 + 8 + 2 + 52 + 1)).toBe(true);
    expect(formatHistogram('none', new Array<number>(POW2_BUCKETS).fill(0))).toBe('@none:\n(no samples)\n');
  });

  it('run --histogram: one CMD_SYNC wait counted per batch the CPUs issued, printed and in --json', async () => {
    const j = await runCli(['run', '--cpus', '2', '--seconds', '0.02', '--histogram', '--json']);
    expect(j.code).toBe(0);
    const rep = JSON.parse(j.stdout) as { perCpu: { batches: number }[]; histograms: { cmdSyncWaitNs: { lowNs: number; highNs: number; count: number }[]; atcInvLatencyNs: unknown[] } };
    const batches = rep.perCpu.reduce((a, c) => a + c.batches, 0);
    expect(batches).toBeGreaterThan(0);
    expect(rep.histograms.cmdSyncWaitNs.reduce((a, b) => a + b.count, 0)).toBe(batches);
    // The tlbi workload sends no ATC invalidation; nothing about trace rings reaches stderr either.
    expect(rep.histograms.atcInvLatencyNs).toEqual([]);
    expect(j.stderr).not.toContain('trace:');
    const t = await runCli(['run', '--cpus', '1', '--seconds', '0.02', '--workload', 'ats-dma', '--histogram']);
    expect(t.code).toBe(0);
    const at = t.stdout.indexOf('@cmd_sync_wait_ns:');
    expect(at).toBeGreaterThan(0);
    const tail = t.stdout.slice(at).trimEnd().split('\n\n');
    expect(tail).toHaveLength(2);
    expect(tail[1]!.startsWith('@atc_inv_latency_ns:\n')).toBe(true);
    for (const block of tail) for (const l of block.split('\n').slice(1)) expect(l).toMatch(/^\[[^\]]*[\])] +\d+ \|@* *\|$/);
  }, 120_000);
});
