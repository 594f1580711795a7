// The per-CPU kernel context: the platform this CPU runs on and the drivers bound on it. The operations
// the host can ask a CPU to perform (drivers/ops, declared in src/protocol/ops) receive it; workloads
// run on it. It imports the subsystems, never the operations or the workloads.

import type { Platform } from './platform/platform.ts';
import type { ArmSmmuDevice } from './arm-smmu-v3/smmu.ts';
import { ArmSmmuIommu, type Domain, type Master, type PagingDomain } from './arm-smmu-v3/domain.ts';
import type { IommuDma } from './iommu/dma-iommu.ts';
import { TestDmaDriver } from './testdev.ts';
import { PciCore } from './pci/core.ts';
import { PciIommu } from './pci/iommu.ts';
import { EpDriver } from './pci/ep-driver.ts';
import { pciScan } from './pci/probe.ts';
import { pciRegisterDriver } from './pci/driver.ts';

/** The IOMMU layer of one CPU and the objects handed out to callers, by handle. */
export class IommuState {
  readonly iommu: ArmSmmuIommu;
  readonly masters = new Map<number, Master>();
  readonly dmas = new Map<number, IommuDma>();
  private readonly domains = new Map<number, Domain>();
  private readonly testdevs = new Map<number, TestDmaDriver>();
  private nextHandle = 1;

  constructor(
    private readonly platform: Platform,
    smmu: ArmSmmuDevice,
  ) {
    this.iommu = new ArmSmmuIommu(smmu);
    this.domains.set(this.iommu.identity.id, this.iommu.identity);
    this.domains.set(this.iommu.blocked.id, this.iommu.blocked);
  }

  handle(): number {
    return this.nextHandle++;
  }

  addDomain(d: Domain): number {
    this.domains.set(d.id, d);
    return d.id;
  }

  dropDomain(id: number): void {
    this.domains.delete(id);
  }

  domain(id: number): Domain {
    const d = this.domains.get(id);
    if (!d) throw new Error(`domain ${id}: no such domain on this CPU`);
    return d;
  }

  paging(id: number): PagingDomain {
    const d = this.domain(id);
    if (d.type !== 'paging') throw new Error(`domain ${id} is an ${d.type} domain, not a paging domain`);
    return d;
  }

  master(id: number): Master {
    const m = this.masters.get(id);
    if (!m) throw new Error(`master ${id}: no such master on this CPU`);
    return m;
  }

  dma(id: number): IommuDma {
    const d = this.dmas.get(id);
    if (!d) throw new Error(`dma ${id}: no such DMA context on this CPU`);
    return d;
  }

  /** The driver of DMA test engine `index`, bound on first use. */
  testdev(index: number): TestDmaDriver {
    let t = this.testdevs.get(index);
    if (!t) {
      t = new TestDmaDriver(this.platform, index);
      this.testdevs.set(index, t);
    }
    return t;
  }
}

/** The PCI core, its IOMMU glue (when the SMMU is probed on this CPU) and the endpoint driver. */
export class PciState {
  constructor(
    readonly core: PciCore,
    readonly iommu: PciIommu | null,
    readonly ep: EpDriver,
  ) {}
}

export class Kernel {
  /** The SMMU as probed (CPU 0) or joined (other CPUs). */
  smmu: ArmSmmuDevice | null = null;
  /** The PCI core, its IOMMU glue and device drivers (CPU 0, after initPci). */
  pci: PciState | null = null;
  /** Sequence number of the first kernel log line not yet handed to the host (the dmesg operation's cursor). */
  logRead = 0;
  /** Set by the stop operation: the CPU leaves its idle loop. */
  stopping = false;
  private iommuState: IommuState | null = null;

  constructor(readonly platform: Platform) {}

  device(): ArmSmmuDevice {
    if (!this.smmu) throw new Error(`cpu${this.platform.cpu}: no SMMU probed or attached on this CPU`);
    return this.smmu;
  }

  /** The IOMMU layer on this CPU (masters, domains, DMA API, test-engine drivers), created on first use. */
  iommu(): IommuState {
    if (!this.iommuState) this.iommuState = new IommuState(this.platform, this.device());
    return this.iommuState;
  }

  /** Whether the IOMMU layer exists on this CPU yet. */
  hasIommu(): boolean {
    return this.iommuState !== null;
  }

  /** The PCI core, after initPci. */
  pciState(): PciState {
    if (!this.pci) throw new Error(`cpu${this.platform.cpu}: PCI not initialised on this CPU (pciInit)`);
    return this.pci;
  }

  /** Sets up PCI on this CPU: the core, the SMMU glue (when the SMMU is probed here), the endpoint driver; scans. */
  initPci(iommuMap: readonly { rid: number; sid: number }[], strict: boolean): PciState {
    if (this.pci) throw new Error(`cpu${this.platform.cpu}: PCI already initialised`);
    const core = new PciCore(this.platform, { iommuMap });
    const glue = this.smmu ? new PciIommu(this.iommu().iommu, this.platform, core, strict) : null;
    core.iommu = glue;
    const ep = new EpDriver(core);
    pciRegisterDriver(core, ep);
    pciScan(core);
    this.pci = new PciState(core, glue, ep);
    return this.pci;
  }
}
