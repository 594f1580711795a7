// The lockstep-N coordinator: N driver CPUs (one worker each, drivers/platform/lockstep-cpu.ts) take
// turns on one token; the coordinator owns the token whenever no CPU runs, the hardware (Machine) and
// the virtual clock, and decides who runs next.
//
// Invariants (what makes a run repeat exactly, and never wait forever):
//  1. At most one thread runs simulation code at a time: the token holder. HOLDER is -1 (this
//     coordinator) or a CPU index; only the coordinator sets a CPU index (grant), only that CPU sets it
//     back to -1 (give back). Everything one holder wrote (request words, DRAM, the write port, VTIME)
//     is visible to the next through that Atomics store/load pair.
//  2. A CPU gives the token back at every yield point of its platform (every MMIO read and write, cpu_relax,
//     delay, sleep, WFE, memory poll, interrupts-on point, the end of an operation or of an interrupt
//     turn), with a request saying what it waits for. Driver code between two yield points takes no
//     platform time; a yield point's request says from when it may run again.
//  3. When the coordinator takes the token back it first applies the holder's posted MMIO writes in
//     order and runs the hardware until nothing is due now (as LockstepPlatform does at each write),
//     then chooses the next CPU among those whose request is satisfied now (runnable), by the
//     strategy alone. When none is runnable and some CPU is active (in an operation or an interrupt
//     turn), virtual time advances to the earliest of the CPUs' wake times and the hardware's next
//     deadline, running the hardware there. With no CPU active, time stands still (as between the
//     operations of a one-CPU lockstep run): only idle CPUs with a pending interrupt run. A strategy
//     may hold a CPU off until a platform time (heldUntil: PCT's preemption at a change point): it is
//     not runnable until then, and that time counts as its wake time, so a hold ends, time moving.
//  4. Nothing the host does at a host-timing-dependent moment enters a decision: the coordinator
//     decides nothing while an operation posted to an idle CPU has not started there (POSTED > STARTED;
//     a CPU in an interrupt turn takes it once the turn is over, and is waited for then),
//     while a finished operation's result has not been taken by the host (DONE > ACKED: the host's
//     reaction, which may post the next operation, happens first), or while the host holds (HOST_HOLD:
//     one host turn after each post). Faults injected over RPC while a CPU holds the token wait for
//     the coordinator's next turn.
//  5. No wait is endless: a CPU holding the token longer than hostWatchdogMs of host time, a posted
//     operation not starting, or a result not taken aborts the run with a message naming the CPU and
//     what it was doing (every CPU waiting for the token then throws it); a busy period longer than
//     watchdogNs of platform time, no CPU able to ever run again, or stuckSteps decisions without
//     platform time passing makes every active CPU throw LockstepHang at its yield point (one by one,
//     in CPU order), like LockstepPlatform's Hang.
//  6. The schedule strategy (replaying a recorded run's writer sequence, src/protocol/lockstep.ts)
//     is told the CPU of every write as it is applied, before the decision that follows, and may defer
//     a decision (deferUntil): virtual time then advances, with CPUs runnable, to when the CPU whose
//     write the record has next can run by time alone. A wait lasts at most REPLAY_WAIT_NS and never
//     passes the watchdog limit; after one runs out a runnable CPU takes a step before the next wait,
//     the CPUs so let through taking turns among themselves (not after the last CPU that ran, which is
//     mostly the expected writer), so each runnable CPU runs within ncpus-1 waits. So a CPU that can
//     run now may wait, but boundedly and with time moving, none for ever, and invariants 3 to 5
//     hold otherwise. Its choices depend on the record and on this run's writes and wake times alone,
//     so a replay repeats as exactly as any run; its progress (writes matching the record or not) is
//     published in the block's REPLAY_* slots at every write, for lockstepStats.

import type { Machine } from './machine.ts';
import { WritePortConsumer, type PortWrite } from '../src/machine/mmio-port.ts';
import { CTRL, type SharedViews } from '../src/machine/layout.ts';
import { InterruptController } from '../src/machine/irq.ts';
import { hostNowMs } from '../src/machine/clock.ts';
import { waitWhileEqual } from '../src/machine/wait.ts';
import { GRANT_CMD, KIND, KIND_NAMES, LSC, LSH, type LockstepBlock, type SharedVirtualClock } from '../src/machine/lockstep-block.ts';
import { ScheduleReplay, createStrategy, type LockstepNConfig, type LockstepStrategy } from '../src/protocol/lockstep.ts';
import { KERNEL_OPS } from '../src/protocol/ops/index.ts';
import type { HwFault } from '../src/protocol/faults.ts';
import { PA } from '../src/arch/platform.ts';
import { hex } from '../src/arch/bits.ts';
import { WriteHash } from './write-hash.ts';

