// Random stream tables, STEs, CDs and translation tables (legal-looking and garbage), random traffic,
// random invalidations and table changes in between: the SMMU never throws, every access ends in
// success or an architected fault, at most one event per transaction (7.2), and the event queue
// holds exactly the records the outcomes reported, each of a type the model can produce.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { Rig } from './helpers/rig.ts';
import { PageTable } from './helpers/tables.ts';
import type { CmdEnt } from '../drivers/arm-smmu-v3/cmds.ts';
import { CR0, CR2, OFF } from '../src/arch/smmu/regs.ts';
import { CD } from '../src/arch/smmu/cd.ts';
import { EVT } from '../src/arch/smmu/events.ts';
import { L1STD, STE } from '../src/arch/smmu/ste.ts';
import type { Field } from '../src/arch/bits.ts';

const POOL = 24; // pages the random structures live in and point at
const U64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

/**
 * A pointer: at a real table (the CD table, the stage 1 or stage 2 tables built for the run), into the
 * pool of random pages, anywhere below 2^48 (mostly not RAM), or any value.
 */
type Ptr = { real: 'cd' | 's1' | 's2' } | { pool: number; off: number } | { raw: bigint };
const real = (t: 'cd' | 's1' | 's2') => ({ weight: 8, arbitrary: fc.constant<Ptr>({ real: t }) });
const ptrArb: fc.Arbitrary<Ptr> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ pool: fc.integer({ min: 0, max: POOL - 1 }), off: fc.constantFrom(0, 64, 0x800, 0xfc0) }) },
  { weight: 1, arbitrary: fc.record({ raw: fc.bigInt({ min: 0n, max: 2n ** 48n - 1n }) }) },
  { weight: 1, arbitrary: fc.record({ raw: U64 }) },
);

/** Field values applied over random qwords: "fix-ups" that make a random structure plausible. */
type Fix = [Field, bigint | Ptr, number?]; // [field, value or pointer, shift of the pointer into the field]
interface Struct {
  raw: bigint[];
  fix: Fix[] | null;
}

const steArb: fc.Arbitrary<Struct> = fc.record({
  raw: fc.array(U64, { minLength: 8, maxLength: 8 }),
  fix: fc.option(
    fc.tuple(
      fc.integer({ min: 4, max: 7 }),
      fc.oneof(real('cd'), ptrArb),
      fc.oneof(real('s2'), ptrArb),
      fc.integer({ min: 0, max: 3 }),
      // S2T0SZ/S2SL0: mostly consistent pairs (the real stage 2 table is T0SZ=24, SL0=1).
      fc.oneof({ weight: 6, arbitrary: fc.constant([24, 1]) }, fc.constantFrom([25, 1], [16, 2], [34, 0]), fc.tuple(fc.integer({ min: 14, max: 41 }), fc.integer({ min: 0, max: 3 }))),
      fc.integer({ min: 0, max: 3 }),
      fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 1) }, fc.integer({ min: 0, max: 3 })),
    ).map(
      ([config, cdPtr, s2ttb, cdmax, [t0sz, sl0], dss, eats]): Fix[] => [
        [STE.V, 1n],
        [STE.CONFIG, BigInt(config)],
        [STE.S1CTXPTR, cdPtr, 6],
        [STE.S1CDMAX, BigInt(cdmax)],
        [STE.S1FMT, BigInt(cdmax & 1)],
        [STE.S1DSS, BigInt(dss)],
        [STE.S1STALLD, 0n],
        [STE.EATS, BigInt(eats)],
        [STE.STRW, 0n],
        [STE.S2T0SZ, BigInt(t0sz)],
        [STE.S2SL0, BigInt(sl0)],
        [STE.S2TG, 0n],
        [STE.S2AA64, 1n],
        [STE.S2ENDI, 0n],
        [STE.S2S, 0n],
        [STE.S2HA, 0n],
        [STE.S2HD, 0n],
        [STE.S2TTB, s2ttb, 4],
      ],
    ),
    { freq: 4 },
  ),
});

const cdArb: fc.Arbitrary<Struct> = fc.record({
  raw: fc.array(U64, { minLength: 8, maxLength: 8 }),
  fix: fc.option(
    fc.tuple(
      fc.oneof(real('s1'), ptrArb),
      fc.oneof({ weight: 6, arbitrary: fc.constant(25) }, fc.integer({ min: 14, max: 41 })),
      fc.integer({ min: 0, max: 7 }),
      fc.boolean(),
    ).map(([ttb, t0sz, ips, epd0]): Fix[] => [
      [CD.V, 1n],
      [CD.A, 1n],
      [CD.S, 0n],
      [CD.AA64, 1n],
      [CD.HA, 0n],
      [CD.HD, 0n],
      [CD.ENDI, 0n],
      [CD.TG0, 0n],
      [CD.T0SZ, BigInt(t0sz)],
      [CD.IPS, BigInt(ips)],
      [CD.EPD0, epd0 ? 1n : 0n],
      [CD.EPD1, 1n],
      [CD.TTB0, ttb, 4],
    ]),
    { freq: 4 },
  ),
});

