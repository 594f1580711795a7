// The MMIO write port: how a driver CPU's register write reaches the hardware.
//
// The driver never stores into a register's read view. Each write (physical address, size, value) is
// appended to one multi-producer ring in the shared buffer; the hardware worker drains the ring in
// ticket order and applies each write through the device's register map, so RO bits never become
// visible and two writes in quick succession are both seen, in order. One ring (rather than one per
// CPU) keeps writes from different CPUs in the order their tickets were taken, which the CMDQ
// algorithm relies on: a CPU writes CMDQ_PROD only after the previous owner's PROD write, so its
// ticket is later.
//
// Like PCIe, reads do not pass posted writes from the same CPU: before an MMIO read, a CPU waits
// until the hardware has consumed its own last write (flushOwnWrites).

import { CPUW, CTRL, WP, type SharedViews } from './layout.ts';
import type { Clock } from './clock.ts';
import { waitWhileEqual, wakeWord } from './wait.ts';

const MASK = WP.ENTRIES - 1;

/** One write taken off the ring by the hardware. */
export interface PortWrite {
  pa: number;
  size: number;
  lo: number;
  hi: number;
  cpu: number;
}

export class HardwareStalled extends Error {
  constructor(what: string, waitedMs: number) {
    super(`hardware did not respond: ${what} (waited ${waitedMs.toFixed(1)} ms platform time)`);
  }
}

export class WritePortProducer {
  private readonly wp: Int32Array;
  private readonly lastTicketIdx: number;

  constructor(
    private readonly v: SharedViews,
    private readonly cpu: number,
    private readonly clock: Clock,
    /** Platform ns to wait for ring space or for the hardware to drain before declaring it stalled. */
    private readonly stallNs: number,
  ) {
    this.wp = v.wp;
    this.lastTicketIdx = v.cpuWord(cpu, CPUW.LAST_TICKET);
    Atomics.store(v.cpus, this.lastTicketIdx, -1);
  }

  /** Posts a write of `size` bytes (1, 2, 4 or 8; hi carries bits 63:32 of an 8-byte write). */
  post(pa: number, size: number, lo: number, hi: number): void {
    const ticket = Atomics.add(this.wp, WP.RESERVE, 1);
    if (((ticket - Atomics.load(this.wp, WP.CONSUMED)) | 0) >= WP.ENTRIES) this.waitForSpace(ticket);
    const e = WP.HEADER_WORDS + (ticket & MASK) * WP.ENTRY_WORDS;
    const wp = this.wp;
    wp[e + 1] = pa;
    wp[e + 2] = size;
    wp[e + 3] = lo;
    wp[e + 4] = hi;
    wp[e + 5] = this.cpu;
    // Publishing the stamp releases the fields above to the consumer's acquiring load.
    Atomics.store(wp, e, (ticket + 1) | 0);
    Atomics.store(this.v.cpus, this.lastTicketIdx, ticket);
    const ctrl = this.v.ctrl;
    if (Atomics.load(ctrl, CTRL.HW_WAITING) !== 0) wakeWord(ctrl, CTRL.HW_WAKE, { view: ctrl, index: CTRL.HW_WAITING });
  }

  /**
   * Waits until the hardware has applied this CPU's last posted write; false if it did not within the
   * stall timeout (the hardware stopped answering: the read then sees the register as it stands).
   */
  flushOwnWrites(): boolean {
    if (this.drained()) return true;
    const last = Atomics.load(this.v.cpus, this.lastTicketIdx);
    try {
      this.waitConsumed(last, `MMIO write #${last} was not consumed before a read`);
      return true;
    } catch (e) {
      if (e instanceof HardwareStalled) return false;
      throw e;
    }
  }

  /** True when every write this CPU posted has been applied. */
  drained(): boolean {
    const last = Atomics.load(this.v.cpus, this.lastTicketIdx);
    return last === -1 || ((Atomics.load(this.wp, WP.CONSUMED) - last) | 0) > 0;
  }

  private waitForSpace(ticket: number): void {
    const ctrl = this.v.ctrl;
    wakeWord(ctrl, CTRL.HW_WAKE, { view: ctrl, index: CTRL.HW_WAITING });
    this.waitConsumed((ticket - WP.ENTRIES) | 0, `MMIO write port full (ticket ${ticket})`);
  }

  /** Waits until ticket `t` has been consumed, or throws HardwareStalled after stallNs. */
  private waitConsumed(t: number, what: string): void {
    const start = this.clock.now();
    const waiters = { view: this.wp, index: WP.WAITERS };
    for (;;) {
      const seen = Atomics.load(this.wp, WP.CONSUMED);
      if (((seen - t) | 0) > 0) return;
      const waited = this.clock.now() - start;
      if (waited > this.stallNs) throw new HardwareStalled(what, waited / 1e6);
      waitWhileEqual(this.wp, WP.CONSUMED, seen, 1, waiters);
    }
  }
}

export class WritePortConsumer {
  private next = 0;
  private readonly out: PortWrite = { pa: 0, size: 0, lo: 0, hi: 0, cpu: 0 };

  constructor(private readonly v: SharedViews) {
    this.next = Atomics.load(v.wp, WP.CONSUMED);
  }

  /** True if a published write is waiting. */
  ready(): boolean {
    const e = WP.HEADER_WORDS + (this.next & MASK) * WP.ENTRY_WORDS;
    return Atomics.load(this.v.wp, e) === ((this.next + 1) | 0);
  }

  /**
   * Applies every published write in ticket order through `apply`, at most `max`; returns how many.
   * The ring slot is released (CONSUMED advanced) only after the write has been applied, so a CPU
   * that waits for its write to be consumed also sees its effect.
   */
  drain(apply: (w: PortWrite) => void, max = WP.ENTRIES): number {
    const wp = this.v.wp;
    let n = 0;
    while (n < max) {
      const e = WP.HEADER_WORDS + (this.next & MASK) * WP.ENTRY_WORDS;
      if (Atomics.load(wp, e) !== ((this.next + 1) | 0)) break;
      const w = this.out;
      w.pa = wp[e + 1]! >>> 0;
      w.size = wp[e + 2]!;
      w.lo = wp[e + 3]!;
      w.hi = wp[e + 4]!;
      w.cpu = wp[e + 5]!;
      apply(w);
      this.next = (this.next + 1) | 0;
      Atomics.store(wp, WP.CONSUMED, this.next);
      n++;
    }
    if (n > 0 && Atomics.load(wp, WP.WAITERS) !== 0) Atomics.notify(wp, WP.CONSUMED);
    return n;
  }
}
