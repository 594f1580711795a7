// Enumeration (Linux drivers/pci/probe.c): scan bus 0 through ECAM, find functions (Vendor ID, RRS
// waiting), set each one up (header type, class, PCI Express capability, config space size, BARs),
// initialise its capabilities in Linux's order, descend through bridges whose bus numbers are already
// programmed, then assign BAR addresses from the BAR window.
//
// Not modelled: bus renumbering of unconfigured bridges (the topology's Root Ports come up programmed,
// as firmware leaves them; an unconfigured one is reported and skipped), I/O BARs, expansion ROMs,
// bridge windows (the BAR window decodes endpoint BARs directly), ARI.

import { BAR_BYTES, PA } from '../../src/arch/platform.ts';
import {
  ACS, ACS_BITS, BAR, BAR_TYPE, BRIDGE_CONTROL, CAP_ID, COMMAND, EXP, EXP_FLAGS, EXP_TYPE, EXT_CAP_ID, HDR, HEADER_LAYOUT, HEADER_TYPE, MSI,
  MSI_CONTROL, PM, PMC, RTCAP, RTCTL, STATUS, VENDOR_RRS,
} from '../../src/arch/pcie/regs.ts';
import { TIMEOUT, NS_PER_MS } from '../../src/arch/time.ts';
import { formatBdf } from '../../src/arch/pcie/bdf.ts';
import type { PciCore } from './core.ts';
import { PciBus, PciDev, possibleError } from './pci.ts';
import { pciInitResetMethods } from './reset.ts';
import { pciBindDrivers } from './driver.ts';

const typeName: Record<number, string> = {
  [EXP_TYPE.ENDPOINT]: 'PCIe Endpoint',
  [EXP_TYPE.ROOT_PORT]: 'PCIe Root Port',
  [EXP_TYPE.RC_END]: 'PCIe Root Complex Integrated Endpoint',
};

/** Reads the Vendor/Device dword of a possible function; null when nothing answers (pci_bus_read_dev_vendor_id). */
function readDevVendorId(core: PciCore, rid: number, timeoutMs: number): number | null {
  let l = core.cfg.read32(rid, HDR.VENDOR_ID);
  // Absent functions read all-ones; some broken ones read zeros or half of each.
  if (l === 0xffffffff || l === 0 || l === 0x0000ffff || l === 0xffff0000) return null;
  if ((l & 0xffff) !== VENDOR_RRS) return l;
  // RRS with Software Visibility: the function exists but is not ready; wait for it (pci_bus_wait_rrs).
  const p = core.p;
  let delay = 1;
  const name = `pci 0000:${formatBdf(rid)}`;
  while ((l & 0xffff) === VENDOR_RRS) {
    if (delay > timeoutMs) {
      p.log('warn', `${name}: not ready after ${delay - 1}ms; giving up`);
      return null;
    }
    if (delay >= 1000) p.log('info', `${name}: not ready after ${delay - 1}ms; waiting`);
    p.sleep(delay * NS_PER_MS);
    delay *= 2;
    l = core.cfg.read32(rid, HDR.VENDOR_ID);
  }
  if (delay >= 1000) p.log('info', `${name}: ready after ${delay - 1}ms`);
  return l;
}

