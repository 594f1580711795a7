// The hardware worker of a lockstep-N system (System.boot({ cpus, lockstep })): the same Machine as
// hw/hw-worker.ts, on the shared virtual clock, driven by the coordinator (lockstep-coordinator.ts)
// instead of the free-running event loop. Between slices of coordination it turns its own event loop
// for control messages (fault injection, reports, stop).

import { parentPort, workerData } from 'node:worker_threads';
import { CTRL, SharedViews, type Layout } from '../src/machine/layout.ts';
import { LSH, LockstepBlock, SharedVirtualClock } from '../src/machine/lockstep-block.ts';
import { serveOps } from '../src/protocol/rpc.ts';
import { HW_OPS, type HwOps } from '../src/protocol/ops/hw.ts';
import { lockstepConfig, type LockstepNOptions } from '../src/protocol/lockstep.ts';
import { Machine, type MachineConfig } from './machine.ts';
import { hwOps } from './ops.ts';
import { Coordinator } from './lockstep-coordinator.ts';

interface LockstepHwWorkerData {
  sab: SharedArrayBuffer;
  layout: Layout;
  config: MachineConfig;
  lockstep: LockstepNOptions;
}

/** Longest stretch of coordination before a turn of the event loop. */
const YIELD_MS = 4;
/** Longest asynchronous sleep while nothing can run (the host wakes it earlier through COORD_SEQ). */
const IDLE_WAIT_MS = 20;

const { sab, layout, config, lockstep } = workerData as LockstepHwWorkerData;
const views = new SharedViews(sab, layout);
const block = new LockstepBlock(views);
const clock = new SharedVirtualClock(block.f64);
const machine = new Machine(views, clock, config);
const coord = new Coordinator(views, block, machine, clock, lockstepConfig(lockstep));
let stopping = false;

const ops = hwOps(machine, () => {
  stopping = true;
  coord.stop();
});
serveOps<HwOps, null>(parentPort!, HW_OPS, { ...ops, inject: (_, f) => (coord.inject(f), true) }, null);

async function loop(): Promise<void> {
  const i32 = block.i32;
  while (!stopping) {
    Atomics.add(views.ctrl, CTRL.HW_HEARTBEAT, 1);
    const seq = Atomics.load(i32, LSH.COORD_SEQ);
    const state = coord.run(YIELD_MS);
    if (state === 'busy') {
      await new Promise<void>((r) => setImmediate(r));
      continue;
    }
    // Nothing can run until the host (or a CPU starting an operation) moves COORD_SEQ.
    Atomics.add(i32, LSH.COORD_WAITING, 1);
    const w = Atomics.waitAsync(i32, LSH.COORD_SEQ, seq, IDLE_WAIT_MS);
    if (w.async) await w.value;
    Atomics.sub(i32, LSH.COORD_WAITING, 1);
    await new Promise<void>((r) => setImmediate(r));
  }
}

Atomics.store(views.ctrl, CTRL.HW_READY, 1);
parentPort!.postMessage({ type: 'ready' });
void loop().then(() => parentPort!.postMessage({ type: 'stopped' }));
