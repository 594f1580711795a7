// The driver's event queue thread (drivers/arm-smmu-v3/evtq.ts): every event type it can receive is
// produced — by real DMA through the SMMU where the hardware produces it, by the event queue itself
// (machine.smmu.evtq.record) for types this SMMU never raises — then drained through the event
// interrupt, decoded and logged in kernel style. Also: overflow and its acknowledgement, ratelimiting.

import { describe, expect, it } from 'vitest';
import { iommuRig, type IommuRig } from './helpers/iommu.ts';
import { IOMMU } from '../drivers/iommu/iommu.ts';
import { decodeEvent, formatEvent, type SmmuEvent } from '../drivers/arm-smmu-v3/evtq.ts';
import { makeBypassSte, makeCdtableSte } from '../drivers/arm-smmu-v3/ste.ts';
import { makeS1Cd, writeCd } from '../drivers/arm-smmu-v3/cd.ts';
import { EVT, EVT_CLASS, EVT_NAME } from '../src/arch/smmu/events.ts';
import { OFF, Q_OVFLG } from '../src/arch/smmu/regs.ts';
import { L1STD, S1DSS } from '../src/arch/smmu/ste.ts';
import { PTE } from '../src/arch/smmu/pte.ts';

const PG = 4096;
const DEV = 'arm-smmu-v3 9050000.smmuv3: ';
/** A PA outside DRAM (which is 0x4000_0000 + 16 MiB here). */
const NOT_RAM = 0x8000_0000;

/** A rig with a stage-1 master 'dev0' (SID 0x30, 4 SubstreamID bits) and one mapped, read-only page. */
function rig(features: Parameters<typeof iommuRig>[0] = {}) {
  const r = iommuRig(features);
  const master = r.iommu.probeDevice('dev0', [0x30], { ssidBits: 4 });
  const domain = r.iommu.allocPaging();
  r.iommu.attach(master, domain);
  const page = r.platform.pages.alloc(1);
  domain.map(0x10000, page, PG, IOMMU.READ);
  return { ...r, master, domain, page };
}

/** Runs `provoke`, lets the event interrupt run, returns the one new event and the lines logged for it. */
function oneEvent(r: IommuRig, provoke: () => void): { ev: SmmuEvent; lines: string[] } {
  const seen = r.dev.evtq.recent.length;
  const logged = r.log().length;
  provoke();
  r.idle();
  const fresh = r.dev.evtq.recent.slice(seen);
  expect(fresh.map((e) => e.name)).toHaveLength(1);
  return { ev: fresh[0]!, lines: r.log().slice(logged).map((l) => l.replace(DEV, '')) };
}

const raw = (lines: string[]) => lines.slice(1, 5);

/** Address of the leaf descriptor for iova in a 4-level stage-1 table. */
function ptePa(r: IommuRig, pgd: number, iova: number): number {
  let table = pgd;
  for (let lvl = 0; lvl < 3; lvl++) {
    const d = r.mem.read64(table + Math.floor(iova / 2 ** (12 + 9 * (3 - lvl))) % 512 * 8);
    table = Number(d & 0x0000_ffff_ffff_f000n);
  }
  return table + (Math.floor(iova / PG) % 512) * 8;
}

