// The lockstep-N block: what the CPU workers, the coordinator (hw/lockstep-coordinator.ts) and the
// host share to run N simulated CPUs one at a time, deterministically, in virtual time.
//
// It lives in the control page of the shared buffer, from byte LOCKSTEP_BLOCK_OFFSET (CTRL.LOCKSTEP_BYTE)
// on, clear of the control words. Only a system booted with `lockstep` uses it.
//
//   header       the token holder, the coordinator's wake word and waiter flag, the host's hold count,
//                stop/abort flags, the step counter (a host-time watchdog's progress mark), the hash of
//                the MMIO writes the hardware saw, and Float64 slots: virtual time, decisions, grants,
//                switches, MMIO writes, time advances, a schedule replay's progress
//   per CPU      (MAX_CPUS blocks of CPU_WORDS) its grant word and waiter flag, the command it is
//                resumed with (run, hang, abort), the request it yielded with (kind, interrupts on, a
//                PA and a value, the platform time it waits until, its next deferred work), and four
//                operation counters: posted by the host, started by the CPU, done by the CPU, and
//                acknowledged by the host
//   message      the text of the last hang or abort (UTF-16, MSG_CHARS)
//
// Who writes what (each word has one writer at a time, which is what makes the plain Float64 and
// request words safe: they are written only by the token holder, and the token passes through an
// Atomics store + add, which orders them before the next holder's reads):
//   HOLDER       the coordinator grants (CPU index), a CPU gives back (-1)
//   request      only the CPU holding the token
//   VTIME, the Float64 counters and REPLAY_*: only the coordinator, while it holds the token
//   POSTED/ACKED, INJ_POSTED only the host; STARTED/DONE only the CPU; INJ_APPLIED the coordinator

import { CTRL, MAX_CPUS, type SharedViews } from './layout.ts';
import type { Clock } from './clock.ts';

/** Byte offset of the block inside the control page. */
export const LOCKSTEP_BLOCK_OFFSET: number = CTRL.LOCKSTEP_BYTE;

/** Header words (Int32) and Float64 slots (index into a Float64Array on the block). */
export const LSH = {
  ACTIVE: 0,
  /** -1: the coordinator holds the token; k: CPU k does. */
  HOLDER: 1,
  /** Bumped by whoever gives the coordinator something to look at (a CPU returning the token or starting an operation, the host). */
  COORD_SEQ: 2,
  COORD_WAITING: 3,
  /** Host: incremented when it posts an operation, decremented one host turn later (after the microtasks that react to results). */
  HOST_HOLD: 4,
  STOP: 5,
  ABORT: 6,
  /** Decisions taken, wrapping: what a host-time watchdog watches for progress. */
  STEPS: 7,
  HASH_A: 8,
  HASH_B: 9,
  MSG_LEN: 10,
  /** Faults the host sent the coordinator (host: Atomics.add), and those it applied (coordinator). */
  INJ_POSTED: 11,
  INJ_APPLIED: 12,
  HEADER_WORDS: 64,
  /** Float64 slots. */
  F64_VTIME: 8,
  F64_DECISIONS: 9,
  F64_GRANTS: 10,
  F64_SWITCHES: 11,
  F64_WRITES: 12,
  F64_ADVANCES: 13,
  /**
   * The schedule strategy's progress (coordinator): writes that matched the record and that did not,
   * and the first that did not (its index, the CPU the record expected or -1 past its end, the CPU that
   * wrote), meaningful once DIVERGED is not 0.
   */
  F64_REPLAY_MATCHED: 14,
  F64_REPLAY_DIVERGED: 15,
  F64_REPLAY_FIRST_WRITE: 16,
  F64_REPLAY_FIRST_EXPECTED: 17,
  F64_REPLAY_FIRST_ACTUAL: 18,
} as const;

/** Per-CPU words (Int32), CPU_WORDS each, after the header. */
export const LSC = {
  GRANT: 0,
  WAITING: 1,
  CMD: 2,
  KIND: 3,
  IN_OP: 4,
  IRQS_ON: 5,
  PA: 6,
  VALUE: 7,
  POSTED: 8,
  STARTED: 9,
  DONE: 10,
  ACKED: 11,
  /** Index of the operation running in KERNEL_OPS order (-2: an extra operation, -1: none). */
  OP: 12,
  /** STARTED as of this request: a STARTED beyond it is an operation waiting to start. */
  SEQ: 13,
  /** Float64 slots inside the CPU's block (Float64 index = block's first Float64 + this). */
  F64_WAKE_AT: 8,
  F64_DEFERRED_AT: 9,
  CPU_WORDS: 32,
} as const;

/** What a CPU is resumed with. */
export const GRANT_CMD = { RUN: 0, HANG: 1, ABORT: 2 } as const;

