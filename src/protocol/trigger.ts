// When a fault fires: its trigger, and the state machine that decides, at each chance the fault gets,
// whether this one fires. Which occasions are a fault's chances is the fault's own business (each
// ATC Invalidate Request the function receives, each command fetch, each call of a should-fail
// point...; see faults.ts); the trigger only counts and decides:
//
// - armed: at injection; or, with `after`, at the nth occurrence of an event (counted from injection;
//   a device event counts for the fault's device unless `after.bdf` names another); or, with `atNs`,
//   from that platform time.
// - a chance fires when the fault is armed, inside `window` (if any), and a draw from its seeded
//   generator falls under `probability` (if any); each firing counts, and after `count` firings
//   (default 1) the fault is spent. 'forever' is never spent; 'until-reset' is spent when its device
//   next completes a reset.
// - a moment fault (surprise removal, a hang, an AER error...) has exactly one chance: the moment it is
//   armed.
//
// The state of one armed fault is a cell of CELL.WORDS Int32 words (with Float64 slots over the same
// memory), so the same code runs on a private buffer in the hardware and on the shared buffer, where
// several CPU workers may ask at once: every decision is taken under the cell's lock word.

import { bdf, int, named, num, obj, oneOf, opt, sameSchema, show, withSchema, InputError, type Check, type Infer } from './check.ts';
import { ridOf, parseBdf } from '../arch/pcie/bdf.ts';
import { RNG_STEP, rngValue } from './random.ts';

/** Events a trigger can wait for. */
export const TRIGGER_EVENTS = ['atc-inv', 'flr-start', 'recovery', 'cmd-sync'] as const;
export type TriggerEvent = (typeof TRIGGER_EVENTS)[number];

const NS = int(0, 1e15);
const count: Check<number | 'until-reset' | 'forever'> = withSchema(
  (v, path) => {
    if (v === 'until-reset' || v === 'forever') return v;
    if (typeof v === 'number') return int(1, 0x7fff_ffff)(v, path);
    throw new InputError(`${path}: must be a count from 1, 'until-reset' or 'forever' (got ${show(v)})`);
  },
  { anyOf: [{ type: 'integer', minimum: 1, maximum: 0x7fff_ffff }, { enum: ['until-reset', 'forever'] }] },
);

const triggerShape = obj({
  /** Firings before the fault is spent (default 1). */
  count: opt(count),
  /** Armed at the nth occurrence of an event (default the 1st). */
  after: opt(obj({ event: oneOf(TRIGGER_EVENTS), nth: opt(int(1, 1e9)), bdf: opt(bdf) })),
  /** Armed from this platform time. */
  atNs: opt(NS),
  /** Fires only inside [fromNs, toNs) of platform time. */
  window: opt(obj({ fromNs: NS, toNs: NS })),
  /** Each chance fires with this probability... */
  probability: opt(num(0, 1)),
  /** ...drawn from a generator with this seed (default: derived from the run's seed and the fault's place). */
  seed: opt(int(0, 0xffff_ffff)),
});

export const checkTrigger: Check<Infer<typeof triggerShape>> = named('Trigger', sameSchema((v, path) => {
  const t = triggerShape(v, path);
  if (t.window && t.window.fromNs >= t.window.toNs) throw new InputError(`${path}.window: fromNs ${t.window.fromNs} must be below toNs ${t.window.toNs}`);
  if (t.after && t.atNs !== undefined) throw new InputError(`${path}: give after or atNs, not both`);
  return t;
}, triggerShape));
export type Trigger = Infer<typeof checkTrigger>;

