// Command submission with Linux's lock-free multi-producer algorithm (arm_smmu_cmdq_issue_cmdlist).
//
// Every simulated CPU is a separate worker; the state they share lives in kernel memory (a DRAM page),
// accessed with Atomics:
//   LLQ         the software shadow of {prod, cons}: one word, so space is reserved with a single CAS.
//               Linux packs two u32s in a u64; here both indices (index + wrap bit, at most 15 bits each
//               since the driver caps the queue at 2^14 entries) and the OWNED flag fit one 32-bit word.
//   OWNER_PROD  the prod value the previous owner published to the hardware
//   LOCK        a shared/exclusive counter that stops the queue from wrapping twice unnoticed while a
//               CPU waits for its CMD_SYNC (INT_MIN = exclusive)
//   VALID_MAP   one bit per slot; a slot's bit is flipped when its command is written, so "valid" means
//               the bit equals the inverse of the slot's wrap bit
//   ERR_LOCK    taken (0 -> 1) by whoever handles a global error, the GERROR interrupt's CPU or a CPU
//               whose SYNC poll timed out, so one error is handled once
//   ABT         (the rest of ERR_LOCK's line, from word 52) skip_err's retry of a fetch abort: which
//               CONS keeps aborting, since when, and when it may be retried (fetch-abort.ts); only
//               touched under ERR_LOCK
//   SYNC_ERR    one word per slot: skip_err stores (prod of the failed CMD_SYNC, with its wrap bit) + 1
//               there when CERROR_ATC_INV_SYNC stopped the queue on that SYNC (Linux v2's
//               atc_sync_timeouts); the CPU that issued the SYNC clears the word before publishing it
//               and takes it (exchange with 0) once the SYNC has completed. Safe across wraps: the slot
//               cannot be reused while its issuer still holds the shared lock, i.e. before it has read
//               its word; the wrap bit in the value tells a stale record from this SYNC's.
//
// A CPU reserves n(+1 for a CMD_SYNC) slots by CAS on LLQ. The first CPU to reserve after the last owner
// finished becomes the owner: it waits for the previous owner's prod, stops further gathering by
// clearing OWNED, waits until every gathered slot is marked valid, writes CMDQ_PROD once for all of
// them and publishes OWNER_PROD. Then each CPU with a CMD_SYNC waits for its own SYNC to complete: by
// polling the SYNC's slot for the SMMU's MSI write of 0 (MSI-poll) or by polling CMDQ_CONS. A poll that
// times out looks at GERROR itself (the interrupt may be masked on this very CPU, which polls with
// interrupts off) and, if a command error is pending, handles it and polls once more.
//
// Every exit of issue() after the reservation, error or not, leaves the queue usable: reserved slots
// not yet written are filled with harmless CMD_SYNCs and marked valid (an owner waits for them), an
// owner publishes what it gathered, the shared lock is dropped and the interrupt state restored.
//
// Other CPUs may run at any instant of this algorithm; a deterministic run (lockstep with N CPUs)
// interleaves them at the platform's yield points, and at two points the algorithm marks with
// interleave() where no yield point stands but a race window does: after a reservation, before its
// slots are written and marked valid (what the owner's wait for the valid map is for), and after they
// are marked, before the owner stops gathering (so later reservations join its publication).
//
// The known-broken variants (DRIVER_BUGS, tests only) leave out one step each: the shared lock around a
// CMD_SYNC wait (cmdq-no-shared-lock), or the owner's wait for the valid map (prod-before-valid).

import { OFF } from '../../src/arch/smmu/regs.ts';
import { F } from '../../src/arch/smmu/commands.ts';
import { hex } from '../../src/arch/bits.ts';
import type { IoMem, Platform } from '../platform/platform.ts';
import { buildSync } from './cmds.ts';
import { E } from '../../src/protocol/errno.ts';
import type { CmdqDesc } from '../../src/protocol/ops/smmu.ts';
import { recordSyncWait } from '../../src/machine/histogram.ts';
import type { DriverBug } from '../../src/protocol/ops/smmu.ts';

