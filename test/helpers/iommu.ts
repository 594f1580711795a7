// A lockstep system with the SMMU driver probed and the IOMMU layer on top: masters, domains, the DMA
// API and the DMA test engine's driver, for tests of the driver's translation side.

import { createLockstep } from '../../src/host/lockstep.ts';
import { DEFAULT_FEATURES, type SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { STAT, XSTAT } from '../../src/machine/layout.ts';
import { OP, type CommandName } from '../../src/arch/smmu/commands.ts';
import { ArmSmmuDevice } from '../../drivers/arm-smmu-v3/smmu.ts';
import { ArmSmmuIommu } from '../../drivers/arm-smmu-v3/domain.ts';
import { TestDmaDriver } from '../../drivers/testdev.ts';

export function iommuRig(features: Partial<SmmuFeatures> = {}, memBytes = 16 << 20) {
  const ls = createLockstep({ features: { ...DEFAULT_FEATURES, ...features }, memBytes, ackLatencyNs: 5_000 });
  const dev = ArmSmmuDevice.probe(ls.platform, {});
  const iommu = new ArmSmmuIommu(dev);
  const engine = new TestDmaDriver(ls.platform, 0);
  const stats = ls.views.stats;
  return {
    ...ls,
    dev,
    iommu,
    engine,
    mem: ls.platform.mem,
    /** Commands the hardware executed with this opcode (spec name without CMD_). */
    exec: (op: CommandName) => stats[STAT.EXEC + OP[op]]!,
    xstat: (k: keyof typeof XSTAT) => stats[XSTAT[k]]!,
    /** Events the hardware recorded of this type. */
    hwEvents: (type: number) => stats[STAT.EVENTS + type]!,
    /** Kernel log messages so far. */
    log: () => ls.platform.dmesg().map((e) => e.msg),
    /** Lets pending interrupts (the event queue thread) run: an interrupts-on point. */
    idle: (ns = 10_000) => ls.platform.sleep(ns),
    /** The engine writes `pattern` to [iova, iova+len). */
    dmaWrite: (sid: number, iova: number, len: number, pattern: number) => engine.transfer({ sid, iova, len, write: true, pattern }),
    /** The engine reads [iova, iova+len) and compares it with `pattern`. */
    dmaRead: (sid: number, iova: number, len: number, pattern: number) => engine.transfer({ sid, iova, len, write: false, pattern }),
  };
}

export type IommuRig = ReturnType<typeof iommuRig>;
