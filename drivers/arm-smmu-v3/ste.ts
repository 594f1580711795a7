// Stream table entries: building them (Linux arm_smmu_make_*_ste), finding them in a linear or 2-level
// stream table (allocating level-2 tables on demand, arm_smmu_init_l2_strtab), and changing them
// through the hitless writer with CFGI_STE + CMD_SYNC between steps (arm_smmu_write_ste).
//
// Every builder returns a complete 8-qword STE that sets only fields its configuration uses (the
// writer relies on that), following IHI 0070 5.2.

import { L1STD, STE, STE_BYTES, STE_CONFIG, S1DSS, EATS, STRW, SHCFG_INCOMING, STE_QWORDS } from '../../src/arch/smmu/ste.ts';
import { CACHE_WB, SH_ISH } from '../../src/arch/smmu/regs.ts';
import { PAGE_SIZE } from '../../src/arch/platform.ts';
import type { S2TableConfig } from '../iommu/io-pgtable-arm.ts';
import { ENTRY_QWORDS, dramStore, writeEntryTo } from './entry-writer.ts';
import { qget, qset, qwordMask } from '../../src/arch/bits.ts';
import type { CmdIssuer } from './issue.ts';
import { FEAT, STRTAB_SPLIT, type ArmSmmuDevice } from './smmu.ts';

/** An STE or CD as 8 qwords. */
export type Entry = BigUint64Array;

/** SMMU features the STE builders depend on (a subset of Linux's smmu->features). */
export interface SteFeatures {
  /** The SMMU can stall (IDR0.STALL_MODEL 0b00/0b10): non-stalling masters get S1STALLD. */
  stalls: boolean;
  /** IDR1.ATTR_TYPES_OVR: bypass-type STEs use the incoming shareability. */
  attrTypesOvr: boolean;
  /** The host runs at EL2 with E2H: stage-1 STEs use the EL2 StreamWorld. */
  e2h: boolean;
}

export function steFeatures(dev: ArmSmmuDevice): SteFeatures {
  return { stalls: dev.has(FEAT.STALLS), attrTypesOvr: dev.has(FEAT.ATTR_TYPES_OVR), e2h: dev.has(FEAT.E2H) };
}

/** Where a master's CD table is, as the STE points at it. */
export interface CdTableRef {
  basePa: number;
  s1fmt: number;
  s1cdmax: number;
}

const newEntry = (): Entry => new BigUint64Array(ENTRY_QWORDS);

function checkAligned(what: string, pa: number, align: number): void {
  if (!Number.isInteger(pa) || pa < 0 || pa % align !== 0) throw new RangeError(`${what}: address 0x${pa.toString(16)} is not ${align}-byte aligned`);
}

/** V=1, Config=abort: traffic is terminated without an event (5.2). */
export function makeAbortSte(): Entry {
  const e = newEntry();
  qset(e, STE.V, 1);
  qset(e, STE.CONFIG, STE_CONFIG.ABORT);
  return e;
}

/** V=1, Config=bypass (arm_smmu_make_bypass_ste). */
export function makeBypassSte(f: SteFeatures): Entry {
  const e = newEntry();
  qset(e, STE.V, 1);
  qset(e, STE.CONFIG, STE_CONFIG.BYPASS);
  if (f.attrTypesOvr) qset(e, STE.SHCFG, SHCFG_INCOMING);
  return e;
}

/** Stage 1 through a CD table (arm_smmu_make_cdtable_ste). */
export function makeCdtableSte(f: SteFeatures, cd: CdTableRef, o: { ats: boolean; s1dss: number; stallEnabled: boolean }): Entry {
  checkAligned('STE.S1ContextPtr', cd.basePa, 64);
  const e = newEntry();
  qset(e, STE.V, 1);
  qset(e, STE.CONFIG, STE_CONFIG.S1_TRANS);
  qset(e, STE.S1FMT, cd.s1fmt);
  qset(e, STE.S1CTXPTR, cd.basePa / 64);
  qset(e, STE.S1CDMAX, cd.s1cdmax);
  qset(e, STE.S1DSS, o.s1dss);
  // CD fetches: inner/outer write-back read-allocate, inner shareable.
  qset(e, STE.S1CIR, CACHE_WB);
  qset(e, STE.S1COR, CACHE_WB);
  qset(e, STE.S1CSH, SH_ISH);
  if (f.stalls && !o.stallEnabled) qset(e, STE.S1STALLD, 1);
  if (o.ats) qset(e, STE.EATS, EATS.TRANS);
  if (f.attrTypesOvr && o.s1dss === S1DSS.BYPASS) qset(e, STE.SHCFG, SHCFG_INCOMING);
  // NS-EL1 StreamWorld keeps S2VMID 0: VMID 0 is reserved for stage-1-only EL1 STEs.
  qset(e, STE.STRW, f.e2h ? STRW.EL2 : STRW.NSEL1);
  return e;
}