/** Most commands in one batch (Linux CMDQ_BATCH_ENTRIES = BITS_PER_LONG). */
export const CMDQ_BATCH_ENTRIES = 64;
/** The driver's largest command queue: 2^14 entries, so the shadow {prod, cons} fits one 32-bit word. */
export const CMDQ_MAX_SZ_SHIFT = 14;
/** ARM_SMMU_POLL_SPIN_COUNT: cpu_relax() iterations before backing off with udelay. */
export const POLL_SPIN_COUNT = 10;
/** waitConsumed's sleeps: from 1 us, doubling up to 1 ms (usleep_range steps, not a busy-wait). */
const NAP_FIRST_NS = 1_000;
const NAP_MAX_NS = 1_000_000;

const OWNED = 1 << 31;
const CONS_SHIFT = 16;
const LOCK_EXCLUSIVE = -2147483648; // INT_MIN
/** Longest wait for the shared lock's word to change before looking again (a few cpu_relax()es). */
const LOCK_WAIT_NS = 100;

/** Word offsets inside the shared state page (each on its own 64-byte line). */
export const W = { LLQ: 0, OWNER_PROD: 16, LOCK: 32, ERR_LOCK: 48, ABT: 52, VALID_MAP: 64 } as const;


/** Word offset of the SYNC_ERR array for a queue of 2^shift entries (after the valid map). */
function syncErrWord(shift: number): number {
  return W.VALID_MAP + Math.ceil((1 << shift) / 32);
}

/** Bytes the shared state needs for a queue of 2^shift entries. */
export function cmdqStateBytes(shift: number): number {
  return (syncErrWord(shift) + (1 << shift)) * 4;
}

export class CmdqTimeout extends Error {}

/**
 * What a CMD_SYNC's issuer learns: 0; SYNC_ATC_TIMEOUT when the SMMU stopped on this SYNC with
 * CERROR_ATC_INV_SYNC (an ATC invalidation before it got no completion; the SYNC then re-executed);
 * -ETIMEDOUT when the SYNC did not complete within the poll timeout.
 */
export const SYNC_ATC_TIMEOUT = -E.EIO;

export interface IssueResult {
  /** 0, SYNC_ATC_TIMEOUT, or -ETIMEDOUT (see SYNC_ATC_TIMEOUT). */
  ret: number;
  /** The prod index (with wrap bit) of the first command. */
  start: number;
  /** The prod index of the CMD_SYNC (when one was issued). */
  syncProd: number;
}

export class Cmdq {
  readonly size: number;
  private readonly i32: Int32Array;
  private readonly st: number; // dword index of the state page
  private readonly baseIdx: number; // dword index of the queue
  private readonly idxMask: number;
  private readonly wrp: number;
  private readonly ptrMask: number; // index + wrap
  private readonly syncErr: number; // dword index of SYNC_ERR
  private readonly lockPa: number;
  /**
   * This queue's CMD_SYNC as buildSync makes it (arm_smmu_cmdq_build_sync_cmd), built once: with
   * MSI-poll only its MSIAddress (the SYNC's own slot) changes per issue.
   */
  private readonly syncCmd = new Uint32Array(4);
  /** Per-CPU counts (this CPU only). */
  issuedCmds = 0;
  syncs = 0;
  syncTimeouts = 0;

  constructor(
    private readonly p: Platform,
    private readonly regs: IoMem,
    readonly desc: CmdqDesc,
    /** Platform ns to wait for CMD_SYNC completion or for space (ARM_SMMU_POLL_TIMEOUT_US). */
    private readonly pollTimeoutNs: number,
    private readonly devLog: (level: 'err' | 'warn', msg: string) => void,
    /**
     * Handles a pending global error if there is one (the GERROR handler, run by a CPU whose SYNC poll
     * timed out); returns whether there was one.
     */
    private readonly checkGerror: () => boolean = () => false,
    /** A known-broken variant to run (tests of smmulab only). */
    private readonly bug?: DriverBug,
  ) {
    if (desc.shift > CMDQ_MAX_SZ_SHIFT) throw new Error(`cmdq: 2^${desc.shift} entries exceeds the driver's 2^${CMDQ_MAX_SZ_SHIFT}`);
    this.size = 1 << desc.shift;
    this.i32 = p.mem.i32;
    this.st = p.mem.idx32(desc.statePa);
    this.baseIdx = p.mem.idx32(desc.basePa);
    this.idxMask = this.size - 1;
    this.wrp = this.size;
    this.ptrMask = (this.size << 1) - 1;
    this.syncErr = this.st + syncErrWord(desc.shift);
    this.lockPa = desc.statePa + W.LOCK * 4;
    // With MSI-poll every SYNC has a non-zero MSIAddress (a slot in DRAM): CS=SIG_IRQ.
    buildSync(this.syncCmd, 0, desc.msiPoll ? desc.basePa : 0);
  }

