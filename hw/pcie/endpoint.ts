// A PCIe endpoint function: config space with capability behaviour, a BAR holding a DMA engine, an ATC,
// and the resets (FLR, hot reset from its Root Port's Secondary Bus Reset, PM D3hot->D0 reset).
//
// DMA: the engine moves a transfer in chunks that never cross a 4 KiB page of source or destination,
// one chunk every dmaNsPerPage of platform time. Each chunk is a read then a write. Without ATS both
// are untranslated requests the SMMU translates; with ATS Enable set, the function looks the address
// up in its ATC, sends a Translation Request on a miss (caching what it gets), and issues Translated
// requests from the entry. A Translation Request that grants no access for the request makes the
// function fall back to an untranslated request, which the SMMU then faults (and records).
//
// Resets stop the function's requests at once (PCIe r6.0 6.6.2): of a transfer in flight, the chunks
// already issued have landed in memory, the remaining chunks are dropped, and no completion is
// signalled. While the function is resetting, config reads see the overlay of function.ts (RRS or
// all-ones as the topology says), config writes and BAR accesses are dropped, and ATC Invalidate
// Requests are not answered (PCIe permits a function to ignore them during reset). Afterwards the
// registers are back at their reset values except sticky bits (AER) and, for FLR, link controls: ATS,
// PASID and PRI disabled, Bus Master and Memory Space off, the ATC empty.
//
// MSIs are sent straight to the interrupt controller: this model does not translate MSI writes.

import { hex, join64 } from '../../src/arch/bits.ts';
import { capReg } from './config-space.ts';
import type { CapName } from '../../src/arch/pcie/caps.ts';
import {
  AER_COR, AER_UNCOR, ATS_CAP, ATS_CTRL, ATS_MAX_QDEP, BAR, COMMAND, DEVCTL, DEVSTA, MSI_CONTROL, PMCSR, POWER_STATE,
} from '../../src/arch/pcie/regs.ts';
import {
  DMA_CTRL, DMA_DOORBELL, DMA_ERR, DMA_ERR_NAMES, DMA_MAX_LEN, DMA_STATUS, FW_MAILBOX, dmaEngineMap, type DmaRegName,
} from '../../src/arch/pcie/dma-engine.ts';
import { PCIE_STAT, bumpPcieStat } from '../../src/machine/pcie-stats.ts';
import { NS_PER_MS, NS_PER_US } from '../../src/arch/time.ts';
import type { FunctionTopology, ResetResponse } from '../../src/protocol/topology.ts';
import type { WriteOutcome } from '../regfile.ts';
import { RESET_KINDS } from '../../src/protocol/trace-points.ts';
import type { HwContext } from '../context.ts';
import type { Timer } from '../scheduler.ts';
import type { AtcInvalidation, AtsEndpoint, SmmuDeviceServices } from '../smmu/services.ts';
import { Atc } from './atc.ts';
import { MemBar } from './bar.ts';
import { PcieFunction } from './function.ts';

/** Platform time the device firmware takes to acknowledge a reset in FW_MAILBOX after the function is back. */
const FW_ACK_NS = 20 * NS_PER_MS;

export type ResetKind = (typeof RESET_KINDS)[number];

/** The Root Port above an endpoint, as the endpoint sees it. */
export interface UpstreamPort {
  /** Configuration RRS Software Visibility is enabled at the Root Port. */
  rrsSvEnabled(): boolean;
}

interface Transfer {
  src: number;
  dst: number;
  len: number;
  done: number;
  timer: Timer | null;
}

type AccessResult = { ok: true } | { ok: false; code: number; reason: string };

const ATS_CTRL_REG = capReg('ats', 'CTRL');

export class PcieEndpoint extends PcieFunction implements AtsEndpoint {
  readonly bar: MemBar<DmaRegName>;
  readonly atc: Atc | null;
  readonly sid: number;
  private power: number = POWER_STATE.D0;
  private resetting: { kind: ResetKind; timer: Timer | null } | null = null;
  private removed = false;
  /** Resets the function completed (FLR, hot, PM), for reports. */
  resetsDone = 0;
  private xfer: Transfer | null = null;
  /** Completions of ATC invalidations not yet sent. */
  private readonly pendingInv = new Set<Timer>();
  private fwAck: Timer | null = null;
  /** Fault transactions-pending-stuck: Transactions Pending reads 1 until the next reset completes. */
  private trpndStuck = false;

