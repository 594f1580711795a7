// IOMMU domains and masters on the SMMUv3 (Linux arm-smmu-v3.c: arm_smmu_probe_device,
// arm_smmu_domain_alloc_paging, arm_smmu_attach_dev / attach_dev_ste, the invs array and
// arm_smmu_domain_inv_range, arm_smmu_atc_inv_master).
//
// A master is a device with one or more StreamIDs. A domain is what a master is attached to:
//   identity  traffic bypasses translation (STE Config=bypass)
//   blocked   traffic is terminated without events (STE Config=abort)
//   paging    an I/O page table: stage 1 (CD with an ASID, STE Config=stage 1) or stage 2 (VMID,
//             STE Config=stage 2)
// Attaching builds the STE (and the CD for stage 1) and changes them through the hitless writer.
//
// Each paging domain keeps the list of what must be invalidated when its page table changes (Linux's
// struct arm_smmu_invs): one TLB tag per SMMU (its ASID or VMID) and, per ATS-enabled master, one
// entry per StreamID for the endpoint's ATC. Entries are reference-counted by the masters that need
// them; a tag whose last user detaches is flushed (TLBI_NH_ASID / TLBI_S12_VMALL). Invalidation walks
// the list in order: TLBIs, a CMD_SYNC, then ATC_INVs and another CMD_SYNC, so an endpoint can never
// refill its ATC from a stale IOTLB entry (IHI 0070 3.9.1.4: TLBI, SYNC, ATC_INV, SYNC).

import { S1DSS } from '../../src/arch/smmu/ste.ts';
import { PAGE_SIZE } from '../../src/arch/platform.ts';
import { atcInvEnt, type CmdEnt } from './cmds.ts';
import { CTXDESC_LINEAR_CDMAX, CdTable, clearCd, makeS1Cd, writeCd } from './cd.ts';
import { IdAllocator } from './ids.ts';
import { CmdIssuer } from './issue.ts';
import { FEAT, type ArmSmmuDevice } from './smmu.ts';
import { shouldFail } from '../fault-inject.ts';
import { AtcRecovery, type AtcInvSent } from './atc-recovery.ts';
import { EATS, STE } from '../../src/arch/smmu/ste.ts';
import { qset } from '../../src/arch/bits.ts';
import { StreamTable, makeAbortSte, makeBypassSte, makeCdtableSte, makeS2Ste, steFeatures, type Entry, type SteFeatures } from './ste.ts';
import { ArmLpaeIoPgtable, gatherFlushOps } from '../iommu/io-pgtable-arm.ts';
import { IommuError, iommuMap, iommuUnmap, newGather, resetGather, type IotlbGather } from '../iommu/iommu.ts';

/** The ATS controls of a PCIe endpoint, provided by its driver (pci_enable_ats / pci_disable_ats). */
export interface AtsOps {
  /** Enables ATS at the endpoint with the Smallest Translation Unit 2^stu bytes. */
  enable(stu: number): void;
  /** Disables ATS at the endpoint; no Translation Request is sent after this returns. */
  disable(): void;
}

export interface MasterOptions {
  /** SubstreamID bits the device uses (PASIDs); capped at the SMMU's SSIDSIZE. Default 0. */
  ssidBits?: number;
  /** The device tolerates stalls (stall_enabled): CDs with S=1, STEs with S2S=1. */
  stall?: boolean;
  /** The device is an ATS-capable PCIe endpoint. */
  ats?: AtsOps;
}

export class Master {
  /** ATS is enabled at the endpoint (and EATS=0b01 in its STEs). */
  atsEnabled = false;
  /** Its ATS entries are in its domain's invalidation list (broken or not). */
  atsInvs = false;
  /** Fenced after an ATC invalidation timeout (atc-recovery.ts): no ATS, no EATS, until a good reset. */
  fenced = false;
  /** Times it was fenced. */
  fences = 0;
  /** Platform time of the first failed ATC invalidation not yet answered by a fence (null: none). */
  atcFailedSince: number | null = null;
  domain: Domain | null = null;
  cdTable: CdTable | null = null;

  constructor(
    readonly name: string,
    readonly sids: readonly number[],
    readonly ssidBits: number,
    readonly stallEnabled: boolean,
    readonly ats: AtsOps | null,
  ) {}
}

