// The services the SMMU offers devices (IHI 0070 3.9.1, 7.3): untranslated DMA, ATS Translation
// Requests and ATS Translated transactions, each run through the translation pipeline (resolve.ts).
//
// ATS Translation Requests (3.9.1.2) run the same pipeline but answer with a completion: UR for
// SMMUEN=0, Config abort/bypass or effective EATS=0b00; CA for configuration errors (recorded only with
// CR2.REC_CFG_ATS); Success with R=W=0 for translation, access and address-size faults; Success with the
// permissions the tables grant otherwise. Translated transactions (3.9.1.3) pass with only an address
// size check while CR0.ATSCHK=0, and with ATSCHK=1 are checked against the STE's effective EATS.
//
// The services work on page-sized pieces: a DMA access is split at 4 KiB boundaries of its input
// address, each piece translated and performed in order; a fault stops the access there.

import { BusAbort, XSTAT } from '../../src/machine/layout.ts';
import type { HwContext } from '../context.ts';
import type { RegisterFile } from '../regfile.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { GBPA, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { EVT, EVT_CLASS, EVT_NAME } from '../../src/arch/smmu/events.ts';
import { EATS } from '../../src/arch/smmu/ste.ts';
import type { AtsEndpoint, AtsTranslation, DmaAccess, DmaResult, SmmuDeviceServices } from './services.ts';
import type { EventQueue } from './evtq.ts';
import { effectiveEats } from './strtab.ts';
import { S1P, S2P } from './walk.ts';
import { PIECE, configAborts, type Failure, type Req, type Resolver } from './resolve.ts';
import { hex } from '../../src/arch/bits.ts';

/** One page-sized piece of a device access: where it goes, or why it was terminated. */
type PieceFail = { ok: false; name: string; event: number; reason: string };
type Piece = { ok: true; pa: number } | PieceFail;

/** What one DMA transfer did: bytes moved before it stopped, and the fault that stopped it. */
export interface TransferOutcome {
  ok: boolean;
  bytes: number;
  /** Name of the terminating fault: an event name, ABORT (no event), BUS_ABORT (no RAM at the PA). */
  fault: string | null;
  /** The event type recorded for it (0 when none was recorded). */
  event: number;
  /** Input address of the piece that failed. */
  faultAddr: number;
  reason: string;
}

export class Translator implements SmmuDeviceServices {
  /** Service Failure Mode: traffic through the SMMU has stopped (6.3.20). */
  private halted = false;

  constructor(
    private readonly ctx: HwContext,
    private readonly regs: RegisterFile<SmmuRegName>,
    private readonly feat: SmmuFeatures,
    private readonly pipe: Resolver,
    private readonly evtq: EventQueue,
    private readonly atsEndpoints: Map<number, AtsEndpoint>,
  ) {}

  /** Service Failure Mode: every transaction from now on is terminated, without an event. */
  halt(): void {
    this.halted = true;
  }

  // ---- SmmuDeviceServices ----

  dmaRead(access: DmaAccess, into: Uint8Array): DmaResult {
    return toResult(this.transfer(access, into, false));
  }

  dmaWrite(access: DmaAccess, data: Uint8Array): DmaResult {
    return toResult(this.transfer(access, data, false));
  }

  translatedRead(access: DmaAccess, into: Uint8Array): DmaResult {
    return toResult(this.transfer(access, into, true));
  }

  translatedWrite(access: DmaAccess, data: Uint8Array): DmaResult {
    return toResult(this.transfer(access, data, true));
  }

  attachAtsEndpoint(sid: number, ep: AtsEndpoint): void {
    this.atsEndpoints.set(sid, ep);
  }

  detachAtsEndpoint(sid: number): void {
    this.atsEndpoints.delete(sid);
  }

