// The SMMU's translation pipeline (IHI 0070 3.3, 3.4, 5.x, 7.3): for one address of one access,
// StreamID -> STE (stream table + configuration cache), Config, SubstreamID/S1DSS -> CD, stage 1
// (IOTLB, else walk), stage 2 (IOTLB, else walk). Each step fails in the architected priority order
// (7.3.22) with at most one event per transaction (7.2); whether that event is recorded follows its
// rules: C_BAD_STREAMID only with CR2.RECINVSID; the four translation-related faults only with CD.R
// (stage 1) or STE.S2R (stage 2) (5.5); every other fault always. CD.A must be 1 (IDR0.TERM_MODEL=1),
// so every fault terminates with an abort. The services devices use (translate.ts) drive it.

import { XSTAT } from '../../src/machine/layout.ts';
import type { HwContext } from '../context.ts';
import type { RegisterFile } from '../regfile.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { CR0, CR2, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { EVT, EVT_CLASS } from '../../src/arch/smmu/events.ts';
import { REGIME, S1DSS } from '../../src/arch/smmu/ste.ts';
import { GRANULE_4K, PTE } from '../../src/arch/smmu/pte.ts';
import { ASID_GLOBAL } from './tag-index.ts';
import { TLB_KIND, type Tlb, type TlbEntry } from './tlb.ts';
import type { CdTables } from './cd.ts';
import type { EventRecord } from './evtq.ts';
import type { Ste } from './config.ts';
import type { StreamTable } from './strtab.ts';
import { S1P, S2P, s1Allows, s1Perms, s2Allows, s2Device, s2Perms, type TableXlate, type Walker, type XlateFault } from './walk.ts';
import { hex } from '../../src/arch/bits.ts';

/** Bytes of one translated piece: the smallest translation granule. */
export const PIECE = GRANULE_4K;

/** An incoming access after the STE's PRIVCFG/INSTCFG overrides. */
export interface Req {
  sid: number;
  ssv: boolean;
  ssid: number;
  addr: number;
  write: boolean;
  priv: boolean;
  instr: boolean;
}

/** Why an access did not translate. */
export interface Failure {
  /**
   * abort: terminated without an event (Config 0b0xx); config: a configuration error or fetch abort;
   * xlate: one of the four translation-related faults (5.5); eabt: F_WALK_EABT.
   */
  kind: 'abort' | 'config' | 'xlate' | 'eabt';
  /** The event the fault produces (null for a silent abort). */
  event: EventRecord | null;
  /** Whether an ordinary transaction records it (CR2.RECINVSID, CD.R, STE.S2R). */
  record: boolean;
  reason: string;
}

/** A successful translation of one address: where it goes, over what range, with which permissions. */
export interface Success {
  /** Output address of req.addr, and the output base and size of the translation that covers it. */
  pa: number;
  outBase: number;
  size: number;
  /** Stage 1 / stage 2 permissions; a bypassed stage grants everything. */
  s1perms: number;
  s2perms: number;
  /** CD.PAN in force at stage 1. */
  pan: boolean;
}

export type Fail = { ok: false; f: Failure };
export type Xlate = { ok: true; s: Success } | Fail;

/** A stage 1 result, with the tags a combined (nested) IOTLB entry for it needs. */
interface S1Out {
  s: Success;
  /** Came from a combined stage 1+2 entry: stage 2 is already applied. */
  combined: boolean;
  level: number;
  asid: number;
  regime: number;
  vmid: number;
}

const ALL_S1 = S1P.PR | S1P.PW | S1P.PX | S1P.UR | S1P.UW | S1P.UX;
const ALL_S2 = S2P.R | S2P.W | S2P.X;

/** An address that no stage translates: output = input, every permission, for one piece. */
function identity(addr: number): Success {
  return { pa: addr, outBase: addr - (addr % PIECE), size: PIECE, s1perms: ALL_S1, s2perms: ALL_S2, pan: false };
}

/** Why an STE with Config 0b0xx stops traffic (no event, 5.2). */
export function configAborts(ste: Ste): string {
  return `STE Config=0b${ste.config.toString(2).padStart(3, '0')} aborts`;
}

