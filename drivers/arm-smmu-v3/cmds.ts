// Building SMMUv3 commands (the driver's arm_smmu_cmdq_build_cmd), from the shared command layout.

import { ATC_INV_SIZE_ALL, CFGI_RANGE_ALL, CS, F, OP } from '../../src/arch/smmu/commands.ts';
import { MEMATTR_OIWB, SH_ISH } from '../../src/arch/smmu/regs.ts';

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

// Writers specialized to each field (Field.writer): encoding a command inlines to a few word operations.
const put = {
  ASID: F.ASID.writer(),
  ATC_SIZE: F.ATC_SIZE.writer(),
  CS: F.CS.writer(),
  GLOBAL: F.GLOBAL.writer(),
  IPA: F.IPA.writer(),
  LEAF: F.LEAF.writer(),
  MSH: F.MSH.writer(),
  MSIADDR: F.MSIADDR.writer(),
  MSIATTR: F.MSIATTR.writer(),
  NUM: F.NUM.writer(),
  OP: F.OP.writer(),
  PRG_INDEX: F.PRG_INDEX.writer(),
  PRI_RESP: F.PRI_RESP.writer(),
  RANGE: F.RANGE.writer(),
  SCALE: F.SCALE.writer(),
  SID: F.SID.writer(),
  SSID: F.SSID.writer(),
  SSV: F.SSV.writer(),
  TG: F.TG.writer(),
  TTL: F.TTL.writer(),
  VA: F.VA.writer(),
  VMID: F.VMID.writer(),
};

/** Writes one command (4 words) at out[off..off+3]. Allocates nothing. */
export function buildCmd(out: Uint32Array, off: number, ent: CmdEnt): void {
  out[off] = 0;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  switch (ent.op) {
    case 'PREFETCH_CONFIG':
      put.OP(out, off, OP.PREFETCH_CONFIG);
      put.SID(out, off, ent.sid);
      return;
    case 'CFGI_STE':
      put.OP(out, off, OP.CFGI_STE);
      put.SID(out, off, ent.sid);
      put.LEAF(out, off, ent.leaf ? 1 : 0);
      return;
    case 'CFGI_ALL':
      // CMD_CFGI_ALL is CFGI_STE_RANGE with Range=31 (4.3.6).
      put.OP(out, off, OP.CFGI_STE_RANGE);
      put.RANGE(out, off, CFGI_RANGE_ALL);
      return;
    case 'CFGI_STE_RANGE':
      put.OP(out, off, OP.CFGI_STE_RANGE);
      put.SID(out, off, ent.sid);
      put.RANGE(out, off, ent.range);
      return;
    case 'CFGI_CD':
      put.OP(out, off, OP.CFGI_CD);
      put.SID(out, off, ent.sid);
      put.SSID(out, off, ent.ssid);
      put.LEAF(out, off, ent.leaf ? 1 : 0);
      return;
    case 'CFGI_CD_ALL':
      put.OP(out, off, OP.CFGI_CD_ALL);
      put.SID(out, off, ent.sid);
      return;
    case 'TLBI_NH_ALL':
    case 'TLBI_S12_VMALL':
      put.OP(out, off, OP[ent.op]);
      put.VMID(out, off, ent.vmid);
      return;
    case 'TLBI_NH_ASID':
      put.OP(out, off, OP.TLBI_NH_ASID);
      put.ASID(out, off, ent.asid);
      put.VMID(out, off, ent.vmid);
      return;
    case 'TLBI_EL2_ASID':
      put.OP(out, off, OP.TLBI_EL2_ASID);
      put.ASID(out, off, ent.asid);
      return;
    case 'TLBI_EL2_ALL':
    case 'TLBI_NSNH_ALL':
      put.OP(out, off, OP[ent.op]);
      return;
    case 'TLBI_NH_VA':
    case 'TLBI_NH_VAA':
    case 'TLBI_EL2_VA':
    case 'TLBI_EL2_VAA':
    case 'TLBI_S2_IPA': {
      const t = ent.tlbi;
      put.OP(out, off, OP[ent.op]);
      put.NUM(out, off, t.num);
      put.SCALE(out, off, t.scale);
      if (ent.op === 'TLBI_NH_VA' || ent.op === 'TLBI_EL2_VA') put.ASID(out, off, t.asid);
      if (ent.op === 'TLBI_NH_VA' || ent.op === 'TLBI_NH_VAA' || ent.op === 'TLBI_S2_IPA') put.VMID(out, off, t.vmid);
      put.LEAF(out, off, t.leaf ? 1 : 0);
      put.TTL(out, off, t.ttl);
      put.TG(out, off, t.tg);
      (ent.op === 'TLBI_S2_IPA' ? put.IPA : put.VA)(out, off, Math.floor(t.addr / 4096));
      return;
    }
    case 'ATC_INV':
      put.OP(out, off, OP.ATC_INV);
      put.SSV(out, off, ent.ssv ? 1 : 0);
      put.SSID(out, off, ent.ssid);
      put.SID(out, off, ent.sid);
      put.GLOBAL(out, off, ent.global ? 1 : 0);
      put.ATC_SIZE(out, off, ent.size);
      put.VA(out, off, Math.floor(ent.addr / 4096));
      return;
    case 'PRI_RESP':
      put.OP(out, off, OP.PRI_RESP);
      put.SSV(out, off, ent.ssv ? 1 : 0);
      put.SSID(out, off, ent.ssid);
      put.SID(out, off, ent.sid);
      put.PRG_INDEX(out, off, ent.grpid);
      put.PRI_RESP(out, off, ent.resp);
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
  put.OP(out, off, OP.SYNC);
  put.CS(out, off, msiAddr ? CS.SIG_IRQ : CS.SIG_SEV);
  put.MSH(out, off, SH_ISH);
  put.MSIATTR(out, off, MEMATTR_OIWB);
  if (msiAddr) put.MSIADDR(out, off, msiAddr / 4);
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