/** Words of a trigger cell (Int32 indexes), and its Float64 slots (Float64 indexes into the same memory). */
export const CELL = {
  LOCK: 0,
  /** STATE values below. */
  STATE: 1,
  FIRED: 2,
  /** Firings allowed: > 0, or COUNT_FOREVER / COUNT_UNTIL_RESET. */
  COUNT: 3,
  /** Index into TRIGGER_EVENTS of the arming event, or -1. */
  EVENT: 4,
  /** RID the arming event must concern, or -1 for any. */
  EVENT_RID: 5,
  NTH: 6,
  SEEN: 7,
  RNG: 8,
  /** What the cell is for (a fault kind or should-fail point, as its owner numbers them). */
  KIND: 9,
  /** The fault's device (RID), or -1. */
  DEV: 10,
  /** Whether `probability` applies. */
  HAS_PROB: 11,
  WORDS: 24,
  F64_FROM: 6,
  F64_TO: 7,
  F64_PROB: 8,
  F64_AT: 9,
} as const;
export const CELL_STATE = { FREE: 0, WAITING: 1, ARMED: 2, SPENT: 3 } as const;
const COUNT_FOREVER = -1;
const COUNT_UNTIL_RESET = -2;

/** Trigger cells over a word array (private or shared); a cell's index is its handle. */
export class TriggerCells {
  private readonly f64: Float64Array;

  constructor(
    private readonly i32: Int32Array,
    readonly cells: number,
  ) {
    if (i32.length < cells * CELL.WORDS) throw new RangeError(`trigger cells: ${cells} cells need ${cells * CELL.WORDS} words`);
    this.f64 = new Float64Array(i32.buffer, i32.byteOffset, (cells * CELL.WORDS) / 2);
  }

  private w(cell: number, word: number): number {
    return cell * CELL.WORDS + word;
  }

  private f(cell: number, slot: number): number {
    return (cell * CELL.WORDS) / 2 + slot;
  }

  private lock(cell: number): void {
    const i = this.w(cell, CELL.LOCK);
    while (Atomics.compareExchange(this.i32, i, 0, 1) !== 0) {
      // Another CPU decides on this cell for a few instructions: spin.
    }
  }

  private unlock(cell: number): void {
    Atomics.store(this.i32, this.w(cell, CELL.LOCK), 0);
  }

  /**
   * Arms a new cell for `kind` (of device `dev`, -1 for none) with a trigger; returns its handle, or
   * throws when every cell is taken. `now` is the platform time of injection.
   */
  arm(kind: number, dev: number, t: Trigger, seed: number, now: number): number {
    for (let c = 0; c < this.cells; c++) {
      const si = this.w(c, CELL.STATE);
      if (Atomics.compareExchange(this.i32, si, CELL_STATE.FREE, -1) !== CELL_STATE.FREE) continue;
      const set = (word: number, v: number) => Atomics.store(this.i32, this.w(c, word), v);
      set(CELL.FIRED, 0);
      set(CELL.COUNT, t.count === 'forever' ? COUNT_FOREVER : t.count === 'until-reset' ? COUNT_UNTIL_RESET : (t.count ?? 1));
      const ev = t.after ? TRIGGER_EVENTS.indexOf(t.after.event) : -1;
      set(CELL.EVENT, ev);
      const evBdf = t.after?.bdf !== undefined ? parseBdf(t.after.bdf) : null;
      set(CELL.EVENT_RID, evBdf ? ridOf(evBdf) : dev);
      set(CELL.NTH, t.after?.nth ?? 1);
      set(CELL.SEEN, 0);
      set(CELL.RNG, seed | 0);
      set(CELL.KIND, kind);
      set(CELL.DEV, dev);
      set(CELL.HAS_PROB, t.probability !== undefined ? 1 : 0);
      this.f64[this.f(c, CELL.F64_FROM)] = t.window?.fromNs ?? -Infinity;
      this.f64[this.f(c, CELL.F64_TO)] = t.window?.toNs ?? Infinity;
      this.f64[this.f(c, CELL.F64_PROB)] = t.probability ?? 1;
      this.f64[this.f(c, CELL.F64_AT)] = t.atNs ?? -Infinity;
      Atomics.store(this.i32, si, ev >= 0 || (t.atNs !== undefined && t.atNs > now) ? CELL_STATE.WAITING : CELL_STATE.ARMED);
      return c;
    }
    throw new Error(`fault injection: all ${this.cells} fault slots are in use`);
  }

  state(cell: number): number {
    return Atomics.load(this.i32, this.w(cell, CELL.STATE));
  }

  kind(cell: number): number {
    return Atomics.load(this.i32, this.w(cell, CELL.KIND));
  }

  dev(cell: number): number {
    return Atomics.load(this.i32, this.w(cell, CELL.DEV));
  }

