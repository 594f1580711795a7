// The hitless STE/CD writer: every transition between the configurations the driver builds, checked by
// an observer of what the SMMU could read after every 64-bit store, plus Linux's KUnit cases
// (arm-smmu-v3-test.c) with their expected sync counts.
//
// The observer models IHI 0070 3.21.3: the SMMU reads an entry 64 bits at a time, in any order, at any
// moment between two syncs (a CFGI + CMD_SYNC makes it forget what it read before). So within each
// sync window, every combination of per-qword values that existed in that window is a possible read,
// and each must be the old or the new configuration in the bits the SMMU uses (update-safe bits
// excepted), or — only for transitions that cannot be hitless — an invalid entry (V=0).

import { describe, expect, it } from 'vitest';
import { writeEntry } from '../src/host/index.ts';
import { ENTRY_QWORDS, arrayStore, cdUsed, dramStore, effectiveSafe, steUsed, writeEntryTo, type EntryKind, type QwordStore } from '../drivers/arm-smmu-v3/entry-writer.ts';
import { qset } from '../src/arch/bits.ts';
import { makeAbortSte, makeBypassSte, makeCdtableSte, makeNestedSte, makeS2Ste, type Entry, type S2SteConfig, type SteFeatures } from '../drivers/arm-smmu-v3/ste.ts';
import { makeS1Cd } from '../drivers/arm-smmu-v3/cd.ts';
import { CD } from '../src/arch/smmu/cd.ts';
import { EATS, S1DSS, S1FMT, STE, STE_CONFIG } from '../src/arch/smmu/ste.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { iommuRig } from './helpers/iommu.ts';
import { IOMMU } from '../drivers/iommu/iommu.ts';
import { EVT } from '../src/arch/smmu/events.ts';

// ---- the observer ----

const V_BIT: Record<EntryKind, bigint> = { ste: 1n, cd: 1n << 31n };

function used(kind: EntryKind, e: ArrayLike<bigint>): BigUint64Array {
  const u = new BigUint64Array(ENTRY_QWORDS);
  (kind === 'ste' ? steUsed : cdUsed)(e, u);
  return u;
}

function isValid(kind: EntryKind, e: ArrayLike<bigint>): boolean {
  return (e[0]! & V_BIT[kind]) !== 0n;
}

/** True when `s` is configuration `x` in every bit `s` uses, ignoring the transition's update-safe bits. */
function sameConfig(kind: EntryKind, s: ArrayLike<bigint>, x: ArrayLike<bigint>, safe: BigUint64Array): boolean {
  const u = used(kind, s);
  for (let i = 0; i < ENTRY_QWORDS; i++) {
    const m = u[i]! & ~safe[i]!;
    if ((s[i]! & m) !== (x[i]! & m)) return false;
  }
  return true;
}

interface Observation {
  syncs: number;
  stores: number;
  /** Reads (qword combinations) the SMMU could have made that were neither config: a torn entry. */
  torn: string[];
  /** Some possible read had V=0. */
  sawInvalid: boolean;
  /** At some sync the entry in memory had V=0 (the KUnit harness's "invalid written"). */
  invalidAtSync: boolean;
}

/**
 * Runs the writer from `init` to `target` on an array store, recording every store; checks every read
 * the SMMU could make in every sync window.
 */
