// The platform of one CPU of a lockstep-N system: the same driver code as on WorkerPlatform, but the CPU
// runs only while it holds the token (src/machine/lockstep-block.ts) and every yield point of the
// platform gives the token back to the coordinator (hw/lockstep-coordinator.ts) with what the CPU waits
// for. Time is the coordinator's virtual clock, so the semantics are LockstepPlatform's
// (src/host/lockstep.ts): cpu_relax takes 10 ns, delay/sleep/WFE/memory waits last until their
// condition or timeout in virtual time, interrupts are taken only at interrupts-on points; in addition
// an MMIO access takes mmioNs (so that a CPU that only issues commands still moves time).
//
// Yield points: every MMIO read (before it) and write (after posting it to the write port, which the
// coordinator drains before anything else runs), cpu_relax, delay, sleep, WFE, waitMemWhileEqual,
// re-enabling interrupts and irqCheckpoint, interleave() (a race window of a lock-free algorithm, of
// no duration); and the start and end of every operation.

import { type LogEntry } from '../../src/protocol/log.ts';
import { CTRL, type SharedViews } from '../../src/machine/layout.ts';
import { WritePortProducer } from '../../src/machine/mmio-port.ts';
import { GRANT_CMD, KIND, KIND_NAMES, LSC, LSH, LockstepBlock, SharedVirtualClock } from '../../src/machine/lockstep-block.ts';
import { hostNowMs } from '../../src/machine/clock.ts';
import { waitWhileEqual } from '../../src/machine/wait.ts';
import type { LockstepNConfig } from '../../src/protocol/lockstep.ts';
import { TIMEOUT } from '../../src/arch/time.ts';
import { PlatformBase } from './platform.ts';

/** Virtual ns one cpu_relax() takes (as LockstepPlatform). */
const RELAX_NS = 10;
/**
 * The least virtual time a yield point takes (an interrupts-on point, an MMIO access, a delay or sleep
 * of 0), all but a wait whose condition already holds and interleave() (in no loop): so no loop of
 * driver code runs without time passing, and a CPU runnable now always runs before time moves, whatever
 * the strategy prefers (PCT's holds aside).
 */
const STEP_NS = 1;
/**
 * Host ms a CPU spins for its grant before sleeping, and the longest sleep between watchdog checks.
 * Short: while one CPU runs, the coordinator and the others wait, and on a host with fewer cores than
 * threads a longer spin steals the core the holder needs (bench/lockstep.ts measured 5 us best of 0, 5,
 * 20 and 50 us on the 2-core target).
 */
const SPIN_MS = 0.005;
const SLICE_MS = 5;

/** The platform-time watchdog (or a deadlock or livelock) ended this CPU's wait: like LockstepPlatform's Hang. */
export class LockstepHang extends Error {}
/** The run was aborted (a host-time watchdog fired, or the system stopped); the CPU cannot go on. */
export class LockstepAbort extends Error {}

export class LockstepCpuPlatform extends PlatformBase<SharedVirtualClock> {
  private readonly port: WritePortProducer;
  private readonly b: LockstepBlock;
  private readonly i32: Int32Array;
  private holding = false;
  private inOp = false;
  /** Set once the run is aborted: every later yield point throws it. */
  private broken: Error | null = null;
  /** Operations this CPU has started (its STARTED word). */
  private opSeq = 0;
  private lastSev: number;

  constructor(
    views: SharedViews,
    cpu: number,
    private readonly cfg: LockstepNConfig,
    echo?: (line: string, e: LogEntry) => void,
  ) {
    const b = new LockstepBlock(views);
    super(views, cpu, new SharedVirtualClock(b.f64), echo);
    this.b = b;
    this.i32 = b.i32;
    this.port = new WritePortProducer(views, cpu, this.clock, TIMEOUT.SMMU_POLL);
    this.lastSev = Atomics.load(views.ctrl, CTRL.SEV);
    this.opSeq = b.get(cpu, LSC.STARTED);
  }

  /** True once the run was aborted (this CPU can do nothing more). */
  get dead(): boolean {
    return this.broken !== null;
  }

  protected post(pa: number, size: number, lo: number, hi: number): void {
    this.port.post(pa, size, lo, hi);
    this.yieldPoint(KIND.MMIO_WRITE, this.clock.now() + Math.max(STEP_NS, this.cfg.mmioNs), pa);
  }

