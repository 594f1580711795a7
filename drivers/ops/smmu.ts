// CPU operations for the SMMUv3 driver core: probe, joining a probed SMMU, interrupts, workloads.

import type { KernelOpImpls } from '../../src/protocol/ops/index.ts';
import { ArmSmmuDevice } from '../arm-smmu-v3/smmu.ts';
import type { Kernel } from '../kernel.ts';
import { runTlbiWorkload } from '../workloads/cmdq-stress.ts';
import { replayCommands } from '../workloads/replay.ts';

export const smmuOps = {
  probe: (k, r) => {
    if (r.initPages) k.platform.pages.init();
    k.smmu = ArmSmmuDevice.probe(k.platform, r.opts);
    return k.smmu.shared;
  },
  attach: (k, shared) => {
    k.smmu = ArmSmmuDevice.attach(k.platform, shared);
    return true;
  },
  requestIrqs: (k) => {
    k.device().requestIrqs();
    return true;
  },
  workload: (k, w) => runTlbiWorkload(k.device(), w),
  replay: (k, r) => replayCommands(k.device(), r.words),
  issueBatch: (k, b) => k.device().issueRaw(Uint32Array.from(b.words), b.words.length / 4, b.sync),
  driverStats: (k) => {
    const d = k.device();
    const cmds = k.hasIommu() ? k.iommu().iommu.cmds : null;
    return {
      cmdqErrors: d.errorLog.slice(),
      recovery: k.hasIommu() ? structuredClone(k.iommu().iommu.recovery.stats) : { failedBatches: 0, staleReturns: 0, extraSyncs: 0, fences: 0, fenceLatencyNs: [] },
      issuedByOpcode: { ...cmds?.issued },
      unconfirmedByOpcode: { ...cmds?.unconfirmed },
      pendingByOpcode: cmds?.pending() ?? {},
      gerrors: Object.fromEntries(d.gerrors),
      issued: d.cmdq.issuedCmds,
      syncs: d.cmdq.syncs,
      syncTimeouts: d.cmdq.syncTimeouts,
    };
  },
} satisfies Partial<KernelOpImpls<Kernel>>;