export interface StaticDomain {
  readonly type: 'identity' | 'blocked';
  readonly id: number;
}
export type Domain = StaticDomain | PagingDomain;

/** Kinds of invalidation targets, in the order they are invalidated (enum arm_smmu_inv_type). */
const INV_TYPES = ['S1_ASID', 'S2_VMID', 'S2_VMID_S1_CLEAR', 'ATS', 'ATS_FULL'] as const;
export type InvType = (typeof INV_TYPES)[number];

/** One invalidation target of a domain (struct arm_smmu_inv). */
export interface Inv {
  type: InvType;
  /** ASID (S1_ASID), VMID (S2_*), or StreamID (ATS*). */
  id: number;
  /** SubstreamID for ATS entries (0 = the whole ATC of the StreamID when given with size 0). */
  ssid: number;
  /** Masters that need this entry; 0 = a "trash" entry kept until the next purge. */
  users: number;
  /** An ATS entry of a fenced master: skipped by every invalidation (Linux's INV_TYPE_ATS_BROKEN). */
  broken?: boolean;
}

const invCmp = (a: Inv, b: Inv): number => INV_TYPES.indexOf(a.type) - INV_TYPES.indexOf(b.type) || a.id - b.id || a.ssid - b.ssid;
const isAts = (t: InvType): boolean => t === 'ATS' || t === 'ATS_FULL';

/** A domain's invalidation targets, sorted in invalidation order (struct arm_smmu_invs). */
export class InvList {
  readonly entries: Inv[] = [];

  /** Adds a master's targets: existing (or trashed) entries gain a user, new ones are inserted in order. */
  merge(add: readonly Inv[]): void {
    for (const a of add) {
      const e = this.entries.find((x) => invCmp(x, a) === 0);
      if (e) e.users++;
      else {
        const at = this.entries.findIndex((x) => invCmp(x, a) > 0);
        this.entries.splice(at < 0 ? this.entries.length : at, 0, { ...a, users: 1 });
      }
    }
  }

  /**
   * Removes a master's targets: each loses a user; a TLB tag that loses its last user is passed to
   * `flushTag` (its cached translations must go before the tag can be reused).
   */
  unref(rem: readonly Inv[], flushTag: (inv: Inv) => void): void {
    for (const r of rem) {
      const e = this.entries.find((x) => invCmp(x, r) === 0 && x.users > 0);
      if (!e) throw new Error(`invalidation list: ${r.type} ${r.id} removed but not present`);
      e.users--;
      if (e.users === 0 && !isAts(e.type)) flushTag(e);
    }
  }

  /** Drops entries without users. */
  purge(): void {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.users === 0) this.entries.splice(i, 1);
  }
}

export interface PagingOptions {
  /** Translation stage; default stage 1 when the SMMU has it, else stage 2 (arm_smmu_domain_alloc_paging). */
  stage?: 1 | 2;
}

/** Smallest Translation Unit the driver asks endpoints for: the smallest page size, 4 KiB. */
const ATS_STU = 12;

/** A domain with an I/O page table. */
export class PagingDomain {
  readonly type = 'paging' as const;
  readonly pgtbl: ArmLpaeIoPgtable;
  readonly invs = new InvList();
  readonly masters = new Set<Master>();
  /** Tag this domain's TLB entries carry: ASID for stage 1, VMID for stage 2. */
  readonly asid: number;
  readonly vmid: number;
  /** Invalidation requests this domain made (ranges and full flushes), for statistics. */
  readonly invStats = { ranges: 0, full: 0 };
  /** The DMA sanitizer's tag for this domain's mappings (-1: more live domains than it tracks). */
  readonly sanTag: number;
  private freed = false;

