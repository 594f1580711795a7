// ATC invalidation in the SMMU (IHI 0070 3.9.1.4, 4.5.1, 4.7.3): CMD_ATC_INV turns into an ATS
// Invalidate Request to the endpoint at the command's StreamID, and a later CMD_SYNC completes only
// once every earlier invalidation has either been answered or timed out.
//
// - With SMMUEN=0 the command is consumed and nothing is sent (4.5.1).
// - A StreamID with no ATS endpoint behind it has no ATC to invalidate: the command completes at once.
// - At most the endpoint's Invalidate Queue Depth requests are outstanding per endpoint (PCIe r6.0
//   10.3.1): a further ATC_INV for it stalls the command queue until one completes or times out.
// - An invalidation with no completion within the timeout is abandoned: it never completes (a late
//   completion is discarded), it frees its queue slot, and the CMD_SYNC that waits for it fails with
//   CERROR_ATC_INV_SYNC, CONS left on the SYNC (4.7.3, 7.1). Once software acknowledges the error the
//   SYNC is executed again and, with nothing outstanding, completes: the issuer then sees success
//   although the ATC may still hold stale translations.
//
// The timeout is IMPLEMENTATION DEFINED; PCIe allows an endpoint up to a minute (10.3.1), and real SMMUs
// give up much sooner. The default here is shorter than Linux's 1 s CMD_SYNC poll so the SMMU reports the
// error before the driver gives up; both are configurable in platform time.

import { CERROR } from '../../src/arch/smmu/regs.ts';
import { F } from '../../src/arch/smmu/commands.ts';
import { NS_PER_MS } from '../../src/arch/time.ts';
import { PCIE_STAT, bumpPcieStat, recordInvLatency } from '../../src/machine/pcie-stats.ts';
import type { HwContext } from '../context.ts';
import type { Timer } from '../scheduler.ts';
import { DONE, STALL, type CommandQueue, type ExecResult, type SyncParticipant } from './cmdq.ts';
import type { AtcInvalidation, AtsEndpoint } from './services.ts';

/** Default platform time the SMMU waits for an Invalidate Completion. */
export const ATC_INV_TIMEOUT_NS = 500 * NS_PER_MS;

interface Outstanding {
  ep: AtsEndpoint;
  sid: number;
  sentAt: number;
  timer: Timer;
  settled: boolean;
}

export class AtcInvalidator implements SyncParticipant {
  private readonly perEndpoint = new Map<AtsEndpoint, number>();
  private outstanding = 0;
  /** Invalidations that timed out since a CMD_SYNC last reported them. */
  private timedOut = 0;
  private syncWaiter: (() => void) | null = null;
  /** The endpoint whose full invalidate queue stalls the command queue. */
  private stalledOn: AtsEndpoint | null = null;

  constructor(
    private readonly ctx: HwContext,
    private readonly cmdq: CommandQueue,
    /** SMMU_CR0ACK.SMMUEN. */
    private readonly smmuEnabled: () => boolean,
    private readonly endpoints: ReadonlyMap<number, AtsEndpoint>,
    public timeoutNs: number = ATC_INV_TIMEOUT_NS,
  ) {
    cmdq.setHandler('ATC_INV', (c) => this.atcInv(c));
    cmdq.addSyncParticipant(this);
  }

  /** Invalidations sent and not yet completed or timed out. */
  get pending(): number {
    return this.outstanding;
  }

  private atcInv(c: Uint32Array): ExecResult {
    const stats = this.ctx.stats;
    const sid = F.SID.read(c);
    if (!this.smmuEnabled()) {
      bumpPcieStat(stats, PCIE_STAT.ATC_INV_NOT_SENT);
      this.ctx.tr.smmuv3_atc_inv_skipped?.(sid, 'SMMUEN=0');
      return DONE;
    }
    const ep = this.endpoints.get(sid);
    if (!ep) {
      bumpPcieStat(stats, PCIE_STAT.ATC_INV_NOT_SENT);
      this.ctx.tr.smmuv3_atc_inv_skipped?.(sid, 'no ATS endpoint at this StreamID');
      return DONE;
    }
    const n = this.perEndpoint.get(ep) ?? 0;
    if (n >= ep.invalidateQueueDepth()) {
      // Back-pressure: the queue waits at this command until the endpoint has room.
      if (this.stalledOn !== ep) bumpPcieStat(stats, PCIE_STAT.ATC_INV_STALLS);
      this.stalledOn = ep;
      return STALL;
    }
    const req: AtcInvalidation = {
      sid,
      ssv: F.SSV.read(c) === 1,
      ssid: F.SSID.read(c),
      global: F.GLOBAL.read(c) === 1,
      addr: F.VA.read(c) * 4096,
      size: F.ATC_SIZE.read(c),
    };
    this.perEndpoint.set(ep, n + 1);
    this.outstanding++;
    this.ctx.tr.smmuv3_atc_inv?.(sid, req.addr, req.size);
    bumpPcieStat(stats, PCIE_STAT.ATC_INV_SENT);
    const o: Outstanding = {
      ep,
      sid,
      sentAt: this.ctx.now(),
      settled: false,
      timer: this.ctx.sched.after(this.timeoutNs, () => this.expire(o)),
    };
    ep.atcInvalidate(req, () => this.completed(o), this.timeoutNs);
    return DONE;
  }

  private completed(o: Outstanding): void {
    if (o.settled) {
      // The SMMU gave up on this request: its completion means nothing any more.
      bumpPcieStat(this.ctx.stats, PCIE_STAT.ATC_INV_LATE);
      this.ctx.tr.smmuv3_atc_inv_late?.(o.sid);
      return;
    }
    o.timer.cancelled = true;
    bumpPcieStat(this.ctx.stats, PCIE_STAT.ATC_INV_COMPLETED);
    recordInvLatency(this.ctx.stats, this.ctx.now() - o.sentAt);
    this.settle(o);
  }

  private expire(o: Outstanding): void {
    if (o.settled) return;
    this.timedOut++;
    bumpPcieStat(this.ctx.stats, PCIE_STAT.ATC_INV_TIMEOUTS);
    this.ctx.tr.smmuv3_atc_inv_timeout?.(o.sid, this.timeoutNs);
    this.settle(o);
  }

  private settle(o: Outstanding): void {
    o.settled = true;
    this.outstanding--;
    this.perEndpoint.set(o.ep, this.perEndpoint.get(o.ep)! - 1);
    if (this.stalledOn === o.ep) {
      this.stalledOn = null;
      this.cmdq.kick();
    }
    if (this.outstanding === 0 && this.syncWaiter) {
      const w = this.syncWaiter;
      this.syncWaiter = null;
      w();
    }
  }

  busy(wake: () => void): boolean {
    if (this.outstanding === 0) return false;
    this.syncWaiter = wake;
    return true;
  }

  takeError(): number {
    if (this.timedOut === 0) return 0;
    this.timedOut = 0;
    return CERROR.ATC_INV_SYNC;
  }
}