/** Sizes the BARs (pci_read_bases): write all-ones, read back, restore; memory decoding off meanwhile. */
function readBases(dev: PciDev, count: number): void {
  const cmd = dev.read16(HDR.COMMAND);
  const decode = COMMAND.MEMORY.bits | COMMAND.IO.bits;
  if (cmd & decode) dev.write16(HDR.COMMAND, cmd & ~decode);
  for (let i = 0; i < count; i++) {
    const off = HDR.BAR0 + 4 * i;
    const orig = dev.read32(off);
    dev.write32(off, 0xffffffff);
    const sz = dev.read32(off);
    dev.write32(off, orig);
    if (sz === 0 || sz === 0xffffffff) continue;
    if (BAR.IO_SPACE.get(sz)) continue; // I/O BARs: not modelled
    const is64 = BAR.TYPE.get(sz) === BAR_TYPE.MEM64;
    let start = (orig & ~0xf) >>> 0;
    let mask = (sz & ~0xf) >>> 0;
    if (is64) {
      const hiOff = off + 4;
      const hiOrig = dev.read32(hiOff);
      dev.write32(hiOff, 0xffffffff);
      const hiSz = dev.read32(hiOff);
      dev.write32(hiOff, hiOrig);
      start += hiOrig * 2 ** 32;
      mask += hiSz * 2 ** 32;
      i++;
    }
    // The size is the lowest address bit that stuck at 1.
    let size = 1;
    while (size <= mask && Math.floor(mask / size) % 2 === 0) size *= 2;
    if (size > mask) continue;
    dev.resources.push({ index: is64 ? i - 1 : i, start, size, flags: is64 ? 'mem64' : 'mem32' });
    dev.log('info', `BAR ${is64 ? i - 1 : i} [mem 0x${start.toString(16).padStart(8, '0')}-0x${(start + size - 1).toString(16).padStart(8, '0')}${is64 ? ' 64bit' : ''}]`);
  }
  if (cmd & decode) dev.write16(HDR.COMMAND, cmd);
}

/** pci_setup_device: header type, class, PCIe capability, config size, BARs. */
function setupDevice(core: PciCore, dev: PciDev, l: number): void {
  dev.vendor = l & 0xffff;
  dev.device = l >>> 16;
  const ht = dev.read8(HDR.HEADER_TYPE);
  dev.hdrType = HEADER_TYPE.LAYOUT.get(ht);
  dev.multifunction = HEADER_TYPE.MFD.get(ht) === 1;
  const cr = dev.read32(HDR.REVISION);
  dev.revision = cr & 0xff;
  dev.classCode = cr >>> 8;
  dev.immReady = (dev.read16(HDR.STATUS) & STATUS.IMM_READY.bits) !== 0;
  // set_pcie_port_type
  dev.pcieCap = dev.findCapability(CAP_ID.EXP);
  if (dev.pcieCap) {
    dev.pcieFlags = dev.read16(dev.pcieCap + EXP.FLAGS);
    dev.devcap = dev.read32(dev.pcieCap + EXP.DEVCAP);
    // pci_cfg_space_size: PCIe functions have 4 KiB unless the extended space does not answer.
    dev.cfgSize = possibleError(dev.read32(0x100), 4) ? 256 : 4096;
  }
  const kind = dev.pcieCap ? (typeName[EXP_FLAGS.TYPE.get(dev.pcieFlags)] ?? 'PCIe') : 'conventional PCI';
  dev.log('info', `[${hex4(dev.vendor)}:${hex4(dev.device)}] type ${dev.hdrType.toString(16).padStart(2, '0')} class 0x${dev.classCode.toString(16).padStart(6, '0')} ${kind}`);
  // Type 0 headers have six BARs, Type 1 (bridge) headers two.
  if (dev.hdrType === HEADER_LAYOUT.NORMAL) readBases(dev, 6);
  else if (dev.hdrType === HEADER_LAYOUT.BRIDGE) readBases(dev, 2);
  dev.sid = core.sidOf(dev.rid);
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, '0');
}

/** pci_enable_rrs_sv: turn on Configuration RRS Software Visibility at a Root Port that supports it. */
function enableRrsSv(dev: PciDev): void {
  if (!dev.pcieCap || dev.pcieType !== EXP_TYPE.ROOT_PORT) return;
  if (!(dev.read16(dev.pcieCap + EXP.RTCAP) & RTCAP.RRS_SV.bits)) return;
  dev.update16(dev.pcieCap + EXP.RTCTL, 0, RTCTL.RRS_SVE.bits);
  dev.configRrsSv = true;
}