/** A descriptor: random, or a table/page/block descriptor pointing somewhere. */
const descArb = fc.oneof(
  { weight: 1, arbitrary: U64.map((v) => ({ v })) },
  {
    weight: 3,
    arbitrary: fc.tuple(ptrArb, fc.integer({ min: 0, max: 3 }), U64).map(([p, kind, attrs]) => ({ p, kind, attrs })),
  },
);

type Op =
  | { k: 'dma' | 'ats' | 'translated'; sid: number; ssv: boolean; ssid: number; addr: number; bytes: number; write: boolean; priv: boolean; instr: boolean }
  | { k: 'cmd'; n: number; sid: number; addr: number; leaf: boolean }
  | { k: 'poke'; page: number; idx: number; v: bigint };

/** Input addresses the real tables map (stage 1 and stage 2 alike), and what each maps to (pool page). */
const MAPPED = [0x1000, 0x2000, 0x7000, 0x10_0000, 0x1f_f000] as const;
const addrArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...MAPPED), fc.integer({ min: 0, max: 4095 })).map(([a, o]) => a + o) },
  fc.integer({ min: 0, max: 0x20_0000 }),
  fc.integer({ min: 0, max: 2 ** 48 }),
  fc.constantFrom(0x4000_0000, 0x4010_0000, 2 ** 39, 2 ** 47 - 4096, 2 ** 52),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constantFrom('dma' as const, 'ats' as const, 'translated' as const),
      sid: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 7 }) }, fc.integer({ min: 0, max: 300 })),
      ssv: fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false))),
      ssid: fc.integer({ min: 0, max: 300 }),
      addr: addrArb,
      bytes: fc.integer({ min: 1, max: 8192 }),
      write: fc.boolean(),
      priv: fc.boolean(),
      instr: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('cmd' as const), n: fc.integer({ min: 0, max: 9 }), sid: fc.integer({ min: 0, max: 9 }), addr: addrArb, leaf: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('poke' as const), page: fc.integer({ min: 0, max: POOL - 1 }), idx: fc.integer({ min: 0, max: 511 }), v: U64 }) },
);

const worldArb = fc.record({
  twoLevel: fc.boolean(),
  // L1STDs: mostly pointing at the STEs in pool page 0 with a span that covers them.
  l1: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constant<[Ptr, number]>([{ pool: 0, off: 0 }, 4]) }, fc.tuple(ptrArb, fc.integer({ min: 0, max: 31 }))), { minLength: 4, maxLength: 4 }),
  stes: fc.array(steArb, { minLength: 8, maxLength: 8 }),
  cds: fc.array(cdArb, { minLength: 4, maxLength: 4 }),
  descs: fc.array(fc.tuple(fc.integer({ min: 1, max: POOL - 1 }), fc.integer({ min: 0, max: 511 }), descArb), { maxLength: 300 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 60 }),
});

/** Events the model can produce (hw-evtq.test.ts checks each of them). */
const PRODUCIBLE = new Set<number>([
  EVT.C_BAD_STREAMID, EVT.F_STE_FETCH, EVT.C_BAD_STE, EVT.F_BAD_ATS_TREQ, EVT.F_STREAM_DISABLED, EVT.F_TRANSL_FORBIDDEN,
  EVT.C_BAD_SUBSTREAMID, EVT.F_CD_FETCH, EVT.C_BAD_CD, EVT.F_WALK_EABT, EVT.F_TRANSLATION, EVT.F_ADDR_SIZE, EVT.F_ACCESS, EVT.F_PERMISSION,
]);

function tlbiCmd(n: number, sid: number, addr: number, leaf: boolean): CmdEnt {
  const page = Math.floor(addr / 4096) * 4096;
  const range = { asid: sid, vmid: 0, addr: page, leaf, num: 0, scale: 0, tg: 0, ttl: 0 };
  switch (n) {
    case 0:
      return { op: 'CFGI_ALL' };
    case 1:
      return { op: 'CFGI_STE', sid, leaf };
    case 2:
      return { op: 'CFGI_CD', sid, ssid: addr % 256, leaf };
    case 3:
      return { op: 'CFGI_CD_ALL', sid };
    case 4:
      return { op: 'TLBI_NSNH_ALL' };
    case 5:
      return { op: 'TLBI_NH_VA', tlbi: range };
    case 6:
      return { op: 'TLBI_NH_VAA', tlbi: { ...range, tg: 1, num: sid, ttl: 3 } };
    case 7:
      return { op: 'TLBI_S2_IPA', tlbi: { ...range, tg: 1, num: 1, scale: sid } };
    case 8:
      return { op: 'TLBI_NH_ASID', asid: sid, vmid: 0 };
    default:
      return { op: 'CFGI_STE_RANGE', sid, range: sid };
  }
}

