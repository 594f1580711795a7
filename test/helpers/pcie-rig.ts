// A lockstep machine with a PCIe topology and the driver's PCI core on it, for tests of config space,
// enumeration, resets and ATS. Config accesses go through the driver's ECAM mapping and the machine's
// generic register write path, as on the real platform.

import { createLockstep } from '../../src/host/lockstep.ts';
import { DEFAULT_FEATURES, type SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { defaultTopology, iommuMap, parseTopology, type Topology } from '../../src/protocol/topology.ts';
import { PciCore } from '../../drivers/pci/core.ts';
import { STAT } from '../../src/machine/layout.ts';
import { OP, type CommandName } from '../../src/arch/smmu/commands.ts';
import { PCIE_STAT, pcieStat } from '../../src/machine/pcie-stats.ts';
import { Kernel } from '../../drivers/kernel.ts';
import { ArmSmmuDevice } from '../../drivers/arm-smmu-v3/smmu.ts';
import type { SmmuDriverOptions } from '../../src/protocol/ops/smmu.ts';

export interface PcieRigOptions {
  /** Topology JSON (validated here); default: the default topology. */
  topology?: unknown;
  features?: Partial<SmmuFeatures>;
  atcTimeoutNs?: number;
  memBytes?: number;
  /** The driver's CMD_SYNC poll timeout (SmmuDriverOptions.pollTimeoutNs). */
  pollTimeoutNs?: number;
  /** Other SMMU driver options for pcieStack's probe (e.g. the ATC recovery policy). */
  driver?: SmmuDriverOptions;
}

export function pcieRig(o: PcieRigOptions = {}) {
  const topology: Topology = o.topology === undefined ? defaultTopology() : parseTopology(o.topology);
  const ls = createLockstep({
    features: { ...DEFAULT_FEATURES, ...(o.features ?? {}) },
    memBytes: o.memBytes ?? 16 << 20,
    ackLatencyNs: 5_000,
    topology,
    trace: { points: 'pcie_*' },
    ...(o.atcTimeoutNs !== undefined ? { atcTimeoutNs: o.atcTimeoutNs } : {}),
  });
  const core = new PciCore(ls.platform, { iommuMap: iommuMap(topology) });
  const stats = ls.views.stats;
  return {
    ...ls,
    topology,
    core,
    /** Hardware model of an endpoint. */
    ep: (bdf: string) => ls.machine.pcie.endpoint(bdf),
    port: (bdf: string) => ls.machine.pcie.ports.find((p) => p.bdf === bdf)!,
    exec: (op: CommandName) => stats[STAT.EXEC + OP[op]]!,
    pstat: (k: keyof typeof PCIE_STAT) => pcieStat(stats, PCIE_STAT[k]),
    log: () => ls.platform.dmesg().map((e) => e.msg),
    now: () => ls.platform.clock.now(),
    sleep: (ns: number) => ls.platform.sleep(ns),
  };
}

export type PcieRig = ReturnType<typeof pcieRig>;

/**
 * The whole stack on one lockstep CPU: SMMU probed, PCI enumerated with every function behind the SMMU
 * in its DMA domain (ATS enabled where supported), the endpoint driver bound — what pciInit does on CPU 0.
 */
export function pcieStack(o: PcieRigOptions = {}) {
  const r = pcieRig(o);
  const k = new Kernel(r.platform);
  k.smmu = ArmSmmuDevice.probe(r.platform, { ...(o.driver ?? {}), ...(o.pollTimeoutNs !== undefined ? { pollTimeoutNs: o.pollTimeoutNs } : {}) });
  const st = k.initPci(iommuMap(r.topology), true);
  return { ...r, k, st, core: st.core, glue: st.iommu!, drv: st.ep };
}

export type PcieStack = ReturnType<typeof pcieStack>;
