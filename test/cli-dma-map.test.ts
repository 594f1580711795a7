// `smmulab run --workload dma-map` as a user runs it: the JSON report's translation statistics, the
// events the SMMU recorded, and the check that every command the CPUs issued was executed.

import { describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';

interface DmaMapJson {
  workload: string;
  check: string;
  executedByOpcode: Record<string, number>;
  issuedByOpcode: Record<string, number>;
  errors: { cerrors: Record<string, number>; gerrors: Record<string, number>; syncTimeouts: number };
  translations: number;
  iotlb: { hits: number; misses: number; hitRate: number };
  walkCache: { hits: number; misses: number; hitRate: number };
  events: Record<string, number>;
  dma: { rounds: number; maps: number; unmaps: number; transfers: number; bytesMoved: number; dataErrors: number; staleFaulted: number; staleReached: number; fqFlushes: number };
  perCpu: { cpu: number; sid: number; rounds: number }[];
}

function common(out: DmaMapJson, cpus: number): void {
  expect(out.workload).toBe('dma-map');
  expect(out.check).toBe('OK');
  expect(out.executedByOpcode).toEqual(out.issuedByOpcode);
  expect(out.errors).toEqual({ cerrors: {}, gerrors: {}, syncTimeouts: 0 });
  expect(out.perCpu).toHaveLength(cpus);
  for (const c of out.perCpu) expect(c.rounds).toBeGreaterThan(0);
  // Every translation looked up the IOTLB once; every IOTLB miss walked, starting from the walk cache or not.
  expect(out.translations).toBeGreaterThan(0);
  expect(out.iotlb.hits + out.iotlb.misses).toBe(out.translations);
  expect(out.walkCache.hits + out.walkCache.misses).toBe(out.iotlb.misses);
  expect(out.iotlb.hitRate).toBeCloseTo(out.iotlb.hits / out.translations, 3);
  // The engine wrote and read back every buffer correctly.
  expect(out.dma.dataErrors).toBe(0);
  expect(out.dma.maps).toBe(out.dma.unmaps);
  expect(out.dma.bytesMoved).toBeGreaterThan(0);
}

describe('smmulab run --workload dma-map', () => {
  it('strict: reports translations, IOTLB and walk-cache hits, and a fault event for every DMA to an unmapped buffer', async () => {
    const r = await runCli(['run', '--workload', 'dma-map', '--json', '--cpus', '2', '--seconds', '0.3', '--buffers', '4', '--buffer-bytes', '12288', '--fault-every', '1']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as DmaMapJson;
    common(out, 2);
    expect(out.perCpu.map((c) => c.sid)).toEqual([0x100, 0x101]);
    // Strict unmap: one ranged TLBI per unmapped buffer, and every stale DMA faulted with an event.
    expect(out.executedByOpcode.TLBI_NH_VA).toBe(out.dma.unmaps);
    expect(out.dma.staleReached).toBe(0);
    expect(out.dma.staleFaulted).toBe(out.dma.rounds);
    expect(out.events).toEqual({ F_TRANSLATION: out.dma.staleFaulted });
  });

  it('lazy: no per-unmap TLBI; the flush queue invalidates whole ASIDs, so stale DMA may still get through', async () => {
    const r = await runCli(['run', '--workload', 'dma-map', '--json', '--cpus', '1', '--seconds', '0.3', '--lazy', '--fault-every', '1']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as DmaMapJson;
    common(out, 1);
    expect(out.executedByOpcode.TLBI_NH_VA ?? 0).toBe(0);
    // One TLBI_NH_ASID per flush, plus the one when the device is released.
    expect(out.executedByOpcode.TLBI_NH_ASID).toBe(out.dma.fqFlushes + 1);
    expect(out.dma.staleFaulted + out.dma.staleReached).toBe(out.dma.rounds);
    expect(out.events.F_TRANSLATION ?? 0).toBe(out.dma.staleFaulted);
  });

  it('the text report shows the statistics; bad options are usage errors naming the option', async () => {
    const r = await runCli(['run', '--workload', 'dma-map', '--cpus', '1', '--seconds', '0.1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^translations: \d+$/m);
    expect(r.stdout).toMatch(/^iotlb: \{"hits":\d+,"misses":\d+,"hitRate":[\d.]+\}$/m);
    expect(r.stdout).toMatch(/^walkCache: \{"hits":\d+,"misses":\d+,"hitRate":[\d.]+\}$/m);
    expect(r.stdout).toMatch(/^events: \{\}$/m);
    const bad = await runCli(['run', '--workload', 'dma-map', '--buffer-bytes', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--buffer-bytes must be an integer from 1 to 1048576/);
    const other = await runCli(['run', '--workload', 'tlbi', '--lazy']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/unknown option --lazy/);
  });
});
