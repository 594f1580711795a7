// The PCI core's view of the hierarchy and its drivers (Linux struct pci_bus, struct pci_dev, struct pci_driver) and configuration
// access through ECAM (drivers/pci/access.c, pci_generic_config_read/write over ECAM): config space of
// BDF bb:dd.f is the 4 KiB at ECAM base + (bus << 20 | devfn << 12). Reads of a function that is absent
// or not answering return all-ones; PCI_POSSIBLE_ERROR tests for that.

import { PA } from '../../src/arch/platform.ts';
import type { IoMem, Platform } from '../platform/platform.ts';
import type { LogLevel } from '../../src/protocol/log.ts';
import type { ResetMethod } from '../../src/protocol/ops/pci.ts';
import { CAP_HDR, EXP_FLAGS, EXT_CAP_START, EXT_HDR, HDR, HEADER_LAYOUT, STATUS } from '../../src/arch/pcie/regs.ts';
import { formatBdf } from '../../src/arch/pcie/bdf.ts';

// ---- the device-driver interface (struct pci_driver, struct pci_error_handlers) ----

/** enum pci_ers_result. */
export const PCI_ERS = { NONE: 1, CAN_RECOVER: 2, NEED_RESET: 3, DISCONNECT: 4, RECOVERED: 5, NO_AER_DRIVER: 6 } as const;
export type PciErsResult = (typeof PCI_ERS)[keyof typeof PCI_ERS];
export const PCI_ERS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(PCI_ERS).map(([k, v]) => [v, k]));

/** pci_channel_state. */
export const PCI_CHANNEL = { NORMAL: 1, FROZEN: 2, PERM_FAILURE: 3 } as const;
export type PciChannelState = (typeof PCI_CHANNEL)[keyof typeof PCI_CHANNEL];

export interface PciErrorHandlers {
  /** An error was detected on the device's link; the driver says what it needs. */
  errorDetected?(dev: PciDev, state: PciChannelState): PciErsResult;
  /** MMIO works again (non-fatal errors): the driver may check the device. */
  mmioEnabled?(dev: PciDev): PciErsResult;
  /** The slot was reset: the driver re-initialises the device. */
  slotReset?(dev: PciDev): PciErsResult;
  /** Recovery is over: normal operation may resume. */
  resume?(dev: PciDev): void;
  /** pci_reset_function() is about to reset the device: quiesce it. */
  resetPrepare?(dev: PciDev): void;
  /** pci_reset_function() is done (whatever the outcome): bring the device back. */
  resetDone?(dev: PciDev): void;
}

export interface PciDeviceId {
  vendor: number;
  device: number;
}

export interface PciDriver {
  name: string;
  idTable: readonly PciDeviceId[];
  /** 0 when the driver now owns the device, -errno otherwise. */
  probe(dev: PciDev, id: PciDeviceId): number;
  remove(dev: PciDev): void;
  errHandler?: PciErrorHandlers;
}

// ---- config access and the device ----

/** Linux PCI_FIND_CAP_TTL: at most this many legacy capabilities are walked (loop protection). */
const PCI_FIND_CAP_TTL = 48;
/** Extended capabilities fit at most (4096 - 256) / 8 times in the extended space. */
const PCI_FIND_EXT_CAP_TTL = (4096 - 256) / 8;

/** PCI_POSSIBLE_ERROR: a read that returned all-ones may mean the function did not answer. */
export function possibleError(v: number, bytes: 1 | 2 | 4): boolean {
  return v === (bytes === 4 ? 0xffffffff : bytes === 2 ? 0xffff : 0xff);
}

/**
 * Config space of the ECAM segment. A bus beyond the window firmware gave (MCFG's bus range) has no
 * config space: reads return all-ones and writes are dropped, as pci_generic_config_read/write do
 * when map_bus finds no mapping.
 */
export class EcamAccess {
  readonly io: IoMem;
  private readonly rids: number;
  constructor(p: Platform) {
    this.io = p.ioremap(PA.ECAM_BASE, p.ecamBytes);
    this.rids = p.ecamBytes / 4096;
  }
  read8(rid: number, off: number): number {
    return rid < this.rids ? this.io.read8(rid * 4096 + off) : 0xff;
  }
  read16(rid: number, off: number): number {
    return rid < this.rids ? this.io.read16(rid * 4096 + off) : 0xffff;
  }
  read32(rid: number, off: number): number {
    return rid < this.rids ? this.io.read32(rid * 4096 + off) : 0xffffffff;
  }
  write8(rid: number, off: number, v: number): void {
    if (rid < this.rids) this.io.write8(rid * 4096 + off, v);
  }
  write16(rid: number, off: number, v: number): void {
    if (rid < this.rids) this.io.write16(rid * 4096 + off, v);
  }
  write32(rid: number, off: number, v: number): void {
    if (rid < this.rids) this.io.write32(rid * 4096 + off, v);
  }
}

