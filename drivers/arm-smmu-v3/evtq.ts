// The event queue thread (Linux arm_smmu_evtq_thread, arm_smmu_decode_event, arm_smmu_dump_event):
// drains 32-byte event records between EVENTQ_CONS and EVENTQ_PROD (page 1), decodes each and logs it
// in kernel style, notices overflow (PROD.OVFLG differs from what we last saw) and acknowledges it by
// copying OVFLG into CONS.OVACKFLG once the queue has been drained (IHI 0070 7.2, 7.4).
//
// Linux's handler accepts only stall faults and events for a vSMMU; this model has neither, so every
// event is dumped (ratelimited as in Linux), and counted here whether or not the log line was printed.

import { Q_OVFLG, OFF } from '../../src/arch/smmu/regs.ts';
import { EVT, EVTF, EVT_BYTES, EVT_CLASS, EVT_CLASS_NAME, EVT_NAME } from '../../src/arch/smmu/events.ts';
import { hex, qget, qwordMask } from '../../src/arch/bits.ts';
import type { IoMem, Platform } from '../platform/platform.ts';
import type { LogLevel } from '../../src/protocol/log.ts';
import { shouldFail } from '../fault-inject.ts';

/** What the event queue thread needs of the SMMU device it serves (ArmSmmuDevice). */
export interface EvtqDevice {
  readonly p: Platform;
  readonly regs: IoMem;
  readonly shared: { readonly evtq: { readonly basePa: number; readonly shift: number } };
  log(level: LogLevel, msg: string): void;
}

/** A decoded event record (struct arm_smmu_event). */
export interface SmmuEvent {
  id: number;
  /** Spec name of the event, or UNKNOWN for a number the architecture does not define. */
  name: string;
  sid: number;
  ssv: boolean;
  /** SubstreamID, or 0 (IOMMU_NO_PASID) without SSV. */
  ssid: number;
  privileged: boolean;
  instruction: boolean;
  s2: boolean;
  read: boolean;
  stag: number;
  stall: boolean;
  cls: number;
  /** A permission fault on a stage-2 translation of a stage-1 table walk (CLASS=TT). */
  classTt: boolean;
  ttrnw: boolean;
  /** InputAddr (64 bits), IPA [51:12] and FetchAddr [55:3] as they sit in the record. */
  iova: bigint;
  ipa: bigint;
  fetchAddr: bigint;
  raw: bigint[];
}

const IPA_MASK = qwordMask(EVTF.IPA).mask;
const FETCH_MASK = qwordMask(EVTF.FETCH_ADDR).mask;

/** Decodes a record's four qwords (arm_smmu_decode_event). */
export function decodeEvent(raw: readonly bigint[]): SmmuEvent {
  const id = qget(raw, EVTF.TYPE);
  const ssv = qget(raw, EVTF.SSV) === 1;
  const cls = qget(raw, EVTF.CLASS);
  return {
    id,
    name: EVT_NAME[id] ?? 'UNKNOWN',
    sid: qget(raw, EVTF.SID),
    ssv,
    // C_BAD_SUBSTREAMID always carries the offending SubstreamID and has no SSV bit (7.3.9); Linux
    // reads the field only with SSV and would print 0 for it.
    ssid: ssv || id === EVT.C_BAD_SUBSTREAMID ? qget(raw, EVTF.SSID) : 0,
    privileged: qget(raw, EVTF.PNU) === 1,
    instruction: qget(raw, EVTF.IND) === 1,
    s2: qget(raw, EVTF.S2) === 1,
    read: qget(raw, EVTF.RNW) === 1,
    stag: qget(raw, EVTF.STAG),
    stall: qget(raw, EVTF.STALL) === 1,
    cls,
    classTt: id === EVT.F_PERMISSION && cls === EVT_CLASS.TT,
    ttrnw: qget(raw, EVTF.TTRNW) === 1,
    iova: raw[2]!,
    ipa: raw[3]! & IPA_MASK,
    fetchAddr: raw[3]! & FETCH_MASK,
    raw: [...raw],
  };
}

/** printf's %#x / %#llx: 0x-prefixed hex, except that zero prints as plain 0. */
function altHex(v: number | bigint): string {
  const b = BigInt(v);
  return b === 0n ? '0' : `0x${b.toString(16)}`;
}

/** The lines arm_smmu_dump_event prints for an event (without the device prefix). */
export function formatEvent(e: SmmuEvent, client: string): string[] {
  const lines = [`event ${hex(e.id, 2)} received:`, ...e.raw.map((q) => `\t${hex(q, 16)}`)];
  const head = `event: ${e.name} client: ${client} sid: ${altHex(e.sid)} ssid: ${altHex(e.ssid)}`;
  switch (e.id) {
    case EVT.F_TRANSLATION:
    case EVT.F_ADDR_SIZE:
    case EVT.F_ACCESS:
    case EVT.F_PERMISSION:
      lines.push(`${head} iova: ${altHex(e.iova)} ipa: ${altHex(e.ipa)}`);
      lines.push(
        `${e.privileged ? 'priv' : 'unpriv'} ${e.instruction ? 'inst' : 'data'} ${e.read ? 'read' : 'write'} ${e.s2 ? 's2' : 's1'} ` +
          `"${EVT_CLASS_NAME[e.cls]}"${e.classTt ? (e.ttrnw ? ' ttd_read' : ' ttd_write') : ''}${e.stall ? ' stall' : ''} stag: ${altHex(e.stag)}`,
      );
      break;
    case EVT.F_STE_FETCH:
    case EVT.F_CD_FETCH:
    case EVT.F_VMS_FETCH:
    // F_WALK_EABT also carries the address of the failed fetch (7.3.12); Linux prints it generically.
    case EVT.F_WALK_EABT:
      lines.push(`${head} fetch_addr: ${altHex(e.fetchAddr)}`);
      break;
    default:
      lines.push(head);
  }
  return lines;
}

