// PCIe configuration space through ECAM and the generic register write path: access modes of every
// register the PCI core and the resets touch (RO ignored, RW, RW1C, sticky across FLR and hot reset,
// byte lanes), BAR sizing, absent functions, capability chain walks (with loop protection), and
// topology validation.

import { describe, expect, it } from 'vitest';
import { pcieRig } from './helpers/pcie-rig.ts';
import { toBody } from '../src/host/trace.ts';
import {
  AER, ATS, BRIDGE_CONTROL, CAP_ID, COMMAND, DEVCTL, DEVSTA, EXP, EXT_CAP_ID, HDR, LNKCTL, MSI, PASID, PRI, STATUS,
} from '../src/arch/pcie/regs.ts';
import { DEFAULT_TOPOLOGY_JSON, parseTopology, TopologyError } from '../src/protocol/topology.ts';
import { NS_PER_MS } from '../src/arch/time.ts';
import type { PciDev } from '../drivers/pci/pci.ts';
import { pciScan } from '../drivers/pci/probe.ts';

function scanned(topology?: unknown) {
  const r = pcieRig(topology === undefined ? {} : { topology });
  pciScan(r.core);
  return r;
}

/** Writes through ECAM and reads back. */
function wr32(d: PciDev, off: number, v: number): number {
  d.write32(off, v);
  return d.read32(off);
}

describe('enumeration of the default topology', () => {
  it('finds two Root Ports with one ATS- and FLR-capable endpoint each, BARs assigned, StreamIDs mapped', () => {
    const r = scanned();
    expect(r.core.devices.map((d) => d.bdf)).toEqual(['00:01.0', '00:02.0', '01:00.0', '02:00.0']);
    const eps = r.core.devices.filter((d) => !d.isBridge);
    for (const d of eps) {
      expect(d.atsCap).toBeGreaterThan(0x100);
      expect(d.devcap & (1 << 28)).not.toBe(0);
      expect(d.resetMethods).toEqual(['device_specific', 'flr', 'pm', 'bus']);
      expect(d.resources).toHaveLength(1);
      expect(d.resources[0]!.size).toBe(4096);
      expect(d.read32(HDR.BAR0) & ~0xf).toBe(d.resources[0]!.start);
      expect(d.sid).toBe(d.rid);
    }
    expect(eps[0]!.resources[0]!.start).not.toBe(eps[1]!.resources[0]!.start);
    // Root Ports: bus numbers as firmware left them, RRS Software Visibility turned on by the scan.
    const port = r.core.dev('00:02.0');
    expect(port.read32(HDR.PRIMARY_BUS) & 0xffffff).toBe(0x020200);
    expect(port.configRrsSv).toBe(true);
    expect(port.read16(port.pcieCap + EXP.RTCTL) & 0x10).toBe(0x10);
  });
});