export class PciBus {
  readonly devices: PciDev[] = [];
  readonly children: PciBus[] = [];
  constructor(
    readonly number: number,
    /** The bridge leading to this bus (null for the root bus). */
    readonly self: PciDev | null,
    readonly parent: PciBus | null,
  ) {}
}

/** A BAR as the core sized and placed it. */
export interface PciResource {
  index: number;
  /** Bus address (0 until assigned). */
  start: number;
  size: number;
  flags: 'mem32' | 'mem64';
}

/** A capability found in a function's config space: its ID, where it is, and which list it is on. */
export interface CapRef {
  id: number;
  offset: number;
  ext: boolean;
}

/** Per-device state of the IOMMU core around resets (gdev->reset_depth and friends). */
export interface IommuResetState {
  /** Nesting depth of pci_dev_reset_iommu_prepare() calls. */
  depth: number;
  /** The device is attached to the blocking domain (its own domain retained for later). */
  blocked: boolean;
  /** A nested reset inside the current outermost one failed (whatever the outer one reports). */
  innerFailed?: boolean;
}

export class PciDev {
  readonly rid: number;
  readonly bdf: string;
  vendor = 0;
  device = 0;
  revision = 0;
  classCode = 0;
  hdrType = 0;
  multifunction = false;
  /** Offset of the PCI Express capability, 0 if none. */
  pcieCap = 0;
  pcieFlags = 0;
  /** Device Capabilities, cached at enumeration (Linux dev->devcap). */
  devcap = 0;
  pmCap = 0;
  msiCap = 0;
  atsCap = 0;
  priCap = 0;
  pasidCap = 0;
  acsCap = 0;
  aerCap = 0;
  /** 256 or 4096 (Linux cfg_size). */
  cfgSize = 256;
  immReady = false;
  /** Linux d3hot_delay / d3cold_delay, ms. */
  d3hotDelayMs = 10;
  d3coldDelayMs = 100;
  currentState = 0;
  readonly resources: PciResource[] = [];
  subordinate: PciBus | null = null;
  /** Indices into the reset method table (Linux dev->reset_methods). */
  resetMethods: ResetMethod[] = [];
  /** Root Port with Configuration RRS Software Visibility enabled (Linux config_rrs_sv). */
  configRrsSv = false;
  // ATS / PRI / PASID software state (drivers/pci/ats.c).
  atsEnabled = false;
  atsStu = 0;
  pasidEnabled = false;
  pasidFeatures = 0;
  untrusted = false;
  /** Saved config header and PCIe control words (pci_save_state). */
  savedConfig: number[] | null = null;
  savedExp: number[] | null = null;
  /** MSI vector allocated to the device, or -1. */
  irq = -1;
  /** StreamID from the firmware's iommu-map, or -1 when no IOMMU translates it. */
  sid = -1;
  /** IOMMU core state for resets, when the device sits behind the IOMMU. */
  iommu: IommuResetState | null = null;
  driver: PciDriver | null = null;
  driverData: unknown = null;
  /** A reset holds the device (pci_dev_lock): work that would reset it again waits. */
  locked = false;
  /** The hardware is known to be gone (pci_dev_is_disconnected). */
  disconnected = false;

  constructor(
    readonly bus: PciBus,
    readonly devfn: number,
    readonly cfg: EcamAccess,
    private readonly p: Platform,
  ) {
    this.rid = (bus.number << 8) | devfn;
    this.bdf = formatBdf(this.rid);
  }

  /** "0000:01:00.0", as Linux names it. */
  get name(): string {
    return `0000:${this.bdf}`;
  }

  get platform(): Platform {
    return this.p;
  }

  /** The bridge above this device (pci_upstream_bridge), or null on the root bus. */
  get upstream(): PciDev | null {
    return this.bus.self;
  }

  get isBridge(): boolean {
    return this.hdrType === HEADER_LAYOUT.BRIDGE;
  }

  /** PCI Express Device/Port Type from the capability's flags. */
  get pcieType(): number {
    return EXP_FLAGS.TYPE.get(this.pcieFlags);
  }

