// Context descriptor tables and CDs (Linux arm_smmu_alloc_cd_tables, arm_smmu_get/alloc_cd_ptr,
// arm_smmu_make_s1_cd, arm_smmu_write_cd_entry), IHI 0070 5.3-5.4.
//
// A master's CD table is linear when it has at most 1024 contexts (or the SMMU lacks IDR0.CD2L), else
// 2-level with 64 KiB leaf tables of 1024 CDs (STE.S1Fmt=0b10) allocated on first use. CDs change
// through the same hitless writer as STEs, with CFGI_CD for every StreamID of the master + CMD_SYNC
// as its sync: a CD is cached per {StreamID, SubstreamID} (5.4.1).

import { CD, CD_BYTES, L1CD, L1CD_BYTES } from '../../src/arch/smmu/cd.ts';
import { S1FMT } from '../../src/arch/smmu/ste.ts';
import { PAGE_SIZE } from '../../src/arch/platform.ts';
import type { Platform } from '../platform/platform.ts';
import type { S1TableConfig } from '../iommu/io-pgtable-arm.ts';
import { ENTRY_QWORDS, dramStore, writeEntryTo } from './entry-writer.ts';
import { qset } from '../../src/arch/bits.ts';
import type { CmdIssuer } from './issue.ts';
import type { CdTableRef, Entry } from './ste.ts';

/** CDs per 64 KiB level-2 table (Linux CTXDESC_L2_ENTRIES; SPLIT = 10). */
const CD_L2_ENTRIES = 1024;
/** SubstreamID bits of the largest linear CD table Linux allocates, 64 KiB of CDs (CTXDESC_LINEAR_CDMAX). */
export const CTXDESC_LINEAR_CDMAX = Math.log2((64 * 1024) / CD_BYTES);

export class CdTable implements CdTableRef {
  readonly s1fmt: number;
  readonly s1cdmax: number;
  readonly basePa: number;
  /** Level-1 descriptors (2-level), or CDs (linear). */
  readonly entries: number;
  private readonly basePages: number;
  /** Level-2 tables allocated so far, by level-1 index. */
  private readonly l2 = new Map<number, number>();

  /**
   * Allocates an empty table for 2^ssidBits contexts (arm_smmu_alloc_cd_tables): linear when small or
   * when the SMMU cannot do 2-level CD tables.
   */
  constructor(
    readonly p: Platform,
    ssidBits: number,
    cd2l: boolean,
  ) {
    if (!Number.isInteger(ssidBits) || ssidBits < 0 || ssidBits > 20) throw new RangeError(`CD table: ssidBits ${ssidBits} must be 0..20`);
    this.s1cdmax = ssidBits;
    const contexts = 2 ** ssidBits;
    if (!cd2l || contexts <= CD_L2_ENTRIES) {
      this.s1fmt = S1FMT.LINEAR;
      this.entries = contexts;
      this.basePages = Math.ceil((contexts * CD_BYTES) / PAGE_SIZE);
      this.basePa = p.pages.alloc(this.basePages, 'linear CD table');
    } else {
      this.s1fmt = S1FMT.L2_64K;
      this.entries = Math.ceil(contexts / CD_L2_ENTRIES);
      this.basePages = Math.ceil((this.entries * L1CD_BYTES) / PAGE_SIZE);
      this.basePa = p.pages.alloc(this.basePages, 'L1 CD table');
    }
  }

  get twoLevel(): boolean {
    return this.s1fmt !== S1FMT.LINEAR;
  }

  private checkSsid(ssid: number): void {
    if (!Number.isInteger(ssid) || ssid < 0 || ssid >= 2 ** this.s1cdmax) {
      throw new RangeError(`SubstreamID 0x${ssid.toString(16)} is outside the CD table (${2 ** this.s1cdmax} contexts)`);
    }
  }

  /** PA of the CD for ssid, or null when its level-2 table does not exist (arm_smmu_get_cd_ptr). */
  cdPa(ssid: number): number | null {
    this.checkSsid(ssid);
    if (!this.twoLevel) return this.basePa + ssid * CD_BYTES;
    const l2 = this.l2.get(Math.floor(ssid / CD_L2_ENTRIES));
    return l2 === undefined ? null : l2 + (ssid % CD_L2_ENTRIES) * CD_BYTES;
  }

