// The stream table (IHI 0070 3.3, 5.1, 5.2, 6.3.24-25): from a StreamID to a validated STE.
//
// The table is linear (STRTAB_BASE -> array of 64-byte STEs) or 2-level (an array of L1STDs, each
// pointing at an array of up to 2^SPLIT STEs). Lookups go through the configuration cache: an STE is
// cached per StreamID whatever its content (3.21.3 allows caching invalid structures), a valid L1STD
// per span; both stay until a CFGI_* command removes them, so a driver that forgets one sees the old
// configuration. Failed fetches are never cached (5.2.1).
//
// Every descriptor qword is read with one 64-bit single-copy atomic access (PhysMem.read64): the SMMU
// may read the qwords of a structure in any order, but never observes half of a qword (3.21.3).
// Validation follows the SteIllegal pseudocode of 5.2.2 for a Non-secure stream; the first check that
// fails names the reason, which the C_BAD_STE trace carries.

import { BusAbort, XSTAT } from '../../src/machine/layout.ts';
import type { PhysMem } from '../../src/machine/dma.ts';
import type { RegisterFile } from '../regfile.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { STRTAB_BASE, STRTAB_BASE_CFG, STRTAB_FMT_2LVL, STRTAB_SPLITS, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { EATS, L1STD, L1STD_SPAN_MAX, S2TG, STE, STE_BYTES, STE_CONFIG, STE_QWORDS, STRW } from '../../src/arch/smmu/ste.ts';
import { TXSZ_MAX, TXSZ_MIN, psBits } from '../../src/arch/smmu/cd.ts';
import { OA_BITS_4K, levelShift4k } from '../../src/arch/smmu/pte.ts';
import type { ConfigCache } from './config-cache.ts';
import type { L1Std, S2Config, Ste } from './config.ts';
import type { FaultEngine } from '../faults.ts';
import { hex } from '../../src/arch/bits.ts';

/** Stage 2 start level from S2SL0 with a 4 KiB granule (VTCR_EL2.SL0): 0 -> 2, 1 -> 1, 2 -> 0. */
const S2_START_LEVEL_4K = [2, 1, 0] as const;

/**
 * Decodes and validates an STE (5.2, 5.2.2 SteIllegal) for a Non-secure StreamID on an implementation
 * with `feat`. Never throws: every field value has an architected (or chosen) meaning.
 */