/** The kind of access, for fault reasons. */
function accessKind(req: Req): string {
  return req.write ? 'write' : req.instr ? 'instruction fetch' : 'read';
}

export class Resolver {
  constructor(
    private readonly ctx: HwContext,
    private readonly regs: RegisterFile<SmmuRegName>,
    private readonly feat: SmmuFeatures,
    private readonly strtab: StreamTable,
    private readonly cds: CdTables,
    private readonly walker: Walker,
    private readonly tlb: Tlb,
  ) {}

  /** A CR0ACK bit in force. */
  ack(bit: 'SMMUEN' | 'ATSCHK'): boolean {
    return CR0[bit].get(this.regs.get('CR0ACK')) === 1;
  }

  /** A CR2 bit in force. */
  cr2(bit: 'RECINVSID' | 'REC_CFG_ATS' | 'E2H'): boolean {
    return CR2[bit].get(this.regs.get('CR2')) === 1;
  }

  configFail(req: Req, type: number, reason: string, extra: Partial<EventRecord> = {}, record = true): Fail {
    const ev: EventRecord = { type, sid: req.sid, ...(req.ssv ? { ssv: true, ssid: req.ssid } : {}), ...extra };
    return { ok: false, f: { kind: 'config', event: ev, record, reason } };
  }

  /** The event of a translation-related fault or walk abort, with the access's (post-override) attributes. */
  xlateFail(req: Req, fault: XlateFault, record: boolean): Fail {
    const ev: EventRecord = {
      type: fault.type,
      sid: req.sid,
      ...(req.ssv ? { ssv: true, ssid: req.ssid } : {}),
      inputAddr: req.addr,
      read: !req.write,
      instr: req.instr,
      priv: req.priv,
      s2: fault.s2,
      cls: fault.cls,
      ...(fault.ipa !== undefined ? { ipa: fault.ipa } : {}),
      ...(fault.fetchAddr !== undefined ? { fetchAddr: fault.fetchAddr } : {}),
      ...(fault.ttRead ? { ttRead: true } : {}),
    };
    // F_WALK_EABT is not one of the faults CD.R/STE.S2R control (5.5): always recorded.
    const eabt = fault.type === EVT.F_WALK_EABT;
    return { ok: false, f: { kind: eabt ? 'eabt' : 'xlate', event: ev, record: eabt || record, reason: fault.reason } };
  }

  /** The STE (or why there is none) for an access; applies nothing else. */
  steFor(req: Req, recordInvSid: boolean): { ok: true; ste: Ste } | { ok: false; x: Fail } {
    const look = this.strtab.lookup(req.sid);
    if (!look.ok) {
      if (look.event === 'C_BAD_STREAMID') return { ok: false, x: this.configFail(req, EVT.C_BAD_STREAMID, look.reason, {}, recordInvSid) };
      return { ok: false, x: this.configFail(req, EVT.F_STE_FETCH, look.reason, { fetchAddr: look.fetchAddr }) };
    }
    if (look.ste.illegal) return { ok: false, x: this.configFail(req, EVT.C_BAD_STE, `STE of StreamID ${hex(req.sid, 0)} at ${hex(look.ste.addr, 0)} is ILLEGAL: ${look.ste.illegal}`) };
    return { ok: true, ste: look.ste };
  }

  /** Translates one address of an ordinary (untranslated) transaction. */
  resolve(req: Req): Xlate {
    this.ctx.stats[XSTAT.TRANSLATIONS]!++;
    const st = this.steFor(req, this.cr2('RECINVSID'));
    return st.ok ? this.resolveWith(req, st.ste, false, false) : st.x;
  }