  constructor(
    ctx: HwContext,
    ecam: Int32Array,
    barWindow: Int32Array,
    readonly t: FunctionTopology,
    private readonly port: UpstreamPort,
    private readonly smmu: SmmuDeviceServices,
  ) {
    super(ctx, ecam, t.rid, {
      name: t.bdf,
      port: false,
      vendorId: t.vendorId,
      deviceId: t.deviceId,
      revision: t.revision,
      classCode: t.classCode,
      subsysVendorId: t.vendorId,
      subsysId: t.deviceId,
      multifunction: t.multifunction,
      immReady: t.immReady,
      barBytes: t.barBytes,
      caps: t.capabilities,
      flr: t.flr,
      pmNoSoftReset: t.pmNoSoftReset,
      atsQueueDepth: t.invQueueDepth,
      atsPageAligned: t.atsPageAligned,
      pasidWidth: t.pasidWidth,
      priCapacity: t.priCapacity,
      acsCap: t.acsCap,
      rrsSv: false,
      portNumber: 0,
    });
    this.sid = t.streamId;
    this.regs.reset();
    this.bar = new MemBar(barWindow, dmaEngineMap(t.barBytes));
    this.bar.regs.reset();
    this.bar.regs.onWrite('DOORBELL', (_f, _r, triggered) => this.doorbell(triggered));
    const has = (c: CapName) => t.capabilities.includes(c);
    this.atc = has('ats') ? new Atc(t.atcEntries) : null;

    this.regs.onWrite('COMMAND', () => this.updateDecode());
    this.regs.onWrite('BAR0', () => this.updateDecode());
    this.regs.onWrite(capReg('exp', 'DEVCTL'), (_f, _r, triggered) => {
      // Initiate FLR (W1T: it always reads 0, 7.5.3.4).
      if (DEVCTL.BCR_FLR.get(triggered)) this.startReset('flr', this.t.resetResponse);
    });
    if (has('pm')) this.regs.onWrite(capReg('pm', 'PMCSR'), () => this.pmcsrWritten());
    if (has('ats')) {
      this.regs.onWrite(ATS_CTRL_REG, () => {
        if (!ATS_CTRL.ENABLE.get(this.regs.get(ATS_CTRL_REG)) && this.atc!.count > 0) {
          // With ATS disabled the function may not use cached translations; it drops them.
          this.ctx.tr.pcie_ats_disable?.(this.rid, this.atc!.count);
          this.atc!.clear();
        }
      });
      smmu.attachAtsEndpoint(this.sid, this);
    }
  }

  // ---- state ----

  get resetInProgress(): ResetKind | null {
    return this.resetting?.kind ?? null;
  }

  protected unavailableReason(): string {
    if (this.removed) return 'function removed';
    return `function in ${this.resetting?.kind ?? 'unknown'} reset`;
  }

  protected rrsVisible(): boolean {
    return this.port.rrsSvEnabled();
  }

  private atsEnabled(): boolean {
    return this.atc !== null && ATS_CTRL.ENABLE.get(this.cfg(ATS_CTRL_REG)) === 1;
  }

  private command(): number {
    return this.cfg('COMMAND');
  }

  /** Places or hides the BAR after Command, BAR0, power or reset state changed. */
  private updateDecode(): void {
    const decoding = !this.hidden && this.power === POWER_STATE.D0 && COMMAND.MEMORY.get(this.command()) === 1;
    const addr = BAR.ADDR.get(this.cfg('BAR0')) << 4;
    if (decoding && !this.bar.place(addr >>> 0)) {
      this.ctx.tr.pcie_bar_outside_window?.(this.rid, addr >>> 0);
    }
    if (!decoding) this.bar.place(null);
  }

  /** A write to the BAR window that decoded to this function. */
  barWrite(off: number, size: number, lo: number, hi: number): WriteOutcome {
    return this.bar.write(off, size, lo, hi);
  }

  // ---- capability hooks ----

