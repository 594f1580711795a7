// The SMMUv3 event queue producer (IHI 0070 3.5, 7.2, 7.3, 7.4).
//
// Faults and configuration errors become 32-byte records in the architected layout (src/arch/smmu/events.ts)
// written at PROD of a circular queue in memory; the SMMU owns EVENTQ_PROD (page 1), software owns
// EVENTQ_CONS. The queue is writable only while EVENTQEN is acknowledged, it is not full, and no
// GERROR.EVENTQ_ABT_ERR is active (7.2.1). A record that cannot be written is lost: when the queue is
// merely full the SMMU signals overflow by toggling PROD.OVFLG, but only if no overflow is already
// showing (OVFLG == CONS.OVACKFLG); software acknowledges by copying OVFLG into CONS.OVACKFLG (7.4).
// This model has no stalls, so every record is a discardable one. The event interrupt fires when the
// queue goes from empty to non-empty, after PROD has moved (3.18.2).

import { EVT_BYTES, EVTF } from '../../src/arch/smmu/events.ts';
import { GERROR, Q_BASE, Q_IDX, Q_OVFLG, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { BusAbort, STAT, XSTAT } from '../../src/machine/layout.ts';
import type { RegisterFile } from '../regfile.ts';
import { truncateToOas, type SmmuFeatures } from '../../src/arch/smmu/features.ts';
import type { HwContext } from '../context.ts';
import type { FaultEngine } from '../faults.ts';
import { join64 } from '../../src/arch/bits.ts';

/** An event before encoding: the fields the record types use (7.3). Absent fields are written as 0. */
export interface EventRecord {
  type: number;
  sid: number;
  ssv?: boolean;
  ssid?: number;
  /** Input address of the transaction (the unmodified 64-bit address, 7.3). */
  inputAddr?: number;
  /** RnW: 1 = read. */
  read?: boolean;
  /** InD: instruction fetch. */
  instr?: boolean;
  /** PnU: privileged. */
  priv?: boolean;
  /** The fault is at stage 2 (S2) and what the faulting access was for (CLASS: EVT_CLASS). */
  s2?: boolean;
  cls?: number;
  /** IPA of a stage 2 fault. */
  ipa?: number;
  /** PA of a failed structure or descriptor fetch (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT). */
  fetchAddr?: number;
  /** F_PERMISSION CLASS=TT: the stage 2 fault was on a descriptor read (TTRnW). */
  ttRead?: boolean;
}

/** Fills a 256-bit record (eight 32-bit words) from an EventRecord. */
export function encodeEvent(ev: EventRecord, out: Uint32Array): void {
  out.fill(0);
  EVTF.TYPE.write(out, 0, ev.type);
  EVTF.SID.write(out, 0, ev.sid >>> 0);
  if (ev.ssv) EVTF.SSV.write(out, 0, 1);
  if (ev.ssid) EVTF.SSID.write(out, 0, ev.ssid);
  if (ev.priv) EVTF.PNU.write(out, 0, 1);
  if (ev.instr) EVTF.IND.write(out, 0, 1);
  if (ev.read) EVTF.RNW.write(out, 0, 1);
  if (ev.s2) EVTF.S2.write(out, 0, 1);
  if (ev.cls !== undefined) EVTF.CLASS.write(out, 0, ev.cls);
  if (ev.ttRead) EVTF.TTRNW.write(out, 0, 1);
  if (ev.inputAddr !== undefined) EVTF.INPUT_ADDR.write64(out, 0, BigInt(ev.inputAddr));
  // IPA and FetchAddr share the last qword; a record carries at most one of them (7.3).
  if (ev.fetchAddr !== undefined) EVTF.FETCH_ADDR.write64(out, 0, BigInt(ev.fetchAddr) >> 3n);
  else if (ev.ipa !== undefined) EVTF.IPA.write64(out, 0, BigInt(ev.ipa) >> 12n);
}

/** Why a record was not written. */
export type EventLoss = 'disabled' | 'full' | 'abort-error' | 'write-abort';

export class EventQueue {
  private enabled = false;
  private basePa = 0;
  private qs = 0; // log2 of entries
  private readonly words = new Uint32Array(EVT_BYTES / 4);
  private readonly prodIdx: number;
  private halted = false;
  private readonly consIdx: number;
  /** Records lost, by reason (for tests and traces). */
  readonly lost: Record<EventLoss, number> = { disabled: 0, full: 0, 'abort-error': 0, 'write-abort': 0 };

  constructor(
    private readonly ctx: HwContext,
    private readonly regs: RegisterFile<SmmuRegName>,
    private readonly feat: SmmuFeatures,
    private readonly raiseGerror: (bit: number) => boolean,
    /** Sends the event queue interrupt (SmmuV3.interrupt with the EVENTQ source). */
    private readonly interrupt: () => void,
    private readonly aborts: FaultEngine,
  ) {
    this.prodIdx = regs.dword('EVENTQ_PROD');
    this.consIdx = regs.dword('EVENTQ_CONS');
  }

  /** EVENTQEN Update 0 -> 1: take the geometry from EVENTQ_BASE; PROD and CONS keep software's values. */
  enable(): void {
    const base = this.regs.get64('EVENTQ_BASE');
    // LOG2SIZE above IDR1.EVENTQS behaves as EVENTQS (6.3.29).
    this.qs = Math.min(Number(Q_BASE.LOG2SIZE.get64(base)), this.feat.eventqLog2);
    const bytes = EVT_BYTES << this.qs;
    // The base is aligned to the queue size: lower address bits are treated as zero (6.3.29); bits
    // beyond the OAS are truncated (3.4.3).
    const addr = truncateToOas(this.feat, Q_BASE.ADDR.get64(base) << 5n);
    this.basePa = addr - (addr % bytes);
    this.enabled = true;
  }

  /** Service Failure Mode: no event is recorded any more (6.3.20). */
  halt(): void {
    this.halted = true;
  }

  /** EVENTQEN Update 1 -> 0: records are written synchronously, so nothing is left to commit (7.2.1). */
  disable(): void {
    this.enabled = false;
  }

  private wrapMask(): number {
    return (2 << this.qs) - 1;
  }

  private abortErrorActive(): boolean {
    return ((this.regs.get('GERROR') ^ this.regs.get('GERRORN')) & GERROR.EVENTQ_ABT_ERR.bits) !== 0;
  }

  /**
   * Records an event: writes it at PROD and advances PROD, or loses it (7.2.1, 7.4). Returns true when
   * the record reached the queue.
   */
  record(ev: EventRecord): boolean {
    const stats = this.ctx.stats;
    if (!this.enabled || this.halted) return this.lose('disabled', ev.type);
    if (this.abortErrorActive()) return this.lose('abort-error', ev.type);
    const mask = this.wrapMask();
    const size = 1 << this.qs;
    const prodReg = Atomics.load(this.regs.view, this.prodIdx) >>> 0;
    const consReg = Atomics.load(this.regs.view, this.consIdx) >>> 0;
    const prod = Q_IDX.WR.get(prodReg) & mask;
    const cons = Q_IDX.WR.get(consReg) & mask;
    const used = (prod - cons) & mask;
    // An inconsistent PROD/CONS pair (more entries than the queue holds) is treated as full (3.5.1).
    if (used >= size) {
      // Overflow: signalled only if none is showing already (7.4); the record is lost either way.
      if (Q_OVFLG.get(prodReg) === Q_OVFLG.get(consReg)) {
        Atomics.store(this.regs.view, this.prodIdx, (prodReg ^ Q_OVFLG.bits) | 0);
        stats[XSTAT.EVENTQ_OVERFLOWS]!++;
        this.ctx.tr.smmuv3_event_lost?.(ev.type, 'queue full: PROD.OVFLG toggled');
      }
      return this.lose('full', ev.type);
    }
    encodeEvent(ev, this.words);
    const pa = this.basePa + (prod & (size - 1)) * EVT_BYTES;
    try {
      this.aborts.abortFetch('evtq', pa, EVT_BYTES, 'event queue write');
      for (let q = 0; q < EVT_BYTES / 8; q++) {
        const w = this.words;
        this.ctx.mem.write64(pa + q * 8, join64(w[2 * q]!, w[2 * q + 1]!), 'event queue write');
      }
    } catch (e) {
      if (!(e instanceof BusAbort)) throw e;
      // A synchronous external abort: PROD stays on the failing entry, the queue becomes unwritable
      // until software acknowledges GERROR.EVENTQ_ABT_ERR (7.2.2).
      this.ctx.tr.smmuv3_eventq_abort?.(ev.type, pa);
      this.raiseGerror(GERROR.EVENTQ_ABT_ERR.bits);
      return this.lose('write-abort', ev.type);
    }
    const next = (prod + 1) & mask;
    // PROD keeps OVFLG; bits above the wrap bit read as zero (3.5.1).
    Atomics.store(this.regs.view, this.prodIdx, ((prodReg & Q_OVFLG.bits) | next) | 0);
    stats[XSTAT.EVENTS_WRITTEN]!++;
    stats[STAT.EVENTS + (ev.type & 0xff)]!++;
    // Empty -> non-empty is the interrupt edge (3.18.2); PROD is visible before it.
    if (used === 0) this.interrupt();
    return true;
  }

  private lose(why: EventLoss, type: number): false {
    this.lost[why]++;
    this.ctx.stats[XSTAT.EVENTS_LOST]!++;
    if (why !== 'full') this.ctx.tr.smmuv3_event_lost?.(type, why);
    return false;
  }
}
