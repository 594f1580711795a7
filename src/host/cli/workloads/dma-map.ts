// `smmulab run --workload dma-map`: every CPU drives its own DMA test engine through the IOMMU layer
// (drivers/workloads/dma-map.ts): map buffers with the DMA API, let the engine write and read them
// through the SMMU, unmap them. Reports what the SMMU did: translations, IOTLB and walk-cache hits and
// misses, and the events it recorded by name.

import type { DmaMapWorkload } from '../../../protocol/ops/iommu.ts';
import { STAT, XSTAT } from '../../../machine/layout.ts';
import { EVT_NAME } from '../../../arch/smmu/events.ts';
import { UsageError, intOpt } from '../args.ts';
import { DEFAULT_FEATURES } from '../../../arch/smmu/features.ts';
import { sumCounts, type Workload } from '../workload-api.ts';

/** StreamID of CPU 0's engine when the SMMU has room for it; CPU c uses base + c. */
const SID_BASE = 0x100;

/**
 * StreamID of CPU 0's engine: SID_BASE, or, on an SMMU with fewer StreamIDs (IDR1.SIDSIZE, e.g. the
 * `linear` profile's 64), the top of its range: the board wires its platform devices to StreamIDs the
 * SMMU implements. Throws a UsageError when there are more engines than StreamIDs.
 */
export function engineSidBase(sidBits: number, engines: number): number {
  const sids = 2 ** sidBits;
  if (engines > sids) throw new UsageError(`run: --workload dma-map needs ${engines} StreamIDs (one test engine per CPU), the SMMU has ${sids} (SIDSIZE ${sidBits})`);
  return Math.min(SID_BASE, sids - engines);
}

export interface DmaMapReport {
  translations: number;
  iotlb: { hits: number; misses: number; hitRate: number };
  walkCache: { hits: number; misses: number; hitRate: number };
  events: Record<string, number>;
  dma: { rounds: number; maps: number; unmaps: number; transfers: number; bytesMoved: number; dataErrors: number; staleFaulted: number; staleReached: number; fqFlushes: number };
}

const rate = (hits: number, misses: number) => (hits + misses ? Number((hits / (hits + misses)).toFixed(4)) : 0);

export const workload: Workload = {
  summary: 'every CPU maps DMA buffers for its test engine, which writes and reads them through the SMMU; then unmaps',
  options: {
    buffers: { type: 'number', help: 'buffers each CPU maps at a time', default: 8 },
    'buffer-bytes': { type: 'number', help: 'bytes per buffer', default: 16384 },
    lazy: { type: 'boolean', help: 'lazy unmap through a flush queue (iommu.strict=0) instead of strict invalidation' },
    'fault-every': { type: 'number', help: 'every N rounds, DMA to a buffer just unmapped (0 = never)', default: 0 },
  },
  prepare(p, setup) {
    intOpt(p, 'buffers', 1, 1024, 'run');
    intOpt(p, 'buffer-bytes', 1, 1 << 20, 'run');
    intOpt(p, 'fault-every', 0, 1 << 30, 'run');
    // One engine per CPU, so transfers of different CPUs never wait for each other.
    setup.boot.testDevices = setup.boot.cpus ?? 1;
    engineSidBase((setup.boot.features ?? DEFAULT_FEATURES).sidBits, setup.boot.testDevices);
  },
  async run(ctx) {
    const stats = ctx.sys.views.stats;
    const snap = () => Float64Array.from(stats);
    const before = snap();
    const sidBase = engineSidBase(ctx.sys.features.sidBits, ctx.sys.cpus.length);
    const w: DmaMapWorkload = {
      buffers: ctx.opts.buffers as number,
      bytes: ctx.opts['buffer-bytes'] as number,
      strict: ctx.opts.lazy !== true,
      sidBase,
      faultEvery: ctx.opts['fault-every'] as number,
      durationNs: ctx.durationNs,
    };
    const per = await Promise.all(ctx.sys.cpus.map((c) => c.op('dmaMapWorkload', w, ctx.callTimeoutMs)));
    const after = snap();
    const d = (slot: number) => after[slot]! - before[slot]!;
    const events: Record<string, number> = {};
    for (let t = 0; t < 256; t++) {
      const n = d(STAT.EVENTS + t);
      if (n) events[EVT_NAME[t] ?? `0x${t.toString(16).padStart(2, '0')}`] = n;
    }
    const sum = (k: keyof DmaMapReport['dma']) => per.reduce((a, r) => a + r[k], 0);
    const extra: DmaMapReport = {
      translations: d(XSTAT.TRANSLATIONS),
      iotlb: { hits: d(XSTAT.IOTLB_HITS), misses: d(XSTAT.IOTLB_MISSES), hitRate: rate(d(XSTAT.IOTLB_HITS), d(XSTAT.IOTLB_MISSES)) },
      walkCache: { hits: d(XSTAT.WALK_HITS), misses: d(XSTAT.WALK_MISSES), hitRate: rate(d(XSTAT.WALK_HITS), d(XSTAT.WALK_MISSES)) },
      events,
      dma: {
        rounds: sum('rounds'),
        maps: sum('maps'),
        unmaps: sum('unmaps'),
        transfers: sum('transfers'),
        bytesMoved: sum('bytesMoved'),
        dataErrors: sum('dataErrors'),
        staleFaulted: sum('staleFaulted'),
        staleReached: sum('staleReached'),
        fqFlushes: sum('fqFlushes'),
      },
    };
    return {
      issuedByOpcode: sumCounts(per.map((r) => r.issuedByOpcode)),
      perCpu: per.map((r, cpu) => ({ cpu, sid: sidBase + cpu, ...r })),
      extra: { ...extra },
    };
  },
};
