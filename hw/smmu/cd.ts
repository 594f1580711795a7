// Context descriptor tables (IHI 0070 3.3.2, 5.2 S1Fmt/S1CDMax/S1DSS, 5.3, 5.4, 5.4.2).
//
// A stage 1 STE points at one CD, a linear table of 2^S1CDMax CDs, or a 2-level table (L1CDs pointing
// at 4 KiB or 64 KiB leaf tables). With stage 2 enabled every CD and L1CD pointer is an IPA, fetched
// through stage 2 (faults there are stage 2 faults with CLASS=CD and are not cached). CDs are cached
// per {StreamID, CD table index} whatever their content, L1CDs per {StreamID, index span} also when
// invalid (5.3.1: software must invalidate an L1CD it makes valid), until CFGI_CD/CFGI_CD_ALL/CFGI_STE.
// Validation follows the CdIllegal pseudocode (5.4.2) for the features this model implements.

import { BusAbort, XSTAT } from '../../src/machine/layout.ts';
import type { PhysMem } from '../../src/machine/dma.ts';
import { CD, CD_BYTES, CD_QWORDS, L1CD, L1CD_BYTES, TG0, TXSZ_MAX, TXSZ_MIN, psBits } from '../../src/arch/smmu/cd.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { REGIME, S1FMT } from '../../src/arch/smmu/ste.ts';
import { OA_BITS_4K, levelShift4k, startLevel4k } from '../../src/arch/smmu/pte.ts';
import type { ConfigCache } from './config-cache.ts';
import type { Cd, L1Cd, Ste } from './config.ts';
import type { FaultEngine } from '../faults.ts';
import type { TableXlate, XlateFault } from './walk.ts';
import { hex } from '../../src/arch/bits.ts';

/** CD.TG1 encodes the 4 KiB granule as 0b10 (5.4). */
const TG1_4K = 2;

/**
 * Decodes and validates a CD (5.4, 5.4.2 CdIllegal) used in translation regime `regime`. Never throws.
 */
