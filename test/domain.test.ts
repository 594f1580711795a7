// Domains and attach (drivers/arm-smmu-v3/domain.ts) against the lockstep hardware: the commands the
// driver sends and in what order (ranged TLBI encodings, ATS ordering, tag flushes on last detach), and
// that the hardware then translates as the domain says.

import { describe, expect, it } from 'vitest';
import { iommuRig, type IommuRig } from './helpers/iommu.ts';
import { IOMMU } from '../drivers/iommu/iommu.ts';
import type { CmdEnt } from '../drivers/arm-smmu-v3/cmds.ts';
import type { AtsOps } from '../drivers/arm-smmu-v3/domain.ts';
import { qget } from '../src/arch/bits.ts';
import { EATS, S1FMT, STE, STE_CONFIG } from '../src/arch/smmu/ste.ts';
import { CD } from '../src/arch/smmu/cd.ts';
import { EVT } from '../src/arch/smmu/events.ts';

const PG = 4096;
const RW = IOMMU.READ | IOMMU.WRITE;

/** Records every command the IOMMU layer issues ('SYNC' for each CMD_SYNC), in order. */
function record(r: IommuRig, also: string[] = []): string[] {
  const log = also;
  const cmds = r.iommu.cmds;
  const add = cmds.add.bind(cmds);
  const submit = cmds.submit.bind(cmds);
  const noSync = cmds.issueNoSync.bind(cmds);
  const fmt = (e: CmdEnt) => {
    if ('tlbi' in e) {
      const t = e.tlbi;
      return `${e.op} addr=0x${t.addr.toString(16)} leaf=${+t.leaf} num=${t.num} scale=${t.scale} tg=${t.tg} ttl=${t.ttl}`;
    }
    if (e.op === 'ATC_INV') return `ATC_INV sid=0x${e.sid.toString(16)} addr=0x${e.addr.toString(16)} size=${e.size}`;
    return e.op;
  };
  cmds.add = (e) => {
    log.push(fmt(e));
    add(e);
  };
  cmds.submit = () => {
    log.push('SYNC');
    return submit();
  };
  cmds.issueNoSync = (e) => {
    log.push(fmt(e));
    noSync(e);
  };
  return log;
}

function s1Master(r: IommuRig, sid = 0x20, opts = {}) {
  const m = r.iommu.probeDevice(`dev${sid.toString(16)}`, [sid], opts);
  const d = r.iommu.allocPaging();
  r.iommu.attach(m, d);
  return { m, d };
}