describe('event queue thread: every event type, decoded and logged', () => {
  it('F_TRANSLATION: an unmapped IOVA', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x30, 0x23450, 8, 0));
    expect(ev).toMatchObject({ id: EVT.F_TRANSLATION, sid: 0x30, ssv: false, ssid: 0, read: true, s2: false, iova: 0x23450n });
    expect(lines[0]).toBe('event 0x10 received:');
    expect(raw(lines).every((l) => /^\t0x[0-9a-f]{16}$/.test(l))).toBe(true);
    expect(lines[5]).toBe('event: F_TRANSLATION client: dev0 sid: 0x30 ssid: 0 iova: 0x23450 ipa: 0');
    expect(lines[6]).toBe('unpriv data read s1 "Input address caused fault" stag: 0');
    expect(lines).toHaveLength(7);
  });

  it('F_PERMISSION: a privileged write to a read-only page, with its attributes', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () => r.engine.transfer({ sid: 0x30, iova: 0x10008, len: 4, write: true, priv: true }));
    expect(ev).toMatchObject({ id: EVT.F_PERMISSION, read: false, privileged: true, iova: 0x10008n, cls: EVT_CLASS.IN, classTt: false });
    expect(lines.slice(5)).toEqual([
      'event: F_PERMISSION client: dev0 sid: 0x30 ssid: 0 iova: 0x10008 ipa: 0',
      'priv data write s1 "Input address caused fault" stag: 0',
    ]);
  });

  it('F_ACCESS: a leaf with the access flag clear', () => {
    const r = rig();
    const pte = ptePa(r, r.domain.pgtbl.pgdPa, 0x10000);
    r.mem.write64(pte, PTE.AF.set64(r.mem.read64(pte), 0n));
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x30, 0x10000, 4, 0));
    expect(ev.id).toBe(EVT.F_ACCESS);
    expect(lines[5]).toBe('event: F_ACCESS client: dev0 sid: 0x30 ssid: 0 iova: 0x10000 ipa: 0');
  });

  it('F_ADDR_SIZE: bypass traffic beyond the output address size', () => {
    const r = rig();
    r.iommu.attach(r.master, r.iommu.identity);
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x30, 2 ** 48 + 0x40, 4, 0));
    expect(ev).toMatchObject({ id: EVT.F_ADDR_SIZE, iova: BigInt(2 ** 48 + 0x40) });
    expect(lines[5]).toBe('event: F_ADDR_SIZE client: dev0 sid: 0x30 ssid: 0 iova: 0x1000000000040 ipa: 0');
  });

  it('C_BAD_STREAMID: a StreamID beyond the stream table, from no known device', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x12345, 0x1000, 4, 0));
    expect(ev).toMatchObject({ id: EVT.C_BAD_STREAMID, sid: 0x12345 });
    expect(lines[0]).toBe('event 0x02 received:');
    expect(lines[5]).toBe('event: C_BAD_STREAMID client: (unassigned sid) sid: 0x12345 ssid: 0');
  });

  it('F_STE_FETCH: a level-1 descriptor pointing outside RAM, with the fetch address', () => {
    const r = rig();
    // StreamIDs 0xff00..0xffff: their L1 descriptor (index 0xff) is corrupted to point at no RAM.
    const desc = L1STD.L2PTR.set64(L1STD.SPAN.set64(0n, 9n), BigInt(NOT_RAM / 64));
    r.mem.write64(r.dev.shared.strtab.basePa + 0xff * 8, desc);
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0xff02, 0x1000, 4, 0));
    expect(ev).toMatchObject({ id: EVT.F_STE_FETCH, sid: 0xff02, fetchAddr: BigInt(NOT_RAM + 2 * 64) });
    expect(lines[5]).toBe(`event: F_STE_FETCH client: (unassigned sid) sid: 0xff02 ssid: 0 fetch_addr: 0x${(NOT_RAM + 2 * 64).toString(16)}`);
  });

  it('C_BAD_STE: an STE with V=0', () => {
    const r = rig();
    const m = r.iommu.probeDevice('dev1', [0x31]);
    const pa = r.iommu.strtab.stePa(0x31);
    r.mem.write64(pa, 0n);
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x31, 0x1000, 4, 0));
    expect(ev.id).toBe(EVT.C_BAD_STE);
    expect(lines[5]).toBe('event: C_BAD_STE client: dev1 sid: 0x31 ssid: 0');
    expect(m.name).toBe('dev1');
  });

  it('F_STREAM_DISABLED: SubstreamID 0 sent to a stage-1 STE with S1DSS=0b10', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () => r.engine.transfer({ sid: 0x30, ssid: 0, iova: 0x10000, len: 4, write: false }));
    expect(ev.id).toBe(EVT.F_STREAM_DISABLED);
    expect(lines[5]).toBe('event: F_STREAM_DISABLED client: dev0 sid: 0x30 ssid: 0');
  });

  it('C_BAD_SUBSTREAMID: a SubstreamID beyond the CD table', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () => r.engine.transfer({ sid: 0x30, ssid: 0x25, iova: 0x10000, len: 4, write: false }));
    // The record has no SSV bit; the SubstreamID it carries is the one that was refused (7.3.9).
    expect(ev).toMatchObject({ id: EVT.C_BAD_SUBSTREAMID, ssv: false, ssid: 0x25 });
    expect(lines[5]).toBe('event: C_BAD_SUBSTREAMID client: dev0 sid: 0x30 ssid: 0x25');
  });

  it('C_BAD_CD: a SubstreamID whose CD is invalid', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () => r.engine.transfer({ sid: 0x30, ssid: 3, iova: 0x10000, len: 4, write: false }));
    expect(ev).toMatchObject({ id: EVT.C_BAD_CD, ssid: 3 });
    expect(lines[5]).toBe('event: C_BAD_CD client: dev0 sid: 0x30 ssid: 0x3');
  });

  it('F_CD_FETCH: an STE whose CD table is outside RAM', () => {
    const r = rig();
    r.iommu.strtab.writeSte(0x30, makeCdtableSte(r.iommu.f, { basePa: NOT_RAM, s1fmt: 0, s1cdmax: 0 }, { ats: false, s1dss: S1DSS.SSID0, stallEnabled: false }));
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x30, 0x10000, 4, 0));
    expect(ev).toMatchObject({ id: EVT.F_CD_FETCH, fetchAddr: BigInt(NOT_RAM) });
    expect(lines[5]).toBe(`event: F_CD_FETCH client: dev0 sid: 0x30 ssid: 0 fetch_addr: 0x${NOT_RAM.toString(16)}`);
  });

  it('F_WALK_EABT: a CD whose translation table is outside RAM', () => {
    const r = rig();
    const cfg = { ...r.domain.pgtbl.s1Config(), ttbr: NOT_RAM };
    writeCd(r.iommu.cmds, r.master.cdTable!, r.master.sids, 0, makeS1Cd(r.domain.asid, cfg, { stallEnabled: false }));
    r.domain.flushAll();
    const { ev, lines } = oneEvent(r, () => r.dmaRead(0x30, 0x10000, 4, 0));
    expect(ev.id).toBe(EVT.F_WALK_EABT);
    expect(ev.fetchAddr).toBe(BigInt(NOT_RAM));
    expect(lines[5]).toBe(`event: F_WALK_EABT client: dev0 sid: 0x30 ssid: 0 fetch_addr: 0x${NOT_RAM.toString(16)}`);
  });

  it('F_BAD_ATS_TREQ: an ATS translation request to a bypass STE', () => {
    const r = rig();
    r.iommu.strtab.writeSte(0x30, makeBypassSte(r.iommu.f));
    const { ev, lines } = oneEvent(r, () => {
      const t = r.machine.smmu.services.atsTranslate({ sid: 0x30, addr: 0x5000, bytes: PG, write: false });
      expect(t.status).toBe('UR');
    });
    expect(ev).toMatchObject({ id: EVT.F_BAD_ATS_TREQ, iova: 0x5000n });
    expect(lines[5]).toBe('event: F_BAD_ATS_TREQ client: dev0 sid: 0x30 ssid: 0');
  });

  it('F_TRANSL_FORBIDDEN: a translated transaction to a bypass STE with ATSCHK=1', () => {
    const r = rig();
    r.iommu.strtab.writeSte(0x30, makeBypassSte(r.iommu.f));
    const { ev, lines } = oneEvent(r, () => {
      expect(r.machine.smmu.services.translatedRead({ sid: 0x30, addr: r.page, bytes: 4, write: false }, new Uint8Array(4)).ok).toBe(false);
    });
    expect(ev.id).toBe(EVT.F_TRANSL_FORBIDDEN);
    expect(lines[5]).toBe('event: F_TRANSL_FORBIDDEN client: dev0 sid: 0x30 ssid: 0');
  });

  // Types this SMMU never raises (no stalls, no PRI, no VMS, no TLB/config conflicts): put in the queue
  // by the event queue itself, as the hardware would write them.
  for (const [type, extra, tail] of [
    [EVT.F_UUT, {}, ''],
    [EVT.F_TLB_CONFLICT, {}, ''],
    [EVT.F_CFG_CONFLICT, {}, ''],
    [EVT.E_PAGE_REQUEST, { ssv: true, ssid: 7 }, ''],
    [EVT.F_VMS_FETCH, { fetchAddr: 0x4567_8000 }, ' fetch_addr: 0x45678000'],
  ] as const) {
    const name = EVT_NAME[type]!;
    it(`${name}: written by the event queue, decoded and logged`, () => {
      const r = rig();
      const { ev, lines } = oneEvent(r, () => r.machine.smmu.evtq.record({ type, sid: 0x30, ...extra }));
      expect(ev.id).toBe(type);
      expect(lines[0]).toBe(`event 0x${type.toString(16).padStart(2, '0')} received:`);
      const ssid = 'ssid' in extra ? `0x${extra.ssid.toString(16)}` : '0';
      expect(lines[5]).toBe(`event: ${name} client: dev0 sid: 0x30 ssid: ${ssid}${tail}`);
    });
  }

  it('a stage-2 permission fault on a stage-1 table walk: class, ttd_read, stall and stag in the second line', () => {
    const r = rig();
    const { ev, lines } = oneEvent(r, () =>
      r.machine.smmu.evtq.record({ type: EVT.F_PERMISSION, sid: 0x30, inputAddr: 0x7000, read: true, instr: true, s2: true, cls: EVT_CLASS.TT, ttRead: true, ipa: 0x1234_5000 }),
    );
    expect(ev).toMatchObject({ s2: true, classTt: true, ttrnw: true, ipa: 0x1234_5000n });
    expect(lines.slice(5)).toEqual([
      'event: F_PERMISSION client: dev0 sid: 0x30 ssid: 0 iova: 0x7000 ipa: 0x12345000',
      'unpriv inst read s2 "Stage 1 translation table fetch" ttd_read stag: 0',
    ]);
    // Stall and STAG are not produced by this SMMU; decode them from a record built by hand.
    const stalled = decodeEvent([BigInt(EVT.F_TRANSLATION) | (0x30n << 32n), 0x8000_0012n | (1n << 35n), 0x9000n, 0n]);
    expect(formatEvent(stalled, 'dev0').slice(5)).toEqual([
      'event: F_TRANSLATION client: dev0 sid: 0x30 ssid: 0 iova: 0x9000 ipa: 0',
      'unpriv data read s1 "CD fetch" stall stag: 0x12',
    ]);
  });

  it('an event number the architecture does not define is logged as UNKNOWN with its raw record', () => {
    const ev = decodeEvent([0x0000_0031_0000_007fn, 0n, 0x1234n, 0n]);
    expect(ev).toMatchObject({ id: 0x7f, name: 'UNKNOWN', sid: 0x31 });
    expect(formatEvent(ev, 'x')).toEqual([
      'event 0x7f received:',
      '\t0x000000310000007f',
      '\t0x0000000000000000',
      '\t0x0000000000001234',
      '\t0x0000000000000000',
      'event: UNKNOWN client: x sid: 0x31 ssid: 0',
    ]);
  });
});