  constructor(
    private readonly iommu: ArmSmmuIommu,
    readonly id: number,
    readonly stage: 1 | 2,
  ) {
    const dev = iommu.dev;
    this.sanTag = dev.p.sanitizer.allocTag();
    const coherentWalk = dev.has(FEAT.COHERENCY);
    const tlb = gatherFlushOps(
      (iova, size, granule) => this.invRange(iova, size, granule, false),
      (g) => this.iotlbSync(g),
    );
    // Stage 1 takes 48-bit VAs (no VAX) and outputs the SMMU's IAS; stage 2 maps IAS to OAS.
    if (stage === 1) {
      this.asid = iommu.asids.alloc();
      this.vmid = 0;
      this.pgtbl = ArmLpaeIoPgtable.alloc(dev.p, 'ARM_64_LPAE_S1', { ias: 48, oas: dev.shared.ias, coherentWalk, tlb });
    } else {
      this.asid = 0;
      this.vmid = iommu.vmids.alloc();
      this.pgtbl = ArmLpaeIoPgtable.alloc(dev.p, 'ARM_64_LPAE_S2', { ias: dev.shared.ias, oas: dev.shared.oas, coherentWalk, tlb });
    }
  }

  /** Maps [iova, iova+size) to pa with IOMMU_* prot (iommu_map). */
  map(iova: number, pa: number, size: number, prot: number): void {
    this.checkLive();
    iommuMap(this.pgtbl, iova, pa, size, prot, (g) => this.iotlbSync(g));
    this.iommu.dev.p.sanitizer.map(this.sanTag, pa, size, 1);
  }

  /** Unmaps and invalidates before returning (iommu_unmap); returns the bytes unmapped. */
  unmap(iova: number, size: number): number {
    const g = newGather();
    const n = this.unmapFast(iova, size, g);
    this.iotlbSync(g);
    this.unmapped(g);
    return n;
  }

  /**
   * A strict unmap that gathered into `g` returns, its invalidation done: what it removed is no longer
   * mapped, as far as the DMA sanitizer is concerned.
   */
  unmapped(g: IotlbGather): void {
    const san = this.iommu.dev.p.sanitizer;
    for (let i = 0; i < g.released.length; i += 2) san.map(this.sanTag, g.released[i]!, g.released[i + 1]!, -1);
    g.released.length = 0;
  }

  /**
   * A lazy unmap that gathered into `g` returns, its invalidation left to a flush queue: what it
   * removed is no longer mapped but inside the lazy window until lazyFlushed(the returned list).
   */
  unmappedLazy(g: IotlbGather): number[] {
    const san = this.iommu.dev.p.sanitizer;
    const r = g.released;
    g.released = [];
    for (let i = 0; i < r.length; i += 2) {
      san.lazyWindow(this.sanTag, r[i]!, r[i + 1]!, 1);
      san.map(this.sanTag, r[i]!, r[i + 1]!, -1);
    }
    return r;
  }

  /** The flush covering a lazy unmap's ranges (from unmappedLazy) has completed. */
  lazyFlushed(r: readonly number[]): void {
    const san = this.iommu.dev.p.sanitizer;
    for (let i = 0; i < r.length; i += 2) san.lazyWindow(this.sanTag, r[i]!, r[i + 1]!, -1);
  }

  /** Unmaps, leaving leaf invalidations in the gather (iommu_unmap_fast); returns the bytes unmapped. */
  unmapFast(iova: number, size: number, gather: IotlbGather): number {
    this.checkLive();
    return iommuUnmap(this.pgtbl, iova, size, gather);
  }

  /** Invalidates what the gather collected (arm_smmu_iotlb_sync), then empties it; 0 or the first CMD_SYNC error. */
  iotlbSync(g: IotlbGather): number {
    const ret = g.pgsize ? this.invRange(g.start, g.end - g.start + 1, g.pgsize, true) : 0;
    resetGather(g);
    return ret;
  }

  /** Invalidates everything this domain's tags cache (arm_smmu_flush_iotlb_all / tlb_inv_context). */
  flushAll(): void {
    this.invRange(0, 0, 0, false);
  }

  iovaToPhys(iova: number): number | null {
    return this.pgtbl.iovaToPhys(iova);
  }

  /**
   * Invalidates [iova, iova+size) for every target of the domain (arm_smmu_domain_inv_range); size 0
   * means everything. `granule` is the leaf size for leaf invalidations; with leaf=false walk-cache
   * entries go too. Returns 0 or the first CMD_SYNC error (a failed ATC batch has been recovered from,
   * by policy, before this returns).
   */
  invRange(iova: number, size: number, granule: number, leaf: boolean): number {
    if (size === 0) this.invStats.full++;
    else this.invStats.ranges++;
    // Fault 'skip-invalidation': a driver that forgets its TLB and ATC invalidations (the domain still
    // flushes its tag when its last master detaches).
    if (shouldFail(this.iommu.dev.p, 'skip-invalidation')) return 0;
    return this.iommu.invalidate(this.invs, iova, size, granule, leaf);
  }