  private pmcsrWritten(): void {
    const name = capReg('pm', 'PMCSR');
    const v = this.regs.get(name);
    const want = PMCSR.STATE.get(v);
    const prev = this.power;
    if (want === POWER_STATE.D1 || want === POWER_STATE.D2) {
      // D1/D2 are not supported: the write completes but the state does not change (7.5.2.2).
      this.regs.set(name, PMCSR.STATE.set(v, prev));
      this.ctx.tr.pcie_pm_unsupported?.(this.rid, want);
      return;
    }
    if (want === prev) return;
    this.power = want;
    if (prev === POWER_STATE.D3HOT && want === POWER_STATE.D0 && !PMCSR.NO_SOFT_RESET.get(v)) {
      // D3hot -> D0 with No_Soft_Reset clear: an internal reset to D0uninitialized (PCI PM 1.2 5.4.1).
      this.startReset('pm', this.t.resetResponse);
      return;
    }
    this.updateDecode();
  }

  // ---- resets ----

  /**
   * Starts a reset: requests stop, the overlay shows, and the function comes back after its reset time
   * (faults flr-never-ready and flr-slow may have their chance at an FLR).
   */
  private startReset(kind: ResetKind, overlay: ResetResponse): void {
    this.beginReset(kind, overlay);
    let ns = kind === 'pm' ? this.t.pmResetNs : this.t.flrNs;
    let hang = false;
    if (kind === 'flr') {
      const faults = this.ctx.faults;
      faults.event('flr-start', this.rid);
      // A fault armed by this FLR's start (surprise-removal) may have removed the function just now:
      // it is gone, not resetting, and never comes back (config reads stay all-ones), so there is no
      // reset to time and no FLR fault has a chance.
      if (this.removed) return;
      hang = faults.chance('flr-never-ready', this.rid) !== null;
      const slow = faults.chance('flr-slow', this.rid);
      if (slow) ns = slow.ms * NS_PER_MS;
    }
    this.ctx.tr.pcie_reset_start?.(this.rid, kind, hang);
    if (hang) return; // the function never comes back
    this.resetting!.timer = this.ctx.sched.after(ns, () => this.completeReset());
  }

  private beginReset(kind: ResetKind, overlay: ResetResponse): void {
    bumpPcieStat(this.ctx.stats, kind === 'flr' ? PCIE_STAT.FLRS : kind === 'hot' ? PCIE_STAT.HOT_RESETS : PCIE_STAT.PM_RESETS);
    this.stopActivity(`${kind} reset`);
    if (this.resetting?.timer) this.resetting.timer.cancelled = true;
    this.resetting = { kind, timer: null };
    this.showOverlay(overlay);
    this.updateDecode();
  }

  private completeReset(): void {
    const kind = this.resetting!.kind;
    this.resetting = null;
    this.removeOverlay();
    // FLR leaves link-related controls alone (6.6.2); hot and PM resets reset them too.
    this.resetRegisters(kind === 'flr' ? this.layout.flrExempt : []);
    this.power = POWER_STATE.D0;
    const mailbox = this.bar.regs.get('FW_MAILBOX');
    this.bar.regs.reset();
    this.bar.regs.set('FW_MAILBOX', mailbox);
    if (FW_MAILBOX.RESET_PENDING.get(mailbox)) {
      this.fwAck = this.ctx.sched.after(FW_ACK_NS, () => {
        this.fwAck = null;
        if (this.resetting || this.removed) return;
        this.bar.regs.set('FW_MAILBOX', this.bar.regs.get('FW_MAILBOX') & ~FW_MAILBOX.RESET_PENDING.bits);
        this.bar.sync();
      });
    }
    this.bar.sync();
    this.updateDecode();
    this.trpndStuck = false;
    this.resetsDone++;
    this.ctx.faults.deviceReset(this.rid);
    this.ctx.tr.pcie_reset_done?.(this.rid, kind);
  }

  /** Hot reset from the Root Port: held in reset (link down, all-ones) until released. */
  holdHotReset(): void {
    if (this.removed) return;
    this.beginReset('hot', 'all-ones');
  }

  /** The link is back after a hot reset: the function answers with its reset response until ready. */
  releaseHotReset(): void {
    if (this.removed || this.resetting?.kind !== 'hot') return;
    this.showOverlay(this.t.resetResponse);
    this.resetting.timer = this.ctx.sched.after(this.t.flrNs, () => this.completeReset());
  }