export function decodeSte(w: Uint32Array, addr: number, feat: SmmuFeatures): Ste {
  const v = STE.V.read(w) === 1;
  const config = STE.CONFIG.read(w);
  const s1 = (config & 0b101) === 0b101;
  const s2 = (config & 0b110) === 0b110;
  const oas = feat.oasBits;
  // IAS: only VMSAv8-64 tables are implemented (IDR0.TTF=0b10), so IAS = OAS (3.4).
  const ias = oas;
  const s1ctxptr = STE.S1CTXPTR.read(w) * 64;
  const s1cdmax = STE.S1CDMAX.read(w);
  const s1fmtRaw = STE.S1FMT.read(w);
  const s1fmt = s1fmtRaw === 3 ? 0 : s1fmtRaw; // 0b11 behaves as 0b00 (5.2)
  const eats = STE.EATS.read(w);
  const s2s = STE.S2S.read(w) === 1;
  const strw = STE.STRW.read(w);
  const vmidRaw = STE.S2VMID.read(w);
  const strwUsed = feat.stage1 && feat.hyp && config === STE_CONFIG.S1_TRANS;
  const privcfg = STE.PRIVCFG.read(w);
  const instcfg = STE.INSTCFG.read(w);
  // Stage 2 fields, read once for validation and for the S2Config.
  const s2t0sz = STE.S2T0SZ.read(w);
  const s2sl0 = STE.S2SL0.read(w);
  const s2ttb = Number(STE.S2TTB.read64(w)) * 16;
  const s2ps = Math.min(psBits(STE.S2PS.read(w)), oas);

  const illegal = ((): string | null => {
    if (!v) return 'V=0';
    if ((config & 0b100) === 0) return null; // 0b0xx: abort, not ILLEGAL
    if ((config & 0b001) && !feat.stage1) return `Config=0b${config.toString(2)} needs stage 1, which is not implemented`;
    if ((config & 0b010) && !feat.stage2) return `Config=0b${config.toString(2)} needs stage 2, which is not implemented`;
    if (feat.ats && (config & 0b011) !== 0) {
      if (eats === EATS.S1CHK && (config !== STE_CONFIG.NESTED || s2s)) return 'EATS=0b10 needs Config=0b111 and S2S=0';
      if (eats === EATS.TRANS && s2s && s2) return 'EATS=0b01 with S2S=1 and stage 2';
    }
    if (strwUsed && (strw & 1) === 1) return `STRW=0b${strw.toString(2).padStart(2, '0')} is reserved`;
    if (s1) {
      // This implementation has no stall model (IDR0.STALL_MODEL=0b01), so S1STALLD must be 0.
      if (STE.S1STALLD.read(w) === 1) return 'S1STALLD=1 without a stall model';
      if (feat.ssidBits !== 0 && s1cdmax > feat.ssidBits) return `S1CDMax=${s1cdmax} exceeds SSIDSIZE=${feat.ssidBits}`;
      if (feat.ssidBits !== 0 && s1cdmax !== 0 && !feat.cd2l && (s1fmt === 1 || s1fmt === 2)) {
        return `S1Fmt=${s1fmt} needs 2-level CD tables (IDR0.CD2L=0)`;
      }
      // v3.1+: a context pointer beyond OAS (IAS with stage 2) is ILLEGAL (3.4.3 note 1).
      if (s1ctxptr >= 2 ** (s2 ? ias : oas)) return `S1ContextPtr ${hex(s1ctxptr, 0)} beyond the ${s2 ? 'IAS' : 'OAS'}`;
    }
    if (s2) {
      if (s2s) return 'S2S=1 without a stall model';
      if (STE.S2AA64.read(w) === 0) return 'S2AA64=0 selects VMSAv8-32, which is not implemented (IDR0.TTF)';
      if (STE.S2HA.read(w) || STE.S2HD.read(w)) return 'S2HA/S2HD set without HTTU';
      const tg = STE.S2TG.read(w);
      // Only the 4 KiB granule is walked by this model.
      if (tg !== S2TG.G4K) return `S2TG=${tg} is not a granule this model walks (4 KiB only)`;
      if (s2t0sz < Math.max(TXSZ_MIN, 64 - ias) || s2t0sz > TXSZ_MAX) return `S2T0SZ=${s2t0sz} out of range`;
      if (s2sl0 === 3) return 'S2SL0=3 is reserved with a 4 KiB granule';
      const start = S2_START_LEVEL_4K[s2sl0 as 0 | 1 | 2];
      // Arm ARM VTCR_EL2 consistency: the start level resolves at least one and at most 13 bits
      // (no more than 16 concatenated tables), and level 0 allows no concatenation.
      const resolved = 64 - s2t0sz - levelShift4k(start);
      if (resolved < 1 || resolved > (start === 0 ? 9 : 13)) return `S2SL0=${s2sl0} inconsistent with S2T0SZ=${s2t0sz}`;
      if (s2ttb >= 2 ** s2ps || s2ttb >= 2 ** OA_BITS_4K) return `S2TTB ${hex(s2ttb, 0)} beyond the ${s2ps}-bit S2PS`;
      if (STE.S2ENDI.read(w) === 1) return 'S2ENDI=1 on a little-endian-only SMMU (IDR0.TTENDIAN)';
    }
    if (feat.stage2 && !feat.vmid16 && vmidRaw > 0xff) return `S2VMID=${hex(vmidRaw, 0)} needs VMID16`;
    return null;
  })();

  let s2cfg: S2Config | null = null;
  if (illegal === null && s2) {
    const start = S2_START_LEVEL_4K[s2sl0 as 0 | 1 | 2];
    const iaBits = 64 - s2t0sz;
    // The start-level table (possibly concatenated) is aligned to its size: low bits are treated as 0.
    const tableBytes = 2 ** (iaBits - levelShift4k(start)) * 8;
    s2cfg = {
      vmid: vmidRaw,
      ttb: s2ttb - (s2ttb % Math.max(tableBytes, 64)),
      iaBits,
      startLevel: start,
      psBits: s2ps,
      affd: STE.S2AFFD.read(w) === 1,
      ptw: STE.S2PTW.read(w) === 1,
    };
  }
  return {
    addr,
    illegal,
    config,
    abort: v && illegal === null && (config & 0b100) === 0,
    bypass: config === STE_CONFIG.BYPASS,
    s1,
    s2,
    s1fmt,
    s1ctxptr,
    s1cdmax,
    s1dss: STE.S1DSS.read(w),
    s1stalld: STE.S1STALLD.read(w) === 1,
    eats,
    el2: strwUsed && strw === STRW.EL2,
    mev: STE.MEV.read(w) === 1,
    privcfg,
    instcfg,
    vmid: feat.stage2 ? vmidRaw : 0,
    s2cfg,
    s2r: STE.S2R.read(w) === 1,
    s2s,
  };
}