  private checkLive(): void {
    if (this.freed) throw new Error(`domain ${this.id} was freed`);
  }

  /** Frees the page table and the tag (arm_smmu_domain_free_paging); no master may be attached. */
  free(): void {
    this.checkLive();
    if (this.masters.size) throw new Error(`domain ${this.id}: cannot free while ${[...this.masters].map((m) => m.name).join(', ')} attached`);
    this.pgtbl.free();
    this.iommu.pagingDomains.delete(this);
    this.iommu.dev.p.sanitizer.freeTag(this.sanTag);
    if (this.stage === 1) this.iommu.asids.free(this.asid);
    else this.iommu.vmids.free(this.vmid);
    this.freed = true;
  }
}

/**
 * The IOMMU layer over one SMMU, on one CPU: masters by StreamID, domains, attach, invalidation.
 * Masters and domains live on the CPU that created them; ASIDs, VMIDs and the stream table are shared
 * by every CPU.
 */
export class ArmSmmuIommu {
  readonly cmds: CmdIssuer;
  readonly strtab: StreamTable;
  readonly asids: IdAllocator;
  readonly vmids: IdAllocator;
  readonly f: SteFeatures;
  /** What to do when an ATC invalidation times out (atc-recovery.ts). */
  readonly recovery: AtcRecovery<Master>;
  /** Live paging domains (a fenced master's ATS entries are marked in every one). */
  readonly pagingDomains = new Set<PagingDomain>();
  readonly identity: StaticDomain = { type: 'identity', id: 1 };
  readonly blocked: StaticDomain = { type: 'blocked', id: 2 };
  private readonly streams = new Map<number, Master>();
  private nextDomainId = 3;

  constructor(readonly dev: ArmSmmuDevice) {
    this.cmds = new CmdIssuer(dev);
    this.strtab = new StreamTable(dev, this.cmds);
    this.asids = IdAllocator.asids(dev.p.mem, dev.shared.idStatePa, dev.shared.asidBits);
    this.vmids = IdAllocator.vmids(dev.p.mem, dev.shared.idStatePa, dev.shared.vmidBits);
    this.f = steFeatures(dev);
    this.recovery = new AtcRecovery(this);
    dev.evtq.clientName = (sid) => this.streams.get(sid)?.name ?? null;
  }

  masterBySid(sid: number): Master | undefined {
    return this.streams.get(sid);
  }

  /** Marks a master's ATS entries broken (or whole again) in every domain's invalidation list. */
  markAtsBroken(m: Master, broken: boolean): void {
    for (const d of this.pagingDomains) for (const inv of d.invs.entries) if (isAts(inv.type) && m.sids.includes(inv.id)) inv.broken = broken;
  }

  // ---- masters (arm_smmu_probe_device / arm_smmu_release_device) ----

  /**
   * The first of a device's StreamIDs the stream table cannot hold, or null when all fit: the check of
   * arm_smmu_insert_master / arm_smmu_init_sid_strtab (arm_smmu_sid_in_range), which fails the probe
   * with -ERANGE, so the device is not put behind the IOMMU.
   */
  sidOutOfRange(sids: readonly number[]): number | null {
    return sids.find((sid) => !this.strtab.sidInRange(sid)) ?? null;
  }

