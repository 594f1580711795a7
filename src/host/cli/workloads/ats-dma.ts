// `smmulab run --workload ats-dma`: PCI is enumerated on CPU 0, every ATS endpoint's DMA engine copies
// buffers while the driver maps and unmaps them (drivers/workloads/ats-dma.ts), and the report says
// what the ATCs and the SMMU's ATC invalidations did:
//   atcHits / atcMisses     translated requests served from an ATC / lookups that needed a Translation
//                           Request (all endpoints)
//   atcInvalidations        ATC Invalidate Requests the SMMU sent
//   invLatencyP50Ns / P99   their round trip (request sent -> completion back), from a histogram with
//                           ~9% resolution
//   events                  SMMU events the driver's event queue thread decoded, by name
//   unassignedBars          BARs the PCI core found no room for in the BAR window (their functions
//                           have no driver, so they take no part)

import type { AtsDmaRequest, UnassignedBar } from '../../../protocol/ops/pci.ts';
import { iommuMap } from '../../../protocol/topology.ts';
import { PCIE_STAT, histogramPercentile, latencyHistogram, pcieStat } from '../../../machine/pcie-stats.ts';
import { intOpt } from '../args.ts';
import type { Workload } from '../workload-api.ts';

export interface AtsDmaReport {
  atcHits: number;
  atcMisses: number;
  atcInvalidations: number;
  invLatencyP50Ns: number | null;
  invLatencyP99Ns: number | null;
  events: Record<string, number>;
  endpoints: string[];
  rounds: number;
  transfers: number;
  bytes: number;
  verifyFailures: number;
  dmaErrors: string[];
  atcInvTimeouts: number;
  /** BARs the PCI core found no room for in the BAR window: those functions have no driver and no DMA. */
  unassignedBars: UnassignedBar[];
}

export const workload: Workload = {
  summary: 'every ATS endpoint DMAs through its ATC while the driver maps and unmaps (ATC invalidations)',
  options: {
    pages: { type: 'number', help: 'pages per DMA buffer', default: 4 },
    'transfers-per-map': { type: 'number', help: 'copies per mapping (the first misses in the ATC, the rest hit)', default: 4 },
    'separate-domains': { type: 'boolean', help: 'each endpoint in its own domain (default: one shared domain, one CMD_SYNC for all ATC_INVs)' },
  },
  prepare(p) {
    intOpt(p, 'pages', 1, 64, 'run');
    intOpt(p, 'transfers-per-map', 1, 1024, 'run');
  },
  async run(ctx) {
    const stats = ctx.sys.views.stats;
    const at = (k: keyof typeof PCIE_STAT) => pcieStat(stats, PCIE_STAT[k]);
    const before = { hits: at('ATC_HITS'), misses: at('ATC_MISSES'), inv: at('ATC_INV_SENT'), timeouts: at('ATC_INV_TIMEOUTS'), hist: latencyHistogram(stats) };
    const req: AtsDmaRequest = {
      iommuMap: iommuMap(ctx.sys.topology),
      durationNs: ctx.durationNs,
      pages: ctx.opts.pages as number,
      transfersPerMap: ctx.opts['transfers-per-map'] as number,
      sharedDomain: ctx.opts['separate-domains'] !== true,
    };
    const r = await ctx.sys.cpu(0).op('atsDmaWorkload', req, ctx.callTimeoutMs);
    const hist = latencyHistogram(stats).map((v, i) => v - before.hist[i]!);
    const report: AtsDmaReport = {
      atcHits: at('ATC_HITS') - before.hits,
      atcMisses: at('ATC_MISSES') - before.misses,
      atcInvalidations: at('ATC_INV_SENT') - before.inv,
      invLatencyP50Ns: histogramPercentile(hist, 50),
      invLatencyP99Ns: histogramPercentile(hist, 99),
      events: r.events,
      endpoints: r.endpoints,
      rounds: r.rounds,
      transfers: r.transfers,
      bytes: r.bytes,
      verifyFailures: r.verifyFailures,
      dmaErrors: r.errors,
      atcInvTimeouts: at('ATC_INV_TIMEOUTS') - before.timeouts,
      unassignedBars: r.unassignedBars,
    };
    return { issuedByOpcode: r.issuedByOpcode, perCpu: [{ cpu: 0, rounds: r.rounds, transfers: r.transfers, elapsedNs: r.elapsedNs }], extra: { ...report } };
  },
};
