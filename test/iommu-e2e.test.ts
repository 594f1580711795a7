// The translation path end to end through real workers: the driver on the CPU workers registers a
// device, gives it a paging domain, maps a buffer with the DMA API; the DMA test engine in the hardware
// worker writes into it through the SMMU; the data is checked at the buffer's physical address; after
// unmap the same DMA faults, the SMMU records the event and the driver's event queue thread logs it.

import { describe, expect, it } from 'vitest';
import { waitFor, withSystem, type TestSystem } from './helpers/system.ts';
import { STAT } from '../src/machine/layout.ts';
import { PA } from '../src/arch/platform.ts';
import { EVT } from '../src/arch/smmu/events.ts';
import { executedByOpcode } from '../src/host/stats.ts';
import { twoEngines } from './fixtures/two-engines.ts';

const PG = 4096;

/** Reads DRAM as the hardware sees it (from the main thread, independent of the CPUs). */
function dram(t: TestSystem, pa: number, len: number): Uint8Array {
  return t.sys.views.dram8.slice(pa - PA.DRAM_BASE, pa - PA.DRAM_BASE + len);
}

/** Waits until a CPU's log (collected across calls) has a line matching `re`; nothing waits forever. */
async function logLine(t: TestSystem, cpu: number, re: RegExp): Promise<string> {
  let hit: string | undefined;
  await waitFor(async () => (hit = (await t.messages(cpu)).find((l) => re.test(l))) !== undefined, `cpu${cpu} to log a line matching ${re}`);
  return hit!;
}

describe('DMA through the SMMU with real workers', () => {
  it('maps a buffer, the engine writes it at the right PA; after unmap the DMA faults and the driver logs the event', async () => {
    await withSystem({ cpus: 1 }, async (t) => {
      await t.sys.probe();
      const cpu = t.sys.cpus[0]!;
      const master = await cpu.op('iommuProbeDevice', { name: 'testdev0', sids: [0x50] });
      const domain = await cpu.op('iommuAllocDomain', { type: 'paging' });
      const before = t.sys.stats();
      const stats0 = await cpu.op('iommuStats');
      await cpu.op('iommuAttach', { master, domain });
      const pa = await cpu.op('memAlloc', { pages: 4 });
      const dma = await cpu.op('dmaCreate', { domain, strict: true });
      const iova = await cpu.op('dmaMap', { dma, pa: pa + 0x100, size: 2 * PG, dir: 'from-device' });
      expect(iova % PG).toBe(0x100);
      expect(iova).not.toBe(pa + 0x100); // translated, not identity

      const w = await cpu.op('testdevTransfer', { sid: 0x50, iova, len: 2 * PG, write: true, pattern: 0xc0ffee11 });
      expect(w).toMatchObject({ ok: true, xferred: 2 * PG, fault: 'NONE' });
      // The bytes are at the buffer's physical address, and nowhere around it.
      const got = dram(t, pa, 4 * PG);
      const word = (off: number) => new DataView(got.buffer).getUint32(off, true);
      expect(word(0x100)).toBe(0xc0ffee11);
      expect(word(0x100 + 2 * PG - 4)).toBe(0xc0ffee11);
      expect(word(0xfc)).toBe(0);
      expect(word(0x100 + 2 * PG)).toBe(0);
      // The CPU reads the same through its own view.
      const cpuView = await cpu.op('memRead', { pa: pa + 0x100, len: 8 });
      expect(cpuView).toEqual([0x11, 0xee, 0xff, 0xc0, 0x11, 0xee, 0xff, 0xc0]);

      await cpu.op('dmaUnmap', { dma, iova, size: 2 * PG, dir: 'from-device' });
      const f = await cpu.op('testdevTransfer', { sid: 0x50, iova, len: 64, write: true, pattern: 0xbad });
      expect(f).toMatchObject({ ok: false, xferred: 0, fault: 'SMMU', event: 'F_TRANSLATION', faultAddr: iova });
      expect(word(0x100)).toBe(0xc0ffee11);
      expect(new DataView(dram(t, pa, 4 * PG).buffer).getUint32(0x100, true)).toBe(0xc0ffee11);
      expect(t.stat(STAT.EVENTS + EVT.F_TRANSLATION)).toBe(1);

      // The event interrupt reaches CPU 0, whose event queue thread decodes and logs the record.
      await logLine(t, 0, /event 0x10 received:/);
      const line = await logLine(t, 0, /event: F_TRANSLATION/);
      expect(line).toBe(`arm-smmu-v3 9050000.smmuv3: event: F_TRANSLATION client: testdev0 sid: 0x50 ssid: 0 iova: 0x${iova.toString(16)} ipa: 0`);
      await logLine(t, 0, /^arm-smmu-v3 9050000\.smmuv3: unpriv data write s1 "Input address caused fault" stag: 0$/);

      // Every command the IOMMU layer issued was executed by the SMMU, and nothing else was.
      const stats1 = await cpu.op('iommuStats');
      expect(stats1.events).toEqual({ F_TRANSLATION: 1 });
      const issued: Record<string, number> = {};
      for (const [k, v] of Object.entries(stats1.issued)) if (v - (stats0.issued[k] ?? 0)) issued[k] = v - (stats0.issued[k] ?? 0);
      expect(executedByOpcode(before, t.sys.stats())).toEqual(issued);
      // Attach wrote the CD and STE (with CMD_SYNCs); unmap sent one ranged TLBI.
      expect(issued.TLBI_NH_VA).toBe(1);
      expect(issued.CFGI_CD).toBeGreaterThan(0);
      expect(issued.CFGI_STE).toBeGreaterThan(0);
    });
  });

  it('two CPUs: domains get different ASIDs from the shared allocator, share a level-2 stream table, and the IRQ CPU logs faults of its own device', async () => {
    await withSystem({ cpus: 2, testDevices: 2 }, async (t) => {
      await t.sys.probe({ irqCpu: 1 });
      const { a, b } = await twoEngines(t.sys);

      await b.cpu.op('dmaUnmap', { dma: b.dma, iova: b.iova, size: PG, dir: 'bidirectional' });
      const f = await b.cpu.op('testdevTransfer', { index: 1, sid: b.sid, iova: b.iova, len: 4, write: false });
      expect(f.event).toBe('F_TRANSLATION');
      await logLine(t, 1, new RegExp(`event: F_TRANSLATION client: engine1 sid: 0x61 ssid: 0 iova: 0x${b.iova.toString(16)} ipa: 0`));
      // CPU 0's device is untouched by CPU 1's unmap.
      const again = await a.cpu.op('testdevTransfer', { index: 0, sid: a.sid, iova: a.iova, len: PG, write: false, pattern: 0xaaaa0000 });
      expect(again).toMatchObject({ ok: true, mismatches: 0 });
    });
  });
});