/** What a CPU asked for when it last gave the token back (the coordinator's copy of its request). */
interface CpuState {
  kind: number;
  wakeAt: number;
  pa: number;
  value: number;
  irqsOn: boolean;
  deferredAt: number;
  /** Operations it had started at that point (a STARTED beyond it is an operation waiting to start). */
  started: number;
  op: number;
  /** Platform time of its last turn (due deferred work that did not finish waits for time to move). */
  lastTurnAt: number;
  /** What it was resumed from by its last grant (for watchdog reports). */
  resumedFrom: string;
}

/** How a slice of coordination ended: still running CPUs, waiting for the host, or aborted. */
export type CoordState = 'busy' | 'idle' | 'aborted';

/** Host ms the coordinator spins for a CPU to give the token back before sleeping. */
const SPIN_MS = 0.02;
/** Longest synchronous sleep while a CPU holds the token. */
const SLICE_MS = 2;

const OP_NAMES = Object.keys(KERNEL_OPS);

export class Coordinator {
  private readonly port: WritePortConsumer;
  private readonly irqc: InterruptController;
  private readonly strategy: LockstepStrategy;
  /** The strategy when it replays a schedule (its progress is published), else null. */
  private readonly replay: ScheduleReplay | null;
  private readonly cpus: CpuState[];
  private readonly i32: Int32Array;
  private readonly dram: Int32Array;
  private readonly ctrl: Int32Array;
  private holder = -1;
  private grantedAtMs = 0;
  private last = -1;
  private busy = false;
  private limitNs = Infinity;
  private stuckAt = -1;
  private stuckSteps = 0;
  private readonly hangs: number[] = [];
  private readonly injects: HwFault[] = [];
  private gatedSinceMs = -1;
  private readonly hash = new WriteHash();
  private readonly apply: (w: PortWrite) => void;
  /** Why the run was aborted, once it is. */
  aborted: string | null = null;

  constructor(
    views: SharedViews,
    private readonly b: LockstepBlock,
    private readonly machine: Machine,
    private readonly clock: SharedVirtualClock,
    private readonly cfg: LockstepNConfig,
  ) {
    this.port = new WritePortConsumer(views);
    this.irqc = new InterruptController(views);
    this.strategy = createStrategy(cfg, views.layout.ncpus);
    this.replay = this.strategy instanceof ScheduleReplay ? this.strategy : null;
    this.i32 = b.i32;
    this.dram = views.dram32;
    this.ctrl = views.ctrl;
    this.cpus = Array.from({ length: views.layout.ncpus }, () => ({ kind: KIND.IDLE, wakeAt: Infinity, pa: 0, value: 0, irqsOn: true, deferredAt: Infinity, started: 0, op: -1, lastTurnAt: -1, resumedFrom: '' }));
    this.apply = (w) => {
      this.hash.add(w);
      Atomics.store(this.i32, LSH.HASH_A, this.hash.a | 0);
      Atomics.store(this.i32, LSH.HASH_B, this.hash.b | 0);
      this.b.f64[LSH.F64_WRITES]!++;
      if (this.replay) {
        this.replay.wrote(w.cpu);
        this.publishReplay(this.replay);
      }
      this.machine.write(w);
    };
  }

  /** A hardware fault from the host: applied now if no CPU runs, else at the coordinator's next turn. */
  inject(f: HwFault): void {
    if (this.holder >= 0) {
      this.injects.push(f);
      return;
    }
    try {
      this.machine.inject(f);
      this.machine.run();
    } finally {
      Atomics.add(this.i32, LSH.INJ_APPLIED, 1);
      this.b.wakeCoordinator();
    }
  }

  /** Ends the run: every CPU waiting for the token throws. */
  stop(): void {
    Atomics.store(this.i32, LSH.STOP, 1);
    for (let k = 0; k < this.cpus.length; k++) this.b.wakeCpu(k);
  }

