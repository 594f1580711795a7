// Trace records as Chrome trace-event JSON, the format Perfetto (ui.perfetto.dev) and chrome://tracing
// open: {"traceEvents": [...]} with "X" spans, "i" instants and "M" metadata naming the tracks.
//
// Tracks (a process per kind of producer, a thread per track):
//   CPUs            one per CPU: the command queue path as consecutive spans (cmdq reserve, cmdq write,
//                   cmdq publish, CMD_SYNC wait) from arm_smmu_cmdq_*, interrupt handlers from
//                   irq_handler_*, driver faults, kernel log lines
//   SMMU            command consumption (a span per smmuv3_cmdq_consume run, an instant per command),
//                   errors, faults of no particular function
//   PCIe endpoints  one per function: DMA transfers, ATC invalidations (received -> completion sent),
//                   resets, its faults, fences and use-after-free accesses
// Every record the export has no rule for becomes an instant on its producer's track, so nothing
// traced is dropped. Timestamps are platform time in µs (ns resolution), so a lockstep run exports the
// same bytes every time.
//
// Spans on one thread must nest; when two overlap without nesting (two ATC invalidations in flight at
// one function, say) the later one goes to a second thread of the same track, "01:00.0 (2)".

import { closeSync, openSync, writeSync } from 'node:fs';
import type { RawTraceRecord } from '../machine/trace-ring.ts';
import { POINT_NAMES, TRACE_POINTS, formatField, type FieldKind, type TracePointName } from '../protocol/trace-points.ts';
import { formatBdf } from '../arch/pcie/bdf.ts';

/**
 * What --trace-out records when --trace does not choose: every point a track draws, without the
 * per-access ones (smmuv3_translate_success, smmuv3_atc_inv duplicates pcie_atc_inv).
 */
export const EXPORT_POINTS =
  'printk,arm_smmu_*,irq_handler_*,fault_*,sanitizer_*,pcie_*,smmuv3_cmdq_*,smmuv3_*abort*,smmuv3_record_event,smmuv3_event_lost,smmuv3_atc_inv_timeout,smmuv3_atc_inv_late,smmuv3_update_ignored,smmuv3_ats_*';

export interface ChromeEvent {
  name: string;
  cat?: string;
  ph: 'X' | 'i' | 'M';
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: 't';
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeEvent[];
  displayTimeUnit: 'ns';
  otherData: Record<string, string | number>;
}

const PID = { cpu: 1, smmu: 2, ep: 3 } as const;
const PROCESS_NAMES = { cpu: 'CPUs (driver)', smmu: 'SMMU', ep: 'PCIe endpoints' } as const;
type Kind = keyof typeof PID;

/** Points whose records are SMMU errors (category "error" on the SMMU track). */
const SMMU_ERRORS = new Set<TracePointName>([
  'smmuv3_cmdq_consume_error', 'smmuv3_cmdq_inconsistent', 'smmuv3_cmd_sync_msi_abort', 'smmuv3_msi_abort', 'smmuv3_record_event',
  'smmuv3_event_lost', 'smmuv3_eventq_abort', 'smmuv3_atc_inv_timeout', 'smmuv3_atc_inv_late', 'smmuv3_ats_bad_request', 'smmuv3_ats_no_access', 'smmuv3_update_ignored',
]);

const RESET_NAMES: Record<string, string> = { flr: 'FLR', hot: 'hot reset', pm: 'PM reset' };

/** A span or instant before lanes and ids are assigned. */
interface Item {
  track: string;
  name: string;
  cat: string;
  start: number;
  /** null: an instant. */
  end: number | null;
  args: Record<string, unknown>;
  /** Position in the record stream of what started it: orders items of equal time. */
  order: number;
}

/** A record's fields as event arguments: counts, times and strings as they are, the rest as the text trace prints them. */
function argsOf(point: TracePointName, values: readonly (number | string)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  TRACE_POINTS[point].fields.forEach(([name, kind]: readonly [string, FieldKind], i) => {
    const v = values[i]!;
    out[name] = kind === 'u' || kind === 'ns' || kind === 's' ? v : kind === 'b' ? v === 1 : formatField(kind, v);
  });
  return out;
}

/** The endpoint track of a function: from a Requester ID, or a driver's device name ("0000:01:00.0"). */
const epTrack = (dev: number | string) => `ep:${typeof dev === 'number' ? formatBdf(dev) : dev.replace(/^[0-9a-f]{4}:(?=[0-9a-f]{2}:)/, '')}`;

