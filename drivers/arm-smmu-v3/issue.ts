// Command submission for the IOMMU layer (STE/CD writes, TLB and ATC invalidation), counting what it
// issues by opcode so workloads can reconcile their counts with the hardware's (STAT.EXEC).
//
// Commands go into this CPU's batch (Linux arm_smmu_cmdq_batch_add) and leave with one CMD_SYNC at
// submit (arm_smmu_cmdq_batch_submit); a full batch is flushed without a sync by the device.

import { F, commandName } from '../../src/arch/smmu/commands.ts';
import { buildCmd, type CmdEnt } from './cmds.ts';
import { E } from '../../src/protocol/errno.ts';
import type { ArmSmmuDevice } from './smmu.ts';

export class CmdIssuer {
  /** Commands issued through this issuer, by spec name (CMD_SYNCs under SYNC). */
  readonly issued: Record<string, number> = {};
  /**
   * Commands of batches whose CMD_SYNC failed, by spec name (the CMD_SYNC included): issued, and
   * reported to the caller as not known to have completed.
   */
  readonly unconfirmed: Record<string, number> = {};
  /** CMD_SYNCs that did not complete (each was logged by the command queue), or whose issue threw. */
  syncTimeouts = 0;
  private readonly buf = new Uint32Array(4);
  /** Names of the commands in the batch since the last submit. */
  private readonly batch: string[] = [];
  /**
   * Names of commands issued without a CMD_SYNC since the last submit: the next CMD_SYNC this CPU
   * issues covers them too (a CMD_SYNC completes only once every earlier command has, 4.7.3), so its
   * failure reports them.
   */
  private readonly unsynced: string[] = [];

  constructor(readonly dev: ArmSmmuDevice) {}

  private count(name: string): void {
    this.issued[name] = (this.issued[name] ?? 0) + 1;
  }

  /** Adds a command to the batch. */
  add(ent: CmdEnt): void {
    buildCmd(this.buf, 0, ent);
    this.dev.batchAddRaw(this.buf);
    const name = commandName(F.OP.read(this.buf, 0));
    this.count(name);
    this.batch.push(name);
  }

  /**
   * Issues the batch with a CMD_SYNC and waits for it; returns 0, SYNC_ATC_TIMEOUT (the SYNC completed
   * after an ATC invalidation before it timed out) or -ETIMEDOUT. A batch whose SYNC did not complete,
   * or whose issue threw (the caller then sees the exception), is counted as unconfirmed: issued, and
   * reported as not known to have completed.
   */
  submit(): number {
    this.count('SYNC');
    let ret = -E.ETIMEDOUT;
    try {
      ret = this.dev.batchSubmit();
    } finally {
      if (ret === -E.ETIMEDOUT) {
        this.syncTimeouts++;
        for (const name of [...this.unsynced, ...this.batch, 'SYNC']) this.unconfirmed[name] = (this.unconfirmed[name] ?? 0) + 1;
      }
      this.batch.length = 0;
      this.unsynced.length = 0;
    }
    return ret;
  }

  /** Issues one command on its own, without a CMD_SYNC (arm_smmu_cmdq_issue_cmd), e.g. PREFETCH_CONFIG. */
  issueNoSync(ent: CmdEnt): void {
    // Issued directly, so it must not overtake commands still waiting in this CPU's batch.
    if (this.batch.length !== 0) throw new Error(`issueNoSync(${ent.op}): ${this.batch.length} batched command(s) not submitted yet`);
    buildCmd(this.buf, 0, ent);
    this.dev.cmdq.issue(this.buf, 1, false);
    const name = commandName(F.OP.read(this.buf, 0));
    this.count(name);
    this.unsynced.push(name);
  }

  /**
   * Commands issued without a CMD_SYNC that no CMD_SYNC has covered yet, by spec name: not known to
   * have run (a queue that stopped for good, say after skip_err gave up a fetch abort, still holds them).
   */
  pending(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of this.unsynced) out[name] = (out[name] ?? 0) + 1;
    return out;
  }

  /** What was issued since `before` (an earlier copy of `issued`): the names that grew, by how much. */
  issuedSince(before: Readonly<Record<string, number>>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, n] of Object.entries(this.issued)) if (n > (before[name] ?? 0)) out[name] = n - (before[name] ?? 0);
    return out;
  }

  /** One command followed by a CMD_SYNC (arm_smmu_cmdq_issue_cmd_with_sync). */
  addAndSync(ent: CmdEnt): number {
    this.add(ent);
    return this.submit();
  }
}
