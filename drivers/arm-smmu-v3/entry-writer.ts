// The "used bits" STE/CD writer (Linux arm_smmu_write_entry and its helpers, newest form with
// get_update_safe), written once and parameterised by where the entry's qwords live.
//
// The SMMU reads an STE or CD 64 bits at a time with single-copy atomicity but in any order and at any
// moment (IHI 0070 3.21.3), and may cache it until a CFGI_* + CMD_SYNC. A configuration change is
// therefore a sequence of single-qword stores separated by syncs, chosen so that whatever the SMMU
// reads in between is either the old or the new configuration in the bits it uses:
//
//   - bits the current configuration ignores (and the "update-safe" bits) may change first, all at once;
//   - if then exactly one qword still has to change bits the hardware uses, that one 64-bit store
//     switches configurations (hitless), and a last step clears bits the new configuration ignores;
//   - if more than one qword has to change, there is no hitless sequence: V is cleared (qword 0 := 0),
//     the other qwords are written, then qword 0 makes the entry valid again (3.21.3.1).
//
// "Used" bits are the fields the SMMU interprets for the entry's V/Config (STE, 5.2) or V/EPD0 (CD,
// 5.4); they are computed from the entry itself, as Linux's arm_smmu_get_ste_used / get_cd_used do.

import { qget, qwordMask, type Field } from '../../src/arch/bits.ts';
import type { PhysMem } from '../../src/machine/dma.ts';
import { CD } from '../../src/arch/smmu/cd.ts';
import { EATS, S1DSS, STE, STE_CONFIG } from '../../src/arch/smmu/ste.ts';

/** STEs and CDs are both 8 qwords (5.2, 5.4). */
export const ENTRY_QWORDS = 8;

export type EntryKind = 'ste' | 'cd';

/** An entry's qwords, wherever they live: each read and write is one single-copy atomic 64-bit access. */
export interface QwordStore {
  read(i: number): bigint;
  write(i: number, v: bigint): void;
}

/** A BigUint64Array (or any 8-qword array) as the store. */
export function arrayStore(entry: BigUint64Array): QwordStore {
  return {
    read: (i) => entry[i]!,
    write: (i, v) => {
      entry[i] = v;
    },
  };
}

/** An entry in DRAM at `pa`: one 64-bit single-copy atomic access per qword (PhysMem.read64/write64). */
export function dramStore(mem: PhysMem, pa: number, what: string): QwordStore {
  return {
    read: (i) => mem.read64(pa + i * 8, what),
    write: (i, v) => mem.write64(pa + i * 8, v, what),
  };
}

const m = (...fields: Field[]): bigint => {
  let v = 0n;
  let q = -1;
  for (const f of fields) {
    const r = qwordMask(f);
    if (q !== -1 && r.q !== q) throw new Error(`mask of ${fields.map((x) => x.name).join(',')} spans qwords`);
    q = r.q;
    v |= r.mask;
  }
  return v;
};

const ALL = (1n << 64n) - 1n;

// STE masks by qword (5.2). "VTCR" is Linux's name for S2T0SZ..S2PS, STE bits [178:160].
const STE_V = m(STE.V);
const STE_CFG = m(STE.CONFIG);
const STE_S1_Q0 = m(STE.S1FMT, STE.S1CTXPTR, STE.S1CDMAX);
const STE_S1_Q1 = m(STE.S1DSS, STE.S1CIR, STE.S1COR, STE.S1CSH, STE.S1STALLD, STE.STRW, STE.EATS, STE.MEV);
const STE_S2_Q1 = m(STE.S2FWB, STE.EATS, STE.SHCFG, STE.MEV);
const STE_S2_Q2 = m(STE.S2VMID, STE.S2T0SZ, STE.S2SL0, STE.S2IR0, STE.S2OR0, STE.S2SH0, STE.S2TG, STE.S2PS, STE.S2AA64, STE.S2ENDI, STE.S2PTW, STE.S2S, STE.S2R);
const STE_S2_Q3 = m(STE.S2TTB);
const STE_SHCFG = m(STE.SHCFG);
const STE_S2VMID = m(STE.S2VMID);
const STE_MEV = m(STE.MEV);
const STE_S2S = m(STE.S2S);
/** EATS values as bits in qword 1: the TRANS encoding (0b01) and the S1CHK bit (0b10). */
const STE_EATS_TRANS = BigInt(EATS.TRANS) << BigInt(STE.EATS.lsb & 63);
const STE_EATS_S1CHK = BigInt(EATS.S1CHK) << BigInt(STE.EATS.lsb & 63);