/** pci_init_capabilities, in Linux's order (the parts this model has). */
function initCapabilities(core: PciCore, dev: PciDev): void {
  // MSI: start disabled (pci_msi_init).
  dev.msiCap = dev.findCapability(CAP_ID.MSI);
  if (dev.msiCap) {
    const ctl = dev.read16(dev.msiCap + MSI.CONTROL);
    if (ctl & MSI_CONTROL.ENABLE.bits) dev.write16(dev.msiCap + MSI.CONTROL, ctl & ~MSI_CONTROL.ENABLE.bits);
  }
  // PM (pci_pm_init).
  dev.pmCap = dev.findCapability(CAP_ID.PM);
  if (dev.pmCap) {
    const pmc = dev.read16(dev.pmCap + PM.PMC);
    if (PMC.VERSION.get(pmc) > 3) dev.log('err', `unsupported PM cap regs version (${PMC.VERSION.get(pmc)})`);
  }
  // ATS, PRI, PASID (pci_ats_init, pci_pri_init, pci_pasid_init).
  dev.atsCap = dev.findExtCapability(EXT_CAP_ID.ATS);
  dev.priCap = dev.findExtCapability(EXT_CAP_ID.PRI);
  dev.pasidCap = dev.findExtCapability(EXT_CAP_ID.PASID);
  // ACS (pci_acs_init + pci_enable_acs): ports enable the isolation controls they have.
  dev.acsCap = dev.findExtCapability(EXT_CAP_ID.ACS);
  if (dev.acsCap && dev.pcieType === EXP_TYPE.ROOT_PORT) {
    const cap = dev.read16(dev.acsCap + ACS.CAP);
    const want = ACS_BITS.SV.bits | ACS_BITS.RR.bits | ACS_BITS.CR.bits | ACS_BITS.UF.bits;
    dev.update16(dev.acsCap + ACS.CTRL, 0, cap & want);
  }
  dev.aerCap = dev.findExtCapability(EXT_CAP_ID.AER);
  pciInitResetMethods(core, dev);
}

function scanSingleDevice(core: PciCore, bus: PciBus, devfn: number): PciDev | null {
  const rid = (bus.number << 8) | devfn;
  const l = readDevVendorId(core, rid, TIMEOUT.RESET_READY_POLL / NS_PER_MS);
  if (l === null) return null;
  const dev = new PciDev(bus, devfn, core.cfg, core.p);
  setupDevice(core, dev, l);
  enableRrsSv(dev);
  bus.devices.push(dev);
  core.devices.push(dev);
  initCapabilities(core, dev);
  return dev;
}

/** Below a PCIe Root Port or Downstream Port the link has only device 0 (only_one_child). */
function onlyOneChild(bus: PciBus): boolean {
  const b = bus.self;
  return !!b && b.pcieCap !== 0 && b.pcieType === EXP_TYPE.ROOT_PORT;
}

function scanSlot(core: PciCore, bus: PciBus, devfn: number): void {
  if (onlyOneChild(bus) && devfn > 0) return;
  let fn = 0;
  for (;;) {
    const dev = scanSingleDevice(core, bus, devfn + fn);
    if (dev && fn > 0) dev.multifunction = true;
    if (!dev && fn === 0) return;
    // next_fn: more functions only on a multi-function device, up to function 7.
    if (fn >= 7 || (dev && !dev.multifunction)) return;
    fn++;
  }
}

