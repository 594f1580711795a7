// `smmulab run --workload tlbi` (the default): every CPU runs the driver's TLBI workload
// (drivers/workloads/cmdq-stress.ts): batches of --batch TLBI_NH_VA, each batch ending with a CMD_SYNC
// it waits for, for --seconds of platform time.

import type { TlbiWorkload } from '../../../protocol/ops/smmu.ts';
import { sumCounts, type Workload } from '../workload-api.ts';

export const workload: Workload = {
  summary: 'every CPU issues batches of TLBI_NH_VA, each ending with a CMD_SYNC',
  async run(ctx) {
    const w: TlbiWorkload = { batch: ctx.batch, durationNs: ctx.durationNs };
    const per = await Promise.all(ctx.sys.cpus.map((c) => c.op('workload', w, ctx.callTimeoutMs)));
    return {
      issuedByOpcode: sumCounts(per.map((r) => r.issuedByOpcode)),
      perCpu: per.map((r, cpu) => ({ cpu, batches: r.batches, issuedByOpcode: r.issuedByOpcode, syncTimeouts: r.syncTimeouts, elapsedNs: Math.round(r.elapsedNs) })),
    };
  },
};
