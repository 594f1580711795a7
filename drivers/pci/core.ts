// The PCI core of one kernel: the enumerated hierarchy, the firmware's RID -> StreamID map, MSI vector
// allocation, the registered device drivers, and the hooks the IOMMU layer gives it.

import type { DriverBug } from '../../src/protocol/ops/smmu.ts';
import { IRQ_VECTORS, VECTOR } from '../../src/arch/platform.ts';
import type { Platform } from '../platform/platform.ts';
import { parseBdf, ridOf } from '../../src/arch/pcie/bdf.ts';
import { type PciDriver, EcamAccess, PciBus, PciDev } from './pci.ts';
import { E } from '../../src/protocol/errno.ts';

/** What the PCI core needs from the IOMMU layer for a device behind it. */
export interface IommuPciOps {
  /** Called once per device after enumeration (Linux iommu_probe_device + default domain attach). */
  probeDevice(dev: PciDev): void;
  /** Attaches the RID to the blocking domain, keeping the current domain for later; 0 or -errno. */
  block(dev: PciDev): number;
  /** Re-attaches the domain kept by block(); 0 or -errno. */
  unblock(dev: PciDev): number;
  /** The known-broken variant the IOMMU driver runs (tests of smmulab only), if any. */
  readonly bug?: DriverBug | undefined;
}

/** First MSI vector the PCI core hands out (the SMMU driver uses the ones below). */
const PCI_MSI_FIRST = VECTOR.MSI_BASE + 32;

export interface PciCoreOptions {
  /** RID -> StreamID (IORT / DT iommu-map); functions not listed have no StreamID. */
  iommuMap: readonly { rid: number; sid: number }[];
}

export class PciCore {
  readonly cfg: EcamAccess;
  readonly devices: PciDev[] = [];
  root: PciBus | null = null;
  readonly drivers: PciDriver[] = [];
  iommu: IommuPciOps | null = null;
  private readonly sids: Map<number, number>;
  private nextVector = PCI_MSI_FIRST;

  constructor(
    readonly p: Platform,
    opts: PciCoreOptions,
  ) {
    this.cfg = new EcamAccess(p);
    this.sids = new Map(opts.iommuMap.map((e) => [e.rid, e.sid]));
  }

  sidOf(rid: number): number {
    return this.sids.get(rid) ?? -1;
  }


  /** The device at "BB:DD.F"; throws naming the address and what exists. */
  dev(bdf: string): PciDev {
    const b = parseBdf(bdf);
    const d = b ? this.devices.find((x) => x.rid === ridOf(b)) : undefined;
    if (!d) throw new Error(`no PCI device ${bdf} (found: ${this.devices.map((x) => x.bdf).join(', ') || 'none'})`);
    return d;
  }

  /** A free MSI vector, or -EBUSY when every vector is taken. */
  allocVector(): number {
    if (this.nextVector >= IRQ_VECTORS) return -E.EBUSY;
    return this.nextVector++;
  }
}
