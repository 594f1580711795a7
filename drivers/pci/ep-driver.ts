// The device driver for the DMA endpoint (src/arch/pcie/dma-engine.ts): probe enables the function, bus
// mastering and one MSI, maps BAR0 and turns completion interrupts on; transfers program SRC/DST/LEN
// and ring the doorbell, and the MSI handler collects the status. Its error handlers quiesce the
// engine before a reset and bring it back afterwards.

import type { IoMem } from '../platform/platform.ts';
import { DMA_CTRL, DMA_DOORBELL, DMA_ERR_NAMES, DMA_ID, DMA_REG, DMA_STATUS } from '../../src/arch/pcie/dma-engine.ts';
import { IDS } from '../../src/arch/pcie/ids.ts';
import { NS_PER_US } from '../../src/arch/time.ts';
import type { PciCore } from './core.ts';
import { PCI_CHANNEL, PCI_ERS, pciDevCheckPresent, possibleError, type PciChannelState, type PciDriver, type PciErrorHandlers, type PciErsResult, type PciDev } from './pci.ts';
import { pciAllocIrqVector, pciFreeIrqVectors } from './msi.ts';
import { E } from '../../src/protocol/errno.ts';
import { pciEnableDevice, pciSetMaster } from './probe.ts';
import { pciRestoreState, pciSaveState } from './reset.ts';

/** Per-device state of the driver (dev.driverData). */
export interface EpState {
  io: IoMem;
  vector: number;
  /** Completion interrupts taken, and the status each reported. */
  completions: number;
  lastStatus: number;
  /** The device needs recovery (error_detected said so); transfers are refused until then. */
  broken: boolean;
}

export interface TransferResult {
  ok: boolean;
  /** Why it failed: 'timeout', 'busy', 'broken', or the engine's error name. */
  error?: string;
  status: number;
  doneBytes: number;
}

/** Longest the driver waits for the engine to go idle before a reset. */
const QUIESCE_NS = 10_000 * NS_PER_US;

export class EpDriver implements PciDriver {
  readonly name = 'smmulab-dma';
  readonly idTable = [IDS.EP_PLAIN, IDS.EP_FW_ACK, IDS.EP_FLR_IGNORE].map((device) => ({ vendor: IDS.EP_VENDOR, device }));
  readonly errHandler: PciErrorHandlers;

  constructor(private readonly core: PciCore) {
    this.errHandler = {
      errorDetected: (dev: PciDev, state: PciChannelState): PciErsResult => {
        const st = this.state(dev);
        dev.dlog('info', `error detected (channel state ${state === PCI_CHANNEL.FROZEN ? 'frozen' : state === PCI_CHANNEL.NORMAL ? 'normal' : 'perm failure'})`);
        if (state === PCI_CHANNEL.PERM_FAILURE || dev.disconnected) return PCI_ERS.DISCONNECT;
        if (state === PCI_CHANNEL.FROZEN) {
          st.broken = true;
          return PCI_ERS.NEED_RESET;
        }
        return PCI_ERS.CAN_RECOVER;
      },
      mmioEnabled: (): PciErsResult => PCI_ERS.RECOVERED,
      slotReset: (dev: PciDev): PciErsResult => {
        if (!pciDevCheckPresent(dev)) return PCI_ERS.DISCONNECT;
        pciRestoreState(dev);
        pciSaveState(dev);
        this.start(dev);
        this.state(dev).broken = false;
        dev.dlog('info', 'slot reset: device re-initialised');
        return PCI_ERS.RECOVERED;
      },
      resume: (dev: PciDev) => dev.dlog('info', 'resumed after error recovery'),
      resetPrepare: (dev: PciDev) => this.quiesce(dev),
      resetDone: (dev: PciDev) => this.start(dev),
    };
  }

  state(dev: PciDev): EpState {
    if (dev.driver !== this || !dev.driverData) throw new Error(`${dev.bdf}: not bound to ${this.name}`);
    return dev.driverData as EpState;
  }

  probe(dev: PciDev): number {
    const bar = dev.resources.find((r) => r.index === 0);
    if (!bar || bar.start === 0) return -E.ENODEV;
    pciEnableDevice(dev);
    pciSetMaster(dev, true);
    const vector = pciAllocIrqVector(this.core, dev);
    if (vector < 0) return vector;
    const io = dev.platform.ioremap(bar.start, bar.size);
    const id = io.read32(DMA_REG.ID);
    if (id !== DMA_ID) {
      dev.dlog('err', `unexpected engine ID 0x${id.toString(16)}`);
      pciFreeIrqVectors(dev);
      return -E.ENODEV;
    }
    const st: EpState = { io, vector, completions: 0, lastStatus: 0, broken: false };
    dev.driverData = st;
    dev.platform.requestIrq(vector, `${this.name} ${dev.name}`, () => this.interrupt(st));
    this.start(dev);
    // Saved for slot_reset after an error recovery resets the link.
    pciSaveState(dev);
    dev.dlog('info', `DMA engine at 0x${bar.start.toString(16)}, MSI vector ${vector}`);
    return 0;
  }