/** The stage-2 parameters of an STE: VMID and the page table's VTCR/VTTBR. */
export interface S2SteConfig extends S2TableConfig {
  vmid: number;
  /** Stage-2 forced write-back (nest parents on S2FWB hardware). */
  s2fwb?: boolean;
}

/** Stage 2 only (arm_smmu_make_s2_domain_ste). */
export function makeS2Ste(f: SteFeatures, s2: S2SteConfig, o: { ats: boolean; stallEnabled: boolean }): Entry {
  checkAligned('STE.S2TTB', s2.vttbr, 16);
  const e = newEntry();
  qset(e, STE.V, 1);
  qset(e, STE.CONFIG, STE_CONFIG.S2_TRANS);
  if (o.ats) qset(e, STE.EATS, EATS.TRANS);
  if (s2.s2fwb) qset(e, STE.S2FWB, 1);
  if (f.attrTypesOvr) qset(e, STE.SHCFG, SHCFG_INCOMING);
  qset(e, STE.S2VMID, s2.vmid);
  qset(e, STE.S2T0SZ, s2.vtcr.tsz);
  qset(e, STE.S2SL0, s2.vtcr.sl);
  qset(e, STE.S2IR0, s2.vtcr.irgn);
  qset(e, STE.S2OR0, s2.vtcr.orgn);
  qset(e, STE.S2SH0, s2.vtcr.sh);
  qset(e, STE.S2TG, s2.vtcr.tg);
  qset(e, STE.S2PS, s2.vtcr.ps);
  qset(e, STE.S2AA64, 1);
  // Stage-1 walks and CD fetches that land on device memory fault (5.2 S2PTW); stage-2 faults are recorded.
  qset(e, STE.S2PTW, 1);
  qset(e, STE.S2R, 1);
  if (o.stallEnabled) qset(e, STE.S2S, 1);
  qset(e, STE.S2TTB, s2.vttbr / 16);
  return e;
}

/** vSTE bits a guest may set (Linux arm_smmu_validate_vste): qword 0 and qword 1 masks. */
const VSTE_Q0 = [STE.V, STE.CONFIG, STE.S1FMT, STE.S1CTXPTR, STE.S1CDMAX].reduce((a, x) => a | qwordMask(x).mask, 0n);
const VSTE_Q1 = [STE.S1DSS, STE.S1CIR, STE.S1COR, STE.S1CSH, STE.S1STALLD, STE.EATS].reduce((a, x) => a | qwordMask(x).mask, 0n);

/**
 * A nested STE from a guest's vSTE on top of a stage-2 parent (arm_smmu_make_nested_domain_ste): an
 * invalid or abort vSTE aborts, a bypass vSTE is the parent's plain stage-2 STE, a stage-1 vSTE becomes
 * Config=nested with the guest's CD table, EATS from the vSTE, and MEV set (merging guest-caused
 * events limits how hard a guest can flood the event queue).
 */
export function makeNestedSte(f: SteFeatures, s2: S2SteConfig, vste: Entry, o: { stallEnabled: boolean }): Entry {
  if (vste.length !== ENTRY_QWORDS) throw new RangeError(`vSTE has ${vste.length} qwords, expected ${ENTRY_QWORDS}`);
  if (!qget(vste, STE.V)) return makeAbortSte();
  for (let i = 0; i < STE_QWORDS; i++) {
    const allowed = i === 0 ? VSTE_Q0 : i === 1 ? VSTE_Q1 : 0n;
    const bad = vste[i]! & ~allowed;
    if (bad) throw new RangeError(`vSTE qword ${i}: bits 0x${bad.toString(16)} are not guest-controllable`);
  }
  const cfg = qget(vste, STE.CONFIG);
  const eats = qget(vste, STE.EATS);
  if (cfg !== STE_CONFIG.ABORT && cfg !== STE_CONFIG.BYPASS && cfg !== STE_CONFIG.S1_TRANS) throw new RangeError(`vSTE Config 0b${cfg.toString(2)}: only abort, bypass or stage 1`);
  if (eats !== EATS.ABT && eats !== EATS.TRANS) throw new RangeError(`vSTE EATS 0b${eats.toString(2)}: only 0b00 or 0b01`);
  if (cfg === STE_CONFIG.ABORT) return makeAbortSte();
  if (cfg === STE_CONFIG.BYPASS) return makeS2Ste(f, s2, { ats: false, stallEnabled: o.stallEnabled });
  const e = makeS2Ste(f, s2, { ats: eats === EATS.TRANS, stallEnabled: o.stallEnabled });
  const cfgMask = qwordMask(STE.CONFIG).mask;
  const eatsMask = qwordMask(STE.EATS).mask;
  e[0] = (vste[0]! & ~cfgMask) | STE.V.set64(0n, 1n) | STE.CONFIG.set64(0n, STE_CONFIG.NESTED);
  e[1] = e[1]! | (vste[1]! & ~eatsMask);
  qset(e, STE.MEV, 1);
  return e;
}