  fired(cell: number): number {
    return Atomics.load(this.i32, this.w(cell, CELL.FIRED));
  }

  /** The platform time a cell waiting for `atNs` arms at (-Infinity when it waits for none). */
  armsAt(cell: number): number {
    return this.f64[this.f(cell, CELL.F64_AT)]!;
  }

  /**
   * An event happened (concerning device `rid`, -1 for none): counts it for every waiting cell that
   * waits for it; returns the cells it armed (a moment fault fires then).
   */
  event(ev: TriggerEvent, rid: number): number[] {
    const e = TRIGGER_EVENTS.indexOf(ev);
    const armed: number[] = [];
    for (let c = 0; c < this.cells; c++) {
      if (Atomics.load(this.i32, this.w(c, CELL.STATE)) !== CELL_STATE.WAITING) continue;
      this.lock(c);
      const want = this.i32[this.w(c, CELL.EVENT_RID)]!;
      if (this.i32[this.w(c, CELL.STATE)] === CELL_STATE.WAITING && this.i32[this.w(c, CELL.EVENT)] === e && (want < 0 || want === rid)) {
        const seen = ++this.i32[this.w(c, CELL.SEEN)]!;
        if (seen >= this.i32[this.w(c, CELL.NTH)]!) {
          Atomics.store(this.i32, this.w(c, CELL.STATE), CELL_STATE.ARMED);
          armed.push(c);
        }
      }
      this.unlock(c);
    }
    return armed;
  }

  /** One chance of a cell at platform time `now`: true when it fires (and counts the firing). */
  chance(cell: number, now: number): boolean {
    this.lock(cell);
    try {
      const st = this.w(cell, CELL.STATE);
      let state = this.i32[st]!;
      if (state === CELL_STATE.WAITING && this.i32[this.w(cell, CELL.EVENT)] === -1 && now >= this.armsAt(cell)) {
        state = CELL_STATE.ARMED;
        Atomics.store(this.i32, st, state);
      }
      if (state !== CELL_STATE.ARMED) return false;
      if (now < this.f64[this.f(cell, CELL.F64_FROM)]! || now >= this.f64[this.f(cell, CELL.F64_TO)]!) return false;
      if (this.i32[this.w(cell, CELL.HAS_PROB)] === 1) {
        const r = this.w(cell, CELL.RNG);
        this.i32[r] = (this.i32[r]! + RNG_STEP) | 0;
        if (rngValue(this.i32[r]!) >= this.f64[this.f(cell, CELL.F64_PROB)]!) return false;
      }
      const fired = ++this.i32[this.w(cell, CELL.FIRED)]!;
      const limit = this.i32[this.w(cell, CELL.COUNT)]!;
      if (limit > 0 && fired >= limit) Atomics.store(this.i32, st, CELL_STATE.SPENT);
      return true;
    } finally {
      this.unlock(cell);
    }
  }

  /** Device `rid` completed a reset: its 'until-reset' cells are spent. */
  deviceReset(rid: number): void {
    for (let c = 0; c < this.cells; c++) {
      if (this.dev(c) !== rid || this.state(c) === CELL_STATE.FREE) continue;
      this.lock(c);
      if (this.i32[this.w(c, CELL.COUNT)] === COUNT_UNTIL_RESET && this.i32[this.w(c, CELL.STATE)] !== CELL_STATE.FREE) {
        Atomics.store(this.i32, this.w(c, CELL.STATE), CELL_STATE.SPENT);
      }
      this.unlock(c);
    }
  }

  /** Marks a cell spent (a moment fault that has had its moment, a fault cleared). */
  spend(cell: number): void {
    Atomics.store(this.i32, this.w(cell, CELL.STATE), CELL_STATE.SPENT);
  }

  /** Cells of a kind that may still fire (not free, not spent), in order. */
  live(kind: number): number[] {
    const out: number[] = [];
    for (let c = 0; c < this.cells; c++) {
      const s = this.state(c);
      if ((s === CELL_STATE.WAITING || s === CELL_STATE.ARMED) && this.kind(c) === kind) out.push(c);
    }
    return out;
  }
}