  /**
   * Registers a device with its StreamIDs; its STEs stay abort until it is attached. A StreamID the
   * stream table cannot hold fails with IommuError ERANGE before anything changes (arm_smmu_probe_device).
   */
  probeDevice(name: string, sids: readonly number[], opts: MasterOptions = {}): Master {
    if (sids.length === 0) throw new Error(`${name}: a master needs at least one StreamID`);
    for (const sid of sids) {
      const owner = this.streams.get(sid);
      if (owner) throw new Error(`${name}: StreamID 0x${sid.toString(16)} already belongs to ${owner.name}`);
      if (sids.indexOf(sid) !== sids.lastIndexOf(sid)) throw new Error(`${name}: StreamID 0x${sid.toString(16)} listed twice`);
    }
    const bad = this.sidOutOfRange(sids);
    if (bad !== null) throw new IommuError('ERANGE', `${name}: StreamID 0x${bad.toString(16)} is outside the stream table (${this.strtab.sidLimit} StreamIDs)`);
    for (const sid of sids) this.strtab.ensureL2(sid);
    // Without 2-level CD tables a master gets at most a 64 KiB linear table (arm_smmu_probe_device:
    // ssid_bits capped at CTXDESC_LINEAR_CDMAX).
    const ssidCap = this.dev.has(FEAT.TWO_LVL_CDTAB) ? this.dev.shared.ssidBits : Math.min(this.dev.shared.ssidBits, CTXDESC_LINEAR_CDMAX);
    const ssidBits = Math.min(opts.ssidBits ?? 0, ssidCap);
    if (opts.stall && !this.dev.has(FEAT.STALLS)) throw new Error(`${name}: stall requested but the SMMU cannot stall (IDR0.STALL_MODEL)`);
    if (opts.ats && !this.dev.has(FEAT.ATS)) this.dev.log('info', `${name}: ATS not supported by the SMMU, not used`);
    const m = new Master(name, [...sids], ssidBits, !!opts.stall, opts.ats ?? null);
    for (const sid of sids) this.streams.set(sid, m);
    return m;
  }

  /** Detaches a master (to the blocked domain), frees its CD table and forgets its StreamIDs. */
  releaseDevice(m: Master): void {
    this.attach(m, this.blocked);
    m.cdTable?.free();
    m.cdTable = null;
    for (const sid of m.sids) this.streams.delete(sid);
  }

  // ---- domains ----

  allocPaging(opts: PagingOptions = {}): PagingDomain {
    const stage = opts.stage ?? (this.dev.has(FEAT.TRANS_S1) ? 1 : 2);
    if (stage === 1 && !this.dev.has(FEAT.TRANS_S1)) throw new Error('stage-1 domain: the SMMU has no stage 1 (IDR0.S1P=0)');
    if (stage === 2 && !this.dev.has(FEAT.TRANS_S2)) throw new Error('stage-2 domain: the SMMU has no stage 2 (IDR0.S2P=0)');
    const d = new PagingDomain(this, this.nextDomainId++, stage);
    this.pagingDomains.add(d);
    return d;
  }

  private atsSupported(m: Master): boolean {
    return m.ats !== null && this.dev.has(FEAT.ATS);
  }

  /** The invalidation targets a master adds to a domain (arm_smmu_master_build_invs). */
  private buildInvs(m: Master, d: PagingDomain, ats: boolean): Inv[] {
    const out: Inv[] = [d.stage === 1 ? { type: 'S1_ASID', id: d.asid, ssid: 0, users: 1 } : { type: 'S2_VMID', id: d.vmid, ssid: 0, users: 1 }];
    if (ats) for (const sid of m.sids) out.push({ type: 'ATS', id: sid, ssid: 0, users: 1 });
    return out;
  }

  /**
   * Writes the same STE for every StreamID of the master (arm_smmu_install_ste_for_dev). A fenced
   * master's STE never gets EATS, whatever the attach that builds it decided earlier.
   */
  private installSte(m: Master, ste: Entry): void {
    if (m.fenced) qset(ste, STE.EATS, EATS.ABT);
    for (const sid of m.sids) this.strtab.writeSte(sid, ste);
  }

  private cdTableOf(m: Master): CdTable {
    if (!m.cdTable) m.cdTable = new CdTable(this.dev.p, m.ssidBits, this.dev.has(FEAT.TWO_LVL_CDTAB));
    return m.cdTable;
  }