function observe(kind: EntryKind, init: Entry, target: Entry, run?: (store: QwordStore, sync: () => void) => void): Observation & { final: Entry } {
  const mem = BigUint64Array.from(init);
  const safe = effectiveSafe(kind, init, target);
  // Per window: the set of values each qword took.
  const windows: Set<bigint>[][] = [];
  const fresh = () => Array.from({ length: ENTRY_QWORDS }, (_, i) => new Set([mem[i]!]));
  let win = fresh();
  const obs: Observation = { syncs: 0, stores: 0, torn: [], sawInvalid: false, invalidAtSync: false };
  const inner = arrayStore(mem);
  const store: QwordStore = {
    read: (i) => inner.read(i),
    write: (i, v) => {
      inner.write(i, v);
      obs.stores++;
      win[i]!.add(mem[i]!);
    },
  };
  const sync = () => {
    obs.syncs++;
    if (!isValid(kind, mem)) obs.invalidAtSync = true;
    windows.push(win);
    win = fresh();
  };
  (run ?? ((s, y) => writeEntryTo(kind, s, target, y)))(store, sync);
  windows.push(win);
  for (const w of windows) {
    const vals = w.map((s) => [...s]);
    const combo = new BigUint64Array(ENTRY_QWORDS);
    const walk = (i: number): void => {
      if (i === ENTRY_QWORDS) {
        if (!isValid(kind, combo)) {
          obs.sawInvalid = true;
          return;
        }
        if (!sameConfig(kind, combo, init, safe) && !sameConfig(kind, combo, target, safe)) {
          obs.torn.push([...combo].map((q) => q.toString(16)).join(' '));
        }
        return;
      }
      for (const v of vals[i]!) {
        combo[i] = v;
        walk(i + 1);
      }
    };
    walk(0);
  }
  return { ...obs, final: mem };
}

// ---- configurations (Linux KUnit fixture values, made to fit the fields) ----

/** As the KUnit fixture: an SMMU that can stall and overrides attribute types. */
const FEAT: SteFeatures = { stalls: true, attrTypesOvr: true, e2h: false };
/** KUnit's fake CD table: 0xF0F0F0F0F0F0 (64-byte aligned here), S1CDMax 0xFF (31 in its 5 bits), 64K leaves. */
const CDTAB = { basePa: 0xf0f0f0f0f0c0, s1fmt: S1FMT.L2_64K, s1cdmax: 31 };
/** KUnit's stage-2 values: vttbr 0xdaedbeefdeadbeef masked to [51:4], ps=1 tg=2 sh=3 orgn=1 irgn=2 sl=3 tsz=4. */
const S2: S2SteConfig = { vmid: 0, vttbr: 0xdbeefdeadbee0, vtcr: { tsz: 4, sl: 3, irgn: 2, orgn: 1, sh: 3, tg: 2, ps: 1 } };

const abort = () => makeAbortSte();
const bypass = () => makeBypassSte(FEAT);
const cdtable = (s1dss: number, o: { ats?: boolean; stall?: boolean; pa?: number } = {}) =>
  makeCdtableSte(FEAT, { ...CDTAB, basePa: o.pa ?? CDTAB.basePa }, { ats: !!o.ats, s1dss, stallEnabled: !!o.stall });
const s2 = (o: { ats?: boolean; stall?: boolean; vmid?: number } = {}) => makeS2Ste(FEAT, { ...S2, vmid: o.vmid ?? 0 }, { ats: !!o.ats, stallEnabled: !!o.stall });
/** A guest vSTE: stage 1 through the fake CD table, with the given S1DSS and EATS. */
function vste(s1dss: number, ats: boolean): Entry {
  const e = new BigUint64Array(ENTRY_QWORDS);
  qset(e, STE.V, 1);
  qset(e, STE.CONFIG, STE_CONFIG.S1_TRANS);
  qset(e, STE.S1FMT, CDTAB.s1fmt);
  qset(e, STE.S1CTXPTR, CDTAB.basePa / 64);
  qset(e, STE.S1CDMAX, CDTAB.s1cdmax);
  qset(e, STE.S1DSS, s1dss);
  qset(e, STE.S1CIR, 1);
  qset(e, STE.S1COR, 1);
  qset(e, STE.S1CSH, 3);
  qset(e, STE.S1STALLD, 1);
  if (ats) qset(e, STE.EATS, EATS.TRANS);
  return e;
}
const nested = (s1dss: number, ats: boolean) => makeNestedSte(FEAT, S2, vste(s1dss, ats), { stallEnabled: false });

/** KUnit's S1 CD values: ttbr 0xdaedbeefdeadbeef masked, tcr ips=1 tg=2 sh=3 orgn=1 irgn=2 tsz=4, mair 0xabcdef012345678. */
const s1cd = (asid: number) =>
  makeS1Cd(asid, { ttbr: 0xdbeefdeadbee0, tcr: { tsz: 4, tg: 2, irgn: 2, orgn: 1, sh: 3, ips: 1 }, mair: 0xabcdef012345678n }, { stallEnabled: false });