/** pci_scan_bridge_extend, pass 0: descend through a bridge whose bus numbers firmware programmed. */
function scanBridge(core: PciCore, dev: PciDev): void {
  const buses = dev.read32(HDR.PRIMARY_BUS);
  const primary = buses & 0xff;
  const secondary = (buses >>> 8) & 0xff;
  const subordinate = (buses >>> 16) & 0xff;
  const bctl = dev.read16(HDR.BRIDGE_CONTROL);
  dev.write16(HDR.BRIDGE_CONTROL, bctl & ~BRIDGE_CONTROL.MASTER_ABORT.bits);
  if (primary !== dev.bus.number || secondary === 0 || secondary <= dev.bus.number || subordinate < secondary) {
    dev.log('warn', `bridge configuration invalid ([bus ${hex2(secondary)}-${hex2(subordinate)}]); bus renumbering is not modelled, not scanning below it`);
  } else {
    const child = new PciBus(secondary, dev, dev.bus);
    dev.subordinate = child;
    dev.bus.children.push(child);
    dev.log('info', `PCI bridge to [bus ${hex2(secondary)}${subordinate !== secondary ? `-${hex2(subordinate)}` : ''}]`);
    scanChildBus(core, child);
  }
  // Clear errors left in the secondary status and restore Bridge Control.
  dev.write16(HDR.SEC_STATUS, 0xffff);
  dev.write16(HDR.BRIDGE_CONTROL, bctl);
}

function hex2(v: number): string {
  return v.toString(16).padStart(2, '0');
}

function scanChildBus(core: PciCore, bus: PciBus): void {
  for (let d = 0; d < 32; d++) scanSlot(core, bus, d << 3);
  for (const dev of [...bus.devices]) if (dev.isBridge) scanBridge(core, dev);
}

/** Scans the hierarchy from bus 0. */
export function pciScanRootBus(core: PciCore): PciBus {
  const bus = new PciBus(0, null, null);
  core.p.log('info', 'PCI host bridge to bus 0000:00');
  scanChildBus(core, bus);
  return bus;
}

/** Gives every unassigned BAR an address in the BAR window, naturally aligned (pci_assign_unassigned_resources). */
export function pciAssignResources(core: PciCore): void {
  let next = PA.BAR_BASE;
  const end = PA.BAR_BASE + BAR_BYTES;
  const all = core.devices.flatMap((d) => d.resources.map((r) => ({ d, r })));
  // Largest first, as Linux sorts by alignment, so small BARs fill the gaps.
  all.sort((a, b) => b.r.size - a.r.size);
  for (const { d, r } of all) {
    if (r.start !== 0) continue;
    const at = Math.ceil(next / r.size) * r.size;
    if (at + r.size > end) {
      d.log('err', `BAR ${r.index} [mem size 0x${r.size.toString(16)}]: can't assign; no space`);
      continue;
    }
    r.start = at;
    next = at + r.size;
    const off = HDR.BAR0 + 4 * r.index;
    d.write32(off, (at % 2 ** 32) | (r.flags === 'mem64' ? BAR_TYPE.MEM64 << 1 : 0));
    if (r.flags === 'mem64') d.write32(off + 4, Math.floor(at / 2 ** 32));
    d.log('info', `BAR ${r.index} [mem 0x${at.toString(16).padStart(8, '0')}-0x${(at + r.size - 1).toString(16).padStart(8, '0')}]: assigned`);
  }
}

/** pci_enable_device: memory decoding on for a device with memory BARs. */
export function pciEnableDevice(dev: PciDev): void {
  const cmd = dev.read16(HDR.COMMAND);
  const want = dev.resources.length ? cmd | COMMAND.MEMORY.bits : cmd;
  if (want !== cmd) {
    dev.log('info', `enabling device (${hex4(cmd)} -> ${hex4(want)})`);
    dev.write16(HDR.COMMAND, want);
  }
}

/** pci_set_master / pci_clear_master. */
export function pciSetMaster(dev: PciDev, on: boolean): void {
  dev.update16(HDR.COMMAND, COMMAND.MASTER.bits, on ? COMMAND.MASTER.bits : 0);
}

/** Enumerates, assigns BARs, lets the IOMMU layer probe each device, then binds drivers (pci_host_probe). */
export function pciScan(core: PciCore): void {
  if (core.root) throw new Error('PCI: already scanned');
  core.root = pciScanRootBus(core);
  pciAssignResources(core);
  if (core.iommu) for (const d of core.devices) if (d.sid >= 0) core.iommu.probeDevice(d);
  pciBindDrivers(core);
}
