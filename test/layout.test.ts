import { describe, expect, test } from 'vitest';
import { CTRL, CPUW, IRQW, MAX_CPUS, SharedViews, STAT, WP, computeLayout, mmioRegion } from '../src/machine/layout.ts';
import { PAGE_SIZE, PA } from '../src/arch/platform.ts';

describe('shared buffer layout', () => {
  test('control words and Float64 clock slots never share memory', () => {
    const int32Words = Object.entries(CTRL)
      .filter(([k]) => !k.startsWith('F64_'))
      .map(([, v]) => v);
    const f64Words = Object.entries(CTRL)
      .filter(([k]) => k.startsWith('F64_'))
      .flatMap(([, v]) => [v * 2, v * 2 + 1]);
    expect(new Set(int32Words).size).toBe(int32Words.length);
    for (const w of f64Words) expect(int32Words).not.toContain(w);
  });

  test('regions are page aligned, disjoint and inside the buffer', () => {
    const l = computeLayout({ memBytes: 8 << 20, ncpus: 4 });
    const regions = (['control', 'writePort', 'cpus', 'irq', 'stats', 'smmu', 'ecam', 'bars', 'platdev', 'dram'] as const).map((k) => l[k]);
    for (let i = 0; i < regions.length; i++) {
      expect(regions[i]! % PAGE_SIZE).toBe(0);
      if (i > 0) expect(regions[i]!).toBeGreaterThan(regions[i - 1]!);
    }
    expect(l.dram + l.memBytes).toBeLessThanOrEqual(l.total);
    expect(WP.WAITERS).toBeLessThan(WP.HEADER_WORDS);
    expect(CPUW.PENDING + 256 / 32).toBeLessThanOrEqual(CPUW.BLOCK_WORDS);
    expect(IRQW.WORDS * 4).toBeLessThanOrEqual(l.stats - l.irq);
    expect(STAT.DRV_SYNC_TIMEOUTS + MAX_CPUS).toBeLessThanOrEqual(STAT.SLOTS);
  });

  test('bad configurations are rejected naming the field', () => {
    expect(() => computeLayout({ memBytes: 1000, ncpus: 1 })).toThrow(/memBytes/);
    expect(() => computeLayout({ memBytes: 1 << 20, ncpus: 0 })).toThrow(/cpus/);
    expect(() => computeLayout({ memBytes: 1 << 20, ncpus: MAX_CPUS + 1 })).toThrow(/cpus/);
  });

  test('MMIO decode maps device windows and nothing else', () => {
    const v = SharedViews.create(computeLayout({ memBytes: 1 << 20, ncpus: 1 }));
    expect(mmioRegion(v, PA.SMMU_BASE + 0x10000, 4)?.name).toBe('smmu');
    expect(mmioRegion(v, PA.ECAM_BASE, 4)?.name).toBe('ecam');
    expect(mmioRegion(v, PA.DRAM_BASE, 4)).toBeNull();
    // Absent PCI functions read as all-ones.
    expect(v.ecam[0]).toBe(-1);
  });
});