  /**
   * Coordinates for up to budgetMs of host time: waits for the holder to give the token back, decides,
   * grants, and so on. Returns 'busy' when the budget ran out with CPUs running, 'idle' when nothing can
   * run until the host does something, 'aborted' once a watchdog aborted the run.
   */
  run(budgetMs: number): CoordState {
    const end = hostNowMs() + budgetMs;
    for (;;) {
      if (this.aborted !== null || Atomics.load(this.i32, LSH.STOP) !== 0) return 'aborted';
      if (this.holder >= 0 && !this.awaitReturn(end)) return this.aborted !== null ? 'aborted' : 'busy';
      const r = this.decide();
      if (r !== 'granted') return r;
      if (hostNowMs() >= end) return 'busy';
    }
  }

  /** Waits until the holder gives the token back (true), the budget runs out or the watchdog fires. */
  private awaitReturn(endMs: number): boolean {
    const k = this.holder;
    const waiters = { view: this.i32, index: LSH.COORD_WAITING };
    for (;;) {
      if (Atomics.load(this.i32, LSH.HOLDER) === -1) {
        this.takeBack(k);
        return true;
      }
      const seq = Atomics.load(this.i32, LSH.COORD_SEQ);
      if (Atomics.load(this.i32, LSH.HOLDER) === -1) continue;
      const now = hostNowMs();
      if (now - this.grantedAtMs > this.cfg.hostWatchdogMs) {
        const s = this.cpus[k]!;
        this.abort(
          `lockstep: cpu${k} has held the token for ${(now - this.grantedAtMs).toFixed(0)} ms of host time without reaching a yield point ` +
            `(resumed at platform time ${fmtS(this.clock.now())} from ${s.resumedFrom}): driver code looping without cpu_relax(), MMIO or a wait, or a CPU that died`,
        );
        return false;
      }
      if (now >= endMs) return false;
      waitWhileEqual(this.i32, LSH.COORD_SEQ, seq, Math.min(SLICE_MS, endMs - now), waiters, SPIN_MS);
    }
  }

  /** Reads the request CPU k gave the token back with. */
  private takeBack(k: number): void {
    const b = this.b;
    const s = this.cpus[k]!;
    s.kind = b.get(k, LSC.KIND);
    s.irqsOn = b.get(k, LSC.IRQS_ON) !== 0;
    s.pa = b.get(k, LSC.PA) >>> 0;
    s.value = b.get(k, LSC.VALUE);
    s.started = b.get(k, LSC.SEQ);
    s.op = b.get(k, LSC.OP);
    s.wakeAt = b.f64[b.cf(k, LSC.F64_WAKE_AT)]!;
    s.deferredAt = b.f64[b.cf(k, LSC.F64_DEFERRED_AT)]!;
    s.lastTurnAt = this.clock.now();
    this.holder = -1;
  }

  /** One decision: apply what the last holder did, then grant a CPU, or say why nobody can run. */
  private decide(): 'granted' | 'idle' | 'aborted' {
    this.port.drain(this.apply);
    for (const f of this.injects.splice(0)) {
      try {
        this.machine.inject(f);
      } catch (e) {
        // Its RPC has answered already: say it here.
        process.stderr.write(`lockstep: injecting ${f.kind} failed: ${(e as Error).message}\n`);
      } finally {
        Atomics.add(this.i32, LSH.INJ_APPLIED, 1);
      }
    }
    this.machine.run();
    // A hang delivered to each active CPU in turn, whatever it waits for.
    const h = this.hangs.shift();
    if (h !== undefined) {
      this.grant(h, GRANT_CMD.HANG);
      return 'granted';
    }
    if (this.gated()) return this.aborted !== null ? 'aborted' : 'idle';
    const runnable: number[] = [];
    for (;;) {
      const now = this.clock.now();
      runnable.length = 0;
      let active = false;
      for (let k = 0; k < this.cpus.length; k++) {
        // (An operation waiting to start makes its CPU active, and runnable unless the strategy holds it.)
        const pending = this.startPending(k);
        if (pending) active = true;
        if (pending && !((this.strategy.heldUntil?.(k) ?? 0) > now)) {
          runnable.push(k);
        } else {
          if (this.cpus[k]!.kind !== KIND.IDLE) active = true;
          if (this.runnable(k, now)) runnable.push(k);
        }
      }
      if (active && !this.busy) this.limitNs = now + this.cfg.watchdogNs;
      this.busy = active;
      if (runnable.length) {
        // A strategy may have the runnable CPUs wait a little (invariant 6), never past the watchdog.
        const defer = active ? (this.strategy.deferUntil?.(runnable, now, (k) => Math.min(this.wakeOf(k, now), this.machine.nextDeadline())) ?? -1) : -1;
        if (defer > now && defer <= this.limitNs) {
          this.advance(defer);
          continue;
        }
        if (now === this.stuckAt) {
          if (++this.stuckSteps > this.cfg.stuckSteps) {
            this.stuckSteps = 0;
            if (this.hangAll(`lockstep: livelock: ${this.cfg.stuckSteps} decisions without platform time passing at ${fmtS(now)}`)) return this.decide();
          }
        } else {
          this.stuckAt = now;
          this.stuckSteps = 0;
        }
        const k = this.strategy.pick(runnable, this.last, now);
        // (-1: the strategy held off the only runnable CPU; look again without it.)
        if (k < 0) continue;
        this.grant(k, GRANT_CMD.RUN);
        return 'granted';
      }
      if (!active) return 'idle';
      let t = this.machine.nextDeadline();
      for (let k = 0; k < this.cpus.length; k++) t = Math.min(t, this.wakeOf(k, now));
      if (t === Infinity) {
        if (this.hangAll(`lockstep: deadlock at platform time ${fmtS(now)}: no CPU can ever run again and the hardware has nothing to do`)) return this.decide();
        return 'idle';
      }
      if (!(t > now)) {
        // (Every wake time of a CPU that is not runnable lies ahead, and run() left nothing due.)
        this.abort(`lockstep: internal error: nothing can run at ${fmtS(now)} and the next wake-up is at ${fmtS(t)}`);
        return 'aborted';
      }
      if (t > this.limitNs) {
        const limit = this.limitNs;
        this.advance(limit);
        this.limitNs = limit + this.cfg.watchdogNs;
        if (this.hangAll(`watchdog: platform time reached ${fmtS(limit)}, ${fmtS(this.cfg.watchdogNs)} into a busy period`)) return this.decide();
        continue;
      }
      this.advance(t);
    }
  }

