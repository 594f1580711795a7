// VMSAv8-64 translation table walks with a 4 KiB granule, as the SMMU performs them (IHI 0070 3.4,
// 3.13, 5.2, 5.4, 7.3.12-16; descriptor formats and permissions from the Arm ARM VMSAv8-64 chapter).
//
// Stage 1 starts at the level implied by T0SZ, stage 2 at the level STE.S2SL0 names (with up to 16
// concatenated tables there). Each level reads one 64-bit descriptor with a single-copy atomic access.
// Faults come out in the architected priority within a stage (7.3.22): per level an external abort
// (F_WALK_EABT), then an invalid descriptor (F_TRANSLATION), then an output beyond the output size
// (F_ADDR_SIZE); then the leaf's access flag (F_ACCESS). Permissions are computed here from the leaf
// and the hierarchical table attributes, and checked by the caller against each access (F_PERMISSION),
// so an ATS request can be answered with what the tables grant.
//
// Table descriptors met on the way go into the walk cache; a walk starts from the deepest cached one.
// In a nested walk the stage 1 table addresses are IPAs, which the caller's tableXlate translates at
// stage 2 (faults there are stage 2 faults with CLASS=TT).

import { BusAbort, XSTAT } from '../../src/machine/layout.ts';
import type { PhysMem } from '../../src/machine/dma.ts';
import { EVT, EVT_CLASS } from '../../src/arch/smmu/events.ts';
import { PTE, levelShift4k } from '../../src/arch/smmu/pte.ts';
import { REGIME } from '../../src/arch/smmu/ste.ts';
import { ASID_GLOBAL } from './tag-index.ts';
import { TLB_KIND, type Tlb } from './tlb.ts';
import type { FaultEngine } from '../faults.ts';
import type { S2Config } from './config.ts';
import { hex } from '../../src/arch/bits.ts';

/** A translation fault as it will be reported (7.3.12-16), before the record-or-not decision. */
export interface XlateFault {
  /** EVT.F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION or F_WALK_EABT. */
  type: number;
  s2: boolean;
  /** EVT_CLASS: what the faulting access was for. */
  cls: number;
  /** The IPA that faulted at stage 2. */
  ipa?: number;
  /** PA of the descriptor whose fetch aborted (F_WALK_EABT). */
  fetchAddr?: number;
  /** A stage 2 permission fault on a descriptor read (TTRnW=1). */
  ttRead?: boolean;
  reason: string;
}

/** Stage 1 permissions: privileged / unprivileged read, write, execute (after WXN and table limits). */
export const S1P = { PR: 1, PW: 2, PX: 4, UR: 8, UW: 16, UX: 32 } as const;
/** Stage 2 permissions (S2AP, XN). */
export const S2P = { R: 1, W: 2, X: 4 } as const;
/** Hierarchical attributes accumulated from stage 1 table descriptors (APTable, UXNTable, PXNTable). */
export const TABLE_ATTR = { NO_EL0: 1, RDONLY: 2, UXN: 4, PXN: 8 } as const;

/** Stage 1 translation configuration (from the CD and STE). */
export interface S1Config {
  readonly regime: number;
  readonly vmid: number;
  /** ASID, or ASID_GLOBAL for the ASID-less EL2 regime. */
  readonly asid: number;
  /** Start-level table address (a PA, or an IPA in a nested stream), aligned. */
  readonly ttb: number;
  readonly iaBits: number;
  readonly startLevel: number;
  /** Effective output size: MIN(CD.IPS, OAS). */
  readonly oaBits: number;
  readonly affd: boolean;
  /** HAD0: hierarchical attributes disabled. */
  readonly had: boolean;
}

/** A leaf descriptor found by a walk. */
export interface WalkLeaf {
  readonly desc: bigint;
  readonly level: number;
  /** Input base and size of the page or block. */
  readonly base: number;
  readonly size: number;
  /** Output base of the page or block. */
  readonly oa: number;
  /** Stage 1 table attributes accumulated on the path (0 with HAD or at stage 2). */
  readonly attrs: number;
}

export type WalkResult = { ok: true; leaf: WalkLeaf } | { ok: false; fault: XlateFault };

/** Translates an IPA to a PA at stage 2 for a nested walk's table descriptor fetch. */
export type TableXlate = (ipa: number) => { ok: true; pa: number } | { ok: false; fault: XlateFault };


/** What one walk needs: a stage's configuration, which stage it is, and (stage 2) what it is for. */
interface WalkSpec extends S1Config {
  readonly kind: number; // TLB_KIND.S1 or S2
  /** Stage 2: what the walk is for (EVT_CLASS). */
  readonly cls: number;
}