describe('TLB invalidation by range', () => {
  it('35 leaf pages with range invalidation: NUM/SCALE from the low bits of the page count (SCALE 0 NUM 2, then SCALE 5 NUM 0), TG 4K, TTL 3', () => {
    const r = iommuRig();
    const { d } = s1Master(r);
    const buf = r.platform.pages.alloc(64) + PG;
    d.map(0x100000, buf, 35 * PG, RW);
    for (let p = 0; p < 35; p++) expect(r.dmaWrite(0x20, 0x100000 + p * PG, 4, p).ok).toBe(true);
    const log = record(r);
    expect(d.unmap(0x100000, 35 * PG)).toBe(35 * PG);
    expect(log).toEqual(['TLBI_NH_VA addr=0x100000 leaf=1 num=2 scale=0 tg=1 ttl=3', 'TLBI_NH_VA addr=0x103000 leaf=1 num=0 scale=5 tg=1 ttl=3', 'SYNC']);
    // The hardware dropped all 35 cached translations.
    for (let p = 0; p < 35; p++) expect(r.dmaWrite(0x20, 0x100000 + p * PG, 4, 0).event).toBe('F_TRANSLATION');
  });

  it('a 2 MiB block: one command, 512 pages as SCALE 9 NUM 0, TTL 2', () => {
    const r = iommuRig({}, 32 << 20);
    const { d } = s1Master(r);
    const block = r.platform.pages.alloc(512);
    d.map(0x4000_0000, block, 2 << 20, RW);
    expect(r.dmaWrite(0x20, 0x4000_0000 + 0x12340, 4, 1).ok).toBe(true);
    const log = record(r);
    d.unmap(0x4000_0000, 2 << 20);
    expect(log).toEqual(['TLBI_NH_VA addr=0x40000000 leaf=1 num=0 scale=9 tg=1 ttl=2', 'SYNC']);
    expect(r.dmaWrite(0x20, 0x4000_0000 + 0x12340, 4, 0).event).toBe('F_TRANSLATION');
  });

  it('removing a table flushes walks at once (non-leaf, no TTL), before the table page is freed', () => {
    const r = iommuRig({}, 32 << 20);
    const { d } = s1Master(r);
    const buf = r.platform.pages.alloc(1024) + PG;
    d.map(0x4000_0000, buf, 2 << 20, RW);
    const log = record(r);
    d.unmap(0x4000_0000, 2 << 20);
    expect(log).toEqual([
      'TLBI_NH_VA addr=0x40000000 leaf=0 num=0 scale=9 tg=1 ttl=0',
      'SYNC',
      'TLBI_NH_VA addr=0x40000000 leaf=1 num=0 scale=9 tg=1 ttl=2',
      'SYNC',
    ]);
  });

  it('without range invalidation: one command per granule, and by ASID from 2 MiB up', () => {
    const r = iommuRig({ ril: false });
    const { d } = s1Master(r);
    const buf = r.platform.pages.alloc(1024) + PG;
    d.map(0x100000, buf, 3 * PG, RW);
    const log = record(r);
    d.unmap(0x100000, 3 * PG);
    expect(log).toEqual([0, 1, 2].map((p) => `TLBI_NH_VA addr=0x${(0x100000 + p * PG).toString(16)} leaf=1 num=0 scale=0 tg=0 ttl=0`).concat('SYNC'));
    log.length = 0;
    d.map(0x400000, buf, 512 * PG, RW);
    d.unmap(0x400000, 512 * PG);
    // The walk flush for the removed table covers 512 granules: by ASID. The table entry itself is
    // then invalidated as one 2 MiB granule, one command.
    expect(log).toEqual(['TLBI_NH_ASID', 'SYNC', 'TLBI_NH_VA addr=0x400000 leaf=1 num=0 scale=0 tg=0 ttl=0', 'SYNC']);
  });

  it('a flush of everything is one TLBI by ASID (stage 1) or VMID (stage 2)', () => {
    const r = iommuRig();
    const { d } = s1Master(r);
    const m2 = r.iommu.probeDevice('s2dev', [0x21]);
    const d2 = r.iommu.allocPaging({ stage: 2 });
    r.iommu.attach(m2, d2);
    const log = record(r);
    d.flushAll();
    d2.flushAll();
    expect(log).toEqual(['TLBI_NH_ASID', 'SYNC', 'TLBI_S12_VMALL', 'SYNC']);
  });
});

