// PCI devices on the SMMU (Linux iommu_probe_device for PCI: arm_smmu_probe_device, the default DMA
// domain, and the blocking domain of pci_dev_reset_iommu_prepare).
//
// Each function with a StreamID becomes a master of the IOMMU layer (drivers/arm-smmu-v3/domain.ts),
// with ATS controls that are the PCI core's pci_enable_ats / pci_disable_ats: the SMMU driver's attach
// calls them in upstream Linux's order (enable: STE with EATS, CFGI_STE + SYNC, ATC invalidate-all +
// SYNC, then ATS on at the function; disable: ATS off at the function, STE without EATS, then ATC
// invalidate-all + SYNC), and adds the function's StreamID to the domain's invalidation list while ATS
// is on, so unmaps invalidate its ATC after the TLBs. Each device gets its own DMA domain (its
// iommu_group's default domain) and a DMA API context on it; attachDomain() moves devices into a
// shared domain, as VFIO does for the devices of one container.

import type { DriverBug } from '../../src/protocol/ops/smmu.ts';
import type { Platform } from '../platform/platform.ts';
import { ATS_MIN_STU } from '../../src/arch/pcie/regs.ts';
import type { ArmSmmuIommu, Domain, Master, PagingDomain } from '../arm-smmu-v3/domain.ts';
import { IommuDma } from '../iommu/dma-iommu.ts';
import type { IommuPciOps, PciCore } from './core.ts';
import { pciRecoverBroken, pciResetAfterAtcTimeout } from './broken.ts';
import { NS_PER_US } from '../../src/arch/time.ts';
import { pciAtsSupported, pciDisableAts, pciEnableAts, pciEnablePasid, pciMaxPasids, pciPasidFeatures, pciPrepareAts } from './ats.ts';
import { type PciDev } from './pci.ts';
import { E, errName } from '../../src/protocol/errno.ts';

/**
 * Platform ns from queueing a work item to its running (a kworker is scheduled within tens to hundreds
 * of microseconds): the window the v1 design leaves between an unmap returning and the reset it queued.
 */
const WORKQUEUE_LATENCY_NS = 100 * NS_PER_US;

export class PciIommu implements IommuPciOps {
  private readonly masters = new Map<PciDev, Master>();
  /** The domain a blocked device returns to. */
  private readonly kept = new Map<PciDev, Domain | null>();
  private readonly dmas = new Map<PciDev, IommuDma>();
  private nextGroup = 0;

  get bug(): DriverBug | undefined {
    return this.iommu.dev.shared.bug;
  }

  constructor(
    readonly iommu: ArmSmmuIommu,
    private readonly p: Platform,
    core: PciCore,
    /** DMA API mode of the default domains: strict (invalidate before unmap returns) or lazy. */
    private readonly strict = true,
  ) {
    // After an ATC invalidation timeout: a fenced device is reported broken (v4), or, under the v1
    // design, skip_err names a StreamID to reset. Both run as work, after the failing call returned.
    iommu.recovery.onFence = (m) => {
      const dev = this.devOf(m);
      if (dev) p.deferWork(() => pciRecoverBroken(core, dev));
    };
    iommu.dev.onAtcTimeout = (sid) => {
      const dev = [...this.masters.keys()].find((d) => d.sid === sid);
      if (dev) p.deferWork(() => pciResetAfterAtcTimeout(core, dev), WORKQUEUE_LATENCY_NS);
    };
  }

  private devOf(m: Master): PciDev | undefined {
    for (const [d, x] of this.masters) if (x === m) return d;
    return undefined;
  }