  /**
   * PA of the CD for ssid, allocating its level-2 table and publishing the L1 descriptor (V | L2Ptr)
   * first if needed (arm_smmu_alloc_cd_ptr); `l1Changed` must invalidate the L1 descriptor the SMMU
   * may have cached while it was invalid (non-leaf CFGI_CD, 5.3.1).
   */
  allocCdPa(ssid: number, l1Changed: (ssid: number) => void): number {
    const pa = this.cdPa(ssid);
    if (pa !== null) return pa;
    const idx = Math.floor(ssid / CD_L2_ENTRIES);
    const l2 = this.p.pages.alloc((CD_L2_ENTRIES * CD_BYTES) / PAGE_SIZE, `L2 CD table for SSID ${ssid}`);
    this.l2.set(idx, l2);
    let desc = L1CD.V.set64(0n, 1n);
    desc = L1CD.L2PTR.set64(desc, BigInt(l2 / PAGE_SIZE));
    this.p.mem.write64(this.basePa + idx * L1CD_BYTES, desc);
    l1Changed(ssid);
    return l2 + (ssid % CD_L2_ENTRIES) * CD_BYTES;
  }

  /** Frees the table; the caller has made sure no STE points at it any more. */
  free(): void {
    for (const l2 of this.l2.values()) this.p.pages.free(l2, (CD_L2_ENTRIES * CD_BYTES) / PAGE_SIZE);
    this.l2.clear();
    this.p.pages.free(this.basePa, this.basePages);
  }
}

/** A stage-1 CD for a paging domain (arm_smmu_make_s1_cd): ASID, the page table's TCR/TTBR/MAIR. */
export function makeS1Cd(asid: number, pgtbl: S1TableConfig, o: { stallEnabled: boolean }): Entry {
  if (pgtbl.ttbr % 16 !== 0) throw new RangeError(`CD.TTB0: address 0x${pgtbl.ttbr.toString(16)} is not 16-byte aligned`);
  const e = new BigUint64Array(ENTRY_QWORDS);
  const t = pgtbl.tcr;
  qset(e, CD.T0SZ, t.tsz);
  qset(e, CD.TG0, t.tg);
  qset(e, CD.IR0, t.irgn);
  qset(e, CD.OR0, t.orgn);
  qset(e, CD.SH0, t.sh);
  // No TTB1 walks: the upper half of the address space faults.
  qset(e, CD.EPD1, 1);
  qset(e, CD.V, 1);
  qset(e, CD.IPS, t.ips);
  qset(e, CD.AA64, 1);
  if (o.stallEnabled) qset(e, CD.S, 1);
  // Record faults (R) and terminate faulting transactions with an abort (A); ASET: ASID not shared with CPUs.
  qset(e, CD.R, 1);
  qset(e, CD.A, 1);
  qset(e, CD.ASET, 1);
  qset(e, CD.ASID, asid);
  qset(e, CD.TTB0, pgtbl.ttbr / 16);
  qset(e, CD.MAIR0, pgtbl.mair & 0xffffffffn);
  qset(e, CD.MAIR1, pgtbl.mair >> 32n);
  return e;
}

/**
 * Changes the CD for ssid to `target` through the hitless writer; the sync is CFGI_CD(sid, ssid, leaf)
 * for every StreamID of the master, then one CMD_SYNC (arm_smmu_write_cd_entry / arm_smmu_sync_cd).
 * Returns the syncs issued.
 */
export function writeCd(cmds: CmdIssuer, table: CdTable, sids: readonly number[], ssid: number, target: Entry): number {
  const syncCd = (leaf: boolean): void => {
    for (const sid of sids) cmds.add({ op: 'CFGI_CD', sid, ssid, leaf });
    cmds.submit();
  };
  const pa = table.allocCdPa(ssid, () => syncCd(false));
  let syncs = 0;
  writeEntryTo('cd', dramStore(table.p.mem, pa, `CD ${ssid}`), target, () => {
    syncCd(true);
    syncs++;
  });
  return syncs;
}

/** Makes the CD for ssid invalid (arm_smmu_clear_cd); nothing to do if its table was never allocated. */
export function clearCd(cmds: CmdIssuer, table: CdTable, sids: readonly number[], ssid: number): number {
  if (table.cdPa(ssid) === null) return 0;
  return writeCd(cmds, table, sids, ssid, new BigUint64Array(ENTRY_QWORDS));
}