describe('attach and detach', () => {
  it('stage 1: CD (ASID, TTB0) then STE (Config=S1, S1DSS=SSID0); switching S1 domains rewrites only the CD', () => {
    const r = iommuRig();
    const { m, d } = s1Master(r);
    const ste = r.iommu.strtab.readSte(0x20);
    expect(qget(ste, STE.CONFIG)).toBe(STE_CONFIG.S1_TRANS);
    expect(qget(ste, STE.S1CTXPTR) * 64).toBe(m.cdTable!.basePa);
    const cdPa = m.cdTable!.cdPa(0)!;
    const cd = [0, 1, 2, 3].map((i) => r.mem.read64(cdPa + i * 8));
    expect(qget(cd, CD.ASID)).toBe(d.asid);
    expect(qget(cd, CD.TTB0) * 16).toBe(d.pgtbl.pgdPa);
    const d2 = r.iommu.allocPaging();
    const log = record(r);
    r.iommu.attach(m, d2);
    // CD: ASID and TTB0 are in different qwords, so V drops (2 qwords change) — three CD steps; the
    // STE is unchanged (only prefetched); the old ASID, now unused, is flushed.
    expect(log.filter((c) => c === 'CFGI_CD')).toHaveLength(3);
    expect(log.filter((c) => c === 'CFGI_STE')).toHaveLength(0);
    expect(log).toContain('PREFETCH_CONFIG');
    expect(log.slice(-2)).toEqual(['TLBI_NH_ASID', 'SYNC']);
    expect(d.invs.entries).toEqual([]);
    expect(d2.invs.entries).toEqual([{ type: 'S1_ASID', id: d2.asid, ssid: 0, users: 1 }]);
  });

  it('a tag is flushed only when its last master detaches', () => {
    const r = iommuRig();
    const d = r.iommu.allocPaging();
    const a = r.iommu.probeDevice('a', [0x30]);
    const b = r.iommu.probeDevice('b', [0x31]);
    r.iommu.attach(a, d);
    r.iommu.attach(b, d);
    expect(d.invs.entries).toEqual([{ type: 'S1_ASID', id: d.asid, ssid: 0, users: 2 }]);
    const log = record(r);
    r.iommu.attach(a, r.iommu.blocked);
    expect(log).not.toContain('TLBI_NH_ASID');
    r.iommu.attach(b, r.iommu.identity);
    expect(log).toContain('TLBI_NH_ASID');
    expect(d.invs.entries).toEqual([]);
    d.free();
    expect(r.iommu.asids.inUse(d.asid)).toBe(false);
  });

  it('identity passes DMA untranslated; blocked aborts it without an event; stage 2 translates with a VMID', () => {
    const r = iommuRig();
    const m = r.iommu.probeDevice('dev', [0x40], { ssidBits: 2 });
    const buf = r.platform.pages.alloc(1);
    r.iommu.attach(m, r.iommu.identity);
    expect(r.dmaWrite(0x40, buf, 4, 0x1d1d1d1d).ok).toBe(true);
    expect(r.mem.read32(buf)).toBe(0x1d1d1d1d);
    r.iommu.attach(m, r.iommu.blocked);
    const t = r.dmaWrite(0x40, buf, 4, 0);
    expect(t).toMatchObject({ ok: false, event: null });
    // A stage-1 attach creates the CD table; moving to stage 2 clears CD 0 after the STE stops using it.
    r.iommu.attach(m, r.iommu.allocPaging());
    const s2 = r.iommu.allocPaging({ stage: 2 });
    const log = record(r);
    r.iommu.attach(m, s2);
    expect(log.indexOf('CFGI_CD')).toBeGreaterThan(log.indexOf('CFGI_STE'));
    const ste = r.iommu.strtab.readSte(0x40);
    expect(qget(ste, STE.CONFIG)).toBe(STE_CONFIG.S2_TRANS);
    expect(qget(ste, STE.S2VMID)).toBe(s2.vmid);
    expect(r.mem.read64(m.cdTable!.cdPa(0)!)).toBe(0n);
    s2.map(0x7000, buf, PG, RW);
    expect(r.dmaWrite(0x40, 0x7004, 4, 0x2e2e2e2e).ok).toBe(true);
    expect(r.mem.read32(buf + 4)).toBe(0x2e2e2e2e);
    log.length = 0;
    s2.unmap(0x7000, PG);
    expect(log).toEqual(['TLBI_S2_IPA addr=0x7000 leaf=1 num=0 scale=0 tg=1 ttl=3', 'SYNC']);
    expect(r.dmaWrite(0x40, 0x7004, 4, 0).event).toBe('F_TRANSLATION');
    expect(r.hwEvents(EVT.F_TRANSLATION)).toBe(1);
  });

  it('a master with many SubstreamIDs gets a 2-level CD table with 64 KiB leaves, its L1 descriptor invalidated once', () => {
    const r = iommuRig({ ssidBits: 12 });
    const log = record(r);
    const { m } = s1Master(r, 0x50, { ssidBits: 12 });
    expect(m.cdTable!.twoLevel).toBe(true);
    expect(m.cdTable!.s1fmt).toBe(S1FMT.L2_64K);
    expect(qget(r.iommu.strtab.readSte(0x50), STE.S1FMT)).toBe(S1FMT.L2_64K);
    // The non-leaf CFGI_CD for the new L1 descriptor, then the leaf ones of the CD write.
    expect(log.filter((c) => c === 'CFGI_CD')).toHaveLength(3);
    const buf = r.platform.pages.alloc(1);
    (m.domain as { map: (a: number, b: number, c: number, d: number) => void }).map(0x9000, buf, PG, RW);
    expect(r.dmaWrite(0x50, 0x9000, 4, 0x3c3c3c3c).ok).toBe(true);
    expect(r.mem.read32(buf)).toBe(0x3c3c3c3c);
  });

  it('StreamIDs: a level-2 stream table is installed once per 256 StreamIDs; bad or taken StreamIDs are refused', () => {
    const r = iommuRig();
    const log = record(r);
    r.iommu.probeDevice('x', [0x300]);
    r.iommu.probeDevice('y', [0x3ff]);
    expect(log.filter((c) => c === 'CFGI_STE')).toHaveLength(1);
    expect(() => r.iommu.probeDevice('z', [0x300])).toThrow(/already belongs to x/);
    expect(() => r.iommu.probeDevice('w', [0x10000])).toThrow(/outside the stream table/);
    expect(() => r.iommu.probeDevice('v', [])).toThrow(/at least one StreamID/);
  });
});