  remove(dev: PciDev): void {
    const st = this.state(dev);
    st.io.write32(DMA_REG.CTRL, 0);
    dev.platform.freeIrq(st.vector);
    pciFreeIrqVectors(dev);
    pciSetMaster(dev, false);
  }

  private interrupt(st: EpState): void {
    const s = st.io.read32(DMA_REG.STATUS);
    const ack = s & (DMA_STATUS.DONE.bits | DMA_STATUS.ERROR.bits);
    if (!ack) return;
    st.lastStatus = s;
    st.completions++;
    st.io.write32(DMA_REG.STATUS, ack);
  }

  /** Turns completion interrupts on (after probe and after resets). */
  private start(dev: PciDev): void {
    this.state(dev).io.write32(DMA_REG.CTRL, DMA_CTRL.IRQ_EN.bits);
  }

  /** reset_prepare: let a running transfer finish (bounded), then stop interrupts. */
  private quiesce(dev: PciDev): void {
    const st = this.state(dev);
    const p = dev.platform;
    const deadline = p.clock.now() + QUIESCE_NS;
    while (st.io.read32(DMA_REG.STATUS) & DMA_STATUS.BUSY.bits && p.clock.now() < deadline) p.sleep(10 * NS_PER_US);
    if (st.io.read32(DMA_REG.STATUS) & DMA_STATUS.BUSY.bits) dev.dlog('warn', 'engine still busy before reset');
    st.io.write32(DMA_REG.CTRL, 0);
  }

  /** Programs a copy of len bytes from bus address src to dst and rings the doorbell. */
  startTransfer(dev: PciDev, src: number, dst: number, len: number): number {
    const st = this.state(dev);
    if (dev.disconnected) return -E.ENODEV;
    if (st.broken) return -E.EIO;
    if (st.io.read32(DMA_REG.STATUS) & DMA_STATUS.BUSY.bits) return -E.EBUSY;
    st.io.write64(DMA_REG.SRC, BigInt(src));
    st.io.write64(DMA_REG.DST, BigInt(dst));
    st.io.write32(DMA_REG.LEN, len);
    st.io.write32(DMA_REG.DOORBELL, DMA_DOORBELL.GO.bits);
    return 0;
  }

  /** Waits for the completion interrupt after `seen` completions (interrupts are taken while sleeping). */
  waitTransfer(dev: PciDev, seen: number, timeoutNs: number): TransferResult {
    const st = this.state(dev);
    const p = dev.platform;
    const deadline = p.clock.now() + timeoutNs;
    while (st.completions === seen) {
      const left = deadline - p.clock.now();
      if (left <= 0) {
        const status = st.io.read32(DMA_REG.STATUS);
        // All-ones from a register: the device may be gone (drivers check with pci_device_is_present).
        if (possibleError(status, 4) && !pciDevCheckPresent(dev)) return { ok: false, error: 'gone', status, doneBytes: 0 };
        return { ok: false, error: 'timeout', status, doneBytes: st.io.read32(DMA_REG.DONE_BYTES) };
      }
      p.sleep(Math.min(left, 20 * NS_PER_US));
    }
    const s = st.lastStatus;
    const doneBytes = st.io.read32(DMA_REG.DONE_BYTES);
    if (s & DMA_STATUS.ERROR.bits) return { ok: false, error: DMA_ERR_NAMES[DMA_STATUS.ERR_CODE.get(s)] ?? 'error', status: s, doneBytes };
    return { ok: true, status: s, doneBytes };
  }

  /** A whole transfer: start it and wait for its completion. */
  transfer(dev: PciDev, src: number, dst: number, len: number, timeoutNs: number): TransferResult {
    const seen = this.state(dev).completions;
    const rc = this.startTransfer(dev, src, dst, len);
    if (rc) return { ok: false, error: rc === -E.EBUSY ? 'busy' : rc === -E.ENODEV ? 'gone' : 'broken', status: 0, doneBytes: 0 };
    return this.waitTransfer(dev, seen, timeoutNs);
  }
}