/**
 * The EATS value in force (5.2 EATS): ignored without ATS or for Config 0bx00; 0b10 needs CR0.ATSCHK;
 * 0b11 is reserved without DPT (this model has none) and behaves as 0b00.
 */
export function effectiveEats(ste: Ste, feat: SmmuFeatures, atschk: boolean): number {
  if (!feat.ats || (ste.config & 0b011) === 0) return EATS.ABT;
  if (ste.eats === EATS.S1CHK) return atschk ? EATS.S1CHK : EATS.ABT;
  if (ste.eats === EATS.DPT) return EATS.ABT;
  return ste.eats;
}

/** Stream table geometry from STRTAB_BASE/STRTAB_BASE_CFG (6.3.24-25). */
export interface StrtabGeometry {
  /** Base PA, aligned as the SMMU treats it. */
  base: number;
  /** Effective log2 of the number of StreamIDs: MIN(LOG2SIZE, IDR1.SIDSIZE). */
  log2size: number;
  twoLevel: boolean;
  split: number;
}

function strtabGeometry(regs: RegisterFile<SmmuRegName>, feat: SmmuFeatures): StrtabGeometry {
  const cfg = regs.get('STRTAB_BASE_CFG');
  const log2size = Math.min(STRTAB_BASE_CFG.LOG2SIZE.get(cfg), feat.sidBits);
  // FMT: reserved values behave as linear; SPLIT: any value but 6, 8, 10 behaves as 6 (6.3.25).
  const twoLevel = feat.twoLevelStrtab && STRTAB_BASE_CFG.FMT.get(cfg) === STRTAB_FMT_2LVL;
  const rawSplit = STRTAB_BASE_CFG.SPLIT.get(cfg);
  const split = (STRTAB_SPLITS as readonly number[]).includes(rawSplit) ? rawSplit : 6;
  const addr = Number(STRTAB_BASE.ADDR.get64(regs.get64('STRTAB_BASE'))) * 64;
  // The SMMU aligns the base itself: ADDR[LOG2SIZE+5:0] (linear) or ADDR[MAX(5, LOG2SIZE-SPLIT+2):0]
  // (2-level) are treated as zero (6.3.24).
  const alignBits = twoLevel ? Math.max(6, log2size - split + 3) : log2size + 6;
  const align = 2 ** alignBits;
  return { base: addr - (addr % align), log2size, twoLevel, split };
}

/** Outcome of finding the STE of a StreamID. */
export type SteLookup =
  | { ok: true; ste: Ste }
  | { ok: false; event: 'C_BAD_STREAMID'; reason: string }
  | { ok: false; event: 'F_STE_FETCH'; fetchAddr: number; reason: string };

export class StreamTable {
  private geom: StrtabGeometry | null = null;

  constructor(
    private readonly mem: PhysMem,
    private readonly regs: RegisterFile<SmmuRegName>,
    private readonly feat: SmmuFeatures,
    private readonly cache: ConfigCache,
    private readonly stats: Float64Array,
    private readonly aborts: FaultEngine,
  ) {}