export class Walker {
  constructor(
    private readonly mem: PhysMem,
    private readonly tlb: Tlb,
    private readonly stats: Float64Array,
    private readonly aborts: FaultEngine,
  ) {}

  /** Stage 1 walk for va (input range already checked against T0SZ by the caller). */
  s1(cfg: S1Config, va: number, tableXlate: TableXlate | null): WalkResult {
    return this.walk({ kind: TLB_KIND.S1, cls: EVT_CLASS.IN, ...cfg }, va, tableXlate);
  }

  /** Stage 2 walk for ipa, on behalf of an access of class `cls` (CD fetch, S1 walk, or the input). */
  s2(cfg: S2Config, ipa: number, cls: number): WalkResult {
    if (ipa >= 2 ** cfg.iaBits) {
      // An IPA beyond the stage 2 input size is a stage 2 Translation fault (3.4).
      return { ok: false, fault: { type: EVT.F_TRANSLATION, s2: true, cls, ipa, reason: `IPA ${hex(ipa, 0)} beyond the ${cfg.iaBits}-bit stage 2 input range` } };
    }
    return this.walk(
      {
        kind: TLB_KIND.S2,
        regime: REGIME.EL1,
        vmid: cfg.vmid,
        asid: ASID_GLOBAL,
        ttb: cfg.ttb,
        iaBits: cfg.iaBits,
        startLevel: cfg.startLevel,
        oaBits: cfg.psBits,
        affd: cfg.affd,
        had: true,
        cls,
      },
      ipa,
      null,
    );
  }

  private walk(w: WalkSpec, addr: number, tableXlate: TableXlate | null): WalkResult {
    const s2 = w.kind === TLB_KIND.S2;
    const fault = (type: number, reason: string, extra: Partial<XlateFault> = {}): WalkResult => ({
      ok: false,
      fault: { type, s2, cls: s2 ? w.cls : EVT_CLASS.IN, ...(s2 ? { ipa: addr } : {}), reason: `stage ${s2 ? 2 : 1}: ${reason}`, ...extra },
    });
    const cached = this.tlb.walkLookup(w.kind, w.regime, w.vmid, w.asid, addr, w.startLevel);
    let level = cached ? cached.level + 1 : w.startLevel;
    let table = cached ? cached.table : w.ttb;
    let attrs = cached ? cached.attrs : 0;
    for (;;) {
      const shift = levelShift4k(level);
      const entries = level === w.startLevel ? 2 ** (w.iaBits - shift) : 512;
      const idx = Math.floor(addr / 2 ** shift) % entries;
      const descAddr = table + idx * 8;
      let pa = descAddr;
      if (tableXlate) {
        const t = tableXlate(descAddr);
        if (!t.ok) return { ok: false, fault: t.fault };
        pa = t.pa;
      }
      let desc: bigint;
      try {
        this.stats[XSTAT.DESC_READS]!++;
        this.aborts.abortFetch('walk', pa, 8, 'translation table walk');
        desc = this.mem.read64(pa, 'translation table walk');
      } catch (e) {
        if (!(e instanceof BusAbort)) throw e;
        // A stage 1 descriptor fetch abort is CLASS=TT with S2=0; a stage 2 one keeps the class of the
        // access the stage 2 walk was for (7.3.12).
        return fault(EVT.F_WALK_EABT, `level ${level} descriptor fetch at PA ${hex(pa, 0)} aborted`, {
          fetchAddr: pa,
          cls: s2 ? w.cls : EVT_CLASS.TT,
        });
      }
      if (PTE.VALID.get64(desc) === 0n) return fault(EVT.F_TRANSLATION, `level ${level} descriptor at PA ${hex(pa, 0)} is invalid`);
      const isTable = PTE.TABLE.get64(desc) === 1n;
      if (level < 3 && isTable) {
        const next = Number(PTE.OA.get64(desc)) * 4096;
        if (next >= 2 ** w.oaBits) return fault(EVT.F_ADDR_SIZE, `level ${level} table address ${hex(next, 0)} beyond ${w.oaBits} bits`);
        if (!s2 && !w.had) attrs |= tableAttrs(desc);
        const size = 2 ** shift;
        this.tlb.walkInsert({ kind: w.kind, regime: w.regime, vmid: w.vmid, asid: w.asid, level, va: addr - (addr % size), size, table: next, attrs });
        table = next;
        level++;
        continue;
      }
      // Level 3 needs the page encoding (0b11); a block at level 0 is invalid with 4 KiB granules.
      if (level === 3 ? !isTable : level === 0) return fault(EVT.F_TRANSLATION, `level ${level} descriptor ${hex(Number(desc & 0xfffn), 0)} at PA ${hex(pa, 0)} is reserved`);
      const size = 2 ** shift;
      const raw = Number(PTE.OA.get64(desc)) * 4096;
      const oa = raw - (raw % size);
      if (oa >= 2 ** w.oaBits) return fault(EVT.F_ADDR_SIZE, `output ${hex(oa, 0)} beyond ${w.oaBits} bits`);
      // AF=0 faults unless AFFD (this model has no HTTU to set it, 3.13.2).
      if (PTE.AF.get64(desc) === 0n && !w.affd) return fault(EVT.F_ACCESS, `level ${level} descriptor at PA ${hex(pa, 0)} has AF=0`);
      return { ok: true, leaf: { desc, level, base: addr - (addr % size), size, oa, attrs } };
    }
  }
}