  /**
   * skip_err found CERROR_ATC_INV_SYNC with CONS on the CMD_SYNC at `cons`: tells its issuer, whichever
   * CPU that is.
   */
  markSyncFailed(cons: number): void {
    Atomics.store(this.i32, this.syncErr + (cons & this.idxMask), (cons & this.ptrMask) + 1);
  }

  /** Runs `handle` unless another CPU is handling a global error right now; returns what it did. */
  withErrorLock(handle: () => boolean): boolean {
    const i = this.st + W.ERR_LOCK;
    if (Atomics.compareExchange(this.i32, i, 0, 1) !== 0) return false;
    try {
      return handle();
    } finally {
      Atomics.store(this.i32, i, 0);
    }
  }

  /** The 4 words of the command in the slot of `prod` (what skip_err reads back). */
  slot(prod: number): Uint32Array {
    const i = this.baseIdx + (prod & this.idxMask) * 4;
    return Uint32Array.from(this.i32.subarray(i, i + 4));
  }

  /** Initialises the shared state (probe, before CMDQEN). */
  static initState(p: Platform, statePa: number, shift: number): void {
    p.mem.fill(statePa, cmdqStateBytes(shift), 0);
  }

  // ---- queue index arithmetic (Q_IDX / Q_WRP, queue_has_space, queue_consumed) ----

  private hasSpace(prod: number, cons: number, n: number): boolean {
    const pi = prod & this.idxMask;
    const ci = cons & this.idxMask;
    const space = (prod & this.wrp) === (cons & this.wrp) ? this.size - (pi - ci) : ci - pi;
    return space >= n;
  }

  private full(prod: number, cons: number): boolean {
    return (prod & this.idxMask) === (cons & this.idxMask) && (prod & this.wrp) !== (cons & this.wrp);
  }

  /** True once `cons` has moved past the entry at `prod`. */
  private consumed(cons: number, prod: number): boolean {
    const sameWrap = (cons & this.wrp) === (prod & this.wrp);
    return sameWrap ? (cons & this.idxMask) > (prod & this.idxMask) : (cons & this.idxMask) <= (prod & this.idxMask);
  }

  private inc(ptr: number, n: number): number {
    return (ptr + n) & this.ptrMask;
  }

  // ---- the shared/exclusive lock (arm_smmu_cmdq_shared_lock & co.) ----

  private sharedLock(): void {
    const i = this.st + W.LOCK;
    // Fast path: no exclusive holder. Otherwise wait for it to go and take a shared count with CAS.
    // (The exclusive holder only refreshes cons from CMDQ_CONS; a wait longer than the poll timeout
    // means that CPU is gone, and is reported rather than waited out.)
    if (Atomics.add(this.i32, i, 1) >= 0) return;
    let deadline = -1;
    for (;;) {
      const v = Atomics.load(this.i32, i);
      if (v >= 0 && Atomics.compareExchange(this.i32, i, v, v + 1) === v) return;
      const now = this.p.clock.now();
      if (deadline < 0) deadline = now + this.pollTimeoutNs;
      else if (now > deadline) throw new CmdqTimeout('CMDQ lock: still held exclusively after the poll timeout');
      // atomic_cond_read_relaxed(VAL >= 0): a wait for the word to change (__cmpwait, WFE on arm64),
      // not a sampling loop: CPUs that keep retaking the exclusive lock leave it free only for an
      // instant, which a waiter polling every cpu_relax() can miss for ever (in lockstep with N CPUs,
      // where that instant has no duration). Bounded: another CPU's store wakes no waiter in threaded runs.
      this.p.waitMemWhileEqual(this.lockPa, v, LOCK_WAIT_NS);
    }
  }

