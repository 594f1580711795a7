// The default workload: every CPU issues batches of TLB invalidations, each batch ending in a CMD_SYNC,
// as an unmap-heavy DMA workload makes Linux do.

import { F } from '../../src/arch/smmu/commands.ts';
import { buildCmd, type CmdEnt } from '../arm-smmu-v3/cmds.ts';
import { FEAT, type ArmSmmuDevice } from '../arm-smmu-v3/smmu.ts';
import type { TlbiResult, TlbiWorkload } from '../../src/protocol/ops/smmu.ts';

/** The address field's writer (Field.writer): the only field that changes from command to command. */
const writeVa = F.VA.writer();

export function runTlbiWorkload(dev: ArmSmmuDevice, w: TlbiWorkload): TlbiResult {
  if (!Number.isInteger(w.batch) || w.batch < 1) throw new Error(`workload batch ${w.batch} must be a positive integer`);
  if (w.durationNs === undefined && w.iterations === undefined) throw new Error('workload needs durationNs or iterations');
  const p = dev.p;
  // One TLBI_NH_VA per 4 KiB page of a per-CPU ASID; with range invalidation, a one-page range
  // (TG=4K, TTL=3, NUM=0, SCALE=0) as Linux sends for a leaf page.
  const ril = dev.has(FEAT.RANGE_INV);
  const tmpl = new Uint32Array(4);
  const ent: CmdEnt = {
    op: 'TLBI_NH_VA',
    tlbi: { asid: 1 + p.cpu, vmid: 0, addr: 0, leaf: true, num: 0, scale: 0, tg: ril ? 1 : 0, ttl: ril ? 3 : 0 },
  };
  buildCmd(tmpl, 0, ent);
  const start = p.clock.now();
  const end = w.durationNs !== undefined ? start + w.durationNs : Infinity;
  const maxIter = w.iterations ?? Infinity;
  const latencies: number[] = [];
  let batches = 0;
  let timeouts = 0;
  let page = 0;
  while (batches < maxIter && p.clock.now() < end) {
    for (let k = 0; k < w.batch; k++) {
      writeVa(tmpl, 0, page++ & 0xfffff);
      dev.batchAddRaw(tmpl);
    }
    const t0 = w.recordLatency ? p.clock.now() : 0;
    if (dev.batchSubmit() !== 0) timeouts++;
    if (w.recordLatency) latencies.push(p.clock.now() - t0);
    batches++;
    p.irqCheckpoint();
  }
  return {
    batches,
    issuedByOpcode: { TLBI_NH_VA: batches * w.batch, SYNC: batches },
    syncTimeouts: timeouts,
    elapsedNs: p.clock.now() - start,
    latenciesNs: latencies,
  };
}
