// The emitting side of trace points: a Tracer has one property per point of its side, the point's emit
// function while it is enabled and undefined otherwise (so `tr.point?.(args)` costs one property load
// when off). Which points are enabled is a bitmap in the shared buffer, set by the host before the
// workers start; each producer writes its own ring.

import type { Clock } from '../machine/clock.ts';
import { type SharedViews } from '../machine/layout.ts';
import { TRACE, TR, TraceRingWriter } from '../machine/trace-ring.ts';
import { POINT_NAMES, TRACE_POINTS, type EmitArgs, type PointsOf, type Side, type TracePointName } from './trace-points.ts';

export type Tracer<S extends Side> = { readonly [K in PointsOf<S>]?: (...args: EmitArgs<K>) => void };

/** Whether point `id` (its index in TRACE_POINTS) is enabled in the shared bitmap. */
export function pointEnabled(views: SharedViews, id: number): boolean {
  return ((Atomics.load(views.traceHeader, id >>> 5) >>> (id & 31)) & 1) === 1;
}

/** Sets the enabled points (before the producers build their tracers). */
export function enablePoints(views: SharedViews, points: readonly TracePointName[]): void {
  if (points.length > 0 && views.layout.traceRingBytes === 0) throw new Error('trace: points enabled but the system has no trace rings (traceRecords 0)');
  views.traceHeader.fill(0, 0, TRACE.ENABLE_WORDS);
  for (const name of points) {
    const id = POINT_NAMES.indexOf(name);
    Atomics.or(views.traceHeader, id >>> 5, 1 << (id & 31));
  }
}

/**
 * The tracer of one producer: `side` selects the points it may emit, `ring` its trace ring (0 the
 * hardware, 1 + n CPU n), `clock` stamps the records with platform time.
 */
export function createTracer<S extends Side>(views: SharedViews, side: S, ring: number, clock: Clock): Tracer<S> {
  const out: Record<string, ((...args: (number | string | boolean)[]) => void) | undefined> = {};
  let writer: TraceRingWriter | null = null;
  POINT_NAMES.forEach((name, id) => {
    if (TRACE_POINTS[name].side !== side) return;
    out[name] = undefined;
    if (!pointEnabled(views, id)) return;
    writer ??= new TraceRingWriter(views.sab, views.traceRing(ring), views.layout.traceRecords ?? 0, views.traceHeader);
    const w = writer;
    const vals = new Float64Array(TR.FIELDS);
    // Per field: an enumeration's names (its value is stored as the name's index), or null.
    const enums = TRACE_POINTS[name].fields.map(([, k]) => (typeof k === 'object' ? (k.enum as readonly string[]) : null));
    out[name] = (...args) => {
      for (let i = 0; i < args.length; i++) {
        const a = args[i]!;
        const names = enums[i];
        vals[i] = typeof a === 'string' ? (names ? names.indexOf(a) : w.string(a)) : typeof a === 'boolean' ? (a ? 1 : 0) : a;
      }
      w.write(clock.now(), id, vals.subarray(0, args.length));
    };
  });
  // Every property of the side exists (undefined or an emitter), with the arguments its declaration gives.
  return out as Tracer<S>;
}