  /** Drops a shared count unless it is the last one (then the caller updates cons first). */
  private sharedTryUnlock(): boolean {
    const i = this.st + W.LOCK;
    if (Atomics.load(this.i32, i) === 1) return false;
    Atomics.sub(this.i32, i, 1);
    return true;
  }

  private sharedUnlock(): void {
    Atomics.sub(this.i32, this.st + W.LOCK, 1);
  }

  private exclusiveTryLock(): boolean {
    return Atomics.compareExchange(this.i32, this.st + W.LOCK, 0, LOCK_EXCLUSIVE) === 0;
  }

  private exclusiveUnlock(): void {
    Atomics.store(this.i32, this.st + W.LOCK, 0);
  }

  /** Replaces the cons half of the shadow word (Linux: WRITE_ONCE(llq.cons, ...)). */
  private writeShadowCons(cons: number): void {
    const i = this.st + W.LLQ;
    for (;;) {
      const old = Atomics.load(this.i32, i);
      const next = (old & ~(0x7fff << CONS_SHIFT)) | ((cons & this.ptrMask) << CONS_SHIFT);
      if (Atomics.compareExchange(this.i32, i, old, next) === old) return;
    }
  }

  // ---- polling (queue_poll) ----

  private pollInit(wfe: boolean): { deadline: number; spin: number; delay: number; wfe: boolean } {
    return { deadline: this.p.clock.now() + this.pollTimeoutNs, spin: 0, delay: 1000, wfe };
  }

  /** One back-off step; true when the deadline has passed (-ETIMEDOUT). */
  private poll(qp: { deadline: number; spin: number; delay: number; wfe: boolean }): boolean {
    const now = this.p.clock.now();
    if (now > qp.deadline) return true;
    if (qp.wfe) {
      this.p.wfe(qp.deadline - now);
    } else if (++qp.spin < POLL_SPIN_COUNT) {
      this.p.cpuRelax();
    } else {
      this.p.delay(qp.delay);
      qp.delay *= 2;
      qp.spin = 0;
    }
    return false;
  }

  /** Waits until the queue is not full (arm_smmu_cmdq_poll_until_not_full); returns the fresh shadow. */
  private pollUntilNotFull(): number | null {
    // Whoever gets the exclusive lock refreshes cons from the hardware; the others wait for it.
    if (this.exclusiveTryLock()) {
      const cons = this.regs.read32(OFF.CMDQ_CONS) & this.ptrMask;
      this.writeShadowCons(cons);
      this.exclusiveUnlock();
      return Atomics.load(this.i32, this.st + W.LLQ);
    }
    const qp = this.pollInit(this.desc.sev);
    for (;;) {
      const llq = Atomics.load(this.i32, this.st + W.LLQ);
      if (!this.full(llq & this.ptrMask, (llq >>> CONS_SHIFT) & this.ptrMask)) return llq;
      if (this.poll(qp)) return null;
    }
  }

  // ---- the valid bitmap (__arm_smmu_cmdq_poll_set_valid_map) ----

  private validMap(sprod: number, eprod: number, set: boolean): void {
    const map = this.st + W.VALID_MAP;
    const ewidx = (eprod & this.idxMask) >>> 5;
    const ebidx = (eprod & this.idxMask) & 31;
    let prod = sprod;
    while (prod !== eprod) {
      const swidx = (prod & this.idxMask) >>> 5;
      const sbidx = (prod & this.idxMask) & 31;
      const limit = swidx === ewidx && sbidx < ebidx ? ebidx : 32;
      const mask = (limit === 32 ? -1 << sbidx : ((1 << limit) - 1) & (-1 << sbidx)) | 0;
      if (set) {
        Atomics.xor(this.i32, map + swidx, mask);
      } else {
        // The slots are valid when their bits equal the inverse of the wrap bit. (The clock is read
        // only once there is something to wait for.)
        const want = prod & this.wrp ? 0 : mask;
        let deadline = -1;
        while ((Atomics.load(this.i32, map + swidx) & mask) !== want) {
          const now = this.p.clock.now();
          if (deadline < 0) deadline = now + this.pollTimeoutNs;
          else if (now > deadline) throw new CmdqTimeout(`CMDQ valid map: slots at 0x${prod.toString(16)} never became valid`);
          this.p.cpuRelax();
        }
      }
      prod = this.inc(prod, limit - sbidx);
    }
  }