const zeroCd = () => new BigUint64Array(ENTRY_QWORDS);
/** An SVA CD (Linux arm_smmu_make_sva_cd) sharing a CPU page table; without an mm it faults everything (EPD0). */
function svaCd(asid: number, withMm: boolean): Entry {
  const e = new BigUint64Array(ENTRY_QWORDS);
  qset(e, CD.EPD1, 1);
  qset(e, CD.V, 1);
  qset(e, CD.IPS, 5);
  qset(e, CD.AA64, 1);
  qset(e, CD.A, 1);
  qset(e, CD.ASET, 1);
  qset(e, CD.ASID, asid);
  if (withMm) {
    qset(e, CD.R, 1);
    qset(e, CD.T0SZ, 16);
    qset(e, CD.IR0, 1);
    qset(e, CD.OR0, 1);
    qset(e, CD.SH0, 3);
    qset(e, CD.TTB0, 0x4321000 / 16);
  } else {
    qset(e, CD.EPD0, 1);
  }
  qset(e, CD.MAIR0, 0x0400ff44);
  return e;
}

// ---- Linux KUnit cases (/work/notes/linux-smmu.md 4.8) ----

interface Case {
  name: string;
  kind: EntryKind;
  from: () => Entry;
  to: () => Entry;
  /** KUnit's "hitless": V was never 0 at a sync. */
  hitless: boolean;
  syncs: number;
}

