// Building SMMUv3 commands (the driver's arm_smmu_cmdq_build_cmd), from the shared command layout.

import { ATC_INV_SIZE_ALL, CFGI_RANGE_ALL, CS, F, OP } from '../../src/smmu/commands.ts';
import { MEMATTR_OIWB, SH_ISH } from '../../src/smmu/regs.ts';

/** What to put in a command; mirrors Linux's struct arm_smmu_cmdq_ent. */
export type CmdEnt =
  | { op: 'PREFETCH_CONFIG'; sid: number }
  | { op: 'CFGI_STE'; sid: number; leaf: boolean }
  | { op: 'CFGI_ALL' }
  | { op: 'CFGI_STE_RANGE'; sid: number; range: number }
  | { op: 'CFGI_CD'; sid: number; ssid: number; leaf: boolean }
  | { op: 'CFGI_CD_ALL'; sid: number }
  | { op: 'TLBI_NH_ALL'; vmid: number }
  | { op: 'TLBI_NH_ASID'; asid: number; vmid: number }
  | { op: 'TLBI_NH_VA' | 'TLBI_NH_VAA' | 'TLBI_EL2_VA' | 'TLBI_EL2_VAA' | 'TLBI_S2_IPA'; tlbi: TlbiRange }
  | { op: 'TLBI_EL2_ALL' | 'TLBI_NSNH_ALL' }
  | { op: 'TLBI_EL2_ASID'; asid: number }
  | { op: 'TLBI_S12_VMALL'; vmid: number }
  | { op: 'ATC_INV'; sid: number; ssid: number; ssv: boolean; addr: number; size: number; global?: boolean }
  | { op: 'PRI_RESP'; sid: number; ssid: number; ssv: boolean; grpid: number; resp: number }
  | { op: 'SYNC'; msiAddr: number };

export interface TlbiRange {
  asid: number;
  vmid: number;
  /** Address (VA or IPA), 4 KiB aligned. */
  addr: number;
  leaf: boolean;
  /** Range fields (4.4.1.1); all 0 for a non-range invalidation. */
  num: number;
  scale: number;
  tg: number;
  ttl: number;
}