describe('ATS ordering', () => {
  /** An endpoint's ATS controls that log into the same list as the commands. */
  function ats(log: string[]): AtsOps {
    return { enable: (stu) => log.push(`pci_enable_ats(stu=${stu})`), disable: () => log.push('pci_disable_ats') };
  }

  it('attach: STE with EATS=0b01, then ATC flush, then ATS on; unmap: TLBI + SYNC before ATC_INV + SYNC; detach: ATS off before the STE', () => {
    const r = iommuRig();
    const log: string[] = [];
    const m = r.iommu.probeDevice('ep', [0x60], { ats: ats(log) });
    const d = r.iommu.allocPaging();
    record(r, log);
    r.iommu.attach(m, d);
    expect(qget(r.iommu.strtab.readSte(0x60), STE.EATS)).toBe(EATS.TRANS);
    expect(log.slice(-3)).toEqual(['ATC_INV sid=0x60 addr=0x0 size=52', 'SYNC', 'pci_enable_ats(stu=12)']);
    expect(log.indexOf('pci_enable_ats(stu=12)')).toBeGreaterThan(log.lastIndexOf('CFGI_STE'));
    expect(d.invs.entries.map((e) => `${e.type}:${e.id}`)).toEqual([`S1_ASID:${d.asid}`, 'ATS:96']);

    const buf = r.platform.pages.alloc(8);
    d.map(0x20000, buf, 4 * PG, RW);
    log.length = 0;
    d.unmap(0x20000, 4 * PG);
    expect(log).toEqual(['TLBI_NH_VA addr=0x20000 leaf=1 num=0 scale=2 tg=1 ttl=3', 'SYNC', 'ATC_INV sid=0x60 addr=0x20000 size=2', 'SYNC']);

    log.length = 0;
    r.iommu.attach(m, r.iommu.blocked);
    expect(log[0]).toBe('pci_disable_ats');
    expect(log.indexOf('CFGI_STE')).toBeGreaterThan(0);
    expect(log).toContain('ATC_INV sid=0x60 addr=0x0 size=52');
    expect(m.atsEnabled).toBe(false);
    expect(qget(r.iommu.strtab.readSte(0x60), STE.CONFIG)).toBe(STE_CONFIG.ABORT);
  });

  it('an SMMU without ATS never enables it at the endpoint', () => {
    const r = iommuRig({ ats: false });
    const log: string[] = [];
    const m = r.iommu.probeDevice('ep', [0x61], { ats: ats(log) });
    r.iommu.attach(m, r.iommu.allocPaging());
    expect(log).toEqual([]);
    expect(qget(r.iommu.strtab.readSte(0x61), STE.EATS)).toBe(0);
  });
});
