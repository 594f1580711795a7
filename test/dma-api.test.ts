// The DMA API (drivers/iommu/dma-iommu.ts) in strict and lazy mode, through the hardware in lockstep:
// the DMA test engine does the DMA, the SMMU translates it with real IOTLB and walk caches.
//
// Strict: once unmap returns, the device can no longer reach the buffer. Lazy: the page table is
// cleared but the IOTLB may keep translating until the flush queue is flushed (by count or by time).
// And a driver that forgets its TLB invalidation (a deliberately broken domain) keeps sending DMA to
// memory it unmapped, through stale IOTLB and walk-cache entries, until it invalidates.

import { describe, expect, it } from 'vitest';
import { iommuRig, type IommuRig } from './helpers/iommu.ts';
import { IommuDma } from '../drivers/iommu/dma-iommu.ts';
import { IOMMU } from '../drivers/iommu/iommu.ts';
import { EVT } from '../src/arch/smmu/events.ts';

const PG = 4096;
const SID = 0x40;

function setup(opts: { strict: boolean; fqSize?: number; fqTimeoutNs?: number; skipInvalidation?: boolean }) {
  const r = iommuRig();
  if (opts.skipInvalidation) r.inject({ kind: 'skip-invalidation', trigger: { count: 'forever' } });
  const master = r.iommu.probeDevice('dmatest', [SID]);
  const domain = r.iommu.allocPaging();
  r.iommu.attach(master, domain);
  const dma = new IommuDma(r.platform, domain, { strict: opts.strict, fqSize: opts.fqSize, fqTimeoutNs: opts.fqTimeoutNs });
  const buf = (pages: number) => r.platform.pages.alloc(pages, 'test buffer');
  return { ...r, master, domain, dma, buf };
}

/** The engine writes a pattern through the SMMU; true when the whole transfer went through. */
function deviceWrites(r: IommuRig, iova: number, len: number, pattern: number): boolean {
  return r.dmaWrite(SID, iova, len, pattern).ok;
}

describe('DMA API, strict mode', () => {
  it('maps a buffer the device can write; after unmap the device faults at once, and the driver logs the event', () => {
    const r = setup({ strict: true });
    const pa = r.buf(4);
    const iova = r.dma.map(pa + 0x10, 3 * PG, 'from-device');
    // The device address keeps the buffer's offset in its page.
    expect(iova % PG).toBe(0x10);
    expect(deviceWrites(r, iova, 3 * PG, 0xa5a5a5a5)).toBe(true);
    expect(r.mem.read32(pa + 0x10)).toBe(0xa5a5a5a5);
    expect(r.mem.read32(pa + 0x10 + 3 * PG - 4)).toBe(0xa5a5a5a5);
    expect(r.mem.read32(pa + 0xc)).toBe(0); // nothing before the buffer
    const tlbi = r.exec('TLBI_NH_VA');
    r.dma.unmap(iova, 3 * PG, 'from-device');
    // One ranged TLBI for the unmapped pages, completed by a CMD_SYNC before unmap returned.
    expect(r.exec('TLBI_NH_VA')).toBe(tlbi + 1);
    const t = r.dmaWrite(SID, iova, 64, 0x11111111);
    expect(t.ok).toBe(false);
    expect(t.event).toBe('F_TRANSLATION');
    expect(r.mem.read32(pa + 0x10)).toBe(0xa5a5a5a5);
    r.idle();
    const log = r.log();
    expect(log).toContain('arm-smmu-v3 9050000.smmuv3: event 0x10 received:');
    expect(log).toContain(`arm-smmu-v3 9050000.smmuv3: event: F_TRANSLATION client: dmatest sid: 0x40 ssid: 0 iova: 0x${iova.toString(16)} ipa: 0`);
    expect(log).toContain('arm-smmu-v3 9050000.smmuv3: unpriv data write s1 "Input address caused fault" stag: 0');
    expect(r.dev.evtq.counts.get(EVT.F_TRANSLATION)).toBe(1);
  });

  it('reuses an IOVA only after its invalidation completed', () => {
    const r = setup({ strict: true });
    const a = r.dma.map(r.buf(1), PG, 'bidirectional');
    r.dma.unmap(a, PG, 'bidirectional');
    const b = r.dma.map(r.buf(1), PG, 'bidirectional');
    expect(b).toBe(a);
  });

  it('the device reads what the CPU wrote, and only with the permission the direction grants', () => {
    const r = setup({ strict: true });
    const pa = r.buf(1);
    for (let i = 0; i < PG; i += 4) r.mem.write32(pa + i, 0x600dcafe);
    const iova = r.dma.map(pa, PG, 'to-device');
    const rd = r.dmaRead(SID, iova, PG, 0x600dcafe);
    expect(rd.ok).toBe(true);
    expect(rd.mismatches).toBe(0);
    // to-device is read-only for the device.
    const wr = r.dmaWrite(SID, iova, 4, 0);
    expect(wr.ok).toBe(false);
    expect(wr.event).toBe('F_PERMISSION');
    expect(r.mem.read32(pa)).toBe(0x600dcafe);
  });

  it('coherent buffers: zeroed pages mapped both ways, freed with their mapping', () => {
    const r = setup({ strict: true });
    const buf = r.dma.allocCoherent(2 * PG);
    // The buffer's pages (page-table pages the mapping needed stay with the domain).
    const used = r.platform.pages.used();
    expect(r.mem.read32(buf.pa + PG)).toBe(0);
    expect(deviceWrites(r, buf.iova + PG, 8, 0x0c0c0c0c)).toBe(true);
    expect(r.mem.read32(buf.pa + PG + 4)).toBe(0x0c0c0c0c);
    expect(r.dmaRead(SID, buf.iova + PG, 8, 0x0c0c0c0c).mismatches).toBe(0);
    r.dma.freeCoherent(2 * PG, buf);
    expect(r.platform.pages.used()).toBe(used - 2);
    expect(r.dma.mapped).toBe(0);
    expect(r.dmaRead(SID, buf.iova, 4, 0).event).toBe('F_TRANSLATION');
  });

  it('errors name what is wrong', () => {
    const r = setup({ strict: true });
    const pa = r.buf(1);
    expect(() => r.dma.map(pa, 0, 'to-device')).toThrow(/size 0 must be a positive integer/);
    const iova = r.dma.map(pa, 100, 'to-device');
    expect(() => r.dma.unmap(iova + PG, 100, 'to-device')).toThrow(/does not match a mapping/);
    expect(() => r.dma.unmap(iova, 2 * PG, 'to-device')).toThrow(/does not match a mapping/);
    const small = new IommuDma(r.platform, r.domain, { strict: true, dmaBits: 14 });
    // A 14-bit mask leaves IOVA pages 1..3 (page 0 is never used): a 2-page map fits once.
    small.map(pa, 2 * PG, 'to-device');
    expect(() => small.map(pa, 2 * PG, 'to-device')).toThrow(/no free IOVA range of 2 pages below 0x4000/);
    expect(small.stats.iovaExhausted).toBe(1);
  });
});

