// Lockstep with N CPUs, the host's side: System.boot({ cpus: N, lockstep: { strategy, seed, depth } })
// boots the same workers as a threaded system, but the hardware worker runs the coordinator
// (hw/lockstep-worker.ts, hw/lockstep-coordinator.ts) and every CPU worker runs on
// LockstepCpuPlatform (drivers/lockstep-cpu-worker.ts): the CPUs take turns on one token, interleaved
// at the platform's yield points by the strategy, with hardware and timers in virtual time. The same
// seed and strategy give the same run: the same counters, the same final platform time, the same MMIO
// writes in the same order (writeHash).
//
// Determinism holds for what the host does in reaction to operation results: the coordinator decides
// nothing while an operation the host posted has not started, and not until one host turn after a
// result arrived (so the next operation the host posts from its continuation, e.g. the next iteration
// of `for (...) await sys.cpu(n).op(...)` inside a Promise.all, is in before anything else runs).
// Something the host does after a timer, or a fault injected while CPUs run, lands at a
// host-timing-dependent step; inject between operations for exact repeats.

import type { RpcClient } from '../protocol/rpc.ts';
import { LSC, LSH, LockstepBlock, SharedVirtualClock } from '../machine/lockstep-block.ts';
import type { SharedViews } from '../machine/layout.ts';
import { lockstepConfig, lockstepSpec, type LockstepNConfig, type LockstepNOptions, type LockstepStats, type ReplayStats } from '../protocol/lockstep.ts';
import { countWrites } from '../protocol/schedule.ts';

export { parseLockstepSpec, type LockstepNOptions, type LockstepStrategyName, type ReplayDivergence, type LockstepStats, type ReplayStats } from '../protocol/lockstep.ts';

const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
/** The worker modules of a lockstep-N system. */
export const LOCKSTEP_HW_MODULE = new URL(`../../hw/lockstep-worker${EXT}`, import.meta.url).href;
export const LOCKSTEP_CPU_MODULE = new URL(`../../drivers/lockstep-cpu-worker${EXT}`, import.meta.url).href;

/** The host's handle on a lockstep-N system's block. */
export class LockstepHost {
  readonly config: LockstepNConfig;
  readonly block: LockstepBlock;
  readonly clock: SharedVirtualClock;

  constructor(views: SharedViews, opts: LockstepNOptions) {
    this.config = lockstepConfig(opts, views.layout.ncpus);
    this.block = new LockstepBlock(views);
    this.clock = new SharedVirtualClock(this.block.f64);
    Atomics.store(this.block.i32, LSH.HOLDER, -1);
    Atomics.store(this.block.i32, LSH.ACTIVE, 1);
    hosts.set(views, this);
  }

  /**
   * Counts every request posted to CPU `cpu` through `rpc` (but 'stop'): POSTED and a host hold at the
   * post, released one host turn later; ACKED one host turn after its result or error arrived.
   */
  gate(rpc: RpcClient, cpu: number): void {
    const b = this.block;
    const call = rpc.call.bind(rpc);
    rpc.call = (op: string, args?: unknown, timeoutMs?: number): Promise<unknown> => {
      if (op === 'stop') return call(op, args, timeoutMs);
      Atomics.add(b.i32, LSH.HOST_HOLD, 1);
      b.add(cpu, LSC.POSTED);
      setImmediate(() => {
        Atomics.sub(b.i32, LSH.HOST_HOLD, 1);
        b.wakeCoordinator();
      });
      const p = call(op, args, timeoutMs);
      const ack = () => {
        setImmediate(() => {
          b.add(cpu, LSC.ACKED);
          b.wakeCoordinator();
        });
      };
      p.then(ack, ack);
      return p;
    };
  }

  /**
   * Counts every fault injected through the hardware's `rpc` (INJ_POSTED, and a host hold for one host
   * turn): the coordinator applies it before its next decision, so a fault injected in reaction to a
   * result lands at the same step of every run.
   */
  gateHw(rpc: RpcClient): void {
    const b = this.block;
    const call = rpc.call.bind(rpc);
    rpc.call = (op: string, args?: unknown, timeoutMs?: number): Promise<unknown> => {
      if (op !== 'inject') return call(op, args, timeoutMs);
      Atomics.add(b.i32, LSH.HOST_HOLD, 1);
      Atomics.add(b.i32, LSH.INJ_POSTED, 1);
      setImmediate(() => {
        Atomics.sub(b.i32, LSH.HOST_HOLD, 1);
        b.wakeCoordinator();
      });
      return call(op, args, timeoutMs);
    };
  }

  stats(): LockstepStats {
    const b = this.block;
    const f = b.f64;
    return {
      strategy: lockstepSpec(this.config),
      seed: this.config.seed,
      platformNs: this.clock.now(),
      grants: f[LSH.F64_GRANTS]!,
      switches: f[LSH.F64_SWITCHES]!,
      advances: f[LSH.F64_ADVANCES]!,
      mmioWrites: f[LSH.F64_WRITES]!,
      writeHash: b.writeHash(),
      aborted: Atomics.load(b.i32, LSH.ABORT) !== 0 ? b.message() : null,
      replay: this.config.strategy === 'schedule' ? this.replayStats() : null,
    };
  }

  private replayStats(): ReplayStats {
    const f = this.block.f64;
    const diverged = f[LSH.F64_REPLAY_DIVERGED]!;
    const expected = f[LSH.F64_REPLAY_FIRST_EXPECTED]!;
    return {
      recordedWrites: countWrites(this.config.writers),
      matched: f[LSH.F64_REPLAY_MATCHED]!,
      diverged,
      firstDivergence: diverged === 0 ? null : { write: f[LSH.F64_REPLAY_FIRST_WRITE]!, expectedCpu: expected < 0 ? null : expected, actualCpu: f[LSH.F64_REPLAY_FIRST_ACTUAL]! },
    };
  }
}

const hosts = new WeakMap<SharedViews, LockstepHost>();

/** The lockstep-N statistics of a system booted with `lockstep` (null for any other). */
export function lockstepStats(sys: { views: SharedViews }): LockstepStats | null {
  return hosts.get(sys.views)?.stats() ?? null;
}
