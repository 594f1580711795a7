// What the IOMMU layer does when a batch of ATC invalidations fails (its CMD_SYNC reported
// CERROR_ATC_INV_SYNC, or did not complete), by policy (src/protocol/ops/smmu.ts ATC_RECOVERY):
//
// - none, reset: nothing here. The issuer carries on as if the invalidation had completed (mainline),
//   which leaves the device's ATC stale while the caller frees the memory; under `reset` skip_err has
//   queued a reset of one device for later (Linux v1), see PciIommu.
// - quarantine (v4): before the failing unmap/attach returns, every ATS master of the failed batch is
//   fenced: ATS off at the function (pci_disable_ats), STE.EATS cleared through the hitless writer
//   (CFGI_STE + SYNC), so the SMMU refuses its Translated requests and Translation Requests, and its
//   ATS entries in every domain's invalidation list marked broken, so no later invalidation (range,
//   full, attach or detach) sends it an ATC_INV that would time out again. The master's `fenced` flag
//   makes any later attach keep EATS clear. The device is then reported broken (onFence); only a
//   successful reset from outside lifts the fence (unfence, from pci_dev_reset_iommu_done).
// - quarantine-bisect: first re-issue the batch's ATC_INVs per StreamID in halves, each half with its
//   own CMD_SYNC, descending only into halves that fail: one culprit among N costs at most
//   2*ceil(log2 N) extra SYNCs (none for N = 1), and innocent devices keep ATS. A device that answers
//   the retry is not fenced (its ATC was invalidated by the retry). Only a batch the SMMU reported
//   failed (SYNC_ATC_TIMEOUT) is bisected: when the driver's own poll gave up first (-ETIMEDOUT), the
//   SMMU is still waiting for the completion, every retry would queue behind the stuck CMD_SYNC and
//   time out alike, so the whole batch is fenced as under quarantine; the innocent devices get their
//   fence lifted by the reset that follows.
//
// Invariant: when recover() returns, every master whose ATC may still hold translations the failed
// batch was to remove either has answered a later ATC_INV or can no longer use its ATC (fenced).

import { EATS, STE } from '../../src/arch/smmu/ste.ts';
import { qget, qset } from '../../src/arch/bits.ts';
import type { CmdEnt } from './cmds.ts';
import type { RecoveryStats } from '../../src/protocol/ops/smmu.ts';
import type { CmdIssuer } from './issue.ts';
import { SYNC_ATC_TIMEOUT } from './cmdq.ts';
import type { ArmSmmuDevice } from './smmu.ts';
import type { StreamTable } from './ste.ts';

/** What recovery needs of a master (domain.ts's Master). */
export interface FenceableMaster {
  /** The device's name (PCI: "0000:BB:DD.F"), for the fence trace points. */
  readonly name: string;
  readonly sids: readonly number[];
  readonly ats: { disable(): void } | null;
  atsEnabled: boolean;
  fenced: boolean;
  fences: number;
  atcFailedSince: number | null;
}

/** What recovery needs of the IOMMU layer (domain.ts's ArmSmmuIommu). */
export interface RecoveryHost<M extends FenceableMaster> {
  readonly dev: ArmSmmuDevice;
  readonly cmds: CmdIssuer;
  readonly strtab: StreamTable;
  masterBySid(sid: number): M | undefined;
  markAtsBroken(m: M, broken: boolean): void;
}

/** One ATC_INV of a failed batch, with the StreamID it was for. */
export interface AtcInvSent {
  sid: number;
  ent: CmdEnt;
}


export class AtcRecovery<Master extends FenceableMaster> {
  readonly stats: RecoveryStats = { failedBatches: 0, staleReturns: 0, extraSyncs: 0, fences: 0, fenceLatencyNs: [] };
  /** The PCI glue's hook: a fenced master's device is reported broken (iommu_report_device_broken). */
  onFence: ((m: Master) => void) | null = null;

  constructor(private readonly iommu: RecoveryHost<Master>) {}

  private get policy() {
    return this.iommu.dev.shared.atcRecovery;
  }

