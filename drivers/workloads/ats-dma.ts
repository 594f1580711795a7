// The ats-dma workload: every ATS endpoint copies buffers with its DMA engine while the driver maps
// and unmaps them. Each round maps a source and a destination buffer per endpoint through the DMA API
// (strict mode), runs `transfersPerMap` copies on all endpoints at once (the first copy misses in the
// ATCs, the later ones hit), checks the data, then unmaps: TLBI + CMD_SYNC, then the ATC_INVs and one
// CMD_SYNC. With a shared domain (the default, as VFIO puts the devices of one container in one
// domain) that CMD_SYNC covers every endpoint's ATC invalidations.

import { PAGE_SIZE } from '../../src/arch/platform.ts';
import { NS_PER_MS } from '../../src/arch/time.ts';
import type { Kernel, PciState } from '../kernel.ts';
import { IommuDma } from '../iommu/dma-iommu.ts';
import type { AtsDmaRequest, AtsDmaRun } from '../../src/protocol/ops/pci.ts';
import { type PciDev } from '../pci/pci.ts';
import { errName } from '../../src/protocol/errno.ts';

interface Lane {
  dev: PciDev;
  dma: IommuDma;
  src: number;
  dst: number;
  srcIova: number;
  dstIova: number;
}

export function runAtsDma(k: Kernel, st: PciState, w: AtsDmaRequest): AtsDmaRun {
  if (!st.iommu) throw new Error('ats-dma: the PCI functions are not behind the SMMU (probe it first)');
  if (!Number.isInteger(w.pages) || w.pages < 1 || w.pages > 64) throw new Error(`ats-dma: pages ${w.pages} must be 1..64`);
  if (!Number.isInteger(w.transfersPerMap) || w.transfersPerMap < 1) throw new Error(`ats-dma: transfersPerMap ${w.transfersPerMap} must be a positive integer`);
  if (w.durationNs === undefined && w.rounds === undefined) throw new Error('ats-dma: needs durationNs or rounds');
  const p = k.platform;
  const glue = st.iommu;
  const devs = st.core.devices.filter((d) => d.driver === st.ep && d.atsEnabled);
  if (devs.length === 0) throw new Error('ats-dma: no endpoint with ATS enabled is bound to the DMA driver');
  let dmas: IommuDma[];
  if (w.sharedDomain) {
    const domain = glue.iommu.allocPaging();
    for (const d of devs) {
      const rc = glue.attachDomain(d, domain);
      if (rc) throw new Error(`ats-dma: ${d.bdf}: attach to the shared domain failed (${errName(rc)})`);
    }
    const shared = new IommuDma(p, domain, { strict: true });
    dmas = devs.map(() => shared);
  } else {
    dmas = devs.map((d) => glue.dma(d));
  }
  const len = w.pages * PAGE_SIZE;
  const timeoutNs = w.timeoutNs ?? 1000 * NS_PER_MS;
  const start = p.clock.now();
  const end = w.durationNs !== undefined ? start + w.durationNs : Infinity;
  const maxRounds = w.rounds ?? Infinity;
  const out: AtsDmaRun = { endpoints: devs.map((d) => d.bdf), rounds: 0, transfers: 0, bytes: 0, verifyFailures: 0, errors: [], elapsedNs: 0 };
  while (out.rounds < maxRounds && p.clock.now() < end) {
    const lanes: Lane[] = devs.map((dev, i) => {
      const src = p.pages.alloc(w.pages, 'ats-dma source');
      const dst = p.pages.alloc(w.pages, 'ats-dma destination');
      const data = new Uint8Array(len);
      for (let b = 0; b < len; b++) data[b] = (b * 7 + out.rounds * 13 + i * 101) & 0xff;
      p.mem.writeBytes(src, data);
      return { dev, dma: dmas[i]!, src, dst, srcIova: dmas[i]!.map(src, len, 'to-device'), dstIova: dmas[i]!.map(dst, len, 'from-device') };
    });
    for (let t = 0; t < w.transfersPerMap; t++) {
      const seen = lanes.map((l) => st.ep.state(l.dev).completions);
      lanes.forEach((l) => st.ep.startTransfer(l.dev, l.srcIova, l.dstIova, len));
      lanes.forEach((l, i) => {
        const r = st.ep.waitTransfer(l.dev, seen[i]!, timeoutNs);
        out.transfers++;
        if (!r.ok) out.errors.push(`${l.dev.bdf}: ${r.error}`);
        else out.bytes += len;
      });
    }
    for (const l of lanes) {
      const a = p.mem.readBytes(l.src, len);
      const b = p.mem.readBytes(l.dst, len);
      if (a.some((x, i) => x !== b[i])) out.verifyFailures++;
      l.dma.unmap(l.srcIova, len, 'to-device');
      l.dma.unmap(l.dstIova, len, 'from-device');
      p.pages.free(l.src, w.pages);
      p.pages.free(l.dst, w.pages);
    }
    out.rounds++;
    p.irqCheckpoint();
  }
  out.elapsedNs = p.clock.now() - start;
  return out;
}
