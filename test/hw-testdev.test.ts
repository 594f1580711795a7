// The DMA test engine (src/arch/testdev.ts, hw/testdev.ts), programmed through its MMIO registers from the
// lockstep platform, doing DMA through the SMMU.

import { describe, expect, test } from 'vitest';
import { Rig } from './helpers/rig.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { toBody } from '../src/host/trace.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { XSTAT } from '../src/machine/layout.ts';
import { PA, VECTOR } from '../src/arch/platform.ts';
import { EVT } from '../src/arch/smmu/events.ts';
import { TD_CTRL, TD_FAULT, TD_OFF, TD_SSID, TD_STATUS, TESTDEV_BYTES, TESTDEV_ID, TESTDEV_MAX_LEN, fnv1a, testdevBase } from '../src/arch/testdev.ts';
import type { IoMem } from '../drivers/platform/platform.ts';

function engine(rig: Rig, index = 0): IoMem {
  return rig.platform.ioremap(testdevBase(index), TESTDEV_BYTES);
}

/** Programs and starts one transfer; returns STATUS after it (lockstep runs it before the write returns). */
function run(io: IoMem, o: { sid: number; iova: number; len: number; write?: boolean; buf?: number; pattern?: number; ssid?: number; priv?: boolean; msi?: { addr: number; data: number } }): number {
  io.write32(TD_OFF.SID, o.sid);
  io.write32(TD_OFF.SSID, o.ssid === undefined ? 0 : TD_SSID.SSV.bits | o.ssid);
  io.write32(TD_OFF.IOVA_LO, o.iova % 2 ** 32);
  io.write32(TD_OFF.IOVA_HI, Math.floor(o.iova / 2 ** 32));
  io.write32(TD_OFF.LEN, o.len);
  io.write32(TD_OFF.PATTERN, o.pattern ?? 0);
  io.write32(TD_OFF.BUF_LO, o.buf ?? 0);
  io.write32(TD_OFF.BUF_HI, 0);
  if (o.msi) {
    io.write32(TD_OFF.MSI_ADDR_LO, o.msi.addr);
    io.write32(TD_OFF.MSI_DATA, o.msi.data);
  }
  let ctrl = 0;
  if (o.write) ctrl |= TD_CTRL.DIR.bits;
  if (o.buf !== undefined) ctrl |= TD_CTRL.SRC.bits;
  if (o.priv) ctrl |= TD_CTRL.PRIV.bits;
  if (o.msi) ctrl |= TD_CTRL.MSI_EN.bits;
  io.write32(TD_OFF.CTRL, ctrl);
  const count = io.read32(TD_OFF.COUNT);
  io.write32(TD_OFF.DOORBELL, 1);
  expect(io.read32(TD_OFF.COUNT)).toBe((count + 1) >>> 0);
  return io.read32(TD_OFF.STATUS);
}