  /**
   * A batch of ATC_INVs issued at platform time t0 failed with `ret` (SYNC_ATC_TIMEOUT, -ETIMEDOUT);
   * act by policy before the caller returns.
   */
  recover(sent: readonly AtcInvSent[], t0: number, ret: number): void {
    this.stats.failedBatches++;
    // A SMMU in Service Failure Mode fails every CMD_SYNC, and aborts every transaction: no device
    // can use its ATC through it, and nothing more can be learnt or fenced.
    if (this.iommu.dev.failed) return;
    const sids = [...new Set(sent.map((s) => s.sid))];
    for (const sid of sids) {
      const m = this.iommu.masterBySid(sid);
      if (m && m.atcFailedSince === null) m.atcFailedSince = t0;
    }
    let culprits: number[];
    switch (this.policy) {
      case 'none':
      case 'reset':
        this.stats.staleReturns++;
        return;
      case 'quarantine':
        culprits = sids;
        break;
      case 'quarantine-bisect':
        if (ret !== SYNC_ATC_TIMEOUT) {
          culprits = sids;
          break;
        }
        culprits = this.bisect(sids.map((sid) => sent.filter((s) => s.sid === sid)));
        // A device that answered the retry has an invalidated ATC: nothing is pending for it.
        for (const sid of sids) {
          const m = this.iommu.masterBySid(sid);
          if (m && !culprits.includes(sid)) m.atcFailedSince = null;
        }
        break;
    }
    const masters = new Set(culprits.map((sid) => this.iommu.masterBySid(sid)).filter((m): m is Master => m !== undefined));
    for (const m of masters) this.fence(m);
  }

  /** The StreamIDs among `groups` (each one StreamID's ATC_INVs) whose re-issued ATC_INVs still fail. */
  private bisect(groups: readonly (readonly AtcInvSent[])[]): number[] {
    const cmds = this.iommu.cmds;
    const fails = (part: readonly (readonly AtcInvSent[])[]) => {
      for (const g of part) for (const s of g) cmds.add(s.ent);
      this.stats.extraSyncs++;
      return cmds.submit() !== 0;
    };
    const search = (part: readonly (readonly AtcInvSent[])[]): number[] => {
      if (part.length === 1) return [part[0]![0]!.sid];
      const half = Math.ceil(part.length / 2);
      const out: number[] = [];
      for (const h of [part.slice(0, half), part.slice(half)]) if (fails(h)) out.push(...search(h));
      return out;
    };
    // The whole batch failed once already: search its halves (one culprit: two SYNCs per level). A
    // batch of one device has nothing to bisect: it is the culprit.
    return search(groups);
  }

  /** Fences a master (see the header); idempotent. */
  fence(m: Master): void {
    if (m.fenced) return;
    m.fenced = true;
    m.fences++;
    // The function first stops asking for translations, then the SMMU stops honouring them.
    if (m.atsEnabled) m.ats?.disable();
    m.atsEnabled = false;
    const st = this.iommu.strtab;
    for (const sid of m.sids) {
      const ste = st.readSte(sid);
      if (qget(ste, STE.EATS) === EATS.ABT) continue;
      qset(ste, STE.EATS, EATS.ABT);
      this.stats.extraSyncs += st.writeSte(sid, ste);
    }
    this.iommu.markAtsBroken(m, true);
    this.stats.fences++;
    if (m.atcFailedSince !== null) this.stats.fenceLatencyNs.push(this.iommu.dev.p.clock.now() - m.atcFailedSince);
    m.atcFailedSince = null;
    this.iommu.dev.p.trace.arm_smmu_atc_fence?.(m.name, m.sids[0] ?? 0);
    this.onFence?.(m);
  }

  /**
   * A reset of the master's device succeeded (pci_dev_reset_iommu_done, ok): the fence lifts. Its ATS
   * entries count again, and the next attach (the reset's re-attach) turns ATS and EATS back on.
   */
  unfence(m: Master): void {
    if (!m.fenced) return;
    m.fenced = false;
    this.iommu.markAtsBroken(m, false);
    this.iommu.dev.p.trace.arm_smmu_atc_unfence?.(m.name, m.sids[0] ?? 0);
  }

  /** Under `reset`, the device was blocked for its reset: the time since its failed invalidation. */
  blocked(m: Master): void {
    if (m.atcFailedSince === null) return;
    this.stats.fenceLatencyNs.push(this.iommu.dev.p.clock.now() - m.atcFailedSince);
    m.atcFailedSince = null;
  }
}