  /**
   * Attaches a master to a domain (arm_smmu_attach_dev / arm_smmu_attach_dev_ste): prepare the new
   * domain's invalidation list and turn ATS off at the device if it must go, write the CD and STE,
   * then turn ATS on (after flushing the ATC) or flush the ATC, and let go of the old domain.
   */
  attach(m: Master, d: Domain): void {
    const old = m.domain;
    if (old === d) return;
    const ats = d.type === 'paging' && this.atsSupported(m) && !m.fenced;
    // Prepare.
    const san = this.dev.p.sanitizer;
    const tag = d.type === 'paging' ? d.sanTag : -1;
    for (const sid of m.sids) san.attachBegin(sid, tag);
    if (d.type === 'paging') {
      d.invs.merge(this.buildInvs(m, d, ats));
      d.masters.add(m);
    }
    // The endpoint must stop sending translation requests before its STE stops accepting them.
    if (!ats && m.atsEnabled) m.ats!.disable();

    // Install.
    if (d.type === 'paging' && d.stage === 1) {
      const table = this.cdTableOf(m);
      writeCd(this.cmds, table, m.sids, 0, makeS1Cd(d.asid, d.pgtbl.s1Config(), { stallEnabled: m.stallEnabled }));
      this.installSte(m, makeCdtableSte(this.f, table, { ats, s1dss: S1DSS.SSID0, stallEnabled: m.stallEnabled }));
    } else if (d.type === 'paging') {
      this.installSte(m, makeS2Ste(this.f, { vmid: d.vmid, ...d.pgtbl.s2Config() }, { ats, stallEnabled: m.stallEnabled }));
    } else {
      this.installSte(m, d.type === 'identity' ? makeBypassSte(this.f) : makeAbortSte());
    }

    // Commit. (The ATC flush may time out and fence the master: then ATS stays off.)
    if (ats && !m.atsEnabled) {
      // Whatever the ATC holds predates this configuration.
      this.atcInvMaster(m);
      if (!m.fenced) m.ats!.enable(ATS_STU);
    } else if (m.atsEnabled) {
      this.atcInvMaster(m);
    }
    if (old?.type === 'paging') {
      old.masters.delete(m);
      old.invs.unref(this.buildInvs(m, old, m.atsInvs), (inv) => this.flushTag(inv));
      old.invs.purge();
    }
    m.atsEnabled = ats && !m.fenced;
    m.atsInvs = ats;
    m.domain = d;
    for (const sid of m.sids) san.attach(sid, tag);
    // The CD for SubstreamID 0 belongs to stage-1 attachments only; once the STE no longer points at it
    // it can be cleared without anyone observing it.
    if (!(d.type === 'paging' && d.stage === 1) && m.cdTable) clearCd(this.cmds, m.cdTable, m.sids, 0);
  }

  /**
   * Invalidates a master's whole ATC, one ATC_INV per StreamID and one CMD_SYNC (arm_smmu_atc_inv_master);
   * never for a fenced master, whose invalidations would only time out again.
   */
  private atcInvMaster(m: Master): void {
    if (m.fenced) return;
    const t0 = this.dev.p.clock.now();
    const sent = m.sids.map((sid) => ({ sid, ent: atcInvEnt(sid, 0, 0, 0) }));
    for (const s of sent) this.cmds.add(s.ent);
    const r = this.cmds.submit();
    if (r !== 0) this.recovery.recover(sent, t0, r);
  }

  /** A TLB tag lost its last user: drop everything cached under it (arm_smmu_invs_flush_iotlb_tags). */
  private flushTag(inv: Inv): void {
    if (inv.type === 'S1_ASID') this.cmds.add({ op: 'TLBI_NH_ASID', asid: inv.id, vmid: 0 });
    else this.cmds.add({ op: 'TLBI_S12_VMALL', vmid: inv.id });
    this.cmds.submit();
  }

  // ---- invalidation (arm_smmu_domain_inv_range, __arm_smmu_tlb_inv_range) ----

  /**
   * Without range invalidation, a range of 512 granules or more (2 MiB of 4 KiB pages) is invalidated
   * by tag instead of page by page (arm_smmu_inv_size_too_big); size 0 always is.
   */
  private sizeTooBig(size: number, granule: number): boolean {
    if (size === 0) return true;
    if (this.dev.has(FEAT.RANGE_INV)) return false;
    return size >= 2 ** (Math.log2(granule) - 3) * granule;
  }