export function decodeCd(w: Uint32Array, addr: number, regime: number, feat: SmmuFeatures): Cd {
  const oas = feat.oasBits;
  const t0sz = CD.T0SZ.read(w);
  const el2 = regime === REGIME.EL2;
  // EL2 (without E2H) has no TTB1 and the EPDx bits are effectively 0 (5.4 EPD0, 5.4.1).
  const epd0 = !el2 && CD.EPD0.read(w) === 1;
  const epd1 = el2 || CD.EPD1.read(w) === 1;
  const ipsBits = Math.min(psBits(CD.IPS.read(w)), oas);
  const iaBits = 64 - Math.min(Math.max(t0sz, TXSZ_MIN), TXSZ_MAX);
  const startLevel = startLevel4k(64 - iaBits);
  const rawTtb0 = Number(CD.TTB0.read64(w)) * 16;
  // TTB0 low bits below the start-level table size (at least 64 bytes) are treated as zero.
  const tableBytes = Math.max(2 ** (iaBits - levelShift4k(startLevel)) * 8, 64);
  const asid = CD.ASID.read(w);

  const illegal = ((): string | null => {
    if (CD.V.read(w) === 0) return 'V=0';
    // No stall model (IDR0.STALL_MODEL=0b01): S=1 is ILLEGAL whatever STE.S1STALLD says.
    if (CD.S.read(w) === 1) return 'S=1 without a stall model (IDR0.STALL_MODEL=0b01)';
    if (CD.A.read(w) === 0) return 'A=0, but this SMMU only terminates with an abort (IDR0.TERM_MODEL=1)';
    if ((!epd0 || !epd1) && CD.ENDI.read(w) === 1) return 'ENDI=1 on a little-endian-only SMMU (IDR0.TTENDIAN)';
    if (CD.AA64.read(w) === 0) return 'AA64=0 selects VMSAv8-32, which is not implemented (IDR0.TTF)';
    if (CD.HA.read(w) || CD.HD.read(w)) return 'HA/HD set without HTTU';
    if (!el2 && !feat.asid16 && asid > 0xff) return `ASID=${hex(asid, 0)} needs ASID16`;
    if (!epd0) {
      if (t0sz < TXSZ_MIN || t0sz > TXSZ_MAX) return `T0SZ=${t0sz} out of range ${TXSZ_MIN}..${TXSZ_MAX}`;
      // Only the 4 KiB granule is walked by this model.
      if (CD.TG0.read(w) !== TG0.G4K) return `TG0=${CD.TG0.read(w)} is not a granule this model walks (4 KiB only)`;
      if (rawTtb0 >= 2 ** ipsBits || rawTtb0 >= 2 ** OA_BITS_4K) return `TTB0 ${hex(rawTtb0, 0)} beyond the ${ipsBits}-bit IPS`;
    }
    if (!epd1) {
      const t1sz = CD.T1SZ.read(w);
      if (t1sz < TXSZ_MIN || t1sz > TXSZ_MAX) return `T1SZ=${t1sz} out of range ${TXSZ_MIN}..${TXSZ_MAX}`;
      if (CD.TG1.read(w) !== TG1_4K) return `TG1=${CD.TG1.read(w)} is not a granule this model walks (4 KiB only)`;
      const ttb1 = Number(CD.TTB1.read64(w)) * 16;
      if (ttb1 >= 2 ** ipsBits || ttb1 >= 2 ** OA_BITS_4K) return `TTB1 ${hex(ttb1, 0)} beyond the ${ipsBits}-bit IPS`;
    }
    return null;
  })();

  return {
    addr,
    illegal,
    asid,
    t0sz,
    epd0,
    ttb0: rawTtb0 - (rawTtb0 % tableBytes),
    iaBits,
    startLevel,
    ipsBits,
    affd: CD.AFFD.read(w) === 1,
    had0: CD.HAD0.read(w) === 1,
    wxn: CD.WXN.read(w) === 1,
    pan: !el2 && CD.PAN.read(w) === 1,
    r: CD.R.read(w) === 1,
    a: CD.A.read(w) === 1,
  };
}

/** Outcome of fetching the CD at one CD table index. */
export type CdLookup =
  | { ok: true; cd: Cd }
  | { ok: false; event: 'C_BAD_SUBSTREAMID'; reason: string }
  | { ok: false; event: 'F_CD_FETCH'; fetchAddr: number; reason: string }
  /** A stage 2 fault translating the CD or L1CD IPA (reported as a stage 2 fault with CLASS=CD). */
  | { ok: false; event: 'S2'; fault: XlateFault; reason: string };

type CdFailure = Exclude<CdLookup, { ok: true }>;


export class CdTables {
  constructor(
    private readonly mem: PhysMem,
    private readonly feat: SmmuFeatures,
    private readonly cache: ConfigCache,
    private readonly stats: Float64Array,
    private readonly aborts: FaultEngine,
  ) {}

