// The ats-dma workload: every endpoint copies buffers with its DMA engine while the driver maps and
// unmaps them (through its ATC when it has ATS). Each round maps a source and a destination buffer per endpoint through the DMA API
// (strict mode), runs `transfersPerMap` copies on all endpoints at once (the first copy misses in the
// ATCs, the later ones hit), checks the data, then unmaps: TLBI + CMD_SYNC, then the ATC_INVs and one
// CMD_SYNC. With a shared domain (the default, as VFIO puts the devices of one container in one
// domain) that CMD_SYNC covers every endpoint's ATC invalidations.
//
// Freed buffers go back to the rest of the kernel, which reuses them at once (here: the page cache
// takes each freed range and keeps it for a round), so a round never gets the previous round's pages
// back: a device that DMAs through a stale translation reaches memory someone else owns, as it would
// on a busy machine, and the DMA sanitizer sees it.

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
  // Endpoints without ATS take part too, their copies untranslated through the SMMU.
  let devs = st.core.devices.filter((d) => d.driver === st.ep);
  if (devs.length === 0) throw new Error('ats-dma: no endpoint is bound to the DMA driver');
  const errors: string[] = [];
  // An endpoint whose IOMMU probe failed (a StreamID the SMMU cannot hold: -ERANGE) has no domain to
  // map through: it sits this workload out, reported.
  devs = devs.filter((d) => {
    if (!glue.behind(d)) errors.push(`${d.bdf}: not behind the IOMMU (StreamID 0x${d.sid.toString(16)}), skipped`);
    return glue.behind(d);
  });
  let dmas: IommuDma[];
  if (w.sharedDomain) {
    const domain = glue.iommu.allocPaging();
    // A device that cannot join (a reset keeps it blocked) sits this workload out, reported.
    devs = devs.filter((d) => {
      const rc = glue.attachDomain(d, domain);
      if (rc) errors.push(`${d.bdf}: attach to the shared domain failed (${errName(rc)})`);
      return rc === 0;
    });
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
  const out: AtsDmaRun = { endpoints: devs.map((d) => d.bdf), rounds: 0, transfers: 0, bytes: 0, verifyFailures: 0, errors, elapsedNs: 0 };
  // Nothing to run on: the report says why (errors), with no rounds.
  if (devs.length === 0) return out;
  /** What the page cache took from the previous round (PAs of w.pages each). */
  let reused: number[] = [];
  const release = (pas: readonly number[]) => pas.forEach((pa) => p.pages.free(pa, w.pages));
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
    const taken: number[] = [];
    for (const l of lanes) {
      const a = p.mem.readBytes(l.src, len);
      const b = p.mem.readBytes(l.dst, len);
      if (a.some((x, i) => x !== b[i])) out.verifyFailures++;
      l.dma.unmap(l.srcIova, len, 'to-device');
      l.dma.unmap(l.dstIova, len, 'from-device');
      for (const pa of [l.src, l.dst]) {
        p.pages.free(pa, w.pages);
        taken.push(p.pages.alloc(w.pages, 'page cache'));
      }
    }
    release(reused);
    reused = taken;
    out.rounds++;
    p.irqCheckpoint();
  }
  release(reused);
  out.elapsedNs = p.clock.now() - start;
  return out;
}
