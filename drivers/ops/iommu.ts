// CPU operations for the IOMMU layer: register devices (masters), create domains and attach them, map
// and unmap IOVA ranges directly or through the DMA API, drive the DMA test engine, and read back what
// happened. Objects stay on the CPU that created them; the caller refers to them by handle.

import type { IommuStats } from '../../src/protocol/ops/iommu.ts';
import type { KernelOpImpls } from '../../src/protocol/ops/index.ts';
import { IommuDma } from '../iommu/dma-iommu.ts';
import type { Kernel } from '../kernel.ts';
import { runDmaMapWorkload } from '../workloads/dma-map.ts';

export const iommuOps = {
  iommuProbeDevice: (k, r) => {
    const s = k.iommu();
    const m = s.iommu.probeDevice(r.name, r.sids, { ssidBits: r.ssidBits ?? 0, stall: r.stall ?? false });
    const h = s.handle();
    s.masters.set(h, m);
    return h;
  },
  iommuReleaseDevice: (k, r) => {
    const s = k.iommu();
    s.iommu.releaseDevice(s.master(r.master));
    s.masters.delete(r.master);
    return true;
  },
  iommuAllocDomain: (k, r) => {
    const s = k.iommu();
    switch (r.type ?? 'paging') {
      case 'identity':
        return s.iommu.identity.id;
      case 'blocked':
        return s.iommu.blocked.id;
      case 'paging':
        return s.addDomain(s.iommu.allocPaging(r.stage === undefined ? {} : { stage: r.stage === 1 ? 1 : 2 }));
    }
  },
  iommuFreeDomain: (k, r) => {
    const s = k.iommu();
    s.paging(r.domain).free();
    s.dropDomain(r.domain);
    return true;
  },
  iommuAttach: (k, r) => {
    const s = k.iommu();
    s.iommu.attach(s.master(r.master), s.domain(r.domain));
    return true;
  },
  iommuMap: (k, r) => {
    k.iommu().paging(r.domain).map(r.iova, r.pa, r.size, r.prot);
    return true;
  },
  iommuUnmap: (k, r) => k.iommu().paging(r.domain).unmap(r.iova, r.size),
  iommuDomainInfo: (k, r) => {
    const d = k.iommu().domain(r.domain);
    return d.type === 'paging' ? { type: d.type, stage: d.stage, asid: d.asid, vmid: d.vmid, masters: [...d.masters].map((m) => m.name) } : { type: d.type };
  },
  iommuIovaToPhys: (k, r) => k.iommu().paging(r.domain).iovaToPhys(r.iova),
  iommuReadSte: (k, r) => [...k.iommu().iommu.strtab.readSte(r.sid)].map((q) => q.toString(16)),
  iommuStats: (k): IommuStats => {
    const s = k.iommu();
    const dev = k.device();
    const dma: IommuStats['dma'] = {};
    for (const [h, d] of s.dmas) dma[h] = { ...d.stats, mapped: d.mapped, queued: d.queued };
    return { issued: { ...s.iommu.cmds.issued }, syncTimeouts: s.iommu.cmds.syncTimeouts, events: dev.evtq.countsByName(), evtqOverflows: dev.evtq.overflows, dma };
  },

  // ---- the DMA API ----

  dmaCreate: (k, r) => {
    const s = k.iommu();
    const d = new IommuDma(k.platform, s.paging(r.domain), {
      strict: r.strict ?? true,
      dmaBits: r.dmaBits,
      coherent: r.coherent ?? true,
      fqSize: r.fqSize,
      fqTimeoutNs: r.fqTimeoutNs,
    });
    const h = s.handle();
    s.dmas.set(h, d);
    return h;
  },
  dmaMap: (k, r) => k.iommu().dma(r.dma).map(r.pa, r.size, r.dir ?? 'bidirectional'),
  dmaUnmap: (k, r) => {
    k.iommu().dma(r.dma).unmap(r.iova, r.size, r.dir ?? 'bidirectional');
    return true;
  },
  dmaPoll: (k, r) => {
    const d = k.iommu().dma(r.dma);
    d.poll();
    return d.queued;
  },
  dmaFlush: (k, r) => {
    k.iommu().dma(r.dma).flushQueue();
    return true;
  },

  // ---- memory the CPU reads and writes (buffers for devices) ----

  memAlloc: (k, r) => k.platform.pages.alloc(r.pages ?? 1, 'memAlloc'),
  memFree: (k, r) => {
    k.platform.pages.free(r.pa, r.pages ?? 1);
    return true;
  },
  memWrite: (k, r) => {
    k.platform.mem.writeBytes(r.pa, Uint8Array.from(r.bytes), 'memWrite');
    return true;
  },
  memRead: (k, r) => [...k.platform.mem.readBytes(r.pa, r.len, 'memRead')],

  // ---- the DMA test engine ----

  testdevTransfer: (k, r) => k.iommu().testdev(r.index ?? 0).transfer(r),

  dmaMapWorkload: (k, w) => runDmaMapWorkload(k, w),
} satisfies Partial<KernelOpImpls<Kernel>>;