  /** Stops DMA and ATS activity: the transfer is cut, pending invalidation completions are never sent. */
  private stopActivity(why: string): void {
    const x = this.xfer;
    if (x) {
      if (x.timer) x.timer.cancelled = true;
      this.xfer = null;
      bumpPcieStat(this.ctx.stats, PCIE_STAT.DMA_CUT_BY_RESET);
      this.ctx.tr.pcie_dma_cut?.(this.rid, x.done, x.len, why);
    }
    for (const t of this.pendingInv) t.cancelled = true;
    if (this.pendingInv.size) this.ctx.tr.pcie_atc_inv_cancelled?.(this.rid, this.pendingInv.size, why);
    this.pendingInv.clear();
    this.atc?.clear();
    if (this.fwAck) this.fwAck.cancelled = true;
    this.fwAck = null;
  }

  get isRemoved(): boolean {
    return this.removed;
  }

  get inReset(): boolean {
    return this.resetting !== null;
  }

  /** Hot-unplug: the function is gone; every access returns all-ones from now on. */
  remove(): void {
    if (this.removed) return;
    this.stopActivity('surprise removal');
    if (this.resetting?.timer) this.resetting.timer.cancelled = true;
    this.resetting = null;
    this.removed = true;
    this.showOverlay('all-ones');
    this.bar.place(null);
    this.ctx.tr.pcie_removed?.(this.rid);
  }

  /** Fault transactions-pending-stuck: Transactions Pending stays set until the next reset completes. */
  stickTransactionsPending(): void {
    this.trpndStuck = true;
    this.setBits(capReg('exp', 'DEVSTA'), DEVSTA.TRPND.bits, true);
  }

  /** Records an error as the function's AER and Device Status would (AER_UNCOR / AER_COR bit name). */
  recordError(bit: string): { fatal: boolean; correctable: boolean } {
    if (this.hidden) throw new Error(`${this.bdf}: cannot record an error while the function is ${this.unavailableReason()}`);
    const devsta = capReg('exp', 'DEVSTA');
    const hasAer = this.t.capabilities.includes('aer');
    // Own keys only: `toString` or `__proto__` would find Object.prototype's and pass for an error name.
    const uncor = Object.hasOwn(AER_UNCOR, bit) ? (AER_UNCOR as Record<string, { bits: number }>)[bit] : undefined;
    const cor = Object.hasOwn(AER_COR, bit) ? (AER_COR as Record<string, { bits: number }>)[bit] : undefined;
    if (!uncor && !cor) throw new Error(`unknown AER error '${bit}' (known: ${[...Object.keys(AER_UNCOR), ...Object.keys(AER_COR)].join(', ')})`);
    if (cor) {
      if (hasAer) this.setBits(capReg('aer', 'COR_STATUS'), cor.bits, true);
      this.setBits(devsta, DEVSTA.CED.bits, true);
      return { fatal: false, correctable: true };
    }
    const fatal = hasAer ? (this.regs.get(capReg('aer', 'UNCOR_SEVER')) & uncor!.bits) !== 0 : false;
    if (hasAer) this.setBits(capReg('aer', 'UNCOR_STATUS'), uncor!.bits, true);
    this.setBits(devsta, fatal ? DEVSTA.FED.bits : DEVSTA.NFED.bits, true);
    return { fatal, correctable: false };
  }

  // ---- ATS: invalidations from the SMMU ----