/** Linux's DEFAULT_RATELIMIT_INTERVAL (5 s) and DEFAULT_RATELIMIT_BURST (10). */
const RATELIMIT_INTERVAL_NS = 5e9;
const RATELIMIT_BURST = 10;
/** Recent events kept for inspection. */
const RECENT_MAX = 256;

export class EventQueueThread {
  /** Events drained, by event number. */
  readonly counts = new Map<number, number>();
  /** Overflows noticed ("events lost"). */
  overflows = 0;
  /** The most recent events, oldest first. */
  readonly recent: SmmuEvent[] = [];
  /** Name of the device that owns a StreamID (dev_name), or null for "(unassigned sid)". */
  clientName: (sid: number) => string | null = () => null;
  /** The software copies of PROD and CONS, with their wrap and overflow flags (struct arm_smmu_ll_queue). */
  private prod = 0;
  private cons = 0;
  private rsBegin = -Infinity;
  private rsPrinted = 0;
  private rsMissed = 0;
  /**
   * Fault 'evtq-overflow': the woken thread does not get the CPU until the SMMU has reported an
   * overflow; it waits as deferred work, so the next interrupt edge is not needed to run it.
   */
  private stalled = false;

  constructor(private readonly dev: EvtqDevice) {}

  /**
   * Events drained by name (a number the architecture does not name as 0x..), less those already
   * counted in `since` (an earlier copy of `counts`); only the names that grew.
   */
  countsByName(since?: ReadonlyMap<number, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, n] of this.counts) {
      const d = n - (since?.get(id) ?? 0);
      if (d > 0) out[EVT_NAME[id] ?? `0x${id.toString(16)}`] = d;
    }
    return out;
  }

  private get shift(): number {
    return this.dev.shared.evtq.shift;
  }

  private idx(v: number): number {
    return v & ((1 << this.shift) - 1);
  }

  private wrp(v: number): number {
    return v & (1 << this.shift);
  }

  private empty(): boolean {
    return this.idx(this.prod) === this.idx(this.cons) && this.wrp(this.prod) === this.wrp(this.cons);
  }

  /** The threaded handler: runs until the queue is empty, then acknowledges any overflow. */
  run(): void {
    const regs = this.dev.regs;
    const ovf = Q_OVFLG.bits;
    if (this.stalled) return;
    if (shouldFail(this.dev.p, 'evtq-stall')) {
      this.stalled = true;
      this.dev.p.deferWork(() => {
        if ((regs.read32(OFF.EVENTQ_PROD) & ovf) === (this.prod & ovf)) return false;
        this.stalled = false;
        this.run();
        return true;
      });
      return;
    }
    do {
      while (!this.empty()) {
        const pa = this.dev.shared.evtq.basePa + this.idx(this.cons) * EVT_BYTES;
        const raw = [0, 1, 2, 3].map((k) => this.dev.p.mem.read64(pa + k * 8, 'event record'));
        // queue_inc_cons: keep our overflow flag, advance index and wrap; free the slot at once.
        const next = (this.wrp(this.cons) | this.idx(this.cons)) + 1;
        this.cons = ((this.cons & ovf) | (next & ((2 << this.shift) - 1))) >>> 0;
        regs.write32(OFF.EVENTQ_CONS, this.cons);
        this.handle(decodeEvent(raw));
      }
      // queue_sync_prod_in: a flipped OVFLG means the SMMU dropped records since we last looked.
      const prod = regs.read32(OFF.EVENTQ_PROD);
      if ((prod & ovf) !== (this.prod & ovf)) {
        this.overflows++;
        this.dev.log('err', 'EVTQ overflow detected -- events lost');
      }
      this.prod = prod;
    } while (!this.empty());
    // queue_sync_cons_ovf: we are up to date, so acknowledge the overflow (CONS.OVACKFLG := OVFLG).
    if ((this.prod & ovf) !== (this.cons & ovf)) {
      this.cons = ((this.prod & ovf) | this.wrp(this.cons) | this.idx(this.cons)) >>> 0;
      regs.write32(OFF.EVENTQ_CONS, this.cons);
    }
  }

  private handle(e: SmmuEvent): void {
    this.counts.set(e.id, (this.counts.get(e.id) ?? 0) + 1);
    this.recent.push(e);
    if (this.recent.length > RECENT_MAX) this.recent.shift();
    if (!this.ratelimitOk()) return;
    for (const line of formatEvent(e, this.clientName(e.sid) ?? '(unassigned sid)')) this.dev.log('err', line);
  }

  /** __ratelimit: at most BURST dumps per INTERVAL; reports how many were suppressed when a new interval starts. */
  private ratelimitOk(): boolean {
    const now = this.dev.p.clock.now();
    if (now - this.rsBegin >= RATELIMIT_INTERVAL_NS) {
      if (this.rsMissed) this.dev.p.log('warn', `arm_smmu_dump_event: ${this.rsMissed} callbacks suppressed`);
      this.rsBegin = now;
      this.rsPrinted = 0;
      this.rsMissed = 0;
    }
    if (this.rsPrinted < RATELIMIT_BURST) {
      this.rsPrinted++;
      return true;
    }
    this.rsMissed++;
    return false;
  }
}