const CD_V = m(CD.V);
const CD_EPD0 = m(CD.EPD0);
const CD_TT0_Q0 = m(CD.T0SZ, CD.TG0, CD.IR0, CD.OR0, CD.SH0);
const CD_TTB0 = m(CD.TTB0);

/** Bits of an STE the SMMU uses for its V and Config (Linux arm_smmu_get_ste_used). */
export function steUsed(e: ArrayLike<bigint>, used: BigUint64Array): void {
  used.fill(0n);
  used[0] = STE_V;
  if (!(e[0]! & STE_V)) return;
  used[0] |= STE_CFG;
  const cfg = qget(e, STE.CONFIG);
  // Config bit 0 = stage 1 translates (0b101, 0b111); bit 1 = stage 2 translates (0b110, 0b111).
  if (cfg & 1) {
    used[0] |= STE_S1_Q0;
    used[1]! |= STE_S1_Q1;
    // S2VMID tags stage-1 TLB entries even when stage 2 bypasses (5.2).
    used[2]! |= STE_S2VMID;
    // With S1DSS=bypass, SubstreamID-less traffic takes the STE's attribute overrides (13.5).
    if (qget(e, STE.S1DSS) === S1DSS.BYPASS) used[1]! |= STE_SHCFG;
  }
  if (cfg & 2) {
    used[1]! |= STE_S2_Q1;
    used[2]! |= STE_S2_Q2;
    used[3]! |= STE_S2_Q3;
  }
  if (cfg === STE_CONFIG.BYPASS) used[1]! |= STE_SHCFG;
}

/**
 * STE bits that may change "out of order", while the hardware uses them (Linux
 * arm_smmu_get_ste_update_safe): MEV only merges events, and software copes with merged events even
 * with MEV=0; EATS between 0b00 and 0b01 is safe because the attach code turns ATS off at the device
 * before EATS changes — unless S1CHK (0b10) or S2S is involved, where a transient mix is illegal.
 */
function steUpdateSafe(cur: ArrayLike<bigint>, target: ArrayLike<bigint>, safe: BigUint64Array): void {
  safe.fill(0n);
  if (!((cur[1]! | target[1]!) & STE_EATS_S1CHK) && !((cur[2]! | target[2]!) & STE_S2S)) safe[1]! |= STE_EATS_TRANS;
  safe[1]! |= STE_MEV;
}

/** Bits of a CD the SMMU uses (Linux arm_smmu_get_cd_used): V alone when invalid; all, minus TT0 when EPD0. */
export function cdUsed(e: ArrayLike<bigint>, used: BigUint64Array): void {
  used.fill(0n);
  used[0] = CD_V;
  if (!(e[0]! & CD_V)) return;
  used.fill(ALL);
  if (e[0]! & CD_EPD0) {
    used[0] &= ~CD_TT0_Q0;
    used[1]! &= ~CD_TTB0;
  }
}

interface EntryOps {
  name: string;
  used(e: ArrayLike<bigint>, out: BigUint64Array): void;
  updateSafe?(cur: ArrayLike<bigint>, target: ArrayLike<bigint>, out: BigUint64Array): void;
}

const ENTRY_OPS: Record<EntryKind, EntryOps> = {
  ste: { name: 'STE', used: steUsed, updateSafe: steUpdateSafe },
  cd: { name: 'CD', used: cdUsed },
};

/** The update-safe bits actually relaxed for a transition: safe, and used by both configurations. */
export function effectiveSafe(kind: EntryKind, cur: ArrayLike<bigint>, target: ArrayLike<bigint>): BigUint64Array {
  const ops = ENTRY_OPS[kind];
  const safe = new BigUint64Array(ENTRY_QWORDS);
  if (!ops.updateSafe) return safe;
  const cu = new BigUint64Array(ENTRY_QWORDS);
  const tu = new BigUint64Array(ENTRY_QWORDS);
  ops.used(cur, cu);
  ops.used(target, tu);
  ops.updateSafe(cur, target, safe);
  for (let i = 0; i < ENTRY_QWORDS; i++) safe[i]! &= cu[i]! & tu[i]!;
  return safe;
}

/**
 * Which qwords must change bits the hardware uses, once every bit it ignores (or may see change
 * safely) has been updated (Linux arm_smmu_entry_qword_diff). Fills `unusedUpdate` with that
 * intermediate entry; returns a bitmap of qword indices.
 */