/** STEs per level-2 table (Linux STRTAB_NUM_L2_STES). */
const L2_STES = 1 << STRTAB_SPLIT;

/** The stream table as the driver sees it: where each StreamID's STE lives, and how to change it. */
export class StreamTable {
  constructor(
    private readonly dev: ArmSmmuDevice,
    private readonly cmds: CmdIssuer,
  ) {}

  /** StreamIDs the table covers. */
  get sidLimit(): number {
    const st = this.dev.shared.strtab;
    return st.twoLevel ? st.l1Entries * L2_STES : 2 ** st.sidBits;
  }

  /** The stream table has sid's STE (arm_smmu_sid_in_range). */
  sidInRange(sid: number): boolean {
    return Number.isInteger(sid) && sid >= 0 && sid < this.sidLimit;
  }

  private checkSid(sid: number): void {
    if (!this.sidInRange(sid)) {
      throw new RangeError(`StreamID 0x${sid.toString(16)} is outside the stream table (${this.sidLimit} StreamIDs)`);
    }
  }

  /** PA of the level-1 descriptor covering sid (2-level tables only). */
  private l1DescPa(sid: number): number {
    return this.dev.shared.strtab.basePa + Math.floor(sid / L2_STES) * 8;
  }

  /**
   * Makes sure the level-2 table holding sid's STE exists (arm_smmu_init_l2_strtab): a table of abort
   * STEs, published by one 64-bit compare-and-swap of the L1 descriptor (Span = SPLIT+1 = 9), so CPUs
   * racing for the same table agree on one.
   */
  ensureL2(sid: number): void {
    this.checkSid(sid);
    if (!this.dev.shared.strtab.twoLevel) return;
    const mem = this.dev.p.mem;
    const descPa = this.l1DescPa(sid);
    if (mem.read64(descPa) !== 0n) return;
    const pages = (L2_STES * STE_BYTES) / PAGE_SIZE;
    const l2 = this.dev.p.pages.alloc(pages, `l2 stream table for SID ${sid}`);
    this.dev.initAbortStes(l2, L2_STES);
    let desc = L1STD.SPAN.set64(0n, BigInt(STRTAB_SPLIT + 1));
    desc = L1STD.L2PTR.set64(desc, BigInt(l2 / 64));
    const old = Atomics.compareExchange(mem.i64, mem.idx64(descPa), 0n, BigInt.asIntN(64, desc));
    // Another CPU installed its table first: use that one. Its invalidation may not have completed
    // yet, so this CPU invalidates too before relying on the descriptor.
    if (old !== 0n) this.dev.p.pages.free(l2, pages);
    // The SMMU may have cached the invalid descriptor: a change to an L1STD needs a non-leaf
    // CFGI_STE (5.1.1). (Linux issues no invalidation after installing a level-2 table; this driver
    // does, so it does not depend on whether an SMMU caches an L1STD with Span=0.)
    this.cmds.add({ op: 'CFGI_STE', sid, leaf: false });
    this.cmds.submit();
  }

  /** PA of sid's STE (allocating its level-2 table if needed). */
  stePa(sid: number): number {
    this.ensureL2(sid);
    const st = this.dev.shared.strtab;
    if (!st.twoLevel) return st.basePa + sid * STE_BYTES;
    const desc = this.dev.p.mem.read64(this.l1DescPa(sid));
    return Number(L1STD.L2PTR.get64(desc)) * 64 + (sid % L2_STES) * STE_BYTES;
  }

  /** The STE as it is in memory now. */
  readSte(sid: number): Entry {
    const pa = this.stePa(sid);
    const e = newEntry();
    for (let i = 0; i < ENTRY_QWORDS; i++) e[i] = this.dev.p.mem.read64(pa + i * 8);
    return e;
  }

  /**
   * Changes sid's STE to `target` hitlessly where possible, with CFGI_STE + CMD_SYNC as the writer's
   * sync, then prefetches the new configuration (arm_smmu_write_ste). Returns the syncs issued.
   */
  writeSte(sid: number, target: Entry): number {
    const pa = this.stePa(sid);
    let syncs = 0;
    writeEntryTo('ste', dramStore(this.dev.p.mem, pa, `STE of SID 0x${sid.toString(16)}`), target, () => {
      this.cmds.add({ op: 'CFGI_STE', sid, leaf: true });
      this.cmds.submit();
      syncs++;
    });
    // The new configuration will be used soon: let the SMMU fetch it ahead of the first transaction.
    this.cmds.issueNoSync({ op: 'PREFETCH_CONFIG', sid });
    return syncs;
  }
}