  read8(off: number): number {
    return this.cfg.read8(this.rid, off);
  }
  read16(off: number): number {
    return this.cfg.read16(this.rid, off);
  }
  read32(off: number): number {
    return this.cfg.read32(this.rid, off);
  }
  write8(off: number, v: number): void {
    this.cfg.write8(this.rid, off, v);
  }
  write16(off: number, v: number): void {
    this.cfg.write16(this.rid, off, v);
  }
  write32(off: number, v: number): void {
    this.cfg.write32(this.rid, off, v);
  }

  /** Read-modify-write of a 16-bit register: pcie_capability_set_word / clear_word and friends. */
  update16(off: number, clear: number, set: number): void {
    this.write16(off, (this.read16(off) & ~clear) | set);
  }

  /** A PCI Express capability register (offset relative to the capability), 16 bits. */
  expRead16(reg: number): number {
    return this.read16(this.pcieCap + reg);
  }
  expWrite16(reg: number, v: number): void {
    this.write16(this.pcieCap + reg, v);
  }

  /** Kernel log line in Linux's "pci 0000:bb:dd.f: ..." style. */
  log(level: LogLevel, msg: string): void {
    this.p.log(level, `pci ${this.name}: ${msg}`);
  }

  /** A log line from the bound driver: "<driver> 0000:bb:dd.f: ...". */
  dlog(level: LogLevel, msg: string): void {
    this.p.log(level, `${this.driver?.name ?? 'pci'} ${this.name}: ${msg}`);
  }

  /**
   * The legacy capability list from the Capabilities Pointer, in chain order: at most 48 entries (Linux
   * PCI_FIND_CAP_TTL); `looped` when the walk ran out of them (a chain that points back into itself).
   */
  legacyCapabilities(): { caps: CapRef[]; looped: boolean } {
    const caps: CapRef[] = [];
    if (!(this.read16(HDR.STATUS) & STATUS.CAP_LIST.bits)) return { caps, looped: false };
    let pos = this.read8(HDR.CAP_PTR);
    let ttl = PCI_FIND_CAP_TTL;
    for (; ttl > 0 && pos >= 0x40; ttl--) {
      pos &= ~3;
      const ent = this.read16(pos);
      if (CAP_HDR.ID.get(ent) === 0xff) break;
      caps.push({ id: CAP_HDR.ID.get(ent), offset: pos, ext: false });
      pos = CAP_HDR.NEXT.get(ent);
    }
    return { caps, looped: ttl === 0 };
  }

  /**
   * The extended capability list from 0x100, in chain order, at most (4096 - 256) / 8 entries; a header
   * of 0 (or a read that failed) ends it. `looped` as for the legacy list.
   */
  extendedCapabilities(): { caps: CapRef[]; looped: boolean } {
    const caps: CapRef[] = [];
    if (this.cfgSize <= 256) return { caps, looped: false };
    let pos = EXT_CAP_START;
    let ttl = PCI_FIND_EXT_CAP_TTL;
    for (; ttl > 0; ttl--) {
      const hdr = this.read32(pos);
      if (hdr === 0 || possibleError(hdr, 4)) break;
      caps.push({ id: EXT_HDR.ID.get(hdr), offset: pos, ext: true });
      pos = EXT_HDR.NEXT.get(hdr) & 0xffc;
      if (pos < EXT_CAP_START) break;
    }
    return { caps, looped: ttl === 0 };
  }

  /** pci_find_capability: offset of the first legacy capability with this ID, or 0. */
  findCapability(id: number): number {
    return this.legacyCapabilities().caps.find((c) => c.id === id)?.offset ?? 0;
  }

  /** pci_find_ext_capability: offset of the first extended capability with this ID, or 0. */
  findExtCapability(id: number): number {
    return this.extendedCapabilities().caps.find((c) => c.id === id)?.offset ?? 0;
  }

  /** Every capability in chain order, legacy then extended; `looped` when either walk ran out of its TTL. */
  listCapabilities(): { caps: CapRef[]; looped: boolean } {
    const legacy = this.legacyCapabilities();
    const ext = this.extendedCapabilities();
    return { caps: [...legacy.caps, ...ext.caps], looped: legacy.looped || ext.looped };
  }
}

/**
 * Whether the device still answers config reads (pci_device_is_present). A Vendor ID of all-ones
 * outside a reset means it is gone (surprise removal): it is marked disconnected
 * (pci_dev_set_disconnected), and everything that would wait for it gives up at once from then on.
 */
export function pciDevCheckPresent(dev: PciDev): boolean {
  if (dev.disconnected) return false;
  if (!possibleError(dev.read32(HDR.VENDOR_ID), 4)) return true;
  dev.disconnected = true;
  dev.log('warn', 'device not present (Vendor ID reads all-ones): marked disconnected');
  return false;
}