const KUNIT: Case[] = [
  { name: 'bypass_to_abort', kind: 'ste', from: bypass, to: abort, hitless: true, syncs: 2 },
  { name: 'abort_to_bypass', kind: 'ste', from: abort, to: bypass, hitless: true, syncs: 2 },
  { name: 'cdtable_to_abort', kind: 'ste', from: () => cdtable(S1DSS.SSID0, { ats: true }), to: abort, hitless: true, syncs: 2 },
  { name: 'abort_to_cdtable', kind: 'ste', from: abort, to: () => cdtable(S1DSS.SSID0, { ats: true }), hitless: true, syncs: 2 },
  { name: 'cdtable_to_bypass', kind: 'ste', from: () => cdtable(S1DSS.SSID0, { ats: true }), to: bypass, hitless: true, syncs: 3 },
  { name: 'bypass_to_cdtable', kind: 'ste', from: bypass, to: () => cdtable(S1DSS.SSID0, { ats: true }), hitless: true, syncs: 3 },
  { name: 'cdtable_s1dss_change (ssid0 -> bypass)', kind: 'ste', from: () => cdtable(S1DSS.SSID0, { ats: true }), to: () => cdtable(S1DSS.BYPASS, { ats: true }), hitless: true, syncs: 1 },
  { name: 'cdtable_s1dss_change (bypass -> ssid0)', kind: 'ste', from: () => cdtable(S1DSS.BYPASS, { ats: true }), to: () => cdtable(S1DSS.SSID0, { ats: true }), hitless: true, syncs: 1 },
  { name: 's1dssbypass_to_stebypass', kind: 'ste', from: () => cdtable(S1DSS.BYPASS, { ats: true }), to: bypass, hitless: true, syncs: 2 },
  { name: 'stebypass_to_s1dssbypass', kind: 'ste', from: bypass, to: () => cdtable(S1DSS.BYPASS, { ats: true }), hitless: true, syncs: 2 },
  { name: 's2_to_abort', kind: 'ste', from: () => s2({ ats: true }), to: abort, hitless: true, syncs: 2 },
  { name: 'abort_to_s2', kind: 'ste', from: abort, to: () => s2({ ats: true }), hitless: true, syncs: 2 },
  { name: 's2_to_bypass', kind: 'ste', from: () => s2({ ats: true }), to: bypass, hitless: true, syncs: 2 },
  { name: 'bypass_to_s2', kind: 'ste', from: bypass, to: () => s2({ ats: true }), hitless: true, syncs: 2 },
  { name: 's1_to_s2', kind: 'ste', from: () => cdtable(S1DSS.SSID0, { ats: true }), to: () => s2({ ats: true }), hitless: true, syncs: 3 },
  { name: 's2_to_s1', kind: 'ste', from: () => s2({ ats: true }), to: () => cdtable(S1DSS.SSID0, { ats: true }), hitless: true, syncs: 3 },
  { name: 'non_hitless', kind: 'ste', from: () => cdtable(S1DSS.SSID0), to: () => cdtable(S1DSS.BYPASS, { pa: 0x4b4b4b4b40 }), hitless: false, syncs: 3 },
  { name: 'write_cd_test_s1_clear (zero -> s1)', kind: 'cd', from: zeroCd, to: () => s1cd(1997), hitless: false, syncs: 2 },
  { name: 'write_cd_test_s1_clear (s1 -> zero)', kind: 'cd', from: () => s1cd(1997), to: zeroCd, hitless: false, syncs: 2 },
  { name: 'write_cd_test_s1_change_asid (778 -> 1997)', kind: 'cd', from: () => s1cd(778), to: () => s1cd(1997), hitless: true, syncs: 1 },
  { name: 'write_cd_test_s1_change_asid (1997 -> 778)', kind: 'cd', from: () => s1cd(1997), to: () => s1cd(778), hitless: true, syncs: 1 },
  { name: 's1_to_s2_stall', kind: 'ste', from: () => cdtable(S1DSS.SSID0, { stall: true }), to: () => s2({ stall: true }), hitless: true, syncs: 3 },
  { name: 's2_to_s1_stall', kind: 'ste', from: () => s2({ stall: true }), to: () => cdtable(S1DSS.SSID0, { stall: true }), hitless: true, syncs: 3 },
  { name: 'nested_s1dssbypass_to_s1bypass', kind: 'ste', from: () => nested(S1DSS.BYPASS, true), to: () => s2(), hitless: true, syncs: 3 },
  { name: 'nested_s1bypass_to_s1dssbypass', kind: 'ste', from: () => s2(), to: () => nested(S1DSS.BYPASS, true), hitless: true, syncs: 2 },
  { name: 'write_cd_test_sva_clear (zero -> sva)', kind: 'cd', from: zeroCd, to: () => svaCd(1997, true), hitless: false, syncs: 2 },
  { name: 'write_cd_test_sva_clear (sva -> zero)', kind: 'cd', from: () => svaCd(1997, true), to: zeroCd, hitless: false, syncs: 2 },
  { name: 'write_cd_test_sva_release (sva -> release)', kind: 'cd', from: () => svaCd(1997, true), to: () => svaCd(1997, false), hitless: true, syncs: 2 },
  { name: 'write_cd_test_sva_release (release -> sva)', kind: 'cd', from: () => svaCd(1997, false), to: () => svaCd(1997, true), hitless: true, syncs: 2 },
];

describe('entry writer: Linux KUnit cases', () => {
  for (const c of KUNIT) {
    it(`${c.name}: ${c.hitless ? 'hitless' : 'not hitless'}, ${c.syncs} syncs`, () => {
      const from = c.from();
      const to = c.to();
      const o = observe(c.kind, from, to);
      expect(o.final).toEqual(to);
      expect(o.syncs).toBe(c.syncs);
      expect(o.invalidAtSync).toBe(!c.hitless);
      expect(o.torn).toEqual([]);
      // The public entry point runs the same algorithm: same syncs, same final entry.
      const entry = BigUint64Array.from(from);
      let syncs = 0;
      writeEntry(c.kind, entry, to, () => syncs++);
      expect(syncs).toBe(c.syncs);
      expect(entry).toEqual(to);
    });
  }
});

// ---- every transition between the STE configurations the driver builds ----