function qwordDiff(ops: EntryOps, entry: ArrayLike<bigint>, target: ArrayLike<bigint>, unusedUpdate: BigUint64Array): number {
  const curUsed = new BigUint64Array(ENTRY_QWORDS);
  const targetUsed = new BigUint64Array(ENTRY_QWORDS);
  const safe = new BigUint64Array(ENTRY_QWORDS);
  ops.used(entry, curUsed);
  ops.used(target, targetUsed);
  ops.updateSafe?.(entry, target, safe);
  let diff = 0;
  for (let i = 0; i < ENTRY_QWORDS; i++) {
    // Relaxation applies only to bits both configurations use; others follow the unused rule anyway.
    safe[i]! &= targetUsed[i]! & curUsed[i]!;
    // The make_* builders never set a bit the target configuration ignores; a target that does is a
    // bug in its builder, and writing it would leave junk the next transition trips over.
    const junk = target[i]! & ~targetUsed[i]!;
    if (junk) {
      throw new RangeError(`${ops.name} writer: target qword ${i} sets bits 0x${junk.toString(16)} that its configuration does not use`);
    }
    const cu = curUsed[i]! & ~safe[i]!;
    unusedUpdate[i] = (entry[i]! & cu) | (target[i]! & ~cu);
    if ((unusedUpdate[i]! & targetUsed[i]!) !== target[i]!) diff |= 1 << i;
  }
  return diff;
}

/**
 * Changes the entry in `store` to `target` with the fewest syncs that never expose a torn
 * configuration (Linux arm_smmu_write_entry). `sync` must make the SMMU forget any cached copy of the
 * entry and wait for that (CFGI_STE / CFGI_CD + CMD_SYNC); it is called once after each step that
 * stored something.
 */
export function writeEntryTo(kind: EntryKind, store: QwordStore, target: ArrayLike<bigint>, sync: () => void): void {
  const ops = ENTRY_OPS[kind];
  if (target.length !== ENTRY_QWORDS) throw new RangeError(`${ops.name} writer: target has ${target.length} qwords, expected ${ENTRY_QWORDS}`);
  // The driver owns the entry (the SMMU never writes STEs or CDs), so a shadow of what was read
  // stays exact while we write.
  const entry = new BigUint64Array(ENTRY_QWORDS);
  for (let i = 0; i < ENTRY_QWORDS; i++) entry[i] = store.read(i);
  const tgt = BigUint64Array.from(target, (v) => BigInt.asUintN(64, v));

  // Stores the qwords [start, start+len) of `to` that differ, one 64-bit store each, then syncs once
  // if anything changed (Linux entry_set).
  const set = (to: ArrayLike<bigint>, start: number, len: number): void => {
    let changed = false;
    for (let i = start; i < start + len; i++) {
      if (entry[i] !== to[i]) {
        entry[i] = to[i]!;
        store.write(i, to[i]!);
        changed = true;
      }
    }
    if (changed) sync();
  };

  const unused = new BigUint64Array(ENTRY_QWORDS);
  const diff = qwordDiff(ops, entry, tgt, unused);
  if (diff !== 0 && (diff & (diff - 1)) === 0) {
    // Hitless: one "critical" qword changes the used bits. Its unused bits are written together with
    // it in step 2, which can save the first sync.
    const crit = 31 - Math.clz32(diff);
    unused[crit] = entry[crit]!;
    set(unused, 0, ENTRY_QWORDS);
    set(tgt, crit, 1);
    set(tgt, 0, ENTRY_QWORDS);
  } else if (diff !== 0) {
    // Breaking: V=0 (all of qword 0), the rest, then qword 0 with V=1 (3.21.3.1).
    unused[0] = 0n;
    set(unused, 0, 1);
    set(tgt, 1, ENTRY_QWORDS - 1);
    set(tgt, 0, 1);
  } else {
    // No used bit changes, though update-safe bits may have.
    set(tgt, 0, ENTRY_QWORDS);
  }
}

/**
 * The writer as a pure function on an in-memory entry: `entry` (8 qwords) is updated in place to
 * `target`, calling `sync` between steps exactly as the driver issues CFGI + CMD_SYNC.
 */
export function writeEntry(kind: EntryKind, entry: BigUint64Array, target: BigUint64Array, sync: () => void): void {
  if (kind !== 'ste' && kind !== 'cd') throw new RangeError(`writeEntry: kind '${String(kind)}' must be 'ste' or 'cd'`);
  if (entry.length !== ENTRY_QWORDS) throw new RangeError(`writeEntry(${kind}): entry has ${entry.length} qwords, expected ${ENTRY_QWORDS}`);
  writeEntryTo(kind, arrayStore(entry), target, sync);
}