describe('DMA test engine', () => {
  test('identifies itself; pattern writes and pattern-checked reads through stage 1', () => {
    const rig = new Rig();
    const io = engine(rig);
    expect(io.read32(TD_OFF.ID)).toBe(TESTDEV_ID);
    const { pt } = rig.s1Stream(2);
    const pages = [rig.alloc(), rig.alloc()];
    pt.map(0x10_0000, pages[0]!);
    pt.map(0x10_1000, pages[1]!);
    expect(run(io, { sid: 2, iova: 0x10_0800, len: 4096, write: true, pattern: 0x1234_5678 })).toBe(TD_STATUS.DONE.bits);
    expect(rig.mem.read32(pages[0]! + 0x800)).toBe(0x1234_5678);
    expect(rig.mem.read32(pages[1]! + 0x7fc)).toBe(0x1234_5678);
    expect(rig.mem.read32(pages[1]! + 0x800)).toBe(0);
    expect(io.read32(TD_OFF.XFERRED)).toBe(4096);

    expect(run(io, { sid: 2, iova: 0x10_0800, len: 4096, pattern: 0x1234_5678 })).toBe(TD_STATUS.DONE.bits);
    expect(io.read32(TD_OFF.MISMATCHES)).toBe(0);
    rig.mem.write32(pages[1]! + 0x10, 0);
    expect(run(io, { sid: 2, iova: 0x10_0800, len: 4096, pattern: 0x1234_5678 })).toBe(TD_STATUS.DONE.bits | TD_STATUS.MISMATCH.bits);
    expect(io.read32(TD_OFF.MISMATCHES)).toBe(1);
    expect(rig.stats[XSTAT.TESTDEV_TRANSFERS]).toBe(3);
  });

  test('buffer mode copies from and to the local buffer; RESULT is the FNV-1a of the bytes read', () => {
    const rig = new Rig();
    const io = engine(rig);
    const { pt } = rig.s1Stream(3);
    const page = rig.alloc();
    pt.map(0x2000, page);
    const src = rig.alloc();
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 3) & 0xff);
    rig.mem.writeBytes(src, data);
    expect(run(io, { sid: 3, iova: 0x2010, len: 300, write: true, buf: src })).toBe(TD_STATUS.DONE.bits);
    expect(rig.mem.readBytes(page + 0x10, 300)).toEqual(data);
    const dst = rig.alloc();
    expect(run(io, { sid: 3, iova: 0x2010, len: 300, buf: dst })).toBe(TD_STATUS.DONE.bits);
    expect(rig.mem.readBytes(dst, 300)).toEqual(data);
    expect(io.read32(TD_OFF.RESULT)).toBe(fnv1a(data));
  });

  test('an SMMU fault stops the transfer: FAULT_CODE, FAULT_EVENT, FAULT_ADDR and XFERRED say where', () => {
    const rig = new Rig();
    const io = engine(rig);
    const { pt } = rig.s1Stream(4);
    pt.map(0x3000, rig.alloc());
    expect(run(io, { sid: 4, iova: 0x3800, len: 4096, write: true, pattern: 1 })).toBe(TD_STATUS.DONE.bits | TD_STATUS.ERROR.bits);
    expect(io.read32(TD_OFF.XFERRED)).toBe(0x800);
    expect(io.read32(TD_OFF.FAULT_CODE)).toBe(TD_FAULT.SMMU);
    expect(io.read32(TD_OFF.FAULT_EVENT)).toBe(EVT.F_TRANSLATION);
    expect(io.read32(TD_OFF.FAULT_ADDR_LO)).toBe(0x4000);
    expect(rig.events()).toMatchObject([{ name: 'F_TRANSLATION', sid: 4, inputAddr: 0x4000n, rnw: 0 }]);
    // A silent termination (Config=abort) reports FAULT_EVENT=0.
    rig.writeSte(5, { config: 0 });
    run(io, { sid: 5, iova: 0x3000, len: 8 });
    expect([io.read32(TD_OFF.FAULT_CODE), io.read32(TD_OFF.FAULT_EVENT)]).toEqual([TD_FAULT.SMMU, 0]);
    // SubstreamID and privilege reach the SMMU.
    run(io, { sid: 4, iova: 0x3000, len: 8, ssid: 6, priv: true });
    expect(rig.events()).toMatchObject([{ name: 'C_BAD_SUBSTREAMID', sid: 4, ssid: 6 }]);
  });

  test('bus aborts and bad lengths', () => {
    const rig = new Rig();
    const io = engine(rig);
    rig.writeSte(6, { config: 0b100 });
    run(io, { sid: 6, iova: 0x8000_0000, len: 64 }); // bypass to a PA that is not RAM
    expect(io.read32(TD_OFF.FAULT_CODE)).toBe(TD_FAULT.BUS);
    run(io, { sid: 6, iova: rig.alloc(), len: 64, write: true, buf: 0x8000_0000 }); // local buffer not RAM
    expect([io.read32(TD_OFF.FAULT_CODE), io.read32(TD_OFF.FAULT_ADDR_LO)]).toEqual([TD_FAULT.BUS, 0x8000_0000]);
    for (const len of [0, TESTDEV_MAX_LEN + 1]) {
      expect(run(io, { sid: 6, iova: 0x4000_0000, len })).toBe(TD_STATUS.DONE.bits | TD_STATUS.ERROR.bits);
      expect(io.read32(TD_OFF.FAULT_CODE)).toBe(TD_FAULT.PARAM);
    }
    expect(rig.events()).toEqual([]);
  });

  test('completion MSI: to the doorbell raises the vector, to memory stores the data', () => {
    const rig = new Rig();
    const io = engine(rig);
    rig.writeSte(7, { config: 0b100 });
    const vector = VECTOR.MSI_BASE + 3;
    rig.platform.irqc.route(vector, 0);
    run(io, { sid: 7, iova: rig.alloc(), len: 4, msi: { addr: PA.MSI_DOORBELL, data: vector } });
    expect(rig.platform.irqc.takeOne(0)).toBe(vector);
    const slot = rig.alloc();
    run(io, { sid: 7, iova: rig.alloc(), len: 4, msi: { addr: slot, data: 0xd0e } });
    expect(rig.mem.read32(slot)).toBe(0xd0e);
  });

  test('a doorbell while busy is ignored; several engines work independently', () => {
    const { views, machine, platform, trace } = createLockstep({ features: DEFAULT_FEATURES, testDevices: 2, trace: { points: 'testdev_*' } });
    expect(machine.testdevs.length).toBe(2);
    const dev = machine.testdevs[0]!;
    dev.regs.write(TD_OFF.LEN, 4, 16);
    dev.regs.write(TD_OFF.DOORBELL, 4, 1);
    dev.regs.write(TD_OFF.DOORBELL, 4, 1); // the first transfer has not run yet
    expect(dev.regs.get('STATUS')).toBe(TD_STATUS.BUSY.bits);
    machine.run();
    expect(dev.regs.get('COUNT')).toBe(1);
    expect(trace().map(toBody)).toContain('testdev_busy dev="testdev0"');
    const io1 = platform.ioremap(testdevBase(1), TESTDEV_BYTES);
    expect(io1.read32(TD_OFF.ID)).toBe(TESTDEV_ID);
    io1.write32(TD_OFF.LEN, 4);
    io1.write32(TD_OFF.DOORBELL, 1);
    expect(io1.read32(TD_OFF.COUNT)).toBe(1);
    expect(machine.testdevs[0]!.regs.get('COUNT')).toBe(1);
    expect(views.platdev[(TESTDEV_BYTES + TD_OFF.COUNT) / 4]).toBe(1);
  });
});