describe('DMA API, lazy mode (flush queue)', () => {
  it('after unmap the device may still reach the buffer through the IOTLB, until the queue flushes by count', () => {
    const r = setup({ strict: false, fqSize: 3 });
    const pa = r.buf(1);
    const iova = r.dma.map(pa, PG, 'from-device');
    expect(deviceWrites(r, iova, PG, 0x1)).toBe(true); // fills the IOTLB
    const tlbi = r.exec('TLBI_NH_VA') + r.exec('TLBI_NH_ASID');
    r.dma.unmap(iova, PG, 'from-device');
    // No invalidation yet; the page table no longer maps the IOVA but the IOTLB still does.
    expect(r.exec('TLBI_NH_VA') + r.exec('TLBI_NH_ASID')).toBe(tlbi);
    expect(r.domain.iovaToPhys(iova)).toBeNull();
    expect(deviceWrites(r, iova, PG, 0x2)).toBe(true);
    expect(r.mem.read32(pa)).toBe(0x2);
    expect(r.dma.queued).toBe(1);
    // The IOVA is not reused while queued.
    const others = [r.dma.map(r.buf(1), PG, 'from-device'), r.dma.map(r.buf(1), PG, 'from-device'), r.dma.map(r.buf(1), PG, 'from-device')];
    expect(others).not.toContain(iova);
    for (const o of others) r.dma.unmap(o, PG, 'from-device');
    // The fourth unmap found the queue full (3): one flush of the whole ASID covered every queued unmap.
    expect(r.dma.stats.fqFlushes).toBe(1);
    expect(r.exec('TLBI_NH_ASID')).toBeGreaterThanOrEqual(1);
    expect(r.exec('TLBI_NH_VA') + r.exec('TLBI_NH_ASID')).toBe(tlbi + 1);
    const t = r.dmaWrite(SID, iova, PG, 0x3);
    expect(t.ok).toBe(false);
    expect(t.event).toBe('F_TRANSLATION');
    expect(r.mem.read32(pa)).toBe(0x2);
  });

  it('the queue flushes when its timeout has passed (checked at the next DMA API call or poll)', () => {
    const r = setup({ strict: false, fqTimeoutNs: 1_000_000 });
    const pa = r.buf(1);
    const iova = r.dma.map(pa, PG, 'from-device');
    expect(deviceWrites(r, iova, PG, 0x1)).toBe(true);
    r.dma.unmap(iova, PG, 'from-device');
    r.platform.delay(500_000);
    r.dma.poll();
    expect(r.dma.stats.fqFlushes).toBe(0);
    expect(deviceWrites(r, iova, PG, 0x2)).toBe(true); // still stale
    r.platform.delay(600_000);
    r.dma.poll();
    expect(r.dma.stats.fqTimeouts).toBe(1);
    expect(r.dma.queued).toBe(0);
    expect(deviceWrites(r, iova, PG, 0x3)).toBe(false);
    expect(r.mem.read32(pa)).toBe(0x2);
  });

  it('issues one invalidation per flush instead of one per unmap', () => {
    const strict = setup({ strict: true });
    const lazy = setup({ strict: false, fqSize: 16 });
    for (const r of [strict, lazy]) {
      const bufs = Array.from({ length: 16 }, () => r.buf(1));
      for (let round = 0; round < 2; round++) {
        const iovas = bufs.map((b) => r.dma.map(b, PG, 'bidirectional'));
        iovas.forEach((v) => r.dma.unmap(v, PG, 'bidirectional'));
      }
      r.dma.flushQueue();
    }
    expect(strict.exec('TLBI_NH_VA')).toBe(32);
    expect(strict.dma.stats.fqFlushes).toBe(0);
    expect(lazy.exec('TLBI_NH_VA')).toBe(0);
    // 32 unmaps through a 16-entry queue: flushed when full, then at the end.
    expect(lazy.exec('TLBI_NH_ASID')).toBe(lazy.dma.stats.fqFlushes);
    expect(lazy.dma.stats.fqFlushes).toBe(2);
  });
});