  /**
   * Performs a DMA access piece by piece: untranslated (translate, then access memory) or, with
   * `translated`, an ATS Translated transaction (address is already a PA). `data` is the source of a
   * write or the destination of a read; its length must equal access.bytes.
   */
  transfer(access: DmaAccess, data: Uint8Array, translated: boolean): TransferOutcome {
    checkAccess(access, data.length);
    const stats = this.ctx.stats;
    let done = 0;
    while (done < access.bytes) {
      const addr = access.addr + done;
      const len = Math.min(access.bytes - done, PIECE - (addr % PIECE));
      const r = translated ? this.translatedPiece(access, addr) : this.untranslatedPiece(access, addr);
      if (!r.ok) {
        stats[XSTAT.DMA_ABORTS]!++;
        stats[XSTAT.DMA_BYTES]! += done;
        return { ok: false, bytes: done, fault: r.name, event: r.event, faultAddr: addr, reason: r.reason };
      }
      const iova = translated ? (access.iova === undefined ? null : access.iova + done) : addr;
      this.ctx.uaf.check(access.requester ?? `sid ${access.sid}`, access.sid, r.pa, iova, translated, access.write);
      const moved = this.memAccess(r.pa, data.subarray(done, done + len), access.write);
      if (moved !== null) {
        stats[XSTAT.DMA_ABORTS]!++;
        stats[XSTAT.DMA_BYTES]! += done;
        return { ok: false, bytes: done, fault: 'BUS_ABORT', event: 0, faultAddr: addr, reason: moved };
      }
      done += len;
    }
    stats[XSTAT.DMA_BYTES]! += done;
    return { ok: true, bytes: done, fault: null, event: 0, faultAddr: 0, reason: '' };
  }

  /** Reads or writes memory at a PA; a 32-bit write to a non-RAM PA may be an MSI. Returns an error or null. */
  private memAccess(pa: number, buf: Uint8Array, write: boolean): string | null {
    const mem = this.ctx.mem;
    try {
      if (write) {
        if (!mem.contains(pa, buf.length) && buf.length === 4 && this.ctx.irqc.isDoorbell(pa)) {
          const v = buf[0]! | (buf[1]! << 8) | (buf[2]! << 16) | (buf[3]! << 24);
          return this.ctx.msiWrite(pa, v >>> 0) ? null : `MSI write of ${v >>> 0} to ${hex(pa, 0)} dropped`;
        }
        mem.writeBytes(pa, buf, 'DMA write');
      } else {
        buf.set(mem.readBytes(pa, buf.length, 'DMA read'));
      }
      return null;
    } catch (e) {
      if (e instanceof BusAbort) return e.message;
      throw e;
    }
  }

  private untranslatedPiece(access: DmaAccess, addr: number): Piece {
    if (this.halted) return { ok: false, name: 'ABORT', event: 0, reason: 'SMMU in Service Failure Mode' };
    if (!this.pipe.ack('SMMUEN')) {
      // SMMUEN=0: GBPA decides; nothing is fetched or cached (3.21.1, 6.3.14).
      if (GBPA.ABORT.get(this.regs.get('GBPA'))) return { ok: false, name: 'ABORT', event: 0, reason: 'SMMUEN=0 and GBPA.ABORT=1' };
      if (addr >= 2 ** this.feat.oasBits) return { ok: false, name: 'ABORT', event: 0, reason: `bypass address ${hex(addr, 0)} beyond the OAS` };
      return { ok: true, pa: addr };
    }
    const x = this.pipe.resolve(this.request(access, addr));
    if (!x.ok) return this.fail(x.f, x.f.record);
    this.ctx.tr.smmuv3_translate_success?.(access.sid, addr, x.s.pa, access.write);
    return { ok: true, pa: x.s.pa };
  }

  /** Records (or not) the event of a failure; returns the outcome for the device. */
  private fail(f: Failure, record: boolean): PieceFail {
    const name = f.event ? EVT_NAME[f.event.type] ?? hex(f.event.type, 0) : 'ABORT';
    let event = 0;
    if (f.event && record) {
      this.evtq.record(f.event);
      event = f.event.type;
    }
    this.ctx.tr.smmuv3_record_event?.(f.event?.type ?? 0, f.event?.sid ?? 0, record && f.event !== null, f.reason);
    return { ok: false, name, event, reason: `${name}: ${f.reason}` };
  }

  /** The incoming attributes of an access (resolveWith applies the STE's PRIVCFG/INSTCFG overrides). */
  private request(access: DmaAccess, addr: number): Req {
    return {
      sid: access.sid,
      ssv: access.ssv ?? false,
      ssid: access.ssid ?? 0,
      addr,
      write: access.write,
      priv: access.priv ?? false,
      instr: !access.write && (access.instr ?? false),
    };
  }