  /**
   * Puts a device behind the IOMMU (iommu_probe_device -> arm_smmu_probe_device). A StreamID the SMMU
   * cannot hold fails the probe with -ERANGE before PASID or ATS are touched (arm_smmu_insert_master
   * comes first); the device is then not behind the IOMMU, as acpi/of_iommu_configure leave it
   * ("Adding to IOMMU failed", there at debug level: logged as a warning here, since it is the only
   * sign of it), and dev.iommu stays null.
   */
  probeDevice(dev: PciDev): void {
    if (this.iommu.sidOutOfRange([dev.sid]) !== null) {
      dev.log('warn', `Adding to IOMMU failed: ${errName(-E.ERANGE)} (StreamID 0x${dev.sid.toString(16)} is beyond the SMMU's ${this.iommu.strtab.sidLimit} StreamIDs)`);
      return;
    }
    const ats = pciAtsSupported(dev)
      ? {
          enable: (stu: number) => {
            const rc = pciEnableAts(dev, stu);
            if (rc) dev.log('err', `Failed to enable ATS (STU ${stu}): ${errName(rc)}`);
          },
          disable: () => pciDisableAts(dev),
        }
      : undefined;
    if (ats) pciPrepareAts(dev, ATS_MIN_STU);
    // arm_smmu_enable_pasid: PASID goes on before ATS, and sizes the master's SubstreamIDs.
    let ssidBits = 0;
    if (dev.pasidCap && this.iommu.dev.shared.ssidBits > 0) {
      const rc = pciEnablePasid(dev, pciPasidFeatures(dev));
      if (rc) dev.log('err', `Failed to enable PASID: ${errName(rc)}`);
      else ssidBits = Math.min(this.iommu.dev.shared.ssidBits, Math.log2(pciMaxPasids(dev)));
    }
    const m = this.iommu.probeDevice(dev.name, [dev.sid], { ...(ats ? { ats } : {}), ssidBits });
    this.masters.set(dev, m);
    dev.iommu = { depth: 0, blocked: false };
    dev.log('info', `Adding to iommu group ${this.nextGroup++}`);
    const domain = this.iommu.allocPaging();
    this.iommu.attach(m, domain);
    this.dmas.set(dev, new IommuDma(this.p, domain, { strict: this.strict }));
  }

  master(dev: PciDev): Master {
    const m = this.masters.get(dev);
    if (!m) throw new Error(`${dev.bdf}: not behind the IOMMU (${dev.sid < 0 ? 'no StreamID in the iommu-map' : `its probe failed: StreamID 0x${dev.sid.toString(16)}`})`);
    return m;
  }

  /** The device was put behind the IOMMU (it has a master). */
  behind(dev: PciDev): boolean {
    return this.masters.has(dev);
  }

  /** The DMA API context of the device's default domain. */
  dma(dev: PciDev): IommuDma {
    const d = this.dmas.get(dev);
    if (!d) throw new Error(`${dev.bdf}: no DMA domain`);
    return d;
  }

  /** The domain the device is attached to (the blocking domain while blocked). */
  domainOf(dev: PciDev): Domain | null {
    return this.master(dev).domain;
  }

  /**
   * Attaches the device to a domain (iommu_attach_device); -EBUSY while a reset keeps it blocked, as
   * Linux refuses attaches during pci_dev_reset_iommu_prepare/done.
   */
  attachDomain(dev: PciDev, d: PagingDomain): number {
    // A device without an iommu_group: iommu_attach_device says -ENODEV.
    if (!this.behind(dev)) return -E.ENODEV;
    if (dev.iommu?.blocked) return -E.EBUSY;
    this.iommu.attach(this.master(dev), d);
    return 0;
  }

  block(dev: PciDev): number {
    const m = this.master(dev);
    this.iommu.recovery.blocked(m);
    this.kept.set(dev, m.domain);
    this.iommu.attach(m, this.iommu.blocked);
    return 0;
  }

  unblock(dev: PciDev): number {
    const m = this.master(dev);
    const d = this.kept.get(dev);
    this.kept.delete(dev);
    // Only a successful reset gets here (pci_dev_reset_iommu_done, ok): a fence lifts with it.
    this.iommu.recovery.unfence(m);
    // A device that had no domain stays where it is (Linux skips the re-attach when group->domain is NULL).
    if (d) this.iommu.attach(m, d);
    return 0;
  }
}