const STES: Record<string, () => Entry> = {
  abort,
  bypass,
  's1 ssid0': () => cdtable(S1DSS.SSID0),
  's1 ssid0 ats': () => cdtable(S1DSS.SSID0, { ats: true }),
  's1 s1dss=bypass': () => cdtable(S1DSS.BYPASS),
  's1 s1dss=bypass ats': () => cdtable(S1DSS.BYPASS, { ats: true }),
  's1 s1dss=terminate': () => cdtable(S1DSS.TERMINATE),
  's1 ssid0 stall': () => cdtable(S1DSS.SSID0, { stall: true }),
  's1 other cd table': () => cdtable(S1DSS.SSID0, { pa: 0x4b4b4b4b40 }),
  's2': () => s2(),
  's2 ats': () => s2({ ats: true }),
  's2 stall': () => s2({ stall: true }),
  's2 vmid 7': () => s2({ vmid: 7 }),
  'nested s1dss=bypass ats': () => nested(S1DSS.BYPASS, true),
  'nested ssid0': () => nested(S1DSS.SSID0, false),
};

/**
 * Qwords that must change while the SMMU uses them, judged from the used-bit lists: a bit both
 * configurations use (less the update-safe bits) and that differs can only change in place. If such
 * bits sit in two qwords, no single 64-bit store switches both, so some read in between is torn
 * unless V drops; with at most one such qword a hitless sequence exists.
 */
function qwordsThatMatter(from: Entry, to: Entry): number {
  const uf = used('ste', from);
  const ut = used('ste', to);
  const safe = effectiveSafe('ste', from, to);
  let n = 0;
  for (let i = 0; i < ENTRY_QWORDS; i++) if (((from[i]! ^ to[i]!) & uf[i]! & ut[i]! & ~safe[i]!) !== 0n) n++;
  return n;
}

describe('entry writer: every STE transition', () => {
  for (const [a, mkA] of Object.entries(STES)) {
    for (const [b, mkB] of Object.entries(STES)) {
      it(`${a} -> ${b}`, () => {
        const from = mkA();
        const to = mkB();
        const o = observe('ste', from, to);
        expect(o.final).toEqual(to);
        expect(o.torn).toEqual([]);
        // At most three steps, one sync each; none when nothing changes.
        expect(o.syncs).toBeLessThanOrEqual(3);
        if (a === b) expect(o.syncs).toBe(0);
        // V drops only when no hitless sequence exists.
        const mustBreak = qwordsThatMatter(from, to) >= 2;
        expect(o.sawInvalid).toBe(mustBreak);
        if (mustBreak) expect(o.syncs).toBe(3);
      });
    }
  }
});

describe('entry writer: CD transitions', () => {
  const CDS: Record<string, () => Entry> = {
    zero: zeroCd,
    's1 asid 1': () => s1cd(1),
    's1 asid 2': () => s1cd(2),
    sva: () => svaCd(3, true),
    'sva release': () => svaCd(3, false),
  };
  for (const [a, mkA] of Object.entries(CDS)) {
    for (const [b, mkB] of Object.entries(CDS)) {
      it(`${a} -> ${b}`, () => {
        const from = mkA();
        const to = mkB();
        const o = observe('cd', from, to);
        expect(o.final).toEqual(to);
        expect(o.torn).toEqual([]);
        expect(o.syncs).toBeLessThanOrEqual(3);
        // Between two valid CDs V stays 1 unless more than one used qword changes.
        if (isValid('cd', from) && isValid('cd', to)) {
          const differing = [...Array(ENTRY_QWORDS).keys()].filter((i) => (from[i]! ^ to[i]!) & used('cd', from)[i]! & used('cd', to)[i]!).length;
          expect(o.sawInvalid).toBe(differing >= 2);
        }
      });
    }
  }
});