describe('a driver that forgets its TLB invalidation', () => {
  it('keeps sending DMA through stale IOTLB entries to memory it unmapped and remapped elsewhere', () => {
    const good = setup({ strict: true });
    const bad = setup({ strict: true, skipInvalidation: true });
    for (const r of [good, bad]) {
      const old = r.buf(1);
      const fresh = r.buf(1);
      const iova = 0x100000;
      r.domain.map(iova, old, PG, IOMMU.READ | IOMMU.WRITE);
      expect(deviceWrites(r, iova, PG, 0x01010101)).toBe(true);
      expect(r.domain.unmap(iova, PG)).toBe(PG);
      r.domain.map(iova, fresh, PG, IOMMU.READ | IOMMU.WRITE);
      expect(deviceWrites(r, iova, PG, 0x02020202)).toBe(true);
      const where = { old: r.mem.read32(old), fresh: r.mem.read32(fresh) };
      if (r === good) {
        expect(where).toEqual({ old: 0x01010101, fresh: 0x02020202 });
      } else {
        // The tables point at the new buffer, the IOTLB still at the old one.
        expect(r.domain.iovaToPhys(iova)).toBe(fresh);
        expect(where).toEqual({ old: 0x02020202, fresh: 0 });
        // Invalidating (what the driver forgot) makes the device follow the tables again.
        r.inject({ kind: 'clear', what: 'skip-invalidation' });
        r.domain.flushAll();
        expect(deviceWrites(r, iova, PG, 0x03030303)).toBe(true);
        expect(r.mem.read32(fresh)).toBe(0x03030303);
        expect(r.mem.read32(old)).toBe(0x02020202);
      }
    }
  });

  it('walks a freed table through a stale walk-cache entry when the walk flush is skipped', () => {
    const good = setup({ strict: true });
    const bad = setup({ strict: true, skipInvalidation: true });
    const outcomes: Record<string, { page5: boolean; walkHitsGrew: boolean }> = {};
    for (const [name, r] of [['good', good], ['bad', bad]] as const) {
      // 2 MiB of 4 KiB pages at a 2 MiB-aligned IOVA: one level-3 table under one level-2 entry.
      const base = 0x4000_0000;
      // The output is not 2 MiB-aligned, so no block: 512 page descriptors.
      const target = r.buf(1024) + PG;
      r.domain.map(base, target, 2 << 20, IOMMU.READ | IOMMU.WRITE);
      // Touch page 0 only: the IOTLB holds page 0, the walk cache the table descriptors above it.
      expect(deviceWrites(r, base, 4, 0x77)).toBe(true);
      // Unmapping the whole 2 MiB removes the level-2 entry and frees the level-3 table; the page
      // table asks for a walk flush first, which the broken domain skips.
      expect(r.domain.unmap(base, 2 << 20)).toBe(2 << 20);
      const hits = r.xstat('WALK_HITS');
      // Page 5 was never translated, so no IOTLB entry: only the walk cache can make it reach memory.
      const t = r.dmaWrite(SID, base + 5 * PG, 4, 0x55);
      outcomes[name] = { page5: t.ok, walkHitsGrew: r.xstat('WALK_HITS') > hits };
      if (!t.ok) expect(t.event).toBe('F_TRANSLATION');
      else expect(r.mem.read32(target + 5 * PG)).toBe(0x55);
    }
    expect(outcomes.good!.page5).toBe(false);
    expect(outcomes.bad).toEqual({ page5: true, walkHitsGrew: true });
  });
});