  /**
   * An ATS Translation Request for the page at access.addr (3.9.1.2). access.write says the request had
   * NW=0; privilege and execute come only with a PASID (SSV), otherwise the request is unprivileged data.
   */
  atsTranslate(access: DmaAccess): AtsTranslation {
    checkAccess(access, access.bytes);
    this.ctx.stats[XSTAT.ATS_REQUESTS]!++;
    const ssv = access.ssv ?? false;
    const req: Req = {
      sid: access.sid,
      ssv,
      ssid: ssv ? access.ssid ?? 0 : 0,
      addr: access.addr,
      write: access.write,
      priv: ssv && (access.priv ?? false),
      instr: ssv && (access.instr ?? false),
    };
    const none = (status: 'UR' | 'CA', reason: string): AtsTranslation => ({ status, addr: 0, size: 0, read: false, write: false, exec: false, priv: req.priv, reason });
    // F_BAD_ATS_TREQ: the request is answered UR and the event records the request (7.3.6).
    const badTreq = (reason: string): AtsTranslation => {
      this.evtq.record({ type: EVT.F_BAD_ATS_TREQ, sid: req.sid, ...(ssv ? { ssv: true, ssid: req.ssid } : {}), inputAddr: req.addr });
      this.ctx.tr.smmuv3_ats_bad_request?.(req.sid, reason);
      return none('UR', `F_BAD_ATS_TREQ: ${reason}`);
    };
    // Configuration errors answer CA and are recorded only with CR2.REC_CFG_ATS (3.9.1.2).
    const recCfg = this.feat.atsRecErr && this.pipe.cr2('REC_CFG_ATS');
    const cfgError = (f: Failure): AtsTranslation => {
      const rec = f.event?.type === EVT.C_BAD_STREAMID ? recCfg && this.pipe.cr2('RECINVSID') : recCfg;
      const r = this.fail(f, rec);
      return none('CA', r.reason);
    };
    if (!this.feat.ats) return none('UR', 'ATS is not implemented (IDR0.ATS=0)');
    if (this.halted) return none('UR', 'SMMU in Service Failure Mode');
    if (!this.pipe.ack('SMMUEN')) return badTreq('SMMUEN=0');
    this.ctx.stats[XSTAT.TRANSLATIONS]!++;
    const st = this.pipe.steFor(req, true);
    if (!st.ok) return cfgError(st.x.f);
    const ste = st.ste;
    if (ste.abort) return none('UR', configAborts(ste));
    if (ste.bypass) return badTreq(`StreamID ${hex(req.sid, 0)} is in bypass (Config=0b100)`);
    const eats = effectiveEats(ste, this.feat, this.pipe.ack('ATSCHK'));
    if (eats === EATS.ABT) return badTreq(`StreamID ${hex(req.sid, 0)} does not allow ATS (effective EATS=0b00)`);
    const x = this.pipe.resolveWith(req, ste, true, eats === EATS.S1CHK);
    if (!x.ok) {
      const f = x.f;
      if (f.kind === 'xlate') {
        // Translation, access and address-size faults (at either stage, also on a CD fetch or stage 1
        // walk) answer Success with no permission, for one STU; no event (3.9.1.2).
        this.ctx.tr.smmuv3_ats_no_access?.(req.sid, req.addr, f.reason);
        return { status: 'SUCCESS', addr: 0, size: PIECE, read: false, write: false, exec: false, priv: req.priv, reason: f.reason };
      }
      if (f.kind === 'abort') return none('UR', f.reason);
      return cfgError(f);
    }
    const s = x.s;
    // What the tables grant at the request's privilege (PAN removes privileged data access to pages EL0
    // can access). Exe is granted only to a request that asked for it (a PASID with Execute Requested),
    // and implies R (13.7).
    const p = s.s1perms;
    const userPage = (p & (S1P.UR | S1P.UW)) !== 0;
    const panBlocks = req.priv && s.pan && userPage;
    const r1 = !panBlocks && (p & (req.priv ? S1P.PR : S1P.UR)) !== 0;
    const w1 = !panBlocks && (p & (req.priv ? S1P.PW : S1P.UW)) !== 0;
    const x1 = (p & (req.priv ? S1P.PX : S1P.UX)) !== 0;
    const read = r1 && (s.s2perms & S2P.R) !== 0;
    const write = w1 && (s.s2perms & S2P.W) !== 0;
    const exec = req.instr && read && x1 && (s.s2perms & S2P.X) !== 0;
    return { status: 'SUCCESS', addr: s.outBase, size: s.size, read, write, exec, priv: req.priv };
  }