  /** STRTAB_BASE(_CFG) may have changed (they are writable only while SMMUEN=0): re-read on next use. */
  reconfigure(): void {
    this.geom = null;
  }

  geometry(): StrtabGeometry {
    return (this.geom ??= strtabGeometry(this.regs, this.feat));
  }

  /** Finds, fetches (or takes from the cache) and decodes the STE of `sid` (3.3, 5.1, 5.2). */
  lookup(sid: number): SteLookup {
    const g = this.geometry();
    if (sid >= 2 ** g.log2size) {
      return { ok: false, event: 'C_BAD_STREAMID', reason: `StreamID ${hex(sid, 0)} beyond the ${2 ** g.log2size}-entry stream table` };
    }
    const cached = this.cache.getSte(sid);
    if (cached) {
      this.stats[XSTAT.CONFIG_HITS]!++;
      return { ok: true, ste: cached };
    }
    this.stats[XSTAT.CONFIG_MISSES]!++;
    let addr: number;
    if (!g.twoLevel) {
      addr = g.base + sid * STE_BYTES;
    } else {
      const l1 = this.l1(sid, g);
      if ('event' in l1) return l1;
      addr = l1.l2 + (sid - l1.first) * STE_BYTES;
    }
    let words: Uint32Array;
    try {
      this.stats[XSTAT.STE_FETCHES]!++;
      this.aborts.abortFetch('ste', addr, STE_BYTES, 'STE fetch');
      words = this.mem.readStruct(addr, STE_QWORDS, 'STE fetch');
    } catch (e) {
      if (!(e instanceof BusAbort)) throw e;
      return { ok: false, event: 'F_STE_FETCH', fetchAddr: addr, reason: `STE fetch for StreamID ${hex(sid, 0)} at PA ${hex(addr, 0)} aborted` };
    }
    const ste = decodeSte(words, addr, this.feat);
    this.cache.putSte(sid, ste);
    return { ok: true, ste };
  }

  /** The L1STD covering sid (5.1): from the cache, or fetched and checked (then cached if valid). */
  private l1(sid: number, g: StrtabGeometry): L1Std | Exclude<SteLookup, { ok: true }> {
    const hit = this.cache.getL1Std(sid);
    if (hit) return hit;
    const idx = Math.floor(sid / 2 ** g.split);
    const pa = g.base + idx * 8;
    let d: bigint;
    try {
      this.stats[XSTAT.STE_FETCHES]!++;
      this.aborts.abortFetch('ste', pa, 8, 'L1STD fetch');
      d = this.mem.read64(pa, 'L1STD fetch');
    } catch (e) {
      if (!(e instanceof BusAbort)) throw e;
      return { ok: false, event: 'F_STE_FETCH', fetchAddr: pa, reason: `L1STD fetch for StreamID ${hex(sid, 0)} at PA ${hex(pa, 0)} aborted` };
    }
    const span = Number(L1STD.SPAN.get64(d));
    const bad = (why: string) => ({ ok: false as const, event: 'C_BAD_STREAMID' as const, fetchAddr: pa, reason: `StreamID ${hex(sid, 0)}: L1STD ${idx} ${why}` });
    // Span 0 is invalid and 12..31 are reserved (behave as 0); a span wider than the split point, or a
    // StreamID beyond the span, is out of range (5.1.1). Invalid L1STDs are not cached.
    if (span === 0 || span > L1STD_SPAN_MAX) return bad(`has Span=${span} (invalid)`);
    if (span > g.split + 1) return bad(`Span=${span} exceeds SPLIT+1=${g.split + 1}`);
    const first = idx * 2 ** g.split;
    const count = 2 ** (span - 1);
    if (sid - first >= count) return bad(`Span=${span} covers ${count} STEs, not index ${sid - first}`);
    // L2Ptr[5+Span-1:0] are treated as 0: the array is aligned to its size (5.1).
    const raw = Number(L1STD.L2PTR.get64(d)) * 64;
    const align = count * STE_BYTES;
    const l1: L1Std = { first, count, l2: raw - (raw % align) };
    this.cache.putL1Std(l1);
    return l1;
  }
}