  /** The schedule replay's progress, for the host's lockstepStats. */
  private publishReplay(r: ScheduleReplay): void {
    const f = this.b.f64;
    f[LSH.F64_REPLAY_MATCHED] = r.matched;
    f[LSH.F64_REPLAY_DIVERGED] = r.diverged;
    const d = r.firstDivergence;
    if (!d) return;
    f[LSH.F64_REPLAY_FIRST_WRITE] = d.write;
    f[LSH.F64_REPLAY_FIRST_EXPECTED] = d.expectedCpu ?? -1;
    f[LSH.F64_REPLAY_FIRST_ACTUAL] = d.actualCpu;
  }

  /** Moves virtual time to t and runs the hardware due there. */
  private advance(t: number): void {
    this.clock.advanceTo(t);
    this.b.f64[LSH.F64_ADVANCES]!++;
    this.machine.run();
  }

  /** Queues a LockstepHang for every active CPU (message naming each); false when none is active. */
  private hangAll(why: string): boolean {
    const active = this.cpus.map((s, k) => ({ s, k })).filter(({ s }) => s.kind !== KIND.IDLE);
    if (!active.length) return false;
    this.b.setMessage(`${why}; ${active.map(({ s, k }) => `cpu${k} waits for ${this.describe(s)}${this.opOf(s)}`).join('; ')}`);
    this.hangs.push(...active.map(({ k }) => k));
    return true;
  }

  private grant(k: number, cmd: number): void {
    const b = this.b;
    const s = this.cpus[k]!;
    if (this.startPending(k)) s.op = b.get(k, LSC.OP);
    s.resumedFrom = `${this.startPending(k) ? 'the start' : this.describe(s)}${this.opOf(s)}`;
    b.set(k, LSC.CMD, cmd);
    this.holder = k;
    this.grantedAtMs = hostNowMs();
    b.f64[LSH.F64_DECISIONS]!++;
    b.f64[LSH.F64_GRANTS]!++;
    if (k !== this.last) b.f64[LSH.F64_SWITCHES]!++;
    this.last = k;
    Atomics.add(this.i32, LSH.STEPS, 1);
    Atomics.store(this.i32, LSH.HOLDER, k);
    b.wakeCpu(k);
  }

  private startPending(k: number): boolean {
    return this.b.get(k, LSC.STARTED) !== this.cpus[k]!.started;
  }