  /**
   * Translates one address with its STE through the CD and both stages. `ats`: compute permissions
   * instead of checking them (a Translation Request); `stage1Only`: stop after stage 1 (split-stage
   * ATS, EATS=0b10).
   */
  resolveWith(req0: Req, ste: Ste, ats: boolean, stage1Only: boolean): Xlate {
    if (ste.abort) return { ok: false, f: { kind: 'abort', event: null, record: false, reason: `StreamID ${hex(req0.sid, 0)}: ${configAborts(ste)}` } };
    // PRIVCFG/INSTCFG overrides (5.2): 0b10 forces unprivileged / data, 0b11 privileged / instruction;
    // INSTCFG affects reads only.
    const req: Req = {
      ...req0,
      priv: ste.privcfg === 2 ? false : ste.privcfg === 3 ? true : req0.priv,
      instr: req0.write ? false : ste.instcfg === 2 ? false : ste.instcfg === 3 ? true : req0.instr,
    };
    // A SubstreamID given to a configuration without stage 1 (5.2, 7.3.9).
    if (req.ssv && !ste.s1) return this.badSubstream(req, `StreamID ${hex(req.sid, 0)} has no stage 1 (Config=0b${ste.config.toString(2)})`);
    const ias = this.feat.oasBits;
    if (ste.bypass) {
      // Config=0b100: stage 1 bypass checks the input against OAS (3.4).
      if (req.addr >= 2 ** this.feat.oasBits) return this.xlateFail(req, { type: EVT.F_ADDR_SIZE, s2: false, cls: EVT_CLASS.IN, reason: `bypass input ${hex(req.addr, 0)} beyond the OAS` }, true);
      return { ok: true, s: identity(req.addr) };
    }
    const regime = ste.el2 ? (this.cr2('E2H') ? REGIME.EL2_E2H : REGIME.EL2) : REGIME.EL1;

    // Stage 1: pick the CD (or skip stage 1), then translate.
    let s1: S1Out | null = null;
    if (ste.s1) {
      const single = ste.s1cdmax === 0 || this.feat.ssidBits === 0;
      let index: number | null;
      if (single) {
        if (req.ssv) return this.badSubstream(req, `StreamID ${hex(req.sid, 0)}: S1CDMax=0, no SubstreamIDs`);
        index = 0;
      } else if (!req.ssv) {
        const dss = ste.s1dss === 3 ? S1DSS.TERMINATE : ste.s1dss; // 0b11 behaves as 0b00 (5.2)
        if (dss === S1DSS.TERMINATE) return this.configFail({ ...req, ssv: false }, EVT.F_STREAM_DISABLED, `StreamID ${hex(req.sid, 0)}: no SubstreamID and S1DSS=terminate`);
        index = dss === S1DSS.BYPASS ? null : 0;
      } else {
        if (req.ssid >= 2 ** ste.s1cdmax) return this.badSubstream(req, `SubstreamID ${hex(req.ssid, 0)} beyond S1CDMax=${ste.s1cdmax}`);
        if (ste.s1dss === S1DSS.SSID0 && req.ssid === 0) {
          return this.configFail({ ...req, ssv: false }, EVT.F_STREAM_DISABLED, `StreamID ${hex(req.sid, 0)}: SubstreamID 0 is reserved by S1DSS=0b10`);
        }
        index = req.ssid;
      }
      if (index !== null) {
        const r = this.stage1(req, ste, index, regime, ats, stage1Only);
        if (!r.ok) return r;
        s1 = r.o;
        if (s1.combined || stage1Only || !ste.s2) return { ok: true, s: s1.s };
        // ATS: a request stage 1 grants nothing to stops there (3.9.1.2).
        if (ats && (s1.s.s1perms & (req.priv ? S1P.PR | S1P.PW | S1P.PX : S1P.UR | S1P.UW | S1P.UX)) === 0) return { ok: true, s: s1.s };
      }
    }
    if (!s1) {
      // Stage 1 bypassed (Config=0b110, or S1DSS=0b01): the input is checked against IAS (3.4).
      if (req.addr >= 2 ** ias) return this.xlateFail(req, { type: EVT.F_ADDR_SIZE, s2: false, cls: EVT_CLASS.IN, reason: `stage 1 bypass input ${hex(req.addr, 0)} beyond the IAS` }, true);
      if (!ste.s2) {
        // Config=0b101 with S1DSS=bypass and no stage 2: identity.
        return { ok: true, s: identity(req.addr) };
      }
    }
    return this.stage2Final(req, ste, s1, ats);
  }

  private badSubstream(req: Req, reason: string): Fail {
    // C_BAD_SUBSTREAMID has no SSV field; the SubstreamID is recorded as given (0 without one, 7.3.9).
    return this.configFail({ ...req, ssv: false }, EVT.C_BAD_SUBSTREAMID, reason, { ssid: req.ssv ? req.ssid : 0 });
  }