  /**
   * Invalidates [iova, iova+size) (size 0: everything) for each live target of `invs`, in order;
   * returns 0 or the first CMD_SYNC error. The ATC_INVs go in batches of their own, each ending in
   * its CMD_SYNC; a batch that fails goes to the recovery policy before this returns.
   */
  invalidate(invs: InvList, iova: number, size: number, granule: number, leaf: boolean): number {
    const tooBig = this.sizeTooBig(size, granule);
    let pending = false;
    let prev: InvType | null = null;
    let ret = 0;
    let t0 = 0;
    const sent: AtcInvSent[] = [];
    const endBatch = () => {
      if (pending) {
        const r = this.cmds.submit();
        if (r !== 0 && sent.length) this.recovery.recover(sent, t0, r);
        if (ret === 0) ret = r;
      }
      pending = false;
      sent.length = 0;
    };
    const add = (ent: CmdEnt) => {
      if (!pending) t0 = this.dev.p.clock.now();
      this.cmds.add(ent);
      pending = true;
    };
    const addAts = (sid: number, ent: CmdEnt) => {
      add(ent);
      sent.push({ sid, ent });
    };
    for (const inv of invs.entries) {
      if (inv.users === 0 || inv.broken) continue;
      // TLBIs complete (their own CMD_SYNC) before any ATC_INV is sent, and before the stage-1 clear
      // of a nest parent.
      if ((isAts(inv.type) && (prev === null || !isAts(prev))) || (inv.type === 'S2_VMID_S1_CLEAR' && prev !== 'S2_VMID_S1_CLEAR')) endBatch();
      prev = inv.type;
      switch (inv.type) {
        case 'S1_ASID':
          if (tooBig) add({ op: 'TLBI_NH_ASID', asid: inv.id, vmid: 0 });
          else this.addRange('TLBI_NH_VA', inv.id, 0, iova, size, granule, leaf, add);
          break;
        case 'S2_VMID':
          if (tooBig) add({ op: 'TLBI_S12_VMALL', vmid: inv.id });
          else this.addRange('TLBI_S2_IPA', 0, inv.id, iova, size, granule, leaf, add);
          break;
        case 'S2_VMID_S1_CLEAR':
          // S12_VMALL already removed the stage-1 entries of this VMID.
          if (!tooBig) add({ op: 'TLBI_NH_ALL', vmid: inv.id });
          break;
        case 'ATS':
          addAts(inv.id, atcInvEnt(inv.id, inv.ssid, iova, size));
          break;
        case 'ATS_FULL':
          addAts(inv.id, atcInvEnt(inv.id, 0, 0, 0));
          break;
      }
    }
    endBatch();
    return ret;
  }

  /**
   * TLBI commands covering [iova, iova+size) (__arm_smmu_tlb_inv_range). With range invalidation
   * (IDR3.RIL, 4.4.1.1) each command covers NUM+1 pages times 2^SCALE, taking the page count's set bits
   * from the lowest, with TG = 4 KiB and, for leaves, the level hint TTL; without it, one command per
   * granule.
   */
  private addRange(op: 'TLBI_NH_VA' | 'TLBI_S2_IPA', asid: number, vmid: number, iova: number, size: number, granule: number, leaf: boolean, add: (e: CmdEnt) => void): void {
    if (size <= 0 || size % PAGE_SIZE !== 0) throw new RangeError(`TLBI range: size 0x${size.toString(16)} is not a positive multiple of 4 KiB`);
    const ril = this.dev.has(FEAT.RANGE_INV);
    const tgShift = Math.log2(PAGE_SIZE);
    let pages = 0;
    let tg = 0;
    let ttl = 0;
    if (ril) {
      pages = size / PAGE_SIZE;
      tg = (tgShift - 10) / 2;
      // Leaf level: 4 KiB pages at level 3, 2 MiB at 2, 1 GiB at 1. Non-leaf invalidations carry no
      // level, and avoid NUM=0,SCALE=0 on a single page by rounding up.
      if (leaf) ttl = 4 - Math.floor((Math.log2(granule) - 3) / (tgShift - 3));
      else if (pages % 32 === 1) pages++;
    }
    const end = iova + size;
    while (iova < end) {
      let num = 0;
      let scale = 0;
      let step: number;
      if (ril) {
        for (let p = pages; p % 2 === 0; p /= 2) scale++;
        num = Math.floor(pages / 2 ** scale) % 32;
        step = num * 2 ** (scale + tgShift);
        pages -= num * 2 ** scale;
      } else {
        step = granule;
      }
      add({ op, tlbi: { asid, vmid, addr: iova, leaf, num: ril ? num - 1 : 0, scale, tg, ttl } });
      iova += step;
    }
  }
}
