// The DMA test engine (programming interface in src/arch/testdev.ts): a platform device that performs one
// programmed transfer per doorbell as untranslated DMA through the SMMU's device services, so the
// driver and its tests can make "a device" do DMA before any PCIe endpoint exists.
//
// A doorbell write with GO=1 starts a transfer as a scheduler task (STATUS.BUSY meanwhile); a doorbell
// while busy is ignored (traced). On completion STATUS, COUNT, XFERRED, RESULT/MISMATCHES and the fault
// registers are updated in that order, then the MSI, if enabled, is sent: software that sees COUNT
// move sees everything else. The MSI is a direct write to MSI_ADDR (not translated by the SMMU).

import { RegisterFile } from './regfile.ts';
import { BusAbort, XSTAT } from '../src/machine/layout.ts';
import { join64, split64 } from '../src/arch/bits.ts';
import {
  TD_CTRL,
  TD_DOORBELL,
  TD_FAULT,
  TD_SSID,
  TD_STATUS,
  TESTDEV_MAP,
  TESTDEV_MAX_LEN,
  fnv1a,
  type TestdevRegName,
} from '../src/arch/testdev.ts';
import type { HwContext } from './context.ts';
import type { Translator } from './smmu/translate.ts';

export class TestDma {
  readonly regs: RegisterFile<TestdevRegName>;
  private busy = false;

  constructor(
    private readonly ctx: HwContext,
    view: Int32Array,
    private readonly smmu: Translator,
    readonly name: string,
  ) {
    this.regs = new RegisterFile(TESTDEV_MAP, view);
    this.regs.reset();
    this.regs.onWrite('DOORBELL', (_f, _r, triggered) => this.doorbell(triggered));
  }

  private doorbell(triggered: number): void {
    if (!TD_DOORBELL.GO.get(triggered)) return;
    if (this.busy) {
      this.ctx.tr.testdev_busy?.(this.name);
      return;
    }
    this.busy = true;
    this.regs.set('STATUS', TD_STATUS.BUSY.bits);
    this.ctx.sched.soon(() => this.run());
  }

  private run(): void {
    const g = (n: TestdevRegName) => this.regs.get(n);
    const ctrl = g('CTRL');
    const ssid = g('SSID');
    const len = g('LEN');
    const write = TD_CTRL.DIR.get(ctrl) === 1;
    const useBuf = TD_CTRL.SRC.get(ctrl) === 1;
    const buf = Number(join64(g('BUF_LO'), g('BUF_HI')));
    const iova = Number(join64(g('IOVA_LO'), g('IOVA_HI')));
    const pattern = g('PATTERN');
    let code: number = TD_FAULT.NONE;
    let event = 0;
    let faultAddr = 0;
    let moved = 0;
    let result = 0;
    let mismatches = 0;
    if (len === 0 || len > TESTDEV_MAX_LEN || !Number.isSafeInteger(iova + len)) {
      code = TD_FAULT.PARAM;
      this.ctx.tr.testdev_error?.(this.name, `LEN ${len} out of range 1..${TESTDEV_MAX_LEN}`);
    } else {
      const data = new Uint8Array(len);
      let ok = true;
      if (write) {
        if (useBuf) ok = this.local(() => data.set(this.ctx.mem.readBytes(buf, len, `${this.name} local buffer`)));
        else for (let i = 0; i < len; i++) data[i] = (pattern >>> ((i & 3) * 8)) & 0xff;
      }
      if (!ok) {
        code = TD_FAULT.BUS;
        faultAddr = buf;
      } else {
        const t = this.smmu.transfer(
          {
            sid: g('SID'),
            ssv: TD_SSID.SSV.get(ssid) === 1,
            ssid: TD_SSID.SSID.get(ssid),
            addr: iova,
            bytes: len,
            write,
            priv: TD_CTRL.PRIV.get(ctrl) === 1,
            instr: TD_CTRL.INSTR.get(ctrl) === 1,
            requester: this.name,
          },
          data,
          false,
        );
        moved = t.bytes;
        if (!t.ok) {
          code = t.fault === 'BUS_ABORT' ? TD_FAULT.BUS : TD_FAULT.SMMU;
          event = t.event;
          faultAddr = t.faultAddr;
        }
        if (!write) {
          const got = data.subarray(0, moved);
          result = fnv1a(got);
          if (!useBuf) {
            for (let i = 0; i + 4 <= moved; i += 4) {
              const w = (got[i]! | (got[i + 1]! << 8) | (got[i + 2]! << 16) | (got[i + 3]! << 24)) >>> 0;
              if (w !== pattern) mismatches++;
            }
          } else if (!this.local(() => this.ctx.mem.writeBytes(buf, got, `${this.name} local buffer`)) && code === TD_FAULT.NONE) {
            code = TD_FAULT.BUS;
            faultAddr = buf;
          }
        }
      }
    }
    this.regs.set('XFERRED', moved);
    this.regs.set('RESULT', result);
    this.regs.set('MISMATCHES', mismatches);
    this.regs.set('FAULT_CODE', code);
    this.regs.set('FAULT_EVENT', event);
    const [faultLo, faultHi] = split64(BigInt(faultAddr));
    this.regs.set('FAULT_ADDR_LO', faultLo);
    this.regs.set('FAULT_ADDR_HI', faultHi);
    this.regs.set('COUNT', (g('COUNT') + 1) >>> 0);
    this.regs.set('STATUS', TD_STATUS.DONE.bits | (code !== TD_FAULT.NONE ? TD_STATUS.ERROR.bits : 0) | (mismatches ? TD_STATUS.MISMATCH.bits : 0));
    this.busy = false;
    this.ctx.stats[XSTAT.TESTDEV_TRANSFERS]!++;
    if (TD_CTRL.MSI_EN.get(ctrl)) {
      const addr = Number(join64(g('MSI_ADDR_LO'), g('MSI_ADDR_HI')));
      if (addr !== 0 && !this.ctx.msiWrite(addr, g('MSI_DATA'))) this.ctx.tr.testdev_msi_abort?.(this.name, addr);
    }
  }

  /** Runs an access to the engine's local buffer; false when it is not RAM. */
  private local(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      if (e instanceof BusAbort) {
        this.ctx.tr.testdev_error?.(this.name, e.message);
        return false;
      }
      throw e;
    }
  }
}