describe('enumeration and RRS', () => {
  it('waits for a function that completes config reads with RRS, and misses one that reads all-ones', () => {
    const json = {
      ports: [
        { bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0' }] },
        { bdf: '00:02.0', secondaryBus: 2, functions: [{ bdf: '02:00.0', resetResponse: 'all-ones', flrMs: 1000 }] },
      ],
    };
    const r = pcieRig({ topology: json });
    // Both functions are resetting when the scan starts (an FLR written before enumeration).
    for (const rid of [0x100, 0x200]) r.core.cfg.write16(rid, 0x58 + EXP.DEVCTL, DEVCTL.BCR_FLR.bits);
    const t0 = r.now();
    pciScan(r.core);
    // 01:00.0 answered RRS (the scan had enabled RRS SV at its Root Port) and was waited for; 02:00.0
    // read all-ones and looked absent, as Linux concludes.
    expect(r.core.devices.map((d) => d.bdf)).toEqual(['00:01.0', '00:02.0', '01:00.0']);
    expect(r.now() - t0).toBeGreaterThanOrEqual(100 * NS_PER_MS);
  });
});

describe('access modes through the generic write path', () => {
  it('RO and HwInit registers ignore writes', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    const before = Array.from({ length: 1024 }, (_, i) => d.read32(i * 4));
    for (const off of [HDR.VENDOR_ID, HDR.REVISION, d.pcieCap + EXP.DEVCAP, d.pcieCap + EXP.LNKCAP, 0x100, d.atsCap, d.pasidCap, d.priCap + PRI.MAX_REQ]) {
      expect(wr32(d, off, 0xffffffff)).toBe(before[off / 4]);
      expect(wr32(d, off, 0)).toBe(before[off / 4]);
    }
    // Header Type and the Capabilities Pointer, written as bytes.
    d.write8(HDR.HEADER_TYPE, 0xff);
    d.write8(HDR.CAP_PTR, 0x00);
    expect(d.read8(HDR.HEADER_TYPE)).toBe(0);
    expect(d.read8(HDR.CAP_PTR)).toBe(0x40);
    // ATS Capability (Invalidate Queue Depth 8, Page Aligned) stays as built.
    d.write16(d.atsCap + ATS.CAP, 0);
    expect(d.read16(d.atsCap + ATS.CAP)).toBe(0x28);
  });

  it('RW bits take writes; bits no field names are reserved and read 0', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    d.write16(HDR.COMMAND, 0xffff);
    // Memory, Bus Master, Parity, SERR#, INTx Disable; I/O Space and the legacy bits are hardwired 0.
    expect(d.read16(HDR.COMMAND)).toBe(COMMAND.MEMORY.bits | COMMAND.MASTER.bits | COMMAND.PARITY.bits | COMMAND.SERR.bits | COMMAND.INTX_DISABLE.bits);
    d.write16(HDR.COMMAND, 0);
    expect(d.read16(HDR.COMMAND)).toBe(0);
    // ATS Control: Enable and a 5-bit STU.
    d.write16(d.atsCap + ATS.CTRL, 0xffff);
    expect(d.read16(d.atsCap + ATS.CTRL)).toBe(0x801f);
    d.write16(d.atsCap + ATS.CTRL, 0);
    // MSI address: bits [1:0] are reserved.
    expect(wr32(d, d.msiCap + MSI.ADDR_LO, 0xffffffff)).toBe(0xfffffffc);
    // PASID Control: Enable, Execute, Privileged.
    d.write16(d.pasidCap + PASID.CTRL, 0xffff);
    expect(d.read16(d.pasidCap + PASID.CTRL)).toBe(0x7);
    // Device Control: everything but Phantom Functions and Aux Power; Initiate FLR is not kept.
    const devctl = d.read16(d.pcieCap + EXP.DEVCTL);
    d.write16(d.pcieCap + EXP.DEVCTL, devctl | DEVCTL.CERE.bits | DEVCTL.URRE.bits);
    expect(d.read16(d.pcieCap + EXP.DEVCTL)).toBe(devctl | DEVCTL.CERE.bits | DEVCTL.URRE.bits);
  });

  it('every register the PCI core writes has exactly its architected writable bits', () => {
    const r = scanned({ ports: [{ bdf: '00:01.0', secondaryBus: 1, cxl: true, functions: [{ bdf: '01:00.0' }] }] });
    const ep = r.core.dev('01:00.0');
    const port = r.core.dev('00:01.0');
    // [device, name, offset, size, value written (side-effect bits left out), bits that must stick]
    const table: [typeof ep, string, number, 1 | 2 | 4, number, number][] = [
      [ep, 'Command', HDR.COMMAND, 2, 0xffff, 0x0546],
      [ep, 'Cache Line Size', HDR.CACHE_LINE, 1, 0xff, 0xff],
      [ep, 'Interrupt Line', HDR.INT_LINE, 1, 0xff, 0xff],
      [ep, 'BAR0', HDR.BAR0, 4, 0xffffffff, 0xfffff000],
      [ep, 'MSI Control', ep.msiCap + MSI.CONTROL, 2, 0xffff, 0x0071],
      [ep, 'MSI Address', ep.msiCap + MSI.ADDR_LO, 4, 0xffffffff, 0xfffffffc],
      [ep, 'MSI Upper Address', ep.msiCap + MSI.ADDR_HI, 4, 0xffffffff, 0xffffffff],
      [ep, 'MSI Data', ep.msiCap + MSI.DATA, 2, 0xffff, 0xffff],
      // Initiate FLR (bit 15) left out: it would reset the function.
      [ep, 'Device Control', ep.pcieCap + EXP.DEVCTL, 2, 0x7fff, 0x79ff],
      [ep, 'Link Control', ep.pcieCap + EXP.LNKCTL, 2, 0xffff, 0x00cb],
      [ep, 'Device Control 2', ep.pcieCap + EXP.DEVCTL2, 2, 0xffff, 0x001f],
      [ep, 'Link Control 2', ep.pcieCap + EXP.LNKCTL2, 2, 0xffff, 0x000f],
      [ep, 'ATS Control', ep.atsCap + ATS.CTRL, 2, 0xffff, 0x801f],
      [ep, 'PASID Control', ep.pasidCap + PASID.CTRL, 2, 0xffff, 0x0007],
      // PRI Reset reads 0 (the function clears it).
      [ep, 'PRI Control', ep.priCap + PRI.CTRL, 2, 0xffff, 0x0001],
      [ep, 'PRI Allocation', ep.priCap + PRI.ALLOC_REQ, 4, 0xffffffff, 0xffffffff],
      [ep, 'ACS Control', ep.acsCap + 6, 2, 0xffff, 0x004c],
      [ep, 'AER Uncorrectable Mask', ep.aerCap + AER.UNCOR_MASK, 4, 0xffffffff, 0x003ff030],
      [ep, 'AER Uncorrectable Severity', ep.aerCap + AER.UNCOR_SEVER, 4, 0xffffffff, 0x003ff030],
      [ep, 'AER Correctable Mask', ep.aerCap + AER.COR_MASK, 4, 0xffffffff, 0x0000f1c1],
      [port, 'Primary Bus', HDR.PRIMARY_BUS, 1, 0xff, 0xff],
      [port, 'Memory Base', HDR.MEM_BASE, 2, 0xffff, 0xfff0],
      [port, 'I/O Base (no I/O window)', HDR.IO_BASE, 1, 0xff, 0x00],
      // Secondary Bus Reset (bit 6) left out; Master Abort Mode is not PCIe.
      [port, 'Bridge Control', HDR.BRIDGE_CONTROL, 2, 0xffbf, 0x000f],
      [port, 'Root Control', port.pcieCap + EXP.RTCTL, 2, 0xffff, 0x001f],
      [port, 'Link Control (Root Port)', port.pcieCap + EXP.LNKCTL, 2, 0xffff, 0x00cb],
      [port, 'ACS Control (Root Port)', port.acsCap + 6, 2, 0xffff, 0x005f],
      [port, 'CXL Port Control', port.findExtCapability(EXT_CAP_ID.DVSEC) + 0x0c, 2, 0xffff, 0x0003],
    ];
    const rd = (d: PciDev, off: number, n: 1 | 2 | 4) => (n === 1 ? d.read8(off) : n === 2 ? d.read16(off) : d.read32(off));
    const wr = (d: PciDev, off: number, n: 1 | 2 | 4, v: number) => (n === 1 ? d.write8(off, v) : n === 2 ? d.write16(off, v) : d.write32(off, v));
    for (const [d, name, off, n, value, writable] of table) {
      const orig = rd(d, off, n);
      wr(d, off, n, value);
      expect(rd(d, off, n), `${name} after writing 0x${value.toString(16)}`).toBe(((orig & ~writable) | (value & writable)) >>> 0);
      wr(d, off, n, 0);
      expect(rd(d, off, n), `${name} after writing 0`).toBe((orig & ~writable) >>> 0);
      wr(d, off, n, orig);
    }
  });

  it('byte and halfword writes change only their lanes', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    const dw = d.read32(HDR.CACHE_LINE);
    d.write8(HDR.CACHE_LINE, 0x40);
    expect(d.read32(HDR.CACHE_LINE)).toBe(((dw & ~0xff) | 0x40) >>> 0);
    // Command and Status share a dword: a halfword write to Command leaves Status alone.
    const status = d.read16(HDR.STATUS);
    d.write16(HDR.COMMAND, COMMAND.MEMORY.bits);
    expect(d.read16(HDR.STATUS)).toBe(status);
    expect(status & STATUS.CAP_LIST.bits).toBe(STATUS.CAP_LIST.bits);
    // Interrupt Line (RW) next to Interrupt Pin (RO).
    d.write16(HDR.INT_LINE, 0xffff);
    expect(d.read16(HDR.INT_LINE)).toBe(0x00ff);
  });

  it('RW1C bits clear only where 1 is written (Device Status, AER status)', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    // The function detects a non-fatal error (Completion Timeout is non-fatal by default severity).
    r.inject({ kind: 'aer', bdf: '01:00.0', error: 'COMP_TIME' });
    const devsta = d.pcieCap + EXP.DEVSTA;
    expect(d.read16(devsta) & DEVSTA.NFED.bits).toBe(DEVSTA.NFED.bits);
    expect(d.read32(d.aerCap + AER.UNCOR_STATUS)).toBe(1 << 14);
    d.write16(devsta, 0);
    d.write16(devsta, DEVSTA.CED.bits);
    expect(d.read16(devsta) & DEVSTA.NFED.bits).toBe(DEVSTA.NFED.bits);
    d.write16(devsta, DEVSTA.NFED.bits);
    expect(d.read16(devsta) & DEVSTA.NFED.bits).toBe(0);
    d.write32(d.aerCap + AER.UNCOR_STATUS, 1 << 20);
    expect(d.read32(d.aerCap + AER.UNCOR_STATUS)).toBe(1 << 14);
    d.write32(d.aerCap + AER.UNCOR_STATUS, 1 << 14);
    expect(d.read32(d.aerCap + AER.UNCOR_STATUS)).toBe(0);
    // A correctable error sets Correctable Error Detected and the AER correctable status.
    r.inject({ kind: 'aer', bdf: '01:00.0', error: 'BAD_TLP' });
    expect(d.read16(devsta) & DEVSTA.CED.bits).toBe(DEVSTA.CED.bits);
    expect(d.read32(d.aerCap + AER.COR_STATUS)).toBe(1 << 6);
  });

  it('sizes a BAR by writing all-ones', () => {
    const r = scanned();
    const d = r.core.dev('02:00.0');
    const orig = d.read32(HDR.BAR0);
    expect(wr32(d, HDR.BAR0, 0xffffffff)).toBe(0xfffff000);
    d.write32(HDR.BAR0, orig);
    expect(d.read32(HDR.BAR0)).toBe(orig);
    // BAR1..5 are not implemented: they read 0 whatever is written.
    expect(wr32(d, HDR.BAR0 + 4, 0xffffffff)).toBe(0);
  });

  it('absent functions read all-ones and drop writes; unimplemented registers read 0', () => {
    const r = scanned();
    const cfg = r.core.cfg;
    // 02:01.0: inside the ECAM window, no function there.
    expect(cfg.read32(0x0208, HDR.VENDOR_ID)).toBe(0xffffffff);
    cfg.write32(0x0208, HDR.COMMAND, 0x6);
    expect(cfg.read32(0x0208, HDR.COMMAND)).toBe(0xffffffff);
    expect(r.trace().map(toBody)).toContain('pcie_config_write_dropped bdf=02:01.0 offset=0x4 why="no function there"');
    // Bus 3: beyond the window (the default topology uses buses 0-2), no config space at all.
    expect(cfg.read32(0x0300, HDR.VENDOR_ID)).toBe(0xffffffff);
    cfg.write32(0x0300, HDR.COMMAND, 0x6);
    expect(cfg.read32(0x0300, HDR.COMMAND)).toBe(0xffffffff);
    const d = r.core.dev('01:00.0');
    expect(d.read32(0x28)).toBe(0);
    expect(wr32(d, 0xff0, 0xffffffff)).toBe(0);
  });
});