  /** Stage 2 translation of an IPA a nested stream's CD fetch or stage 1 walk needs (CLASS=CD or TT). */
  private tableXlate(ste: Ste, cls: number): TableXlate {
    return (ipa) => {
      const r = this.s2Lookup(ste, ipa, cls);
      if (!r.ok) return r;
      const e = r.e;
      // The fetch is a read: it needs stage 2 read permission; with S2PTW, Device memory is a stage 2
      // Permission fault too (5.2 S2PTW).
      if (!(e.s2perms & S2P.R) || (ste.s2cfg!.ptw && e.device)) {
        return {
          ok: false,
          fault: { type: EVT.F_PERMISSION, s2: true, cls, ipa, ttRead: cls === EVT_CLASS.TT, reason: `stage 2: ${e.device && ste.s2cfg!.ptw ? 'Device memory under S2PTW' : 'no read permission'} for the ${cls === EVT_CLASS.CD ? 'CD' : 'stage 1 table'} fetch at IPA ${hex(ipa, 0)}` },
        };
      }
      return { ok: true, pa: e.pa + (ipa - e.va) };
    };
  }

  /** A stage 2 IOTLB entry covering ipa: cached, or walked and cached. */
  private s2Lookup(ste: Ste, ipa: number, cls: number): { ok: true; e: TlbEntry } | { ok: false; fault: XlateFault } {
    const cfg = ste.s2cfg!;
    const hit = this.tlb.lookup(TLB_KIND.S2, REGIME.EL1, cfg.vmid, ASID_GLOBAL, ipa);
    if (hit) return { ok: true, e: hit };
    const w = this.walker.s2(cfg, ipa, cls);
    if (!w.ok) return w;
    const l = w.leaf;
    const e: TlbEntry = { kind: TLB_KIND.S2, regime: REGIME.EL1, vmid: cfg.vmid, asid: ASID_GLOBAL, va: l.base, size: l.size, level: l.level, pa: l.oa, s1perms: 0, s2perms: s2Perms(l), device: s2Device(l) };
    this.tlb.insert(e);
    return { ok: true, e };
  }