/** Builds the items of every track from records in timeline order (TraceCollector.drain's order). */
function toItems(records: readonly RawTraceRecord[]): Item[] {
  const items: Item[] = [];
  const cpu = new Map<number, { reserved: number | null; written: number | null; irqs: { irq: number; name: string; t: number; order: number }[] }>();
  const ep = new Map<string, { inv: { t: number; addr: string; args: Record<string, unknown>; order: number }[]; dma: { t: number; args: Record<string, unknown>; order: number } | null; reset: { t: number; kind: string; args: Record<string, unknown>; order: number } | null }>();
  let run: Item | null = null;
  const cpuState = (n: number) => cpu.get(n) ?? (cpu.set(n, { reserved: null, written: null, irqs: [] }), cpu.get(n)!);
  const epState = (track: string) => ep.get(track) ?? (ep.set(track, { inv: [], dma: null, reset: null }), ep.get(track)!);
  const span = (track: string, name: string, cat: string, start: number, end: number, args: Record<string, unknown>, order: number) => items.push({ track, name, cat, start, end, args, order });
  const instant = (track: string, name: string, cat: string, t: number, args: Record<string, unknown>, order: number) => items.push({ track, name, cat, start: t, end: null, args, order });

  records.forEach((r, order) => {
    const point = POINT_NAMES[r.point];
    if (!point) return;
    const a = argsOf(point, r.fields);
    const t = r.t;
    if (r.ring > 0) {
      const n = r.ring - 1;
      const track = `cpu:${n}`;
      const st = cpuState(n);
      switch (point) {
        case 'arm_smmu_cmdq_reserve':
          span(track, 'cmdq reserve', 'cmdq', t - (a.waitNs as number), t, a, order);
          st.reserved = t;
          return;
        case 'arm_smmu_cmdq_issue':
          span(track, 'cmdq write', 'cmdq', st.reserved ?? t, t, a, order);
          st.reserved = null;
          st.written = t;
          return;
        case 'arm_smmu_cmdq_publish':
          span(track, 'cmdq publish', 'cmdq', st.written ?? t, t, a, order);
          st.written = null;
          return;
        case 'arm_smmu_cmdq_sync_done':
          span(track, 'CMD_SYNC wait', a.ret === 0 ? 'cmdq' : 'cmdq,error', t - (a.waitNs as number), t, a, order);
          return;
        case 'irq_handler_entry':
          st.irqs.push({ irq: a.irq as number, name: a.name as string, t, order });
          return;
        case 'irq_handler_exit': {
          const i = st.irqs.findLastIndex((x) => x.irq === a.irq);
          const e = i >= 0 ? st.irqs.splice(i, 1)[0]! : { irq: a.irq as number, name: '?', t, order };
          span(track, `irq ${e.irq} ${e.name}`, 'irq', e.t, t, { irq: e.irq, name: e.name }, e.order);
          return;
        }
        case 'fault_should_fail':
          instant(track, `fault ${String(a.point)}`, 'fault', t, a, order);
          return;
        case 'arm_smmu_atc_fence':
        case 'arm_smmu_atc_unfence':
          instant(epTrack(a.dev as string), point === 'arm_smmu_atc_fence' ? 'fence' : 'unfence', 'fence', t, { ...a, cpu: n }, order);
          return;
        case 'printk': {
          const msg = String(a.msg);
          instant(track, msg.length > 80 ? `${msg.slice(0, 77)}...` : msg, `log,${String(a.level)}`, t, a, order);
          return;
        }
        default:
          instant(track, point, 'driver', t, a, order);
          return;
      }
    }
    // The hardware. Records of the command queue extend the current consumption run.
    const cmdq = point === 'smmuv3_cmdq_opcode' || point === 'smmuv3_cmdq_consume_error' || point === 'smmuv3_cmdq_inconsistent';
    if (cmdq && run) {
      run.end = t;
      (run.args as { commands: number }).commands += point === 'smmuv3_cmdq_opcode' ? 1 : 0;
    }
    const bdfAt = TRACE_POINTS[point].fields.findIndex(([, k]) => k === 'bdf');
    const bdf = bdfAt >= 0 ? epTrack(r.fields[bdfAt] as number) : null;
    switch (point) {
      case 'smmuv3_cmdq_consume':
        run = { track: 'smmu', name: 'consume', cat: 'cmdq', start: t, end: t, args: { ...a, commands: 0 }, order };
        items.push(run);
        return;
      case 'smmuv3_cmdq_opcode':
        instant('smmu', String(a.opcode), 'cmd', t, a, order);
        return;
      case 'pcie_atc_inv':
        epState(bdf!).inv.push({ t, addr: String(a.addr), args: a, order });
        return;
      case 'pcie_atc_inv_done': {
        const q = epState(bdf!).inv;
        const i = q.findIndex((x) => x.addr === a.addr);
        if (i < 0) instant(bdf!, 'ATC invalidation completion', 'atc', t, a, order);
        else {
          const req = q.splice(i, 1)[0]!;
          span(bdf!, 'ATC invalidation', 'atc', req.t, t, req.args, req.order);
        }
        return;
      }
      case 'pcie_atc_inv_unanswered': {
        // The request just received (same time): it gets no completion.
        const req = epState(bdf!).inv.pop();
        instant(bdf!, 'ATC invalidation unanswered', 'atc,error', t, { ...req?.args, ...a }, order);
        return;
      }
      case 'pcie_atc_inv_cancelled':
        for (const req of epState(bdf!).inv.splice(0, a.count as number)) span(bdf!, 'ATC invalidation', 'atc', req.t, t, { ...req.args, cancelled: a.why }, req.order);
        return;
      case 'pcie_dma_start':
        epState(bdf!).dma = { t, args: a, order };
        return;
      case 'pcie_dma_done':
      case 'pcie_dma_cut': {
        const st = epState(bdf!);
        if (st.dma) span(bdf!, 'DMA', 'dma', st.dma.t, t, { ...st.dma.args, ...a }, st.dma.order);
        else instant(bdf!, point === 'pcie_dma_done' ? 'DMA refused' : 'DMA cut', 'dma', t, a, order);
        st.dma = null;
        return;
      }
      case 'pcie_reset_start':
        epState(bdf!).reset = { t, kind: String(a.kind), args: a, order };
        return;
      case 'pcie_reset_done': {
        const st = epState(bdf!);
        span(bdf!, RESET_NAMES[String(a.kind)] ?? String(a.kind), 'reset', st.reset?.t ?? t, t, st.reset?.args ?? a, st.reset?.order ?? order);
        st.reset = null;
        return;
      }
      case 'fault_fire':
        instant(a.dev ? epTrack(a.dev as string) : 'smmu', `fault ${String(a.kind)}`, 'fault', t, a, order);
        return;
      case 'sanitizer_dma_uaf':
        instant(epTrack(a.dev as string), 'DMA use-after-free', 'sanitizer', t, a, order);
        return;
      default:
        instant(bdf ?? 'smmu', point, SMMU_ERRORS.has(point) ? 'error' : bdf ? 'pcie' : 'smmu', t, a, order);
    }
  });

  // What never ended within the trace ends at its last record, marked unfinished.
  const last = records.length ? records[records.length - 1]!.t : 0;
  for (const [track, st] of ep) {
    for (const req of st.inv) span(track, 'ATC invalidation', 'atc', req.t, last, { ...req.args, unfinished: true }, req.order);
    if (st.dma) span(track, 'DMA', 'dma', st.dma.t, last, { ...st.dma.args, unfinished: true }, st.dma.order);
    if (st.reset) span(track, RESET_NAMES[st.reset.kind] ?? st.reset.kind, 'reset', st.reset.t, last, { ...st.reset.args, unfinished: true }, st.reset.order);
  }
  for (const [n, st] of cpu) for (const e of st.irqs) span(`cpu:${n}`, `irq ${e.irq} ${e.name}`, 'irq', e.t, last, { irq: e.irq, name: e.name, unfinished: true }, e.order);
  return items;
}

