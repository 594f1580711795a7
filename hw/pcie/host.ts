// The PCIe side of the machine: builds Root Ports and endpoint functions from a topology, decodes
// config writes in the ECAM window (bus << 20 | device << 15 | function << 12, PCIe r6.0 7.2.2) and
// memory writes in the BAR window.
//
// ECAM reads never reach this code: the driver reads the ECAM read view, which each function keeps
// up to date (or fills with all-ones / RRS while it cannot answer). Offsets of absent functions read
// all-ones (the buffer starts that way) and writes to them are dropped.

import { type SharedViews } from '../../src/machine/layout.ts';
import { BAR_BYTES, PA } from '../../src/arch/platform.ts';
import type { WriteOutcome } from '../regfile.ts';
import { type Topology } from '../../src/protocol/topology.ts';
import { parseBdf, ridOf } from '../../src/arch/pcie/bdf.ts';
import type { HwContext, MmioWindow } from '../context.ts';
import type { SmmuDeviceServices } from '../smmu/services.ts';
import { PcieEndpoint } from './endpoint.ts';
import type { PcieFunction } from './function.ts';
import { RootPort } from './root-port.ts';

export class PcieHost {
  readonly ports: RootPort[] = [];
  readonly endpoints: PcieEndpoint[] = [];
  private readonly byRid = new Map<number, PcieFunction>();

  constructor(
    private readonly ctx: HwContext,
    private readonly views: SharedViews,
    readonly topology: Topology,
    smmu: SmmuDeviceServices,
  ) {
    for (const pt of topology.ports) {
      const port = new RootPort(ctx, views.ecam, pt);
      this.ports.push(port);
      this.byRid.set(pt.rid, port);
      for (const ft of pt.functions) {
        const ep = new PcieEndpoint(ctx, views.ecam, views.bars, ft, port, smmu);
        port.below.push(ep);
        this.endpoints.push(ep);
        this.byRid.set(ft.rid, ep);
      }
    }
  }

  /** The ECAM window for the machine's MMIO decode. */
  ecamWindow(): MmioWindow {
    return {
      name: 'ecam',
      base: PA.ECAM_BASE,
      size: this.views.ecam.byteLength,
      write: (off, size, lo, hi): WriteOutcome => {
        const fn = this.byRid.get(off >>> 12);
        if (!fn) {
          this.ctx.tr.pcie_config_write_dropped?.(off >>> 12, off & 0xfff, 'no function there');
          return 'unmapped';
        }
        return fn.configWrite(off & 0xfff, size, lo, hi);
      },
    };
  }

  /** The BAR window: a write goes to the endpoint whose BAR decodes its address. */
  barWindow(): MmioWindow {
    return {
      name: 'pcie-bars',
      base: PA.BAR_BASE,
      size: BAR_BYTES,
      write: (off, size, lo, hi): WriteOutcome => {
        const pa = PA.BAR_BASE + off;
        const ep = this.endpoints.find((e) => e.bar.decodes(pa));
        if (!ep) {
          this.ctx.tr.pcie_bar_write_unclaimed?.(pa);
          return 'unmapped';
        }
        return ep.barWrite(pa - ep.bar.decodedAt!, size, lo, hi);
      },
    };
  }

  endpoint(bdf: string): PcieEndpoint {
    const b = parseBdf(bdf);
    const ep = b ? this.byRid.get(ridOf(b)) : undefined;
    if (!(ep instanceof PcieEndpoint)) {
      throw new Error(`no endpoint at ${bdf} (endpoints: ${this.endpoints.map((e) => e.bdf).join(', ') || 'none'})`);
    }
    return ep;
  }
}