  /**
   * An ATC Invalidate Request from the SMMU. Normally the entries go at once and the completion follows
   * after the function's latency. Faults have their chance here: no answer at all (the entries stay:
   * the function is broken), or an answer (with the entries dropped only then) after delayUs, or after
   * the SMMU's timeout (`lateNs` past it), when the SMMU has given up on it.
   */
  atcInvalidate(req: AtcInvalidation, complete: () => void, smmuTimeoutNs: number): void {
    const stats = this.ctx.stats;
    const faults = this.ctx.faults;
    bumpPcieStat(stats, PCIE_STAT.EP_INV_RECEIVED);
    this.ctx.tr.pcie_atc_inv?.(this.rid, req.sid, req.addr, req.size);
    faults.event('atc-inv', this.rid);
    const ignore = !this.removed && !this.resetting && faults.chance('atc-inv-no-answer', this.rid) !== null;
    if (this.removed || this.resetting || ignore) {
      bumpPcieStat(stats, PCIE_STAT.EP_INV_DROPPED);
      const why = this.removed ? 'removed' : this.resetting ? `in ${this.resetting.kind} reset` : 'atc-inv-no-answer (fault)';
      this.ctx.tr.pcie_atc_inv_unanswered?.(this.rid, req.sid, why);
      return;
    }
    const late = faults.chance('atc-inv-late', this.rid);
    const slow = late ? null : faults.chance('atc-inv-slow', this.rid);
    const delayNs = late ? smmuTimeoutNs + (late.lateUs ?? 1000) * NS_PER_US : slow ? slow.delayUs * NS_PER_US : 0;
    const drop = () => bumpPcieStat(stats, PCIE_STAT.EP_INV_ENTRIES, this.atc ? this.atc.invalidate(req) : 0);
    if (delayNs === 0) drop();
    const timer = this.ctx.sched.after(delayNs || this.t.invLatencyNs, () => {
      this.pendingInv.delete(timer);
      if (delayNs !== 0) drop();
      this.ctx.tr.pcie_atc_inv_done?.(this.rid, req.sid, req.addr);
      complete();
    });
    this.pendingInv.add(timer);
  }

  invalidateQueueDepth(): number {
    return ATS_CAP.QDEP.get(this.cfg(capReg('ats', 'CAP'))) || ATS_MAX_QDEP;
  }

  // ---- the DMA engine ----

  private doorbell(triggered: number): void {
    const regs = this.bar.regs;
    if (!DMA_DOORBELL.GO.get(triggered)) return;
    if (this.xfer) {
      this.ctx.tr.pcie_dma_busy?.(this.rid);
      return;
    }
    const len = regs.get('LEN');
    const status = regs.get('STATUS') & ~(DMA_STATUS.DONE.bits | DMA_STATUS.ERROR.bits | DMA_STATUS.ERR_CODE.bits);
    regs.set('DONE_BYTES', 0);
    if (len === 0 || len > DMA_MAX_LEN) {
      regs.set('STATUS', status);
      this.finish(DMA_ERR.LENGTH, `length ${len}`);
      return;
    }
    const src = Number(regs.get64('SRC'));
    const dst = Number(regs.get64('DST'));
    if (!Number.isSafeInteger(src + len) || !Number.isSafeInteger(dst + len)) {
      regs.set('STATUS', status);
      this.finish(DMA_ERR.ADDRESS, `SRC ${hex(regs.get64('SRC'), 0)} or DST ${hex(regs.get64('DST'), 0)} + ${len} reaches 2^53`);
      return;
    }
    regs.set('STATUS', status | DMA_STATUS.BUSY.bits);
    this.xfer = { src, dst, len, done: 0, timer: null };
    // Reads are non-posted: Transactions Pending while the transfer runs (7.5.3.5).
    this.setBits(capReg('exp', 'DEVSTA'), DEVSTA.TRPND.bits, true);
    bumpPcieStat(this.ctx.stats, PCIE_STAT.DMA_TRANSFERS);
    this.ctx.tr.pcie_dma_start?.(this.rid, src, dst, len);
    this.xfer.timer = this.ctx.sched.after(this.t.dmaNsPerPage, () => this.step());
  }

  private step(): void {
    const x = this.xfer;
    if (!x) return;
    x.timer = null;
    if (!COMMAND.MASTER.get(this.command()) || this.power !== POWER_STATE.D0) {
      this.finish(DMA_ERR.BUS_MASTER, 'Bus Master Enable cleared or not in D0');
      return;
    }
    const page = 4096;
    const s = x.src + x.done;
    const d = x.dst + x.done;
    const n = Math.min(x.len - x.done, page - (s % page), page - (d % page));
    const buf = new Uint8Array(n);
    const r = this.access(s, buf, false);
    if (!r.ok) return this.finish(r.code, r.reason);
    const w = this.access(d, buf, true);
    if (!w.ok) return this.finish(w.code, w.reason);
    x.done += n;
    bumpPcieStat(this.ctx.stats, PCIE_STAT.DMA_BYTES, n);
    this.bar.regs.set('DONE_BYTES', x.done);
    this.bar.sync();
    if (x.done === x.len) return this.finish(DMA_ERR.NONE, '');
    x.timer = this.ctx.sched.after(this.t.dmaNsPerPage, () => this.step());
  }