  protected beforeRead(): void {
    this.yieldPoint(KIND.MMIO_READ, this.clock.now() + Math.max(STEP_NS, this.cfg.mmioNs));
  }

  cpuRelax(): void {
    this.yieldPoint(KIND.RELAX, this.clock.now() + RELAX_NS);
    if (this.core.irqsEnabled()) this.core.take();
  }

  override interleave(): void {
    // Runnable at once: the strategy alone decides whether another CPU runs first.
    this.yieldPoint(KIND.RELAX, this.clock.now());
  }

  delay(ns: number): void {
    if (Number.isNaN(ns)) throw new RangeError(`cpu${this.cpu}: delay of NaN ns (a delay computed from a bad value)`);
    this.yieldPoint(KIND.DELAY, this.clock.now() + Math.max(STEP_NS, ns));
    if (this.core.irqsEnabled()) this.core.take();
  }

  sleep(ns: number): void {
    if (Number.isNaN(ns)) throw new RangeError(`cpu${this.cpu}: sleep for NaN platform ns (a delay computed from a bad value)`);
    const end = this.clock.now() + Math.max(STEP_NS, ns);
    this.core.schedule();
    do {
      this.yieldPoint(KIND.SLEEP, end);
      this.core.schedule();
    } while (this.clock.now() < end);
  }

  wfe(timeoutNs: number): void {
    // The event register: an SEV since the last WFE makes this one return at once (the coordinator
    // finds the SEV word moved and the CPU runnable).
    this.yieldPoint(KIND.WFE, this.clock.now() + Math.max(0, timeoutNs), 0, this.lastSev);
    this.lastSev = Atomics.load(this.views.ctrl, CTRL.SEV);
  }

  waitMemWhileEqual(pa: number, expected: number, timeoutNs: number): boolean {
    const i = this.mem.idx32(pa);
    const end = this.clock.now() + Math.max(0, timeoutNs);
    for (;;) {
      this.yieldPoint(KIND.MEM, end, pa, expected);
      if (Atomics.load(this.mem.i32, i) !== expected) return true;
      if (this.clock.now() >= end) return false;
    }
  }

  override localIrqRestore(wasEnabled: boolean): void {
    if (wasEnabled) this.yieldPoint(KIND.IRQ_ON, this.clock.now() + STEP_NS);
    super.localIrqRestore(wasEnabled);
  }

  override irqCheckpoint(): void {
    this.yieldPoint(KIND.IRQ_ON, this.clock.now() + STEP_NS);
    super.irqCheckpoint();
  }

  // ---- operations and idle turns ----

  /**
   * An operation from the host starts: counts it (STARTED), tells the coordinator and waits for the
   * token. `op` is its index in KERNEL_OPS (-2: an extra operation).
   */
  opBegin(op: number): void {
    // The operation's name before its start, so that a report of the start can name it.
    if (!this.inOp) this.b.set(this.cpu, LSC.OP, op);
    this.opSeq = (this.opSeq + 1) | 0;
    this.b.add(this.cpu, LSC.STARTED);
    if (this.broken) {
      this.b.add(this.cpu, LSC.DONE);
      throw this.broken;
    }
    if (this.inOp) {
      this.b.add(this.cpu, LSC.DONE);
      throw new Error(`cpu${this.cpu}: an operation is already running on this CPU`);
    }
    this.b.wakeCoordinator();
    this.inOp = true;
    if (!this.holding) {
      try {
        this.acquire();
      } catch (e) {
        this.opEnd();
        throw e;
      }
    }
  }

  /** The operation is done: counts it (DONE) and gives the token back for good, until the next one. */
  opEnd(): void {
    this.inOp = false;
    this.b.set(this.cpu, LSC.OP, -1);
    if (!this.holding) {
      this.b.add(this.cpu, LSC.DONE);
      return;
    }
    this.writeRequest(KIND.IDLE, Infinity, 0, 0);
    this.b.add(this.cpu, LSC.DONE);
    this.giveBack();
  }