  /**
   * Inserts n commands (4 words each, from cmds[0..4n)) and, with sync, a CMD_SYNC, then waits for the
   * SYNC to complete. Interrupts are off throughout, as in Linux.
   */
  issue(cmds: Uint32Array, n: number, sync: boolean): IssueResult {
    const p = this.p;
    const s = sync ? 1 : 0;
    const llqIdx = this.st + W.LLQ;
    // The clock is read for the reserve point only while it is enabled, as for the SYNC wait below.
    const reserveFrom = p.trace.arm_smmu_cmdq_reserve ? p.clock.now() : 0;
    let flags = p.localIrqSave();
    let llq = Atomics.load(this.i32, llqIdx);
    let prod: number;
    let cons: number;
    // 1. Reserve space for our commands by moving the shadow prod with one CAS.
    for (;;) {
      prod = llq & 0x7fff;
      cons = (llq >>> CONS_SHIFT) & 0x7fff;
      let stuckSince = -1;
      while (!this.hasSpace(prod & this.ptrMask, cons, n + s)) {
        p.localIrqRestore(flags);
        const fresh = this.pollUntilNotFull();
        if (fresh === null) this.devLog('err', 'CMDQ timeout');
        // Linux retries forever (and spins without a timeout when it wins the exclusive lock). Here a
        // queue whose CONS does not move for a whole poll timeout is reported and nothing is issued,
        // so a CPU never waits forever on a hardware that stopped answering.
        const seen = cons;
        cons = (Atomics.load(this.i32, llqIdx) >>> CONS_SHIFT) & 0x7fff;
        const now = p.clock.now();
        if (stuckSince < 0 || cons !== seen) stuckSince = now;
        else if (now - stuckSince > this.pollTimeoutNs) {
          if (fresh !== null) this.devLog('err', 'CMDQ timeout');
          throw new CmdqTimeout(`CMDQ full: no space for ${n + s} entries, CONS stuck at ${hex(cons)} for ${((now - stuckSince) / 1e6).toFixed(0)} ms`);
        }
        flags = p.localIrqSave();
        llq = Atomics.load(this.i32, llqIdx);
        prod = llq & 0x7fff;
        cons = (llq >>> CONS_SHIFT) & 0x7fff;
      }
      // head = {prod + n + sync with OWNED set, the cons we saw}.
      const head = (cons << CONS_SHIFT) | this.inc(prod & this.ptrMask, n + s) | OWNED;
      const old = Atomics.compareExchange(this.i32, llqIdx, llq, head);
      if (old === llq) break;
      llq = old;
    }
    p.interleave();
    const owner = (llq & OWNED) === 0;
    const start = prod & this.ptrMask;
    const end = this.inc(start, n + s);
    p.trace.arm_smmu_cmdq_reserve?.(n, sync, start, p.clock.now() - reserveFrom);
    const syncProd = sync ? this.inc(start, n) : -1;
    let written = false;
    let published = !owner;
    let locked = false;
    try {
      // 2. Write our commands into the reserved slots, and our CMD_SYNC after them.
      const q = this.i32;
      for (let k = 0; k < n; k++) {
        const slot = this.baseIdx + ((start + k) & this.idxMask) * 4;
        q[slot] = cmds[4 * k]!;
        q[slot + 1] = cmds[4 * k + 1]!;
        q[slot + 2] = cmds[4 * k + 2]!;
        q[slot + 3] = cmds[4 * k + 3]!;
      }
      if (sync) {
        const slotIdx = syncProd & this.idxMask;
        this.writeSync(slotIdx);
        // A record left in this slot by an earlier SYNC is not ours.
        Atomics.store(q, this.syncErr + slotIdx, 0);
        // Hold the queue against a second wrap until our SYNC is seen to complete.
        if (this.bug !== 'cmdq-no-shared-lock') {
          this.sharedLock();
          locked = true;
        }
      }

      // 3. Mark our slots valid (the Atomics.xor orders the command stores before it: dma_wmb).
      this.validMap(start, end, true);
      written = true;
      p.trace.arm_smmu_cmdq_issue?.(n, sync, start);
      p.interleave();

      // 4. The owner publishes everything gathered so far with one CMDQ_PROD write.
      if (owner) {
        this.publish(start);
        published = true;
      }
      this.issuedCmds += n;

      // 5. With a CMD_SYNC, wait for it to complete, then take its error record.
      let ret = 0;
      if (sync) {
        this.syncs++;
        const waitFrom = p.trace.arm_smmu_cmdq_sync_done ? p.clock.now() : 0;
        let seenCons = this.waitSync(syncProd);
        // Our SYNC timed out: maybe only because the GERROR interrupt cannot reach this CPU while it
        // polls with interrupts off. Handle a pending error here and give the SYNC one more poll.
        if (seenCons < 0 && this.checkGerror()) seenCons = this.waitSync(syncProd);
        if (seenCons < 0) {
          ret = -E.ETIMEDOUT;
          this.syncTimeouts++;
          const hwProd = this.regs.read32(OFF.CMDQ_PROD);
          const hwCons = this.regs.read32(OFF.CMDQ_CONS);
          this.devLog('err', `CMD_SYNC timeout at ${hex(syncProd)} [hwprod ${hex(hwProd >>> 0)}, hwcons ${hex(hwCons >>> 0)}]`);
          seenCons = syncProd;
        } else if (Atomics.exchange(this.i32, this.syncErr + (syncProd & this.idxMask), 0) === syncProd + 1) {
          ret = SYNC_ATC_TIMEOUT;
        }
        const done = p.trace.arm_smmu_cmdq_sync_done;
        if (done) {
          // The histogram rides on the point: a disabled point keeps the SYNC path free of clock reads.
          const waitNs = p.clock.now() - waitFrom;
          done(syncProd, -ret, waitNs);
          recordSyncWait(p.stats, p.cpu, waitNs);
        }
        // The last CPU out of the shared lock publishes the cons it saw, so later reservations see space.
        if (!locked) {
          // (cmdq-no-shared-lock: nothing held cons back while we waited.)
          this.writeShadowCons(seenCons);
        } else {
          locked = false;
          if (!this.sharedTryUnlock()) {
            this.writeShadowCons(seenCons);
            this.sharedUnlock();
          }
        }
      }
      return { ret, start, syncProd };
    } finally {
      // Unwinding after an error: our slots must not stay invalid (an owner would wait for them),
      // what we gathered must reach the hardware, and nothing we hold may stay held.
      if (!written) {
        for (let prod = start; prod !== end; prod = this.inc(prod, 1)) this.writeSync(prod & this.idxMask);
        this.validMap(start, end, true);
      }
      if (!published) {
        try {
          this.publish(start);
        } catch (e) {
          if (!(e instanceof CmdqTimeout)) throw e;
          this.devLog('err', `CMDQ: could not publish after an error: ${e.message}`);
        }
      }
      if (locked) this.sharedUnlock();
      p.localIrqRestore(flags);
    }
  }

