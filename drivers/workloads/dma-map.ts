// The dma-map workload: a device driver's life on one CPU. The CPU registers its DMA test engine as a
// master (StreamID sidBase + cpu), gives it a paging domain and a DMA API context (strict or lazy), then
// repeatedly maps a set of buffers, has the engine write a pattern into each and read it back through
// the SMMU, checks the data where the CPU sees it, and unmaps them. Optionally it also points the engine
// at a buffer it has just unmapped, which faults (strict mode) or may still reach memory through a
// stale IOTLB entry (lazy mode, until the flush queue flushes).

import { PAGE_SIZE } from '../../src/arch/platform.ts';
import type { Kernel } from '../kernel.ts';
import type { DmaMapResult, DmaMapWorkload } from '../../src/protocol/ops/iommu.ts';
import { IommuDma } from '../iommu/dma-iommu.ts';
import { TestDmaDriver } from '../testdev.ts';

export function runDmaMapWorkload(k: Kernel, w: DmaMapWorkload): DmaMapResult {
  for (const key of ['buffers', 'bytes', 'sidBase', 'faultEvery'] as const) {
    if (!Number.isInteger(w[key]) || w[key] < 0) throw new Error(`dma-map: ${key} ${w[key]} must be a non-negative integer`);
  }
  if (w.buffers < 1 || w.bytes < 1) throw new Error('dma-map: buffers and bytes must be at least 1');
  if (w.durationNs === undefined && w.iterations === undefined) throw new Error('dma-map: needs durationNs or iterations');
  const p = k.platform;
  const iommu = k.iommu().iommu;
  const before = { ...iommu.cmds.issued };
  const timeoutsBefore = iommu.cmds.syncTimeouts;
  const sid = w.sidBase + p.cpu;
  const engine = new TestDmaDriver(p, p.cpu);
  const master = iommu.probeDevice(`testdev${p.cpu}`, [sid]);
  const domain = iommu.allocPaging();
  iommu.attach(master, domain);
  const dma = new IommuDma(p, domain, { strict: w.strict });
  const pages = Math.ceil(w.bytes / PAGE_SIZE);
  const bufs = Array.from({ length: w.buffers }, () => p.pages.alloc(pages, 'dma-map buffer'));
  const r: DmaMapResult = {
    rounds: 0,
    maps: 0,
    unmaps: 0,
    transfers: 0,
    bytesMoved: 0,
    dataErrors: 0,
    staleFaulted: 0,
    staleReached: 0,
    fqFlushes: 0,
    issuedByOpcode: {},
    syncTimeouts: 0,
    elapsedNs: 0,
  };
  const start = p.clock.now();
  const end = w.durationNs !== undefined ? start + w.durationNs : Infinity;
  const maxRounds = w.iterations ?? Infinity;
  try {
    while (r.rounds < maxRounds && p.clock.now() < end) {
      const pattern = (0x5a000000 + (p.cpu << 16) + (r.rounds & 0xffff)) >>> 0;
      const iovas = bufs.map((pa) => dma.map(pa, w.bytes, 'bidirectional'));
      r.maps += bufs.length;
      for (let i = 0; i < bufs.length; i++) {
        const wr = engine.transfer({ sid, iova: iovas[i]!, len: w.bytes, write: true, pattern });
        const rd = engine.transfer({ sid, iova: iovas[i]!, len: w.bytes, write: false, pattern });
        r.transfers += 2;
        r.bytesMoved += wr.xferred + rd.xferred;
        // The data must have landed at the buffer's physical address, as the CPU sees it.
        const first = p.mem.read32(bufs[i]!);
        const last = p.mem.read32(bufs[i]! + ((w.bytes - 4) & ~3));
        if (!wr.ok || !rd.ok || rd.mismatches !== 0 || (w.bytes >= 4 && (first !== pattern || last !== pattern))) r.dataErrors++;
      }
      for (let i = 0; i < bufs.length; i++) dma.unmap(iovas[i]!, w.bytes, 'bidirectional');
      r.unmaps += bufs.length;
      r.rounds++;
      if (w.faultEvery && r.rounds % w.faultEvery === 0) {
        const t = engine.transfer({ sid, iova: iovas[0]!, len: Math.min(w.bytes, 4096), write: false, pattern });
        r.transfers++;
        if (t.ok) r.staleReached++;
        else r.staleFaulted++;
      }
      // An interrupts-on point: the event queue thread runs here if this CPU takes its interrupt.
      p.irqCheckpoint();
    }
  } finally {
    dma.flushQueue();
    iommu.releaseDevice(master);
    domain.free();
    for (const pa of bufs) p.pages.free(pa, pages);
    engine.remove();
  }
  r.fqFlushes = dma.stats.fqFlushes;
  r.issuedByOpcode = iommu.cmds.issuedSince(before);
  r.syncTimeouts = iommu.cmds.syncTimeouts - timeoutsBefore;
  r.elapsedNs = p.clock.now() - start;
  return r;
}