  private stage1(req: Req, ste: Ste, index: number, regime: number, ats: boolean, stage1Only: boolean): { ok: true; o: S1Out } | Fail {
    const cdl = this.cds.lookup(req.sid, ste, index, regime, ste.s2 ? this.tableXlate(ste, EVT_CLASS.CD) : null);
    if (!cdl.ok) {
      if (cdl.event === 'C_BAD_SUBSTREAMID') return this.badSubstream(req, `StreamID ${hex(req.sid, 0)}: ${cdl.reason}`);
      if (cdl.event === 'F_CD_FETCH') return this.configFail(req, EVT.F_CD_FETCH, cdl.reason, { fetchAddr: cdl.fetchAddr });
      // A stage 2 fault on the CD fetch: reported as the stage 2 fault, CLASS=CD, never cached (3.4.3).
      return this.xlateFail(req, cdl.fault, ste.s2r);
    }
    const cd = cdl.cd;
    if (cd.illegal) return this.configFail(req, EVT.C_BAD_CD, `CD ${index} of StreamID ${hex(req.sid, 0)} at ${hex(cd.addr, 0)} is ILLEGAL: ${cd.illegal}`);
    const s1Fault = (type: number, reason: string) => this.xlateFail(req, { type, s2: false, cls: EVT_CLASS.IN, reason: `stage 1: ${reason}` }, cd.r);
    // The input must lie in the TTB0 range (3.4.1); addresses here are below 2^53, so VA[55] selects TTB0.
    if (req.addr >= 2 ** cd.iaBits) return s1Fault(EVT.F_TRANSLATION, `input ${hex(req.addr, 0)} beyond the ${cd.iaBits}-bit range of T0SZ=${cd.t0sz}`);
    const vmid = regime === REGIME.EL1 ? ste.vmid : 0;
    const asid = regime === REGIME.EL2 ? ASID_GLOBAL : cd.asid;
    const kind = ste.s2 && !stage1Only ? TLB_KIND.S12 : TLB_KIND.S1;
    let e = this.tlb.lookup(kind, regime, vmid, asid, req.addr);
    if (!e) {
      // EPD0=1: a TLB miss through TTB0 is a Translation fault (5.4 EPD0).
      if (cd.epd0) return s1Fault(EVT.F_TRANSLATION, 'TTB0 walks disabled (EPD0=1)');
      const w = this.walker.s1(
        { regime, vmid, asid, ttb: cd.ttb0, iaBits: cd.iaBits, startLevel: cd.startLevel, oaBits: cd.ipsBits, affd: cd.affd, had: cd.had0 },
        req.addr,
        ste.s2 ? this.tableXlate(ste, EVT_CLASS.TT) : null,
      );
      // Stage 2 faults of the walk's table fetches keep their own recording control (STE.S2R).
      if (!w.ok) return this.xlateFail(req, w.fault, w.fault.s2 ? ste.s2r : cd.r);
      const l = w.leaf;
      const global = PTE.NG.get64(l.desc) === 0n;
      const entry: TlbEntry = {
        kind: TLB_KIND.S1,
        regime,
        vmid,
        asid: global ? ASID_GLOBAL : asid,
        va: l.base,
        size: l.size,
        level: l.level,
        pa: l.oa,
        s1perms: s1Perms(l, regime, cd.wxn),
        s2perms: ALL_S2,
        device: false,
      };
      if (kind === TLB_KIND.S1) this.tlb.insert(entry);
      e = entry;
    }
    if (!ats && !s1Allows(e.s1perms, req.write, req.instr, req.priv, cd.pan)) {
      return s1Fault(EVT.F_PERMISSION, `${accessKind(req)} (${req.priv ? 'privileged' : 'unprivileged'}) to ${hex(req.addr, 0)} not permitted`);
    }
    const s: Success = { pa: e.pa + (req.addr - e.va), outBase: e.pa, size: e.size, s1perms: e.s1perms, s2perms: e.s2perms, pan: cd.pan };
    const combined = e.kind === TLB_KIND.S12;
    // A combined entry already holds the stage 2 result: check stage 2 permissions here.
    if (combined && !ats && !s2Allows(e.s2perms, req.write, req.instr)) {
      return this.xlateFail(req, { type: EVT.F_PERMISSION, s2: true, cls: EVT_CLASS.IN, ipa: e.pa, reason: `stage 2: access to ${hex(req.addr, 0)} not permitted` }, ste.s2r);
    }
    return { ok: true, o: { s, combined, level: e.level, asid: e.asid, regime, vmid } };
  }

  /** Stage 2 of the final IPA (after stage 1, or with stage 1 bypassed when s1 is null). */
  stage2Final(req: Req, ste: Ste, s1: S1Out | null, ats: boolean): Xlate {
    const ipa = s1 ? s1.s.pa : req.addr;
    const r = this.s2Lookup(ste, ipa, EVT_CLASS.IN);
    if (!r.ok) return this.xlateFail(req, r.fault, ste.s2r);
    const e = r.e;
    if (!ats && !s2Allows(e.s2perms, req.write, req.instr)) {
      return this.xlateFail(req, { type: EVT.F_PERMISSION, s2: true, cls: EVT_CLASS.IN, ipa, reason: `stage 2: ${accessKind(req)} to IPA ${hex(ipa, 0)} not permitted` }, ste.s2r);
    }
    const pa = e.pa + (ipa - e.va);
    if (!s1) return { ok: true, s: { pa, outBase: e.pa, size: e.size, s1perms: ALL_S1, s2perms: e.s2perms, pan: false } };
    // Nested: cache the combined translation, sized by the smaller of the two mappings.
    const size = Math.min(s1.s.size, e.size);
    const inBase = req.addr - (req.addr % size);
    const outBase = pa - (req.addr % size);
    this.tlb.insert({
      kind: TLB_KIND.S12,
      regime: s1.regime,
      vmid: s1.vmid,
      asid: s1.asid,
      va: inBase,
      size,
      level: s1.level,
      pa: outBase,
      s1perms: s1.s.s1perms,
      s2perms: e.s2perms,
      device: e.device,
    });
    return { ok: true, s: { pa, outBase, size, s1perms: s1.s.s1perms, s2perms: e.s2perms, pan: s1.s.pan } };
  }
}