/** Writes one command (4 words) at out[off..off+3]. Allocates nothing. */
export function buildCmd(out: Uint32Array, off: number, ent: CmdEnt): void {
  out[off] = 0;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  switch (ent.op) {
    case 'PREFETCH_CONFIG':
      F.OP.write(out, off, OP.PREFETCH_CONFIG!);
      F.SID.write(out, off, ent.sid);
      return;
    case 'CFGI_STE':
      F.OP.write(out, off, OP.CFGI_STE!);
      F.SID.write(out, off, ent.sid);
      F.LEAF.write(out, off, ent.leaf ? 1 : 0);
      return;
    case 'CFGI_ALL':
      // CMD_CFGI_ALL is CFGI_STE_RANGE with Range=31 (4.3.6).
      F.OP.write(out, off, OP.CFGI_STE_RANGE!);
      F.RANGE.write(out, off, CFGI_RANGE_ALL);
      return;
    case 'CFGI_STE_RANGE':
      F.OP.write(out, off, OP.CFGI_STE_RANGE!);
      F.SID.write(out, off, ent.sid);
      F.RANGE.write(out, off, ent.range);
      return;
    case 'CFGI_CD':
      F.OP.write(out, off, OP.CFGI_CD!);
      F.SID.write(out, off, ent.sid);
      F.SSID.write(out, off, ent.ssid);
      F.LEAF.write(out, off, ent.leaf ? 1 : 0);
      return;
    case 'CFGI_CD_ALL':
      F.OP.write(out, off, OP.CFGI_CD_ALL!);
      F.SID.write(out, off, ent.sid);
      return;
    case 'TLBI_NH_ALL':
    case 'TLBI_S12_VMALL':
      F.OP.write(out, off, OP[ent.op]!);
      F.VMID.write(out, off, ent.vmid);
      return;
    case 'TLBI_NH_ASID':
      F.OP.write(out, off, OP.TLBI_NH_ASID!);
      F.ASID.write(out, off, ent.asid);
      F.VMID.write(out, off, ent.vmid);
      return;
    case 'TLBI_EL2_ASID':
      F.OP.write(out, off, OP.TLBI_EL2_ASID!);
      F.ASID.write(out, off, ent.asid);
      return;
    case 'TLBI_EL2_ALL':
    case 'TLBI_NSNH_ALL':
      F.OP.write(out, off, OP[ent.op]!);
      return;
    case 'TLBI_NH_VA':
    case 'TLBI_NH_VAA':
    case 'TLBI_EL2_VA':
    case 'TLBI_EL2_VAA':
    case 'TLBI_S2_IPA': {
      const t = ent.tlbi;
      F.OP.write(out, off, OP[ent.op]!);
      F.NUM.write(out, off, t.num);
      F.SCALE.write(out, off, t.scale);
      if (ent.op === 'TLBI_NH_VA' || ent.op === 'TLBI_EL2_VA') F.ASID.write(out, off, t.asid);
      if (ent.op === 'TLBI_NH_VA' || ent.op === 'TLBI_NH_VAA' || ent.op === 'TLBI_S2_IPA') F.VMID.write(out, off, t.vmid);
      F.LEAF.write(out, off, t.leaf ? 1 : 0);
      F.TTL.write(out, off, t.ttl);
      F.TG.write(out, off, t.tg);
      (ent.op === 'TLBI_S2_IPA' ? F.IPA : F.VA).write(out, off, Math.floor(t.addr / 4096));
      return;
    }
    case 'ATC_INV':
      F.OP.write(out, off, OP.ATC_INV!);
      F.SSV.write(out, off, ent.ssv ? 1 : 0);
      F.SSID.write(out, off, ent.ssid);
      F.SID.write(out, off, ent.sid);
      F.GLOBAL.write(out, off, ent.global ? 1 : 0);
      F.ATC_SIZE.write(out, off, ent.size);
      F.VA.write(out, off, Math.floor(ent.addr / 4096));
      return;
    case 'PRI_RESP':
      F.OP.write(out, off, OP.PRI_RESP!);
      F.SSV.write(out, off, ent.ssv ? 1 : 0);
      F.SSID.write(out, off, ent.ssid);
      F.SID.write(out, off, ent.sid);
      F.PRG_INDEX.write(out, off, ent.grpid);
      F.PRI_RESP.write(out, off, ent.resp);
      return;
    case 'SYNC':
      buildSync(out, off, ent.msiAddr);
      return;
  }
}

/**
 * CMD_SYNC as Linux builds it (arm_smmu_cmdq_build_sync_cmd): with an MSI address, CS=SIG_IRQ and
 * MSIData 0 written to that address (the SYNC's own slot); otherwise CS=SIG_SEV. Always MSH=ISH and
 * MSIAttr=OIWB.
 */
export function buildSync(out: Uint32Array, off: number, msiAddr: number): void {
  out[off] = 0;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  F.OP.write(out, off, OP.SYNC!);
  F.CS.write(out, off, msiAddr ? CS.SIG_IRQ : CS.SIG_SEV);
  F.MSH.write(out, off, SH_ISH);
  F.MSIATTR.write(out, off, MEMATTR_OIWB);
  if (msiAddr) F.MSIADDR.write(out, off, msiAddr / 4);
}

/** ATC_INV for a whole ATC, or for [iova, iova+size) (Linux arm_smmu_atc_inv_to_cmd). */
export function atcInvEnt(sid: number, ssid: number, iova: number, size: number): CmdEnt {
  if (size === 0) return { op: 'ATC_INV', sid, ssid, ssv: ssid !== 0, addr: 0, size: ATC_INV_SIZE_ALL };
  // Span the smallest aligned power-of-two range of 4 KiB pages covering [iova, iova+size).
  // (Page numbers exceed 32 bits, so shift by division rather than with bitwise operators.)
  let a = Math.floor(iova / 4096);
  let b = Math.floor((iova + size - 1) / 4096);
  let log2Span = 0;
  while (a !== b) {
    a = Math.floor(a / 2);
    b = Math.floor(b / 2);
    log2Span++;
  }
  return { op: 'ATC_INV', sid, ssid, ssv: ssid !== 0, addr: a * 2 ** log2Span * 4096, size: log2Span };
}