  /**
   * Between operations: if the coordinator granted this CPU the token (an interrupt is pending for it,
   * or deferred work is due), takes interrupts and runs due work, then gives the token back. False
   * when it had no grant.
   */
  idleTurn(): boolean {
    if (this.inOp || this.holding || this.broken || Atomics.load(this.i32, LSH.HOLDER) !== this.cpu) return false;
    this.holding = true;
    try {
      this.resumed();
      this.core.schedule();
    } finally {
      if (this.holding) {
        this.writeRequest(KIND.IDLE, Infinity, 0, 0);
        this.giveBack();
      }
    }
    return true;
  }

  /** The word an idle CPU waits on (with its waiter flag) for a grant. */
  grantWord(): { view: Int32Array; index: number; waiting: number } {
    return { view: this.i32, index: this.b.cw(this.cpu, LSC.GRANT), waiting: this.b.cw(this.cpu, LSC.WAITING) };
  }

  // ---- the token ----

  private yieldPoint(kind: number, wakeAt: number, pa = 0, value = 0): void {
    if (!this.holding) {
      throw this.broken ?? new Error(`cpu${this.cpu}: lockstep: driver code ran a ${KIND_NAMES[kind]} without the token (outside an operation or an interrupt turn)`);
    }
    this.writeRequest(kind, wakeAt, pa, value);
    this.giveBack();
    this.acquire();
  }

  private writeRequest(kind: number, wakeAt: number, pa: number, value: number): void {
    const b = this.b;
    const k = this.cpu;
    b.set(k, LSC.KIND, kind);
    b.set(k, LSC.IN_OP, this.inOp ? 1 : 0);
    b.set(k, LSC.IRQS_ON, this.core.irqsEnabled() ? 1 : 0);
    b.set(k, LSC.PA, pa | 0);
    b.set(k, LSC.VALUE, value | 0);
    b.set(k, LSC.SEQ, this.opSeq);
    b.f64[b.cf(k, LSC.F64_WAKE_AT)] = wakeAt;
    b.f64[b.cf(k, LSC.F64_DEFERRED_AT)] = this.core.nextDeferredAt();
  }

  private giveBack(): void {
    this.holding = false;
    Atomics.store(this.i32, LSH.HOLDER, -1);
    this.b.wakeCoordinator();
  }

  /** Waits until the coordinator grants this CPU the token; throws on abort, stop or the host-time watchdog. */
  private acquire(): void {
    const b = this.b;
    const gi = b.cw(this.cpu, LSC.GRANT);
    const waiters = { view: this.i32, index: b.cw(this.cpu, LSC.WAITING) };
    let steps = Atomics.load(this.i32, LSH.STEPS);
    let since = hostNowMs();
    for (;;) {
      const g = Atomics.load(this.i32, gi);
      if (Atomics.load(this.i32, LSH.HOLDER) === this.cpu) break;
      if (Atomics.load(this.i32, LSH.ABORT) !== 0) throw (this.broken = new LockstepAbort(b.message()));
      if (Atomics.load(this.i32, LSH.STOP) !== 0) throw (this.broken = new LockstepAbort(`cpu${this.cpu}: lockstep: the system stopped`));
      waitWhileEqual(this.i32, gi, g, SLICE_MS, waiters, SPIN_MS);
      const s = Atomics.load(this.i32, LSH.STEPS);
      const now = hostNowMs();
      if (s !== steps) {
        steps = s;
        since = now;
      } else if (now - since > 2 * this.cfg.hostWatchdogMs) {
        // (Twice the coordinator's limit: it reports a stuck holder first; this catches a dead coordinator.)
        const h = Atomics.load(this.i32, LSH.HOLDER);
        const who = h < 0 ? 'the coordinator (the hardware worker)' : `cpu${h} (last resumed from ${KIND_NAMES[b.get(h, LSC.KIND)] ?? '?'})`;
        throw (this.broken = new LockstepAbort(`cpu${this.cpu}: lockstep: no decision for ${(now - since).toFixed(0)} ms of host time; the token is with ${who}`));
      }
    }
    this.holding = true;
    this.resumed();
  }

  /** Acts on what the grant carries: a hang is thrown here, at the yield point. */
  private resumed(): void {
    const cmd = this.b.get(this.cpu, LSC.CMD);
    if (cmd === GRANT_CMD.RUN) return;
    this.b.set(this.cpu, LSC.CMD, GRANT_CMD.RUN);
    if (cmd === GRANT_CMD.HANG) throw new LockstepHang(this.b.message());
  }
}
