// Reading trace points back: the host drains every producer's ring (the hardware's and each CPU's),
// merges the records onto one platform-time timeline and decodes or prints them.

import type { SharedViews } from '../machine/layout.ts';
import { TraceRingReader, type RawTraceRecord } from '../machine/trace-ring.ts';
import { POINT_NAMES, decodeFields, formatTraceBody, formatTraceLine, matchPoints, stringFields, type TraceEvent } from '../protocol/trace-points.ts';
import { enablePoints } from '../protocol/tracer.ts';

/** What to trace: a pattern over point names (trace-points.ts matchPoints) and the ring size. */
export interface TraceOptions {
  points: string;
  /** Records per producer ring (a power of two); default 16384. */
  records?: number;
}

export const DEFAULT_TRACE_RECORDS = 1 << 14;

/** Records per ring for a layout: 0 without tracing. */
export function traceRecords(t: TraceOptions | undefined): number {
  return t ? (t.records ?? DEFAULT_TRACE_RECORDS) : 0;
}

/** Turns the chosen points on in a fresh shared buffer (before any producer builds its tracer). */
export function enableTrace(views: SharedViews, t: TraceOptions | undefined): void {
  enablePoints(views, t ? matchPoints(t.points) : []);
}

export class TraceCollector {
  private readonly readers: TraceRingReader[];

  constructor(views: SharedViews) {
    const rings = views.layout.traceRingBytes === 0 ? 0 : views.layout.ncpus + 1;
    this.readers = Array.from({ length: rings }, (_, i) => new TraceRingReader(views.sab, views.traceRing(i), views.layout.traceRecords ?? 0, i));
  }

  /** Records produced since the last call, in platform-time order (records of equal time as they were written). */
  drain(): RawTraceRecord[] {
    const all = this.readers.flatMap((r) => r.read(stringFields));
    return all.sort((a, b) => a.t - b.t || a.seq - b.seq);
  }

  /** The most records any one ring holds unread (a reader that drains before this nears capacity loses none). */
  get backlog(): number {
    return this.readers.reduce((a, r) => Math.max(a, r.pending), 0);
  }

  /** Records overwritten before they were read, over all rings. */
  get lost(): number {
    return this.readers.reduce((a, r) => a + r.lost, 0);
  }
}

const fromOf = (r: RawTraceRecord): 'hw' | number => (r.ring === 0 ? 'hw' : r.ring - 1);

/** A record decoded: point name, producer, fields by name. */
export function toEvent(r: RawTraceRecord): TraceEvent {
  return { t: r.t, name: POINT_NAMES[r.point]!, from: fromOf(r), fields: decodeFields(r.point, r.fields) };
}

/** A record's point and fields as text (`name field=value ...`). */
export function toBody(r: RawTraceRecord): string {
  return formatTraceBody(r.point, r.fields);
}

/** A record as a text line (`seconds producer name field=value ...`). */
export function toLine(r: RawTraceRecord): string {
  return formatTraceLine(r.t, fromOf(r), r.point, r.fields);
}