  /** Ends the transfer: status, Transactions Pending, and the completion MSI. */
  private finish(code: number, reason: string): void {
    const regs = this.bar.regs;
    this.xfer = null;
    let st = regs.get('STATUS') & ~DMA_STATUS.BUSY.bits;
    if (code === DMA_ERR.NONE) st |= DMA_STATUS.DONE.bits;
    else {
      st = DMA_STATUS.ERR_CODE.set(st | DMA_STATUS.ERROR.bits, code);
      bumpPcieStat(this.ctx.stats, PCIE_STAT.DMA_ERRORS);
      this.ctx.tr.pcie_dma_error?.(this.rid, DMA_ERR_NAMES[code] ?? String(code), reason);
    }
    regs.set('STATUS', st);
    this.ctx.tr.pcie_dma_done?.(this.rid, regs.get('DONE_BYTES'), code === DMA_ERR.NONE);
    if (!this.trpndStuck) this.setBits(capReg('exp', 'DEVSTA'), DEVSTA.TRPND.bits, false);
    this.bar.sync();
    if (DMA_CTRL.IRQ_EN.get(regs.get('CTRL'))) this.sendMsi();
  }

  private sendMsi(): void {
    if (!this.t.capabilities.includes('msi')) return;
    const ctl = this.regs.get(capReg('msi', 'CONTROL'));
    if (!MSI_CONTROL.ENABLE.get(ctl) || !COMMAND.MASTER.get(this.command())) return;
    const addr = Number(join64(this.regs.get(capReg('msi', 'ADDR_LO')), this.regs.get(capReg('msi', 'ADDR_HI'))));
    const data = this.regs.get(capReg('msi', 'DATA'));
    if (!this.ctx.msiWrite(addr, data)) this.ctx.tr.pcie_msi_abort?.(this.rid, addr);
  }

  /** One request of the transfer (a read into buf or a write of buf) at bus address addr. */
  private access(addr: number, buf: Uint8Array, write: boolean): AccessResult {
    const stats = this.ctx.stats;
    const what = write ? 'write' : 'read';
    if (this.atsEnabled()) {
      const atc = this.atc!;
      let e = atc.lookup(addr, -1);
      if (e && (write ? e.write : e.read)) {
        bumpPcieStat(stats, PCIE_STAT.ATC_HITS);
      } else {
        bumpPcieStat(stats, PCIE_STAT.ATC_MISSES);
        e = undefined;
        const stu = 4096 * 2 ** ATS_CTRL.STU.get(this.regs.get(ATS_CTRL_REG));
        const base = Math.floor(addr / stu) * stu;
        const tr = this.smmu.atsTranslate({ sid: this.sid, addr: base, bytes: stu, write });
        if (tr.status !== 'SUCCESS') {
          bumpPcieStat(stats, PCIE_STAT.ATS_TREQ_UNUSABLE);
          return { ok: false, code: DMA_ERR.ATS, reason: `Translation Request for ${hex(base, 0)}: ${tr.status}${tr.reason ? ` (${tr.reason})` : ''}` };
        }
        if (write ? tr.write : tr.read) {
          e = { base: Math.floor(addr / tr.size) * tr.size, size: tr.size, pa: tr.addr, read: tr.read, write: tr.write, pasid: -1 };
          atc.insert(e);
        } else {
          // No permission for this request: send it untranslated and let the SMMU report the fault.
          bumpPcieStat(stats, PCIE_STAT.ATS_TREQ_UNUSABLE);
        }
      }
      if (e) {
        const pa = e.pa + (addr - e.base);
        const acc = { sid: this.sid, addr: pa, bytes: buf.length, write, requester: this.bdf, iova: addr };
        const res = write ? this.smmu.translatedWrite(acc, buf) : this.smmu.translatedRead(acc, buf);
        return res.ok ? res : { ok: false, code: DMA_ERR.TRANSLATED, reason: `translated ${what} of PA ${hex(pa, 0)}: ${res.reason}` };
      }
    }
    const acc = { sid: this.sid, addr, bytes: buf.length, write, requester: this.bdf };
    const res = write ? this.smmu.dmaWrite(acc, buf) : this.smmu.dmaRead(acc, buf);
    return res.ok ? res : { ok: false, code: DMA_ERR.FAULT, reason: `${what} of ${hex(addr, 0)}: ${res.reason}` };
  }
}