/** What a CPU waits for when it gives the token back: its yield point. */
export const KIND = {
  /** Idle between operations: runnable when an interrupt is pending or deferred work is due. */
  IDLE: 0,
  /** Runnable from WAKE_AT on: an interrupts-on point (irq restore, irqCheckpoint), cpu_relax, delay, MMIO. */
  IRQ_ON: 1,
  RELAX: 2,
  DELAY: 3,
  MMIO_READ: 4,
  MMIO_WRITE: 5,
  /** Runnable from WAKE_AT, or (interrupts on) when an interrupt is pending or deferred work is due. */
  SLEEP: 6,
  /** Runnable from WAKE_AT, or when the SEV word differs from VALUE. */
  WFE: 7,
  /** Runnable from WAKE_AT, or when the DRAM word at PA differs from VALUE. */
  MEM: 8,
} as const;

export const KIND_NAMES = ['idle', 'interrupts-on point', 'cpu_relax', 'delay', 'MMIO read', 'MMIO write', 'sleep', 'WFE', 'memory wait'] as const;

const HEADER_BYTES = LSH.HEADER_WORDS * 4;
const CPU_BYTES = LSC.CPU_WORDS * 4;
const MSG_BYTES_AT = HEADER_BYTES + MAX_CPUS * CPU_BYTES;
/** Characters of hang/abort text the block keeps. */
export const MSG_CHARS = 380;
/** Bytes of the block (it must fit in the control page after LOCKSTEP_BLOCK_OFFSET). */
export const LOCKSTEP_BLOCK_BYTES = MSG_BYTES_AT + MSG_CHARS * 2;

/** Typed views on the lockstep block of a shared buffer. */
export class LockstepBlock {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  private readonly msg: Uint16Array;

  constructor(views: SharedViews) {
    const base = views.layout.control + LOCKSTEP_BLOCK_OFFSET;
    if (LOCKSTEP_BLOCK_OFFSET + LOCKSTEP_BLOCK_BYTES > 4096) throw new Error('lockstep block does not fit the control page');
    this.i32 = new Int32Array(views.sab, base, LOCKSTEP_BLOCK_BYTES >>> 2);
    this.f64 = new Float64Array(views.sab, base, LOCKSTEP_BLOCK_BYTES >>> 3);
    this.msg = new Uint16Array(views.sab, base + MSG_BYTES_AT, MSG_CHARS);
  }

  /** Int32 index of word `w` of CPU `cpu`'s block. */
  cw(cpu: number, w: number): number {
    return LSH.HEADER_WORDS + cpu * LSC.CPU_WORDS + w;
  }

  /** Float64 index of slot `s` of CPU `cpu`'s block. */
  cf(cpu: number, s: number): number {
    return (HEADER_BYTES + cpu * CPU_BYTES) / 8 + s;
  }

  get(cpu: number, w: number): number {
    return Atomics.load(this.i32, this.cw(cpu, w));
  }

  set(cpu: number, w: number, v: number): void {
    Atomics.store(this.i32, this.cw(cpu, w), v);
  }

  add(cpu: number, w: number, n = 1): void {
    Atomics.add(this.i32, this.cw(cpu, w), n);
  }

  /** Stores the text of a hang or an abort (clipped). */
  setMessage(s: string): void {
    const n = Math.min(s.length, MSG_CHARS);
    for (let i = 0; i < n; i++) this.msg[i] = s.charCodeAt(i);
    Atomics.store(this.i32, LSH.MSG_LEN, n);
  }

  message(): string {
    const n = Atomics.load(this.i32, LSH.MSG_LEN);
    return String.fromCharCode(...this.msg.subarray(0, n));
  }

  /** Wakes the coordinator (it sleeps on COORD_SEQ only with COORD_WAITING raised). */
  wakeCoordinator(): void {
    Atomics.add(this.i32, LSH.COORD_SEQ, 1);
    if (Atomics.load(this.i32, LSH.COORD_WAITING) !== 0) Atomics.notify(this.i32, LSH.COORD_SEQ);
  }

  /** Wakes CPU `cpu` waiting for its grant. */
  wakeCpu(cpu: number): void {
    const g = this.cw(cpu, LSC.GRANT);
    Atomics.add(this.i32, g, 1);
    if (Atomics.load(this.i32, this.cw(cpu, LSC.WAITING)) !== 0) Atomics.notify(this.i32, g);
  }

  /** The MMIO write hash as 16 hex digits. */
  writeHash(): string {
    const h = (w: number) => (Atomics.load(this.i32, w) >>> 0).toString(16).padStart(8, '0');
    return h(LSH.HASH_A) + h(LSH.HASH_B);
  }
}

/**
 * Virtual platform time in the block's VTIME slot: every thread reads it, only the coordinator moves it
 * (while it holds the token, so a CPU never sees it move under it).
 */
export class SharedVirtualClock implements Clock {
  constructor(private readonly f64: Float64Array) {}

  now(): number {
    return this.f64[LSH.F64_VTIME]!;
  }

  advanceTo(ns: number): void {
    if (ns > this.f64[LSH.F64_VTIME]!) this.f64[LSH.F64_VTIME] = ns;
  }
}