  /** True while the host may still change what the next decision sees (invariant 4). */
  private gated(): boolean {
    const b = this.b;
    let why = '';
    for (let k = 0; k < this.cpus.length && !why; k++) {
      if (((b.get(k, LSC.DONE) - b.get(k, LSC.ACKED)) | 0) > 0) why = `the host has not taken the result of cpu${k}'s operation`;
    }
    if (!why && Atomics.load(this.i32, LSH.HOST_HOLD) > 0) why = 'the host is posting operations';
    if (!why && ((Atomics.load(this.i32, LSH.INJ_POSTED) - Atomics.load(this.i32, LSH.INJ_APPLIED)) | 0) > 0) why = 'a fault the host injected has not arrived';
    for (let k = 0; k < this.cpus.length && !why; k++) {
      // (An operation posted to a CPU in the middle of another, or of an interrupt turn, starts when that
      // is done: its worker takes the request only then, so waiting for it here would wait for ever.)
      const started = b.get(k, LSC.STARTED);
      if (((b.get(k, LSC.POSTED) - started) | 0) > 0 && started === b.get(k, LSC.DONE) && this.cpus[k]!.kind === KIND.IDLE) why = `cpu${k} was sent an operation and has not started it`;
    }
    if (!why) {
      this.gatedSinceMs = -1;
      return false;
    }
    const now = hostNowMs();
    if (this.gatedSinceMs < 0) this.gatedSinceMs = now;
    else if (now - this.gatedSinceMs > this.cfg.hostWatchdogMs) this.abort(`lockstep: ${why} for ${(now - this.gatedSinceMs).toFixed(0)} ms of host time`);
    return true;
  }

  /** Whether CPU k's request is satisfied at platform time `now`. */
  private runnable(k: number, now: number): boolean {
    if ((this.strategy.heldUntil?.(k) ?? 0) > now) return false;
    const s = this.cpus[k]!;
    const deferredDue = s.irqsOn && s.deferredAt <= now && s.lastTurnAt < now;
    switch (s.kind) {
      case KIND.IDLE:
        return (s.irqsOn && this.irqc.anyPending(k)) || deferredDue;
      case KIND.SLEEP:
        return now >= s.wakeAt || (s.irqsOn && this.irqc.anyPending(k)) || deferredDue;
      case KIND.WFE:
        return now >= s.wakeAt || Atomics.load(this.ctrl, CTRL.SEV) !== s.value;
      case KIND.MEM:
        return now >= s.wakeAt || Atomics.load(this.dram, (s.pa - PA.DRAM_BASE) >>> 2) !== s.value;
      default:
        return now >= s.wakeAt;
    }
  }

  /** The platform time CPU k's request is satisfied by time alone (Infinity: never). */
  private wakeOf(k: number, now: number): number {
    // A CPU the strategy holds off is looked at again when the hold ends.
    const held = this.strategy.heldUntil?.(k) ?? 0;
    if (held > now) return held;
    const s = this.cpus[k]!;
    const deferred = s.irqsOn && s.deferredAt > now ? s.deferredAt : Infinity;
    if (s.kind === KIND.IDLE) return deferred;
    if (s.kind === KIND.SLEEP) return Math.min(s.wakeAt, deferred);
    return s.wakeAt;
  }

  private describe(s: CpuState): string {
    const what = KIND_NAMES[s.kind] ?? `kind ${s.kind}`;
    const until = s.wakeAt === Infinity ? '' : ` until ${fmtS(s.wakeAt)}`;
    if (s.kind === KIND.MEM) return `${what} at PA ${hex(s.pa, 0)} to leave ${hex(s.value >>> 0, 0)}${until}`;
    if (s.kind === KIND.MMIO_WRITE) return `${what} to PA ${hex(s.pa, 0)}`;
    if (s.kind === KIND.IDLE || s.kind === KIND.MMIO_READ) return what;
    return `${what}${until}`;
  }

  private opOf(s: CpuState): string {
    if (s.op === -1) return s.kind === KIND.IDLE ? '' : ' (interrupt turn)';
    return ` (operation '${OP_NAMES[s.op] ?? 'extra'}')`;
  }

  /** Aborts the run: every CPU waiting for the token throws `msg`. */
  private abort(msg: string): void {
    this.aborted = msg;
    this.b.setMessage(msg);
    Atomics.store(this.i32, LSH.ABORT, 1);
    for (let k = 0; k < this.cpus.length; k++) {
      this.b.set(k, LSC.CMD, GRANT_CMD.ABORT);
      this.b.wakeCpu(k);
    }
  }
}

/** Platform ns as seconds, to the nanosecond, without trailing zeros. */
function fmtS(ns: number): string {
  return `${+(ns / 1e9).toFixed(9)} s`;
}
