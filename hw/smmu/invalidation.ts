// The CFGI_* and TLBI_* commands (IHI 0070 4.3, 4.4), bound to the configuration cache and the TLBs.
// Commands are executed whatever SMMUEN is; the model executes every invalidation fully at
// consumption, so a later CMD_SYNC has nothing to wait for.

import { CFGI_RANGE_ALL, F } from '../../src/arch/smmu/commands.ts';
import { CR2, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { REGIME } from '../../src/arch/smmu/ste.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';
import type { RegisterFile } from '../regfile.ts';
import { DONE, type CommandQueue } from './cmdq.ts';
import type { ConfigCache } from './config-cache.ts';
import { TAG_ANY } from './tag-index.ts';
import { TLB_KIND, tagSet, type Tlb, type TlbiRange } from './tlb.ts';

const ALL_KINDS = tagSet(TLB_KIND.S1, TLB_KIND.S2, TLB_KIND.S12);
const ALL_REGIMES = tagSet(REGIME.EL1, REGIME.EL2, REGIME.EL2_E2H);

// The TLBI handlers run once per command, so they decode through readers specialized to each field
// (Field.reader), which compile down to a load, a shift and a mask.
const leafOf = F.LEAF.reader();
const tgOf = F.TG.reader();
const numOf = F.NUM.reader();
const scaleOf = F.SCALE.reader();
const ttlOf = F.TTL.reader();
const vmidOf = F.VMID.reader();
const asidOf = F.ASID.reader();
const vaField = F.VA.reader();
const ipaField = F.IPA.reader();
// VA[63:12] (52 bits) and IPA[55:12] fit a double: the number path avoids a BigInt per command.
const vaOf = (c: Uint32Array) => vaField(c) * 4096;
const ipaOf = (c: Uint32Array) => ipaField(c) * 4096;

/** The input range an address-based TLBI covers (4.4.1.1), decoded into one reused object. */
class TlbiSpan implements TlbiRange {
  lo = 0;
  hi = 0;
  /** TTL: 0 = any level, 1..3 = only leaves at that level (and, with Leaf=0, tables above it). */
  ttl = 0;
  leaf = false;

  /**
   * Decodes the address, range and level hint of command c; false when TG names a granule other than
   * the 4 KiB one every entry here was created with, so nothing can match.
   */
  decode(c: Uint32Array, addr: number, ril: boolean): boolean {
    this.leaf = leafOf(c) === 1;
    const tg = ril ? tgOf(c) : 0;
    this.lo = addr;
    if (tg === 0) {
      this.hi = addr + 1;
      this.ttl = 0;
      return true;
    }
    if (tg !== 1) return false;
    this.hi = addr + (numOf(c) + 1) * 2 ** scaleOf(c) * 2 ** 12;
    this.ttl = ttlOf(c);
    return true;
  }
}

/** Leaf entries stage 1 TLBIs act on: stage 1 and combined stage 1+2 (4.4.2); walks are stage 1 ones. */
const S1_LEAVES = tagSet(TLB_KIND.S1, TLB_KIND.S12);
const S1_WALKS = tagSet(TLB_KIND.S1);
const S2_ONLY = tagSet(TLB_KIND.S2);
const EL1 = tagSet(REGIME.EL1);
const EL2 = tagSet(REGIME.EL2);
const EL2_E2H = tagSet(REGIME.EL2_E2H);
const EL2_REGIMES = EL2 | EL2_E2H;

/**
 * Binds the CFGI_* and TLBI_* commands to the caches. Commands are executed whatever SMMUEN is; the
 * model executes every invalidation fully at consumption, so a later CMD_SYNC has nothing to wait for.
 * Handlers decode their fields into locals and one reused span: nothing is allocated per command.
 */
export function installInvalidationHandlers(cmdq: CommandQueue, cfg: ConfigCache, tlb: Tlb, regs: RegisterFile<SmmuRegName>, feat: SmmuFeatures): void {
  const ril = feat.ril;
  const span = new TlbiSpan();
  // EL2_VA/VAA act on EL2-E2H entries when CR2.E2H=1, else on EL2 entries (4.4.2.9-10).
  const e2h = () => CR2.E2H.get(regs.get('CR2')) === 1;

  cmdq.setHandler('CFGI_STE', (c) => {
    cfg.cfgiSte(F.SID.read(c), F.LEAF.read(c) === 1);
    return DONE;
  });
  cmdq.setHandler('CFGI_STE_RANGE', (c) => {
    const range = F.RANGE.read(c);
    if (range === CFGI_RANGE_ALL) {
      cfg.cfgiAll(); // CMD_CFGI_ALL (4.3.6)
    } else {
      const count = 2 ** (range + 1);
      const sid = F.SID.read(c);
      cfg.cfgiRange(sid - (sid % count), count);
    }
    return DONE;
  });
  cmdq.setHandler('CFGI_CD', (c) => {
    cfg.cfgiCd(F.SID.read(c), F.SSID.read(c), F.LEAF.read(c) === 1);
    return DONE;
  });
  cmdq.setHandler('CFGI_CD_ALL', (c) => {
    cfg.cfgiCdAll(F.SID.read(c));
    return DONE;
  });

  // Stage 1, NS-EL1 regime (4.4.2.1-4).
  cmdq.setHandler('TLBI_NH_ALL', (c) => {
    if (tlb.select(EL1, vmidOf(c)) !== 0) tlb.invalidateTags(S1_LEAVES, S1_WALKS, TAG_ANY);
    return DONE;
  });
  cmdq.setHandler('TLBI_NH_ASID', (c) => {
    // Non-global entries of the ASID only (like TLBI ASIDE1).
    if (tlb.select(EL1, vmidOf(c)) !== 0) tlb.invalidateTags(S1_LEAVES, S1_WALKS, asidOf(c));
    return DONE;
  });
  cmdq.setHandler('TLBI_NH_VA', (c) => {
    // Leaves of the ASID and global ones; walk entries of the ASID.
    if (tlb.select(EL1, vmidOf(c)) !== 0 && span.decode(c, vaOf(c), ril)) tlb.invalidateRange(S1_LEAVES, S1_WALKS, asidOf(c), true, span);
    return DONE;
  });
  cmdq.setHandler('TLBI_NH_VAA', (c) => {
    if (tlb.select(EL1, vmidOf(c)) !== 0 && span.decode(c, vaOf(c), ril)) tlb.invalidateRange(S1_LEAVES, S1_WALKS, TAG_ANY, false, span);
    return DONE;
  });

  // EL2 regimes (4.4.2.7-10), any VMID.
  cmdq.setHandler('TLBI_EL2_ALL', () => {
    if (tlb.select(EL2_REGIMES, TAG_ANY) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, TAG_ANY);
    return DONE;
  });
  cmdq.setHandler('TLBI_EL2_ASID', (c) => {
    if (tlb.select(EL2_E2H, TAG_ANY) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, asidOf(c));
    return DONE;
  });
  cmdq.setHandler('TLBI_EL2_VA', (c) => {
    const withE2h = e2h();
    if (tlb.select(withE2h ? EL2_E2H : EL2, TAG_ANY) !== 0 && span.decode(c, vaOf(c), ril)) {
      // The EL2 regime has no ASIDs: the command's ASID only matters with E2H.
      tlb.invalidateRange(ALL_KINDS, ALL_KINDS, withE2h ? asidOf(c) : TAG_ANY, true, span);
    }
    return DONE;
  });
  cmdq.setHandler('TLBI_EL2_VAA', (c) => {
    if (tlb.select(e2h() ? EL2_E2H : EL2, TAG_ANY) !== 0 && span.decode(c, vaOf(c), ril)) tlb.invalidateRange(ALL_KINDS, ALL_KINDS, TAG_ANY, false, span);
    return DONE;
  });

  // Stage 2 (4.4.3) and everything non-EL2 (4.4.4).
  cmdq.setHandler('TLBI_S12_VMALL', (c) => {
    if (tlb.select(EL1, vmidOf(c)) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, TAG_ANY);
    return DONE;
  });
  cmdq.setHandler('TLBI_S2_IPA', (c) => {
    // Combined stage 1+2 entries need not be affected (4.4.3.1): software pairs this with NH_ALL/VAA.
    if (tlb.select(ALL_REGIMES, vmidOf(c)) !== 0 && span.decode(c, ipaOf(c), ril)) tlb.invalidateRange(S2_ONLY, S2_ONLY, TAG_ANY, false, span);
    return DONE;
  });
  cmdq.setHandler('TLBI_NSNH_ALL', () => {
    if (tlb.select(EL1, TAG_ANY) !== 0) tlb.invalidateTags(ALL_KINDS, ALL_KINDS, TAG_ANY);
    return DONE;
  });
}