  /** One piece of an ATS Translated transaction (3.9.1.3): the address is a PA (or, EATS=0b10, an IPA). */
  private translatedPiece(access: DmaAccess, addr: number): Piece {
    this.ctx.stats[XSTAT.TRANSLATED_ACCESSES]!++;
    if (this.halted) return { ok: false, name: 'ABORT', event: 0, reason: 'SMMU in Service Failure Mode' };
    // Translated transactions carry no PASID here (no IDR3.PASIDTT): treated as SSV=0, PnU=0, InD=0.
    const req: Req = { sid: access.sid, ssv: false, ssid: 0, addr, write: access.write, priv: false, instr: false };
    const forbidden = (reason: string) =>
      this.fail({ kind: 'config', event: { type: EVT.F_TRANSL_FORBIDDEN, sid: req.sid, inputAddr: addr, read: !req.write }, record: true, reason }, true);
    if (!this.pipe.ack('SMMUEN')) return forbidden('SMMUEN=0');
    const sizeCheck = () =>
      addr >= 2 ** this.feat.oasBits
        ? { ok: false as const, name: 'ABORT', event: 0, reason: `translated address ${hex(addr, 0)} beyond the OAS` }
        : { ok: true as const, pa: addr };
    if (!this.pipe.ack('ATSCHK')) return sizeCheck();
    // With ATSCHK=1 configuration errors abort; they are recorded only with CR2.REC_CFG_ATS, and
    // C_BAD_STREAMID then regardless of RECINVSID (3.9.1.3).
    const recCfg = this.feat.atsRecErr && this.pipe.cr2('REC_CFG_ATS');
    const st = this.pipe.steFor(req, true);
    if (!st.ok) return this.fail(st.x.f, recCfg);
    const ste = st.ste;
    if (ste.abort) return { ok: false, name: 'ABORT', event: 0, reason: configAborts(ste) };
    if (ste.bypass) return forbidden(`StreamID ${hex(req.sid, 0)} is in bypass (Config=0b100)`);
    const eats = effectiveEats(ste, this.feat, true);
    if (eats === EATS.ABT) return forbidden(`StreamID ${hex(req.sid, 0)} does not allow ATS (effective EATS=0b00)`);
    if (eats !== EATS.S1CHK) return sizeCheck();
    // Split-stage ATS: the address is an IPA, translated at stage 2 like ordinary traffic.
    this.ctx.stats[XSTAT.TRANSLATIONS]!++;
    if (addr >= 2 ** this.feat.oasBits) {
      return this.fail(this.pipe.xlateFail(req, { type: EVT.F_ADDR_SIZE, s2: false, cls: EVT_CLASS.IN, reason: `translated IPA ${hex(addr, 0)} beyond the IAS` }, true).f, true);
    }
    const x = this.pipe.stage2Final(req, ste, null, false);
    return x.ok ? { ok: true, pa: x.s.pa } : this.fail(x.f, x.f.record);
  }
}

/** Rejects accesses no bus could carry (a device model's bug), naming the device's StreamID. */
function checkAccess(access: DmaAccess, length: number): void {
  if (!Number.isSafeInteger(access.addr) || access.addr < 0) throw new RangeError(`DMA access from StreamID ${access.sid}: address ${access.addr} is not a non-negative integer`);
  if (!Number.isInteger(access.bytes) || access.bytes < 0) throw new RangeError(`DMA access from StreamID ${access.sid}: length ${access.bytes} is not a non-negative integer`);
  if (length !== access.bytes) throw new RangeError(`DMA access from StreamID ${access.sid}: buffer of ${length} bytes for a ${access.bytes}-byte access`);
  if (!Number.isSafeInteger(access.addr + access.bytes)) throw new RangeError(`DMA access from StreamID ${access.sid}: ${hex(access.addr, 0)}+${access.bytes} overflows the address range`);
}

function toResult(t: TransferOutcome): DmaResult {
  if (t.ok) return { ok: true };
  return t.event ? { ok: false, reason: t.reason, event: EVT_NAME[t.event] ?? String(t.event) } : { ok: false, reason: t.reason };
}
