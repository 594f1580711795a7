// Where the hardware's faults live (the vocabulary is src/protocol/faults.ts): every armed fault and its
// trigger state, the chances the device models offer, and the moment faults applied to the machine.
//
// A device model asks at each of its chances: `chance('atc-inv-no-answer', rid)` returns the fault that
// fires now, if any (a trigger cell decides: armed, in its window, under its probability, not spent).
// Events a trigger may wait for are reported with `event()`: the models report ATC invalidations,
// FLR starts and CMD_SYNCs; the driver reports entering recovery through a shared-buffer counter,
// which `poll()` turns into events. Moment faults (a removal, a hang...) are applied when armed:
// at injection, at their trigger's time (a scheduler timer), or at their trigger's event.

import { BusAbort } from '../src/machine/layout.ts';
import { parseBdf, ridOf } from '../src/arch/pcie/bdf.ts';
import { FAULT_KINDS, MOMENT_FAULTS, faultDevice, type FaultKind, type HwFault } from '../src/protocol/faults.ts';
import { CELL, CELL_STATE, TriggerCells, type TriggerEvent } from '../src/protocol/trigger.ts';
import { deriveSeed } from '../src/protocol/random.ts';
import type { EventScheduler } from './scheduler.ts';
import type { Tracer } from '../src/protocol/tracer.ts';

/** Faults one machine can hold armed at once. */
const CELLS = 256;

type FaultOf<K extends FaultKind> = Extract<HwFault, { kind: K }>;

/** What moment faults act on: the machine (bound once it exists). */
export interface MomentTarget {
  /** Stops the hardware until platform time `untilNs` (Infinity: until resumed). */
  hang(untilNs: number): void;
  resume(): void;
  setAckLatency(ns: number): void;
  /** The SMMU enters Service Failure Mode. */
  serviceFailure(): void;
  endpoint(bdf: string): { remove(): void; recordError(bit: string): unknown; stickTransactionsPending(): void };
}

export class FaultEngine {
  private readonly cells = new TriggerCells(new Int32Array(CELLS * CELL.WORDS), CELLS);
  private readonly faults: (HwFault | undefined)[] = new Array(CELLS).fill(undefined);
  /** Per kind: whether a fault of it may still fire (cleared when a look finds none), so a model's chance costs one load when none is armed. */
  private readonly liveKinds = new Uint8Array(FAULT_KINDS.length);
  private injected = 0;
  /** Faults waiting for an event (so an event with none waiting costs one load). */
  private waiting = 0;
  /** Commands cmd-illegal corrupted, by original opcode (what the driver issued and the SMMU never executed). */
  readonly corrupted = new Map<number, number>();
  /** What moment faults act on (bound by the Machine once everything exists). */
  target: MomentTarget | null = null;
  /** Chances of each kind that fired, and moment faults applied. */
  readonly firedByKind = new Map<FaultKind, number>();
  /** Told every firing (a schedule recorder's hook, hw/schedule-recorder.ts). */
  onFire: ((kind: FaultKind) => void) | null = null;

  constructor(
    private readonly sched: EventScheduler,
    /** Base seed of probability draws (each fault derives its own unless its trigger gives one). */
    private readonly seed: number,
    /** Trace point fault_fire marks each firing. */
    private readonly tr: Tracer<'hw'> = {},
  ) {}

  /** Arms a fault ('clear' disarms); a moment fault due now is applied at once. */
  inject(f: HwFault): void {
    if (f.kind === 'clear') {
      this.clear(f.what, f.bdf === undefined ? -1 : ridOf(parseBdf(f.bdf)!));
      return;
    }
    const now = this.sched.now();
    const t = 'trigger' in f && f.trigger ? f.trigger : {};
    const dev = faultDevice(f);
    const rid = dev === null ? -1 : ridOf(parseBdf(dev)!);
    const k = FAULT_KINDS.indexOf(f.kind);
    const cell = this.cells.arm(k, rid, t, t.seed ?? deriveSeed(this.seed, this.injected++), now);
    this.faults[cell] = f;
    this.liveKinds[k] = 1;
    if (t.after) this.waiting++;
    if (!MOMENT_FAULTS.includes(f.kind)) return;
    if (this.cells.state(cell) === CELL_STATE.ARMED) this.moment(cell);
    else if (t.atNs !== undefined) this.sched.at(t.atNs, () => this.moment(cell));
  }