/** Platform ns as trace µs, to the ns (so float noise of threaded clocks never reaches the file). */
const us = (ns: number) => Math.round(ns) / 1000;

function trackKind(track: string): Kind {
  return track === 'smmu' ? 'smmu' : track.startsWith('cpu:') ? 'cpu' : 'ep';
}

/** Tracks in display order: CPUs by number, the SMMU, endpoints by name. */
function compareTracks(a: string, b: string): number {
  const ka = PID[trackKind(a)];
  const kb = PID[trackKind(b)];
  if (ka !== kb) return ka - kb;
  if (ka === PID.cpu) return Number(a.slice(4)) - Number(b.slice(4));
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Places each span of one track on the first lane where it nests in (or follows) what is open there.
 * `spans` sorted by start, longer first at equal start. Returns the lane of each, in that order.
 */
function assignLanes(spans: readonly Item[]): number[] {
  const lanes: number[][] = []; // per lane: the ends of its open spans, innermost last
  return spans.map((s) => {
    const end = s.end!;
    for (let l = 0; ; l++) {
      const open = (lanes[l] ??= []);
      while (open.length && open[open.length - 1]! <= s.start) open.pop();
      if (open.length === 0 || end <= open[open.length - 1]!) {
        open.push(end);
        return l;
      }
    }
  });
}

/** The Chrome trace of `records` (in timeline order, as TraceCollector.drain returns them). */
export function chromeTrace(records: readonly RawTraceRecord[], info: { lost?: number; source?: string } = {}): ChromeTrace {
  const items = toItems(records);
  const byTrack = new Map<string, Item[]>();
  for (const it of items) (byTrack.get(it.track) ?? byTrack.set(it.track, []).get(it.track)!).push(it);
  const meta: ChromeEvent[] = [];
  const timed: { e: ChromeEvent; order: number }[] = [];
  const pids = new Set<number>();
  const nextTid = new Map<number, number>();
  for (const track of [...byTrack.keys()].sort(compareTracks)) {
    const kind = trackKind(track);
    const pid = PID[kind];
    if (!pids.has(pid)) {
      pids.add(pid);
      meta.push({ name: 'process_name', ph: 'M', pid, tid: 0, args: { name: PROCESS_NAMES[kind] } });
      meta.push({ name: 'process_sort_index', ph: 'M', pid, tid: 0, args: { sort_index: pid } });
    }
    const its = byTrack.get(track)!;
    const spans = its.filter((i) => i.end !== null).sort((a, b) => a.start - b.start || b.end! - a.end! || a.order - b.order);
    const lanes = assignLanes(spans);
    const nLanes = lanes.reduce((m, l) => Math.max(m, l + 1), 1);
    const first = nextTid.get(pid) ?? 1;
    nextTid.set(pid, first + nLanes);
    const label = kind === 'cpu' ? `cpu${track.slice(4)}` : kind === 'smmu' ? 'SMMU' : track.slice(3);
    for (let l = 0; l < nLanes; l++) {
      meta.push({ name: 'thread_name', ph: 'M', pid, tid: first + l, args: { name: l === 0 ? label : `${label} (${l + 1})` } });
      meta.push({ name: 'thread_sort_index', ph: 'M', pid, tid: first + l, args: { sort_index: first + l } });
    }
    spans.forEach((s, i) => {
      const e: ChromeEvent = { name: s.name, cat: s.cat, ph: 'X', ts: us(s.start), dur: (Math.round(s.end!) - Math.round(s.start)) / 1000, pid, tid: first + lanes[i]!, args: s.args };
      timed.push({ e, order: s.order });
    });
    for (const s of its) if (s.end === null) timed.push({ e: { name: s.name, cat: s.cat, ph: 'i', s: 't', ts: us(s.start), pid, tid: first, args: s.args }, order: s.order });
  }
  timed.sort((a, b) => a.e.ts! - b.e.ts! || a.order - b.order);
  return {
    traceEvents: [...meta, ...timed.map((x) => x.e)],
    displayTimeUnit: 'ns',
    otherData: { generator: 'smmulab', clock: 'platform time', ...(info.source ? { source: info.source } : {}), lostRecords: info.lost ?? 0 },
  };
}

/**
 * Writes the trace to `file`, one event per line (a long threaded trace would not fit one string).
 * Throws what the file system says.
 */
export function writeChromeTrace(file: string, trace: ChromeTrace): void {
  const fd = openSync(file, 'w');
  try {
    const { traceEvents, ...rest } = trace;
    writeSync(fd, '{"traceEvents":[\n');
    const CHUNK = 4096;
    for (let i = 0; i < traceEvents.length; i += CHUNK) {
      const part = traceEvents.slice(i, i + CHUNK).map((e) => JSON.stringify(e));
      writeSync(fd, part.join(',\n') + (i + CHUNK < traceEvents.length ? ',\n' : '\n'));
    }
    writeSync(fd, `],\n${JSON.stringify(rest).slice(1)}\n`);
  } finally {
    closeSync(fd);
  }
}