describe('resets and sticky bits', () => {
  it('FLR: Initiate FLR reads 0, RRS while resetting, then reset values; sticky AER and link controls kept', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    const e = d.pcieCap;
    d.write16(HDR.COMMAND, COMMAND.MEMORY.bits | COMMAND.MASTER.bits);
    d.write16(d.atsCap + ATS.CTRL, 0x8000);
    d.write16(d.pasidCap + PASID.CTRL, 1);
    d.write16(d.priCap + PRI.CTRL, 1);
    d.write16(e + EXP.LNKCTL, LNKCTL.CCC.bits);
    d.write32(d.aerCap + AER.UNCOR_MASK, 1 << 20);
    r.inject({ kind: 'aer', bdf: '01:00.0', error: 'UNSUP' });
    expect(d.read16(e + EXP.DEVSTA) & DEVSTA.NFED.bits).toBe(DEVSTA.NFED.bits);

    d.update16(e + EXP.DEVCTL, 0, DEVCTL.BCR_FLR.bits);
    // During the FLR the Root Port (RRS SV on) returns 0x0001 for the Vendor ID and all-ones elsewhere.
    expect(d.read32(HDR.VENDOR_ID)).toBe(0xffff0001);
    expect(d.read32(HDR.COMMAND)).toBe(0xffffffff);
    // Writes are dropped meanwhile.
    d.write16(HDR.COMMAND, COMMAND.MASTER.bits);
    r.sleep(99 * NS_PER_MS);
    expect(d.read16(HDR.VENDOR_ID)).toBe(0x0001);
    r.sleep(1 * NS_PER_MS);
    expect(d.read16(HDR.VENDOR_ID)).toBe(0x1234);
    expect(d.read16(e + EXP.DEVCTL) & DEVCTL.BCR_FLR.bits).toBe(0);
    expect(d.read16(HDR.COMMAND)).toBe(0);
    expect(d.read16(d.atsCap + ATS.CTRL)).toBe(0);
    expect(d.read16(d.pasidCap + PASID.CTRL)).toBe(0);
    expect(d.read16(d.priCap + PRI.CTRL)).toBe(0);
    expect(d.read16(d.priCap + PRI.STATUS) & 0x100).toBe(0x100);
    // Device Status RW1C bits are not sticky; AER status/mask (RW1CS/RWS) are.
    expect(d.read16(e + EXP.DEVSTA) & DEVSTA.NFED.bits).toBe(0);
    expect(d.read32(d.aerCap + AER.UNCOR_STATUS)).toBe(1 << 20);
    expect(d.read32(d.aerCap + AER.UNCOR_MASK)).toBe(1 << 20);
    // FLR leaves link controls alone (r6.0 6.6.2).
    expect(d.read16(e + EXP.LNKCTL) & LNKCTL.CCC.bits).toBe(LNKCTL.CCC.bits);
    expect(r.pstat('FLRS')).toBe(1);
  });

  it('an all-ones function reads all-ones during FLR, RRS or not', () => {
    const json = { ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', resetResponse: 'all-ones' }] }] };
    const r = scanned(json);
    const d = r.core.dev('01:00.0');
    d.update16(d.pcieCap + EXP.DEVCTL, 0, DEVCTL.BCR_FLR.bits);
    expect(d.read32(HDR.VENDOR_ID)).toBe(0xffffffff);
    r.sleep(100 * NS_PER_MS);
    expect(d.read16(HDR.VENDOR_ID)).toBe(0x1234);
  });

  it('Secondary Bus Reset resets every function below the port, link controls too; sticky bits stay', () => {
    const json = {
      ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0' }, { bdf: '01:00.1', deviceId: '0x5a12' }] }],
    };
    const r = scanned(json);
    const fns = ['01:00.0', '01:00.1'].map((b) => r.core.dev(b));
    expect(fns[0]!.multifunction).toBe(true);
    for (const d of fns) {
      d.write16(HDR.COMMAND, COMMAND.MEMORY.bits);
      d.write16(d.pcieCap + EXP.LNKCTL, LNKCTL.CCC.bits);
      d.write32(d.aerCap + AER.COR_MASK, 0x41);
    }
    const port = r.core.dev('00:01.0');
    port.update16(HDR.BRIDGE_CONTROL, 0, BRIDGE_CONTROL.BUS_RESET.bits);
    // Link down: all-ones (not RRS) below, Data Link Layer Link Active clear at the port.
    for (const d of fns) expect(d.read32(HDR.VENDOR_ID)).toBe(0xffffffff);
    expect(port.read16(port.pcieCap + EXP.LNKSTA) & (1 << 13)).toBe(0);
    port.update16(HDR.BRIDGE_CONTROL, BRIDGE_CONTROL.BUS_RESET.bits, 0);
    r.sleep(20 * NS_PER_MS);
    expect(port.read16(port.pcieCap + EXP.LNKSTA) & (1 << 13)).toBe(1 << 13);
    for (const d of fns) expect(d.read16(HDR.VENDOR_ID)).toBe(0x0001);
    r.sleep(100 * NS_PER_MS);
    for (const d of fns) {
      expect(d.read16(HDR.VENDOR_ID)).toBe(0x1234);
      expect(d.read16(HDR.COMMAND)).toBe(0);
      expect(d.read16(d.pcieCap + EXP.LNKCTL)).toBe(0);
      expect(d.read32(d.aerCap + AER.COR_MASK)).toBe(0x41);
    }
    expect(r.pstat('HOT_RESETS')).toBe(2);
  });

  it('a CXL port ignores Secondary Bus Reset until Unmask SBR is set', () => {
    const r = scanned({ ports: [{ bdf: '00:01.0', secondaryBus: 1, cxl: true, functions: [{ bdf: '01:00.0' }] }] });
    const port = r.core.dev('00:01.0');
    const d = r.core.dev('01:00.0');
    port.update16(HDR.BRIDGE_CONTROL, 0, BRIDGE_CONTROL.BUS_RESET.bits);
    expect(d.read16(HDR.VENDOR_ID)).toBe(0x1234);
    port.update16(HDR.BRIDGE_CONTROL, BRIDGE_CONTROL.BUS_RESET.bits, 0);
    expect(r.trace().map(toBody)).toContain('pcie_sbr_masked bdf=00:01.0');
    // A plain endpoint (no device-specific reset) below a CXL port: bus reset probes as supported (it
    // cannot be done while SBR is masked) and the CXL bus reset is offered.
    expect(d.resetMethods).toEqual(['flr', 'pm', 'bus', 'cxl_bus']);
  });

  it('PM: D1/D2 writes are ignored; D3hot -> D0 resets the function unless No_Soft_Reset', () => {
    const r = scanned({
      ports: [
        { bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0' }] },
        { bdf: '00:02.0', secondaryBus: 2, functions: [{ bdf: '02:00.0', pmNoSoftReset: true }] },
      ],
    });
    for (const [bdf, resets] of [['01:00.0', true], ['02:00.0', false]] as const) {
      const d = r.core.dev(bdf);
      const pmcsr = d.pmCap + 4;
      d.write16(HDR.COMMAND, COMMAND.MEMORY.bits);
      d.update16(pmcsr, 3, 1);
      expect(d.read16(pmcsr) & 3).toBe(0);
      d.update16(pmcsr, 3, 3);
      expect(d.read16(pmcsr) & 3).toBe(3);
      d.update16(pmcsr, 3, 0);
      r.sleep(10 * NS_PER_MS);
      expect(d.read16(pmcsr) & 3).toBe(0);
      expect(d.read16(HDR.COMMAND)).toBe(resets ? 0 : COMMAND.MEMORY.bits);
      expect(d.resetMethods.includes('pm')).toBe(resets);
    }
  });

  it('hot-unplug: every access returns all-ones and writes go nowhere', () => {
    const r = scanned();
    const d = r.core.dev('02:00.0');
    r.inject({ kind: 'surprise-removal', bdf: '02:00.0' });
    for (let off = 0; off < 4096; off += 4) expect(d.read32(off)).toBe(0xffffffff);
    d.write16(HDR.COMMAND, 6);
    expect(d.read16(HDR.COMMAND)).toBe(0xffff);
  });

  it('hot-unplug: the BAR reads all-ones too, and ATC invalidations go unanswered', () => {
    const r = scanned();
    const d = r.core.dev('02:00.0');
    d.write16(HDR.COMMAND, COMMAND.MEMORY.bits);
    const bar = r.platform.ioremap(d.resources[0]!.start, 4096);
    expect(bar.read32(0)).toBe(0x31414d44);
    r.inject({ kind: 'surprise-removal', bdf: '02:00.0' });
    for (let off = 0; off < 4096; off += 4) expect(bar.read32(off)).toBe(0xffffffff);
    let answered = false;
    r.ep('02:00.0').atcInvalidate({ sid: 0x200, ssv: false, ssid: 0, global: false, addr: 0, size: 52 }, () => (answered = true), 500 * NS_PER_MS);
    r.sleep(NS_PER_MS);
    expect(answered).toBe(false);
    expect(r.pstat('EP_INV_DROPPED')).toBe(1);
  });
});

describe('capability chain walks', () => {
  it('walks legacy and extended chains in order and finds each capability', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    const { caps, looped } = d.listCapabilities();
    expect(looped).toBe(false);
    expect(caps.map((c) => `${c.ext ? 'x' : ''}${c.id.toString(16)}@${c.offset.toString(16)}`)).toEqual([
      '1@40', '5@48', '10@58', 'x1@100', 'xd@12c', 'xf@134', 'x1b@13c', 'x13@144',
    ]);
    expect(d.findCapability(CAP_ID.EXP)).toBe(0x58);
    expect(d.findExtCapability(EXT_CAP_ID.PRI)).toBe(0x144);
    expect(d.findCapability(CAP_ID.MSIX)).toBe(0);
    expect(d.findExtCapability(EXT_CAP_ID.DVSEC)).toBe(0);
  });

  it('follows the topology: a function without extended capabilities ends the chain at 0x100', () => {
    const r = scanned({ ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', capabilities: ['exp', 'msi'] }] }] });
    const d = r.core.dev('01:00.0');
    expect(d.read32(0x100)).toBe(0);
    expect(d.listCapabilities().caps.map((c) => c.id)).toEqual([CAP_ID.EXP, CAP_ID.MSI]);
    expect(d.atsCap).toBe(0);
    expect(d.resetMethods).toEqual(['flr', 'bus']);
  });

  it('stops walking a chain that loops (broken hardware), as Linux does with its TTLs', () => {
    const r = scanned();
    const d = r.core.dev('01:00.0');
    // Corrupt the hardware's read view directly: PRI's next pointer back to AER, MSI's back to PM.
    const view = r.ep('01:00.0').view;
    Atomics.store(view, 0x144 / 4, (Atomics.load(view, 0x144 / 4) & 0xfffff) | (0x100 << 20));
    Atomics.store(view, 0x48 / 4, (Atomics.load(view, 0x48 / 4) & ~0xff00) | (0x40 << 8));
    const { caps, looped } = d.listCapabilities();
    expect(looped).toBe(true);
    expect(caps.length).toBe(48 + 480);
    expect(d.findCapability(CAP_ID.EXP)).toBe(0);
    expect(d.findExtCapability(0x7f)).toBe(0);
  });
});

describe('topology validation', () => {
  const bad = (json: unknown, msg: RegExp) => expect(() => parseTopology(json, 'topo.json')).toThrow(msg);
  const port = (fns: object[], extra: object = {}) => ({ ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: fns, ...extra }] });

  it('accepts the default and names the offending field of bad ones', () => {
    expect(parseTopology(DEFAULT_TOPOLOGY_JSON).ports).toHaveLength(2);
    bad([], /^topo\.json: must be an object/);
    bad({}, /topo\.json\.ports: is required/);
    bad({ ports: [], extra: 1 }, /topo\.json\.extra: unknown field/);
    bad(port([{ bdf: '01:00.0', atcSize: 3 }]), /topo\.json\.ports\[0\]\.functions\[0\]\.atcSize: unknown field \(known: .*atcEntries/);
    bad(port([{ bdf: '01:00.0', atcEntries: 0 }]), /functions\[0\]\.atcEntries: must be an integer from 1 to 4096 \(got 0\)/);
    bad(port([{ bdf: '01:00.0', invQueueDepth: 33 }]), /functions\[0\]\.invQueueDepth: must be an integer from 1 to 32/);
    bad(port([{ bdf: '01:00.0', resetResponse: 'crs' }]), /functions\[0\]\.resetResponse: must be one of "rrs", "all-ones"/);
    bad(port([{ bdf: '01:00.0', flrMs: -1 }]), /functions\[0\]\.flrMs: must be a number from 0/);
    bad(port([{ bdf: '1:0.0' }]), /functions\[0\]\.bdf: "1:0.0" is not a BB:DD.F address/);
    bad(port([{ bdf: '02:00.0' }]), /functions\[0\]\.bdf: bus 2 is not the secondary bus 1/);
    bad(port([{ bdf: '01:01.0' }]), /functions\[0\]\.bdf: device 1 cannot exist below a Root Port/);
    bad(port([{ bdf: '01:00.1' }]), /ports\[0\]\.functions: a device needs function 0/);
    bad(port([{ bdf: '01:00.0' }, { bdf: '01:00.0' }]), /functions\[1\]\.bdf: 01:00\.0 is already used by/);
    bad(port([{ bdf: '01:00.0', streamId: 5 }, { bdf: '01:00.1', streamId: 5 }]), /functions\[1\]\.streamId: 5 is already used/);
    bad(port([{ bdf: '01:00.0', capabilities: ['pm', 'msi'] }]), /functions\[0\]\.capabilities: an endpoint behind a Root Port needs .*"exp"/);
    bad(port([{ bdf: '01:00.0', capabilities: ['exp', 'pri'] }]), /functions\[0\]\.capabilities: "pri" needs "ats"/);
    bad(port([{ bdf: '01:00.0', capabilities: ['exp', 'msix'] }]), /functions\[0\]\.capabilities\[1\]: unknown capability "msix"/);
    bad(port([{ bdf: '01:00.0', capabilities: ['exp'], atcEntries: 8 }]), /functions\[0\]\.atcEntries: only meaningful with the "ats" capability/);
    bad(port([{ bdf: '01:00.0', flr: false, flrMs: 5 }]), /functions\[0\]\.flrMs: set but "flr" is false/);
    bad(port([{ bdf: '01:00.0', barBytes: 12288 }]), /functions\[0\]\.barBytes: 12288 is not a power of two/);
    bad({ ports: [{ bdf: '01:00.0', secondaryBus: 2, functions: [] }] }, /ports\[0\]\.bdf: Root Ports live on bus 0/);
    bad({ ports: [{ bdf: '00:01.0', secondaryBus: 16, functions: [] }] }, /ports\[0\]\.secondaryBus: must be an integer from 1 to 15/);
    bad(port([], {}), /ports\[0\]\.functions: needs at least one function/);
    expect(() => parseTopology(port([{ bdf: '01:00.0', atcEntries: -1 }]))).toThrow(TopologyError);
  });

  it('takes hex strings for numbers and fills every default', () => {
    const t = parseTopology(port([{ bdf: '01:00.0', deviceId: '0x5a12', streamId: '0x42' }]));
    const f = t.ports[0]!.functions[0]!;
    expect(f.deviceId).toBe(0x5a12);
    expect(f.streamId).toBe(0x42);
    expect(f.flrNs).toBe(100 * NS_PER_MS);
    expect(f.resetResponse).toBe('rrs');
    expect(f.capabilities).toContain('ats');
  });
});