  /** Disarms live faults: of one kind, or of one device, or all. */
  clear(kind?: FaultKind, rid = -1): void {
    for (let c = 0; c < CELLS; c++) {
      const f = this.faults[c];
      if (!f || (kind !== undefined && f.kind !== kind) || (rid >= 0 && this.cells.dev(c) !== rid)) continue;
      this.cells.spend(c);
    }
  }

  /**
   * One chance of the faults of `kind` (of device `rid` when it is a device fault; -1 otherwise), and
   * matching `match`: the first that fires, or null.
   */
  chance<K extends FaultKind>(kind: K, rid = -1, match?: (f: FaultOf<K>) => boolean): FaultOf<K> | null {
    const k = FAULT_KINDS.indexOf(kind);
    if (this.liveKinds[k] === 0) return null;
    const live = this.cells.live(k);
    if (live.length === 0) this.liveKinds[k] = 0;
    for (const c of live) {
      if (rid >= 0 && this.cells.dev(c) !== rid) continue;
      // The cell's kind is K, so its fault is of kind K.
      const f = this.faults[c] as FaultOf<K>;
      if (match && !match(f)) continue;
      if (this.cells.chance(c, this.sched.now())) {
        this.count(f);
        return f;
      }
    }
    return null;
  }

  /** Whether any fault of these kinds may still fire (for a hot path to skip its chances). */
  mayFire(...kinds: FaultKind[]): boolean {
    return kinds.some((k) => this.liveKinds[FAULT_KINDS.indexOf(k)] === 1);
  }

  /** A command cmd-illegal corrupts: the opcode the driver wrote, for the accounting of what was lost. */
  noteCorrupted(op: number): void {
    this.corrupted.set(op, (this.corrupted.get(op) ?? 0) + 1);
  }

  /** Throws the abort an injected SMMU fetch fault `what` makes of an access at pa, if one fires. */
  abortFetch(what: 'ste' | 'cd' | 'walk' | 'evtq', pa: number, bytes: number, desc: string): void {
    if (this.chance('smmu-fetch-abort', -1, (f) => f.what === what)) throw new BusAbort(pa, bytes, `${desc} (injected)`);
  }

  /** An event a trigger may wait for, concerning device `rid` (-1 for none). */
  event(ev: TriggerEvent, rid = -1): void {
    if (this.waiting === 0) return;
    const armed = this.cells.event(ev, rid);
    this.waiting -= armed.length;
    for (const c of armed) {
      const f = this.faults[c];
      if (f && MOMENT_FAULTS.includes(f.kind)) this.moment(c);
    }
  }

  /** Device `rid` completed a reset: faults that last until the next reset are spent. */
  deviceReset(rid: number): void {
    this.cells.deviceReset(rid);
  }

  private moment(cell: number): void {
    const f = this.faults[cell];
    if (!f || this.cells.state(cell) === CELL_STATE.SPENT) return;
    const fires = this.cells.chance(cell, this.sched.now());
    this.cells.spend(cell);
    if (!fires) return;
    this.count(f);
    this.applyMoment(f);
  }

  private applyMoment(f: HwFault): void {
    const m = this.target;
    if (!m) throw new Error('fault engine: no machine bound');
    switch (f.kind) {
      case 'hang':
        m.hang(f.forNs === undefined ? Infinity : this.sched.now() + f.forNs);
        return;
      case 'resume':
        m.resume();
        return;
      case 'ack-latency':
        m.setAckLatency(f.ns);
        return;
      case 'sfm':
        m.serviceFailure();
        return;
      case 'surprise-removal':
        m.endpoint(f.bdf).remove();
        return;
      case 'aer':
        m.endpoint(f.bdf).recordError(f.error);
        return;
      case 'transactions-pending-stuck':
        m.endpoint(f.bdf).stickTransactionsPending();
        return;
      default:
        throw new Error(`fault ${f.kind} is not a moment fault`);
    }
  }

  private count(f: HwFault): void {
    this.firedByKind.set(f.kind, (this.firedByKind.get(f.kind) ?? 0) + 1);
    this.tr.fault_fire?.(f.kind, faultDevice(f) ?? '');
    this.onFire?.(f.kind);
  }

  /** Faults that fired (chances and moments), by kind. */
  fired(): Record<string, number> {
    return Object.fromEntries(this.firedByKind);
  }
}
