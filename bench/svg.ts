// A small hand-written SVG line chart for the benchmark results (no plotting dependency): linear or
// log axes, one polyline with markers per series, a legend naming every series. The output is plain
// SVG 1.1 that browsers, image viewers and GitHub render, and the same input always gives the same bytes.

export interface Series {
  name: string;
  points: readonly (readonly [x: number, y: number])[];
  color: string;
  /** SVG stroke-dasharray, e.g. '6 4' (solid without). */
  dash?: string;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  xLog?: boolean;
  yLog?: boolean;
  /** Ticks of the x axis (default: from the data's range). */
  xTicks?: readonly number[];
  /** How tick values print (default: tickNumber). */
  xFormat?: (v: number) => string;
  yFormat?: (v: number) => string;
}

/** Colours that stay apart for the usual colour-vision deficiencies (Okabe-Ito), then greys. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#000000', '#777777', '#AAAAAA'] as const;

const W = 820;
const H = 480;
const M = { left: 84, right: 250, top: 44, bottom: 60 } as const;

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1234567 -> "1.23M", 1500 -> "1.5k", 12 -> "12". */
export function tickNumber(v: number): string {
  const a = Math.abs(v);
  const trim = (x: number) => String(Number(x.toPrecision(3)));
  return a >= 1e9 ? `${trim(v / 1e9)}G` : a >= 1e6 ? `${trim(v / 1e6)}M` : a >= 1e3 ? `${trim(v / 1e3)}k` : trim(v);
}

/** Nanoseconds as "750 ns", "1.9 µs", "2.5 ms". */
export function tickNs(v: number): string {
  const trim = (x: number) => String(Number(x.toPrecision(3)));
  return v >= 1e6 ? `${trim(v / 1e6)} ms` : v >= 1e3 ? `${trim(v / 1e3)} µs` : `${trim(v)} ns`;
}

/** A coordinate with at most 2 decimals (short files, stable bytes). */
const c = (v: number) => String(Math.round(v * 100) / 100);

interface Axis {
  lo: number;
  hi: number;
  log: boolean;
  ticks: number[];
}

function axis(values: readonly number[], log: boolean, given?: readonly number[]): Axis {
  const vs = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let lo = vs.length ? Math.min(...vs) : 1;
  let hi = vs.length ? Math.max(...vs) : 10;
  if (given?.length) {
    lo = Math.min(lo, ...given);
    hi = Math.max(hi, ...given);
  }
  if (log && given?.length) {
    // The given ticks (batch sizes, say) span the axis, with a margin so no marker sits on the frame.
    return { lo: lo / 1.25, hi: hi * 1.25, log, ticks: [...given] };
  }
  if (log) {
    // Whole decades around the data, so every tick is a power of ten.
    lo = 10 ** Math.floor(Math.log10(lo));
    hi = 10 ** Math.ceil(Math.log10(hi));
    if (hi === lo) hi = lo * 10;
    const ticks: number[] = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    return { lo, hi, log, ticks };
  }
  lo = Math.min(0, lo);
  if (hi === lo) hi = lo + 1;
  const step = 10 ** Math.floor(Math.log10((hi - lo) / 5));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 8)!;
  hi = Math.ceil(hi / nice) * nice;
  const ticks: number[] = [];
  for (let t = lo; t <= hi + nice / 2; t += nice) ticks.push(Number(t.toPrecision(12)));
  return { lo, hi, log, ticks: given ? [...given] : ticks };
}

function scale(a: Axis, from: number, to: number): (v: number) => number {
  const f = a.log ? Math.log10 : (v: number) => v;
  const l = f(a.lo);
  const h = f(a.hi);
  return (v) => from + ((f(v) - l) / (h - l)) * (to - from);
}

/** The chart as an SVG document. */
export function lineChart(ch: Chart): string {
  const xs = ch.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = ch.series.flatMap((s) => s.points.map((p) => p[1]));
  const ax = axis(xs, ch.xLog ?? false, ch.xTicks);
  const ay = axis(ys, ch.yLog ?? false);
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const y1 = M.top;
  const sx = scale(ax, x0, x1);
  const sy = scale(ay, y0, y1);
  const fx = ch.xFormat ?? tickNumber;
  const fy = ch.yFormat ?? tickNumber;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(ch.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${c(W / 2 - M.right / 2 + M.left / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(ch.title)}</text>`);
  // Grid and ticks.
  out.push('<g class="grid" stroke="#e4e4e4" stroke-width="1">');
  for (const t of ax.ticks) out.push(`<line x1="${c(sx(t))}" y1="${y0}" x2="${c(sx(t))}" y2="${y1}"/>`);
  for (const t of ay.ticks) out.push(`<line x1="${x0}" y1="${c(sy(t))}" x2="${x1}" y2="${c(sy(t))}"/>`);
  out.push('</g>');
  out.push('<g class="ticks" fill="#333333">');
  for (const t of ax.ticks) out.push(`<text x="${c(sx(t))}" y="${y0 + 18}" text-anchor="middle">${escapeXml(fx(t))}</text>`);
  for (const t of ay.ticks) out.push(`<text x="${x0 - 8}" y="${c(sy(t) + 4)}" text-anchor="end">${escapeXml(fy(t))}</text>`);
  out.push('</g>');
  out.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${c((x0 + x1) / 2)}" y="${H - 16}" text-anchor="middle">${escapeXml(ch.xLabel)}</text>`);
  out.push(`<text x="18" y="${c((y0 + y1) / 2)}" text-anchor="middle" transform="rotate(-90 18 ${c((y0 + y1) / 2)})">${escapeXml(ch.yLabel)}</text>`);
  // Series, then the legend (one row per series, in order).
  ch.series.forEach((s) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!ax.log || x > 0) && (!ay.log || y > 0));
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    out.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${pts.map(([x, y]) => `${c(sx(x))},${c(sy(y))}`).join(' ')}"/>`);
    for (const [x, y] of pts) out.push(`<circle cx="${c(sx(x))}" cy="${c(sy(y))}" r="3" fill="${s.color}"/>`);
    out.push('</g>');
  });
  out.push('<g class="legend">');
  ch.series.forEach((s, i) => {
    const ly = M.top + 8 + i * 20;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    out.push(`<line x1="${x1 + 16}" y1="${ly}" x2="${x1 + 44}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${x1 + 50}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}