describe('entry writer: the SMMU reading the STE after every store (lockstep)', () => {
  // After each 64-bit store the test makes the SMMU forget its cached copy (CFGI_STE + SYNC) and sends
  // a DMA write: where it lands says which configuration the SMMU saw. Only the old or the new one may
  // be seen — or, for the transitions that cannot be hitless, an invalid STE (C_BAD_STE).
  const SID = 0x44;
  const PG = 4096;
  it('abort, bypass, stage 1 and stage 2: every transition, every intermediate state', () => {
    const r = iommuRig();
    const m = r.iommu.probeDevice('observer', [SID]);
    const s1 = r.iommu.allocPaging({ stage: 1 });
    const s2 = r.iommu.allocPaging({ stage: 2 });
    // One DRAM page is the bypass target and the IOVA/IPA both domains translate to their own buffer.
    const x = r.platform.pages.alloc(1);
    const b1 = r.platform.pages.alloc(1);
    const b2 = r.platform.pages.alloc(1);
    s1.map(x, b1, PG, IOMMU.READ | IOMMU.WRITE);
    s2.map(x, b2, PG, IOMMU.READ | IOMMU.WRITE);
    // Build each configuration once through attach, and remember the STE it produced.
    const stes: Record<string, Entry> = {};
    for (const [name, d] of [['s2', s2], ['bypass', r.iommu.identity], ['abort', r.iommu.blocked], ['s1', s1]] as const) {
      r.iommu.attach(m, d);
      stes[name] = r.iommu.strtab.readSte(SID);
    }
    // CD 0 stays the stage-1 CD from here on (the other configurations ignore it).
    const stePa = r.iommu.strtab.stePa(SID);
    let n = 0;
    let badSte = 0;
    const seen = (): string => {
      r.iommu.cmds.add({ op: 'CFGI_STE', sid: SID, leaf: true });
      r.iommu.cmds.submit();
      const pattern = 0x1000 + n++;
      const t = r.dmaWrite(SID, x, 4, pattern);
      if (!t.ok) {
        if (t.event === 'C_BAD_STE') badSte++;
        return t.event === null ? 'abort' : `fault ${t.event}`;
      }
      const at = [['bypass', x], ['s1', b1], ['s2', b2]].filter(([, pa]) => r.mem.read32(pa as number) === pattern).map(([k]) => k as string);
      return at.length === 1 ? at[0]! : `landed at ${at.join('+') || 'nowhere'}`;
    };
    const names = Object.keys(stes);
    const breaking: string[] = [];
    for (const a of names) {
      for (const b of names) {
        if (a === b) continue;
        writeEntryTo('ste', dramStore(r.mem, stePa, 'STE'), stes[a]!, () => {});
        const outcomes = new Set<string>([seen()]);
        let vDropped = false;
        const store = dramStore(r.mem, stePa, 'STE');
        const watched: QwordStore = {
          read: store.read,
          write: (i, v) => {
            store.write(i, v);
            if (!(store.read(0) & 1n)) vDropped = true;
            outcomes.add(seen());
          },
        };
        writeEntryTo('ste', watched, stes[b]!, () => {});
        outcomes.add(seen());
        if (vDropped) breaking.push(`${a}->${b}`);
        const allowed = new Set([a, b, ...(vDropped ? ['fault C_BAD_STE'] : [])]);
        expect([...outcomes].filter((o) => !allowed.has(o)), `${a} -> ${b}`).toEqual([]);
        expect(outcomes.has(b), `${a} -> ${b} ends in ${b}`).toBe(true);
      }
    }
    // Stage 1 STEs carry S2VMID 0 and stage 2 ones their VMID: both qword 0 (Config) and qword 2
    // (S2VMID, used by both) must change, so only these two transitions break V.
    expect(breaking.sort()).toEqual(['s1->s2', 's2->s1']);
    expect(r.hwEvents(EVT.C_BAD_STE)).toBe(badSte);
    expect(badSte).toBeGreaterThan(0);
  });
});