  /**
   * The CD at `index` of the table `ste` points at (index 0 for a single-CD configuration). The caller
   * has checked index against S1CDMax. `s2` translates the IPAs of a nested stream (null otherwise).
   */
  lookup(sid: number, ste: Ste, index: number, regime: number, s2: TableXlate | null): CdLookup {
    const cached = this.cache.getCd(sid, index);
    if (cached) {
      this.stats[XSTAT.CONFIG_HITS]!++;
      return { ok: true, cd: cached };
    }
    this.stats[XSTAT.CONFIG_MISSES]!++;
    let cdAddr: number;
    const single = ste.s1cdmax === 0 || this.feat.ssidBits === 0;
    if (single) {
      cdAddr = ste.s1ctxptr;
    } else if (ste.s1fmt === S1FMT.LINEAR) {
      // The linear table is aligned to its size: S1ContextPtr[S1CDMax+5:6] are treated as 0 (5.2).
      const bytes = 2 ** ste.s1cdmax * CD_BYTES;
      cdAddr = ste.s1ctxptr - (ste.s1ctxptr % bytes) + index * CD_BYTES;
    } else {
      const leafBits = ste.s1fmt === S1FMT.L2_4K ? 6 : 10; // 64 CDs per 4 KiB, 1024 per 64 KiB leaf
      const l1 = this.l1(sid, ste, index, leafBits, s2);
      if ('event' in l1) return l1;
      if (!l1.v) return { ok: false, event: 'C_BAD_SUBSTREAMID', reason: `L1CD for CD index ${index} at ${hex(l1.fetchAddr, 0)} has V=0` };
      // L2Ptr beyond the output (or intermediate) address size is C_BAD_SUBSTREAMID from v3.1 (5.3).
      if (l1.l2 >= 2 ** this.feat.oasBits) return { ok: false, event: 'C_BAD_SUBSTREAMID', reason: `L1CD L2Ptr ${hex(l1.l2, 0)} out of range` };
      cdAddr = l1.l2 + (index % 2 ** leafBits) * CD_BYTES;
    }
    const pa = this.toPa(cdAddr, s2);
    if (typeof pa !== 'number') return pa;
    let words: Uint32Array;
    try {
      this.stats[XSTAT.CD_FETCHES]!++;
      this.aborts.abortFetch('cd', pa, CD_BYTES, 'CD fetch');
      words = this.mem.readStruct(pa, CD_QWORDS, 'CD fetch');
    } catch (e) {
      if (!(e instanceof BusAbort)) throw e;
      return { ok: false, event: 'F_CD_FETCH', fetchAddr: pa, reason: `CD ${index} fetch at PA ${hex(pa, 0)} aborted` };
    }
    const cd = decodeCd(words, pa, regime, this.feat);
    this.cache.putCd(sid, index, cd);
    return { ok: true, cd };
  }

  private toPa(ipa: number, s2: TableXlate | null): number | CdFailure {
    if (!s2) return ipa;
    const t = s2(ipa);
    return t.ok ? t.pa : { ok: false, event: 'S2', fault: t.fault, reason: t.fault.reason };
  }

  private l1(sid: number, ste: Ste, index: number, leafBits: number, s2: TableXlate | null): L1Cd | CdFailure {
    const hit = this.cache.getL1Cd(sid, index);
    if (hit) return hit.l1;
    const l1Index = Math.floor(index / 2 ** leafBits);
    // The L1 table is aligned to MAX(its size, 64 bytes) (5.2 S1Fmt).
    const l1Bytes = Math.max(2 ** Math.max(ste.s1cdmax - leafBits, 0) * L1CD_BYTES, 64);
    const l1Base = ste.s1ctxptr - (ste.s1ctxptr % l1Bytes);
    const pa = this.toPa(l1Base + l1Index * L1CD_BYTES, s2);
    if (typeof pa !== 'number') return pa;
    let d: bigint;
    try {
      this.stats[XSTAT.CD_FETCHES]!++;
      this.aborts.abortFetch('cd', pa, 8, 'L1CD fetch');
      d = this.mem.read64(pa, 'L1CD fetch');
    } catch (e) {
      if (!(e instanceof BusAbort)) throw e;
      return { ok: false, event: 'F_CD_FETCH', fetchAddr: pa, reason: `L1CD ${l1Index} fetch at PA ${hex(pa, 0)} aborted` };
    }
    const raw = Number(L1CD.L2PTR.get64(d)) * 4096;
    // For 64 KiB leaf tables L2Ptr[15:12] are RES0, treated as 0 (5.2 S1Fmt).
    const l2 = leafBits === 10 ? raw - (raw % 65536) : raw;
    const l1: L1Cd = { v: L1CD.V.get64(d) === 1n, l2, fetchAddr: pa };
    const span = 2 ** leafBits;
    this.cache.putL1Cd(sid, { first: l1Index * span, count: span, l1 });
    return l1;
  }
}