function tableAttrs(desc: bigint): number {
  const ap = Number(PTE.AP_TABLE.get64(desc));
  return (
    (ap & 1 ? TABLE_ATTR.NO_EL0 : 0) |
    (ap & 2 ? TABLE_ATTR.RDONLY : 0) |
    (PTE.UXN_TABLE.get64(desc) ? TABLE_ATTR.UXN : 0) |
    (PTE.PXN_TABLE.get64(desc) ? TABLE_ATTR.PXN : 0)
  );
}

/**
 * Stage 1 permissions of a leaf (Arm ARM VMSAv8-64 access permissions; SMMU 13.4.1). AP[2:1]: 00
 * privileged RW, 01 RW at both levels, 10 privileged RO, 11 RO at both. EL0-writable pages are
 * implicitly PXN; WXN makes writable pages non-executable. The EL2 regime has one privilege level
 * (AP[1] RES1, XN at bit 54), so unprivileged requests get the same rights there.
 */
export function s1Perms(leaf: WalkLeaf, regime: number, wxn: boolean): number {
  const ap = Number(PTE.AP.get64(leaf.desc));
  const a = leaf.attrs;
  const ro = (ap & 2) !== 0 || (a & TABLE_ATTR.RDONLY) !== 0;
  const xn = PTE.UXN.get64(leaf.desc) === 1n || (a & TABLE_ATTR.UXN) !== 0;
  if (regime === REGIME.EL2) {
    let p = S1P.PR | (ro ? 0 : S1P.PW) | (xn ? 0 : S1P.PX);
    if (wxn && p & S1P.PW) p &= ~S1P.PX;
    return p | (p << 3);
  }
  let p = S1P.PR | (ro ? 0 : S1P.PW);
  if (ap & 1 && !(a & TABLE_ATTR.NO_EL0)) p |= S1P.UR | (ro ? 0 : S1P.UW);
  if (!xn) p |= S1P.UX;
  const pxn = PTE.PXN.get64(leaf.desc) === 1n || (a & TABLE_ATTR.PXN) !== 0;
  if (!pxn && !(p & S1P.UW)) p |= S1P.PX;
  if (wxn) {
    if (p & S1P.PW) p &= ~S1P.PX;
    if (p & S1P.UW) p &= ~S1P.UX;
  }
  return p;
}

/** Stage 2 permissions of a leaf: S2AP[0] read, S2AP[1] write, XN[1] execute-never (no XNX). */
export function s2Perms(leaf: WalkLeaf): number {
  const ap = Number(PTE.S2AP.get64(leaf.desc));
  const xn = (Number(PTE.S2XN.get64(leaf.desc)) & 2) !== 0;
  return (ap & 1 ? S2P.R : 0) | (ap & 2 ? S2P.W : 0) | (xn ? 0 : S2P.X);
}

/** Stage 2 MemAttr[3:2] == 0b00 is Device memory (Arm ARM stage 2 memory attributes). */
export function s2Device(leaf: WalkLeaf): boolean {
  return (Number(PTE.S2_MEMATTR.get64(leaf.desc)) & 0b1100) === 0;
}

/**
 * Whether stage 1 permissions allow an access. PAN forbids privileged data accesses to pages EL0 can
 * access (5.4 PAN); instruction fetches need only execute permission.
 */
export function s1Allows(perms: number, write: boolean, instr: boolean, priv: boolean, pan: boolean): boolean {
  if (write) return priv ? (perms & S1P.PW) !== 0 && !(pan && perms & (S1P.UR | S1P.UW)) : (perms & S1P.UW) !== 0;
  if (instr) return (perms & (priv ? S1P.PX : S1P.UX)) !== 0;
  return priv ? (perms & S1P.PR) !== 0 && !(pan && perms & (S1P.UR | S1P.UW)) : (perms & S1P.UR) !== 0;
}

export function s2Allows(perms: number, write: boolean, instr: boolean): boolean {
  return (perms & (write ? S2P.W : instr ? S2P.X : S2P.R)) !== 0;
}
