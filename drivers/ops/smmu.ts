// CPU operations for the SMMUv3 driver core: probe, joining a probed SMMU, interrupts, workloads.

import { ArmSmmuDevice, type SmmuDriverOptions, type SmmuShared } from '../arm-smmu-v3/smmu.ts';
import type { KernelOp } from '../kernel.ts';
import { runTlbiWorkload, type TlbiWorkload } from '../workloads/cmdq-stress.ts';
import { replayCommands, type ReplayRequest } from '../workloads/replay.ts';

export const smmuOps: Record<string, KernelOp> = {
  probe: (k, args: { opts: SmmuDriverOptions; initPages: boolean }) => {
    if (args.initPages) k.platform.pages.init();
    k.smmu = ArmSmmuDevice.probe(k.platform, args.opts);
    return k.smmu.shared;
  },
  attach: (k, shared: SmmuShared) => {
    k.smmu = ArmSmmuDevice.attach(k.platform, shared);
    return true;
  },
  requestIrqs: (k) => {
    k.device().requestIrqs();
    return true;
  },
  workload: (k, w: TlbiWorkload) => runTlbiWorkload(k.device(), w),
  replay: (k, r: ReplayRequest) => replayCommands(k.device(), r),
  /**
   * Issues raw commands (4 words each) as Linux issues a batch: in chunks of 64, the last one with its
   * CMD_SYNC in the same submission when `sync`; returns 0 or -ETIMEDOUT.
   */
  issueBatch: (k, b: { words: number[]; sync: boolean }) => {
    if (b.words.length % 4 !== 0) throw new Error(`issueBatch: ${b.words.length} words is not a whole number of 16-byte commands`);
    return k.device().issueRaw(Uint32Array.from(b.words), b.words.length / 4, b.sync);
  },
  /** What this CPU's driver has seen: command errors it handled, global errors, what it issued. */
  driverStats: (k) => {
    const d = k.device();
    return {
      cmdqErrors: d.errorLog.slice(),
      gerrors: Object.fromEntries(d.gerrors),
      issued: d.cmdq.issuedCmds,
      syncs: d.cmdq.syncs,
      syncTimeouts: d.cmdq.syncTimeouts,
    };
  },
};
