// Driver for the DMA test engine (registers in src/arch/testdev.ts): programs one transfer over MMIO and
// waits for it to complete. Completion is signalled by the engine's MSI, pointed at a word of this
// driver's DMA memory holding a sequence number, so the CPU sleeps until the hardware writes it
// (no MMIO polling); STATUS and the result registers are read once it has.

import type { IoMem, Platform } from './platform/platform.ts';
import { TD_CTRL, TD_FAULT, TD_OFF, TD_SSID, TD_STATUS, TESTDEV_BYTES, TESTDEV_ID, TESTDEV_MAX_LEN, testdevBase } from '../src/arch/testdev.ts';
import { EVT_NAME } from '../src/arch/smmu/events.ts';
import type { TestDmaRequest, TestDmaResult } from '../src/protocol/ops/iommu.ts';

const FAULT_NAMES = Object.fromEntries(Object.entries(TD_FAULT).map(([k, v]) => [v, k])) as Record<number, TestDmaResult['fault']>;

export class TestDmaDriver {
  private readonly regs: IoMem;
  /** DMA word the engine's completion MSI writes the sequence number into. */
  private readonly donePa: number;
  private seq = 0;
  /** Transfers completed through this driver instance. */
  transfers = 0;

  constructor(
    private readonly p: Platform,
    readonly index = 0,
  ) {
    this.regs = p.ioremap(testdevBase(index), TESTDEV_BYTES);
    const id = this.regs.read32(TD_OFF.ID);
    if (id !== TESTDEV_ID) throw new Error(`testdev${index}: no DMA test engine at PA 0x${testdevBase(index).toString(16)} (ID reads 0x${id.toString(16)})`);
    this.donePa = p.pages.alloc(1, `testdev${index} completion`);
  }

  /** Releases the completion page. */
  remove(): void {
    this.p.pages.free(this.donePa, 1);
  }

  /** Runs one transfer and waits (up to r.timeoutNs of platform time, default 1 s) for its completion. */
  transfer(r: TestDmaRequest): TestDmaResult {
    const timeoutNs = r.timeoutNs ?? 1e9;
    if (!Number.isInteger(r.len) || r.len < 1 || r.len > TESTDEV_MAX_LEN) throw new RangeError(`testdev${this.index}: len ${r.len} must be 1..${TESTDEV_MAX_LEN}`);
    if (!Number.isInteger(r.iova) || r.iova < 0) throw new RangeError(`testdev${this.index}: iova ${r.iova} must be a non-negative integer`);
    const w = (off: number, v: number) => this.regs.write32(off, v >>> 0);
    if (this.regs.read32(TD_OFF.STATUS) & TD_STATUS.BUSY.bits) throw new Error(`testdev${this.index}: busy with another transfer`);
    this.seq = (this.seq + 1) >>> 0 || 1;
    this.p.mem.write32(this.donePa, 0);
    w(TD_OFF.SID, r.sid);
    w(TD_OFF.SSID, r.ssid === undefined ? 0 : TD_SSID.SSV.set(TD_SSID.SSID.set(0, r.ssid), 1));
    w(TD_OFF.IOVA_LO, r.iova % 2 ** 32);
    w(TD_OFF.IOVA_HI, Math.floor(r.iova / 2 ** 32));
    w(TD_OFF.LEN, r.len);
    w(TD_OFF.PATTERN, r.pattern ?? 0);
    w(TD_OFF.BUF_LO, (r.bufPa ?? 0) % 2 ** 32);
    w(TD_OFF.BUF_HI, Math.floor((r.bufPa ?? 0) / 2 ** 32));
    w(TD_OFF.MSI_ADDR_LO, this.donePa % 2 ** 32);
    w(TD_OFF.MSI_ADDR_HI, Math.floor(this.donePa / 2 ** 32));
    w(TD_OFF.MSI_DATA, this.seq);
    let ctrl = TD_CTRL.MSI_EN.bits;
    if (r.write) ctrl |= TD_CTRL.DIR.bits;
    if (r.bufPa !== undefined) ctrl |= TD_CTRL.SRC.bits;
    if (r.priv) ctrl |= TD_CTRL.PRIV.bits;
    if (r.instr) ctrl |= TD_CTRL.INSTR.bits;
    w(TD_OFF.CTRL, ctrl);
    w(TD_OFF.DOORBELL, 1);

    const deadline = this.p.clock.now() + timeoutNs;
    for (;;) {
      const v = Atomics.load(this.p.mem.i32, this.p.mem.idx32(this.donePa)) >>> 0;
      if (v === this.seq) break;
      const left = deadline - this.p.clock.now();
      if (left <= 0) {
        throw new Error(`testdev${this.index}: transfer of ${r.len} bytes at iova 0x${r.iova.toString(16)} did not complete within ${timeoutNs} ns (STATUS 0x${this.regs.read32(TD_OFF.STATUS).toString(16)})`);
      }
      this.p.waitMemWhileEqual(this.donePa, v | 0, left);
    }
    this.transfers++;
    const status = this.regs.read32(TD_OFF.STATUS);
    const code = this.regs.read32(TD_OFF.FAULT_CODE);
    const event = this.regs.read32(TD_OFF.FAULT_EVENT);
    const fault = FAULT_NAMES[code];
    if (fault === undefined) throw new Error(`testdev${this.index}: FAULT_CODE ${code} is not one the engine defines`);
    return {
      ok: (status & TD_STATUS.ERROR.bits) === 0,
      xferred: this.regs.read32(TD_OFF.XFERRED),
      checksum: this.regs.read32(TD_OFF.RESULT),
      mismatches: this.regs.read32(TD_OFF.MISMATCHES),
      fault,
      event: event ? (EVT_NAME[event] ?? `0x${event.toString(16)}`) : null,
      faultAddr: this.regs.read32(TD_OFF.FAULT_ADDR_LO) + this.regs.read32(TD_OFF.FAULT_ADDR_HI) * 2 ** 32,
    };
  }
}
