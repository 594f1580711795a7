// Submitting a list of raw commands verbatim, in order, as `smmulab replay` asks.

import { CMDQ_BATCH_ENTRIES } from '../arm-smmu-v3/cmdq.ts';
import type { ArmSmmuDevice } from '../arm-smmu-v3/smmu.ts';
import type { ReplayResult } from '../../src/protocol/ops/smmu.ts';
import { E } from '../../src/protocol/errno.ts';

/**
 * Submits commands (four words each) in batches of 64 without CMD_SYNCs, waits until the SMMU has
 * consumed them, then issues one CMD_SYNC of its own.
 *
 * The wait comes first because the file may hold thousands of commands that each stop the queue until
 * skip_err (on the GERROR interrupt's CPU) deals with them: a CMD_SYNC's poll timeout counts from its
 * issue, so one SYNC behind all of them would time out or not depending on how fast the host ran that
 * CPU. waitConsumed gives up only when the queue makes no progress for a poll timeout.
 */
export function replayCommands(dev: ArmSmmuDevice, words: readonly number[]): ReplayResult {
  const all = Uint32Array.from(words);
  const n = all.length / 4;
  if (!Number.isInteger(n)) throw new Error(`replay: ${all.length} words is not a whole number of 16-byte commands`);
  const slots: number[] = [];
  const mask = (2 << dev.shared.cmdq.shift) - 1;
  for (let done = 0; done < n; done += CMDQ_BATCH_ENTRIES) {
    const k = Math.min(CMDQ_BATCH_ENTRIES, n - done);
    const { start } = dev.cmdq.issue(all.subarray(done * 4, (done + k) * 4), k, false);
    for (let i = 0; i < k; i++) slots.push((start + i) & mask);
  }
  if (n > 0 && !dev.cmdq.waitConsumed((slots[n - 1]! + 1) & mask)) return { slots, ret: -E.ETIMEDOUT };
  const { ret } = dev.cmdq.issue(new Uint32Array(0), 0, true);
  return { slots, ret };
}