  /** Writes this queue's CMD_SYNC into a slot (with MSI-poll, aimed at the slot itself). */
  private writeSync(slotIdx: number): void {
    const sc = this.syncCmd;
    if (this.desc.msiPoll) F.MSIADDR.write(sc, 0, (this.desc.basePa + slotIdx * 16) / 4);
    const slot = this.baseIdx + slotIdx * 4;
    const q = this.i32;
    q[slot] = sc[0]!;
    q[slot + 1] = sc[1]!;
    q[slot + 2] = sc[2]!;
    q[slot + 3] = sc[3]!;
  }

  /**
   * The owner's step: wait for the previous owner to have published up to `start`, stop the gathering,
   * wait for every gathered slot to be valid, then write CMDQ_PROD once and publish OWNER_PROD.
   */
  private publish(start: number): void {
    const p = this.p;
    const llqIdx = this.st + W.LLQ;
    const ownerIdx = this.st + W.OWNER_PROD;
    let deadline = -1;
    while ((Atomics.load(this.i32, ownerIdx) & this.ptrMask) !== start) {
      const now = p.clock.now();
      if (deadline < 0) deadline = now + this.pollTimeoutNs;
      else if (now > deadline) throw new CmdqTimeout(`CMDQ: previous owner never published prod 0x${start.toString(16)}`);
      p.cpuRelax();
    }
    const gathered = Atomics.and(this.i32, llqIdx, ~OWNED) & 0x7fff & this.ptrMask;
    if (this.bug !== 'prod-before-valid') this.validMap(start, gathered, false);
    // Traced before the write: in lockstep the SMMU consumes inside it, and its records follow this one.
    p.trace.arm_smmu_cmdq_publish?.(gathered);
    this.regs.write32(OFF.CMDQ_PROD, gathered);
    Atomics.store(this.i32, ownerIdx, gathered);
  }

