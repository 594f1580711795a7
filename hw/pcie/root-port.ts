// A PCIe Root Port (Type 1 header): the config space software uses to find and reset what is below it.
//
// Secondary Bus Reset (Bridge Control bit 6, PCIe r6.0 7.5.1.3.13): while the bit is set the link is
// down (Data Link Layer Link Active clears) and every function below is held in a hot reset, reading
// all-ones. When software clears it the link trains again (linkUpNs), and each function then answers
// with its reset response until its reset time has passed. Below a CXL port whose CXL Port Control
// "Unmask SBR" is 0, the SBR bit has no effect (CXL 2.0 8.1.5.2).
//
// RTCTL.RRS_SVE (7.5.3.12) decides whether config reads of functions below that complete with RRS
// show 0x0001 in the Vendor ID; functions repaint their overlay when it changes.
//
// The bus number registers come up as firmware leaves them (Secondary = Subordinate = the topology's
// bus). Config requests are routed by those fixed numbers; bridge memory windows are storage only (the
// BAR window decodes endpoint BARs directly).

import { capReg } from './config-space.ts';
import { BRIDGE_CONTROL, CXL_PORT_CTL, LNKSTA, RTCTL } from '../../src/arch/pcie/regs.ts';
import { ACS_ROOT_PORT, type PortTopology } from '../../src/protocol/topology.ts';
import { CLASS } from '../../src/arch/pcie/ids.ts';
import type { HwContext } from '../context.ts';
import type { Timer } from '../scheduler.ts';
import type { PcieEndpoint, UpstreamPort } from './endpoint.ts';
import { PcieFunction } from './function.ts';

export class RootPort extends PcieFunction implements UpstreamPort {
  readonly below: PcieEndpoint[] = [];
  private sbr = false;
  private linkUp: Timer | null = null;

  constructor(
    ctx: HwContext,
    ecam: Int32Array,
    readonly t: PortTopology,
  ) {
    super(ctx, ecam, t.rid, {
      name: t.bdf,
      port: true,
      vendorId: t.vendorId,
      deviceId: t.deviceId,
      revision: 0,
      classCode: CLASS.BRIDGE_PCI,
      subsysVendorId: 0,
      subsysId: 0,
      multifunction: t.multifunction,
      immReady: false,
      barBytes: 0,
      caps: t.capabilities,
      flr: false,
      pmNoSoftReset: true,
      atsQueueDepth: 0,
      atsPageAligned: false,
      pasidWidth: 0,
      priCapacity: 0,
      acsCap: ACS_ROOT_PORT,
      rrsSv: t.rrsSv,
      portNumber: (t.rid >> 3) & 0x1f,
    });
    this.regs.setResetValue('PRIMARY_BUS', 0);
    this.regs.setResetValue('SECONDARY_BUS', t.secondaryBus);
    this.regs.setResetValue('SUBORDINATE_BUS', t.secondaryBus);
    this.regs.reset();
    this.regs.onWrite('BRIDGE_CONTROL', () => this.bridgeControlWritten());
    this.regs.onWrite(capReg('exp', 'RTCTL'), () => {
      for (const ep of this.below) ep.paintOverlay();
    });
  }

  rrsSvEnabled(): boolean {
    return RTCTL.RRS_SVE.get(this.regs.get(capReg('exp', 'RTCTL'))) === 1;
  }

  protected unavailableReason(): string {
    return 'root port';
  }

  protected rrsVisible(): boolean {
    return false;
  }

  private bridgeControlWritten(): void {
    const on = BRIDGE_CONTROL.BUS_RESET.get(this.regs.get('BRIDGE_CONTROL')) === 1;
    if (on === this.sbr) return;
    if (on && this.t.cxl && !CXL_PORT_CTL.UNMASK_SBR.get(this.regs.get(capReg('cxl', 'PORT_CTL')))) {
      this.ctx.tr.pcie_sbr_masked?.(this.rid);
      return;
    }
    const lnksta = capReg('exp', 'LNKSTA');
    this.sbr = on;
    if (on) {
      if (this.linkUp) this.linkUp.cancelled = true;
      this.linkUp = null;
      this.setBits(lnksta, LNKSTA.DLLLA.bits, false);
      this.ctx.tr.pcie_sbr?.(this.rid, true);
      for (const ep of this.below) ep.holdHotReset();
      return;
    }
    this.ctx.tr.pcie_sbr?.(this.rid, false);
    this.linkUp = this.ctx.sched.after(this.t.linkUpNs, () => {
      this.linkUp = null;
      this.setBits(lnksta, LNKSTA.DLLLA.bits, true);
      for (const ep of this.below) ep.releaseHotReset();
    });
  }
}