describe('event queue overflow and ratelimiting', () => {
  it('drains what fitted, reports the overflow once, acknowledges it, and records again afterwards', () => {
    // A 4-entry event queue.
    const r = rig({ eventqLog2: 2 });
    const flags = r.platform.localIrqSave();
    for (let i = 0; i < 10; i++) r.dmaRead(0x30, 0x40000 + i * PG, 4, 0);
    const prod = r.machine.smmu.regs.get('EVENTQ_PROD');
    expect(Q_OVFLG.get(prod)).toBe(1);
    r.platform.localIrqRestore(flags);
    r.idle();
    expect(r.dev.evtq.counts.get(EVT.F_TRANSLATION)).toBe(4);
    expect(r.dev.evtq.overflows).toBe(1);
    expect(r.log().filter((l) => l === `${DEV}EVTQ overflow detected -- events lost`)).toHaveLength(1);
    // Acknowledged: CONS.OVACKFLG now equals PROD.OVFLG, and the queue is empty.
    const cons = r.machine.smmu.regs.get('EVENTQ_CONS');
    expect(Q_OVFLG.get(cons)).toBe(1);
    expect(cons & 0xfffff).toBe(r.machine.smmu.regs.get('EVENTQ_PROD') & 0xfffff);
    // New events are recorded and drained normally, without another overflow report.
    r.dmaRead(0x30, 0x90000, 4, 0);
    r.idle();
    expect(r.dev.evtq.counts.get(EVT.F_TRANSLATION)).toBe(5);
    expect(r.dev.evtq.overflows).toBe(1);
    // A second overflow toggles OVFLG back, and is noticed again.
    const f2 = r.platform.localIrqSave();
    for (let i = 0; i < 6; i++) r.dmaRead(0x30, 0xa0000 + i * PG, 4, 0);
    r.platform.localIrqRestore(f2);
    r.idle();
    expect(r.dev.evtq.overflows).toBe(2);
    expect(Q_OVFLG.get(r.machine.smmu.regs.get('EVENTQ_PROD'))).toBe(0);
    expect(Q_OVFLG.get(r.machine.smmu.regs.get('EVENTQ_CONS'))).toBe(0);
    expect(r.dev.regs.read32(OFF.EVENTQ_CONS)).toBe(r.machine.smmu.regs.get('EVENTQ_CONS'));
  });

  it('dumps at most 10 events per 5 s and says how many it suppressed; counts them all', () => {
    const r = rig();
    for (let i = 0; i < 13; i++) r.dmaRead(0x30, 0x40000 + i * PG, 4, 0);
    r.idle();
    expect(r.dev.evtq.counts.get(EVT.F_TRANSLATION)).toBe(13);
    expect(r.log().filter((l) => l.endsWith('received:'))).toHaveLength(10);
    r.platform.sleep(5e9);
    r.dmaRead(0x30, 0x80000, 4, 0);
    r.idle();
    expect(r.log()).toContain('arm_smmu_dump_event: 3 callbacks suppressed');
    expect(r.log().filter((l) => l.endsWith('received:'))).toHaveLength(11);
  });
});