describe('fuzz: random tables and traffic', () => {
  test('no crash; only architected outcomes; one event at most per transaction, matching the queue', () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const rig = new Rig({
          memBytes: 4 << 20,
          features: { atsRecErr: true },
          cr2: CR2.RECINVSID.bits | CR2.REC_CFG_ATS.bits,
          evtqLog2: 10,
          strtab: w.twoLevel ? { log2size: 8, split: 6 } : { log2size: 3 },
        });
        rig.setCr0(rig.cr0() | CR0.ATSCHK.bits);
        const pool = Array.from({ length: POOL }, () => rig.alloc());
        // Real tables: stage 1 (T0SZ=25) and stage 2 (T0SZ=24, SL0=1) map MAPPED[i] to pool page 2 + i;
        // stage 2 also maps the first 4 MiB of DRAM (tables, pool) identically, for nested streams.
        const s1 = new PageTable(rig.mem, rig.pages, 1, 25);
        const s2 = new PageTable(rig.mem, rig.pages, 2, 24, 1);
        MAPPED.forEach((va, i) => {
          s1.map(va, pool[2 + i]!, 4096, { ap: i & 3 });
          s2.map(va, pool[2 + i]!, 4096, { s2ap: 3 - (i & 1) });
        });
        s2.map(0x4000_0000, 0x4000_0000, 2 ** 21);
        s2.map(0x4020_0000, 0x4020_0000, 2 ** 21);
        const ptr = (p: Ptr): bigint =>
          'raw' in p ? p.raw : 'real' in p ? BigInt(p.real === 'cd' ? pool[1]! : p.real === 's1' ? s1.root : s2.root) : BigInt(pool[p.pool]! + p.off);
        const build = (s: Struct): bigint[] => {
          const q = [...s.raw];
          for (const [f, v, shift] of s.fix ?? []) {
            const val = (typeof v === 'bigint' ? v : ptr(v) >> BigInt(shift ?? 0)) & ((1n << BigInt(f.width)) - 1n);
            const i = f.lsb >> 6;
            // Every field fixed up here lies within one qword.
            const m = ((1n << BigInt(f.width)) - 1n) << BigInt(f.lsb % 64);
            q[i] = (q[i]! & ~m & (2n ** 64n - 1n)) | (val << BigInt(f.lsb % 64));
          }
          return q;
        };
        const put = (pa: number, q: bigint[]) => q.forEach((v, i) => rig.mem.write64(pa + i * 8, v));
        // Stream table: STEs (linear) or L1STDs pointing into the pool (2-level, STEs are pool content).
        if (w.twoLevel) w.l1.forEach(([p, span], i) => rig.mem.write64(rig.strtabBase + i * 8, L1STD.SPAN.set64(L1STD.L2PTR.set64(0n, (ptr(p) >> 6n) & (2n ** 50n - 1n)), span)));
        else w.stes.forEach((s, i) => put(rig.strtabBase + i * 64, build(s)));
        w.stes.forEach((s, i) => put(pool[0]! + i * 64, build(s))); // STE-shaped content in pool page 0
        w.cds.forEach((c, i) => put(pool[1]! + i * 64, build(c)));
        for (const [page, idx, d] of w.descs) {
          let v: bigint;
          if ('v' in d) v = d.v;
          else {
            v = d.attrs & ~(((1n << 36n) - 1n) << 12n) & ~3n;
            v |= (ptr(d.p) & (((1n << 36n) - 1n) << 12n)) | BigInt(d.kind);
          }
          rig.mem.write64(pool[page]! + idx * 8, v);
        }

        for (const op of w.ops) {
          if (op.k === 'cmd') {
            rig.cmd(tlbiCmd(op.n, op.sid, op.addr, op.leaf));
            expect(rig.events()).toEqual([]);
            continue;
          }
          if (op.k === 'poke') {
            rig.mem.write64(pool[op.page]! + op.idx * 8, op.v);
            continue;
          }
          const access = { sid: op.sid, ssv: op.ssv, ssid: op.ssid, addr: op.addr, bytes: op.bytes, write: op.write, priv: op.priv, instr: op.instr };
          if (op.k === 'ats') {
            const t = rig.services.atsTranslate(access);
            expect(['SUCCESS', 'UR', 'CA']).toContain(t.status);
            const ev = rig.events();
            expect(ev.length).toBeLessThanOrEqual(1);
            if (t.status === 'SUCCESS') {
              expect(ev).toEqual([]);
              expect(t.size).toBeGreaterThanOrEqual(4096);
              if (t.read || t.write) expect(t.addr % t.size).toBe(0);
            }
            for (const e of ev) expect(PRODUCIBLE.has(e.type)).toBe(true);
            continue;
          }
          const r = rig.services.transfer(access, new Uint8Array(op.bytes), op.k === 'translated');
          expect(r.bytes).toBeLessThanOrEqual(op.bytes);
          if (r.ok) expect(r.bytes).toBe(op.bytes);
          else expect(r.fault === 'ABORT' || r.fault === 'BUS_ABORT' || r.fault! in EVT).toBe(true);
          const ev = rig.events();
          expect(ev.map((e) => e.type)).toEqual(r.event ? [r.event] : []);
          for (const e of ev) {
            expect(PRODUCIBLE.has(e.type)).toBe(true);
            expect(e.sid).toBe(op.sid);
          }
        }
        // The command queue never stopped (rig.cmd checks that) and no global error is active.
        expect(rig.io.read32(OFF.GERROR) ^ rig.io.read32(OFF.GERRORN)).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