  /** Waits for a CMD_SYNC: the cons it implies, or -1 on timeout. */
  private waitSync(syncProd: number): number {
    return this.desc.msiPoll ? this.pollUntilMsi(syncProd) : this.pollUntilConsumed(syncProd);
  }

  /**
   * MSI-poll: the SMMU writes MSIData=0 over the first word of the SYNC's own slot. Returns the cons
   * the completion implies, or -1 on timeout.
   */
  private pollUntilMsi(syncProd: number): number {
    const slotPa = this.desc.basePa + (syncProd & this.idxMask) * 16;
    const i = this.baseIdx + (syncProd & this.idxMask) * 4;
    if (Atomics.load(this.i32, i) === 0) return this.inc(syncProd, 1);
    const deadline = this.p.clock.now() + this.pollTimeoutNs;
    for (;;) {
      const v = Atomics.load(this.i32, i);
      if (v === 0) return this.inc(syncProd, 1);
      const left = deadline - this.p.clock.now();
      if (left <= 0) return -1;
      this.p.waitMemWhileEqual(slotPa, v, left);
    }
  }

  /** CONS-poll: read CMDQ_CONS until it has moved past the SYNC. Returns the cons seen, or -1 on timeout. */
  private pollUntilConsumed(syncProd: number): number {
    let cons = this.regs.read32(OFF.CMDQ_CONS) & this.ptrMask;
    if (this.consumed(cons, syncProd)) return cons;
    const qp = this.pollInit(this.desc.sev);
    for (;;) {
      if (this.poll(qp)) return -1;
      cons = this.regs.read32(OFF.CMDQ_CONS) & this.ptrMask;
      if (this.consumed(cons, syncProd)) return cons;
    }
  }

  /**
   * Sleeps until the SMMU has consumed every entry before `end` (a prod index), as long as it keeps
   * consuming: false only after a whole poll timeout in which CMDQ_CONS did not move, as the wait for
   * space in issue() judges a stuck queue. A CMD_SYNC's poll timeout counts from its issue, however
   * much work is queued before it: thousands of commands that each stop the queue until a GERROR
   * handler on another CPU has dealt with them take longer than that, by an amount that depends on how
   * fast the host runs that CPU, whereas progress does not. Interrupts are taken meanwhile.
   */
  waitConsumed(end: number): boolean {
    const last = this.inc(end, this.ptrMask); // end - 1
    let seen = this.regs.read32(OFF.CMDQ_CONS) & this.ptrMask;
    let since = this.p.clock.now();
    let nap = NAP_FIRST_NS;
    while (!this.consumed(seen, last)) {
      const now = this.p.clock.now();
      if (now - since > this.pollTimeoutNs) {
        this.devLog('err', `CMDQ: consumption stalled at CONS ${hex(seen)} for ${((now - since) / 1e6).toFixed(0)} ms, before PROD ${hex(end)}`);
        return false;
      }
      this.p.sleep(nap);
      nap = Math.min(2 * nap, NAP_MAX_NS);
      const cons = this.regs.read32(OFF.CMDQ_CONS) & this.ptrMask;
      if (cons !== seen) {
        seen = cons;
        since = this.p.clock.now();
      }
    }
    return true;
  }
}