describe('entry writer: properties of the algorithm', () => {
  it('stores only qwords that change, and syncs only after a step that stored something', () => {
    for (const [a, mkA] of Object.entries(STES)) {
      for (const [b, mkB] of Object.entries(STES)) {
        const to = mkB();
        const mem = mkA();
        const steps: string[] = [];
        const store: QwordStore = {
          read: (i) => mem[i]!,
          write: (i, v) => {
            steps.push(v === mem[i] ? `redundant store to qword ${i}` : 'store');
            mem[i] = v;
          },
        };
        writeEntryTo('ste', store, to, () => steps.push('sync'));
        const trace = steps.join(', ');
        expect(trace, `${a} -> ${b}`).not.toContain('redundant');
        // Every sync follows at least one store: no sync first, none right after another.
        expect(trace, `${a} -> ${b}`).not.toMatch(/(^|sync, )sync/);
        expect(mem).toEqual(to);
      }
    }
    const idle = observe('ste', s2(), s2());
    expect(idle.syncs).toBe(0);
    expect(idle.stores).toBe(0);
  });

  it('MEV and EATS (0b00 <-> 0b01) change while in use, without breaking the STE', () => {
    const noAts = cdtable(S1DSS.SSID0);
    const ats = cdtable(S1DSS.SSID0, { ats: true });
    const o = observe('ste', noAts, ats);
    expect(o.syncs).toBe(1);
    expect(o.sawInvalid).toBe(false);
    const mev = cdtable(S1DSS.SSID0);
    qset(mev, STE.MEV, 1);
    for (const [from, to] of [[noAts, mev], [mev, noAts]] as const) {
      const m = observe('ste', from, to);
      expect(m.torn).toEqual([]);
      expect(m.syncs).toBe(1);
      expect(m.sawInvalid).toBe(false);
    }
  });

  it('EATS is not update-safe when S2S is set: s2 stall -> s2 stall with ATS needs a qword-1 step of its own', () => {
    const a = s2({ stall: true });
    const b = s2({ stall: true, ats: true });
    expect(effectiveSafe('ste', a, b)[1]! & (3n << 28n)).toBe(0n);
    const o = observe('ste', a, b);
    expect(o.torn).toEqual([]);
    expect(o.syncs).toBe(1);
  });

  it('the observer catches a naive writer that stores qword by qword and syncs once', () => {
    const naive = (to: Entry) => (store: QwordStore, sync: () => void) => {
      for (let i = 0; i < ENTRY_QWORDS; i++) store.write(i, to[i]!);
      sync();
    };
    const to = s2({ ats: true });
    const o = observe('ste', cdtable(S1DSS.SSID0, { ats: true }), to, naive(to));
    expect(o.final).toEqual(to);
    expect(o.torn.length).toBeGreaterThan(0);
    // Breaking V first but writing qword 0 before the rest would expose the new Config with old S2 fields.
    const early = (store: QwordStore, sync: () => void) => {
      store.write(0, 0n);
      sync();
      store.write(0, to[0]!);
      for (let i = 1; i < ENTRY_QWORDS; i++) store.write(i, to[i]!);
      sync();
    };
    expect(observe('ste', cdtable(S1DSS.SSID0, { ats: true }), to, early).torn.length).toBeGreaterThan(0);
  });

  it('rejects a target that sets bits its configuration does not use, naming the qword', () => {
    const bad = makeAbortSte();
    qset(bad, STE.S2VMID, 5);
    expect(() => writeEntry('ste', bypass(), bad, () => {})).toThrow(/target qword 2 sets bits/);
    expect(() => writeEntry('ste', new BigUint64Array(4), bypass(), () => {})).toThrow(/entry has 4 qwords/);
    expect(() => writeEntry('xyz' as EntryKind, bypass(), bypass(), () => {})).toThrow(/kind 'xyz'/);
  });

  it('writes DRAM with the same single-qword stores as the in-memory writer', () => {
    const { platform } = createLockstep({ features: DEFAULT_FEATURES });
    const pa = platform.pages.alloc(1, 'test STE');
    const from = cdtable(S1DSS.BYPASS, { ats: true });
    const to = s2({ ats: true });
    for (let i = 0; i < ENTRY_QWORDS; i++) platform.mem.write64(pa + i * 8, from[i]!);
    const trace = (store: QwordStore, log: string[]): QwordStore => ({
      read: (i) => store.read(i),
      write: (i, v) => {
        log.push(`${i}=${v.toString(16)}`);
        store.write(i, v);
      },
    });
    const dramLog: string[] = [];
    const arrLog: string[] = [];
    writeEntryTo('ste', trace(dramStore(platform.mem, pa, 'STE'), dramLog), to, () => dramLog.push('sync'));
    writeEntryTo('ste', trace(arrayStore(BigUint64Array.from(from)), arrLog), to, () => arrLog.push('sync'));
    expect(dramLog).toEqual(arrLog);
    expect(dramLog.filter((x) => x === 'sync')).toHaveLength(3);
    for (let i = 0; i < ENTRY_QWORDS; i++) expect(platform.mem.read64(pa + i * 8)).toBe(to[i]);
  });
});
