// A simulated CPU of a lockstep-N system (System.boot({ cpus, lockstep })): the same kernel and
// operations as drivers/cpu-worker.ts, on LockstepCpuPlatform. Each operation from the host runs while
// this CPU holds the token (opBegin .. opEnd); between operations the CPU waits, without the token, for
// the coordinator to grant it an interrupt turn, turning its event loop for the next request.

import { parentPort, workerData } from 'node:worker_threads';
import { SharedViews, type Layout } from '../src/machine/layout.ts';
import { LockstepCpuPlatform } from './platform/lockstep-cpu.ts';
import { InputError, show } from '../src/protocol/check.ts';
import type { RpcReply, RpcRequest } from '../src/protocol/rpc.ts';
import { KERNEL_OPS } from '../src/protocol/ops/index.ts';
import { lockstepConfig, type LockstepNOptions } from '../src/protocol/lockstep.ts';
import { Kernel } from './kernel.ts';
import { servedOps, serveUntilStopped } from './extra-ops.ts';

interface LockstepCpuWorkerData {
  sab: SharedArrayBuffer;
  layout: Layout;
  cpu: number;
  echo: boolean;
  extraOps?: string;
  lockstep: LockstepNOptions;
}

/** Longest wait for a grant before another look at the event loop's messages. */
const IDLE_WAIT_MS = 50;

const { sab, layout, cpu, echo, extraOps, lockstep } = workerData as LockstepCpuWorkerData;
const views = new SharedViews(sab, layout);
const platform = new LockstepCpuPlatform(views, cpu, lockstepConfig(lockstep), echo ? (line) => process.stderr.write(`${line}\n`) : undefined);
const kernel = new Kernel(platform);
const served = await servedOps(extraOps);
const OP_INDEX = new Map(Object.keys(KERNEL_OPS).map((k, i) => [k, i]));

/** Checks the request by its operation's checker and runs the implementation (as serveOps does). */
function perform(op: unknown, args: unknown): unknown {
  if (typeof op !== 'string' || !Object.hasOwn(served.table, op)) throw new Error(`unknown operation ${show(op)}`);
  const req = served.table[op]!.req(args ?? undefined, op);
  return served.impls[op]!(kernel, req);
}

// Every request but 'stop' runs holding the token; the host counted it when it posted it
// (src/host/lockstep-n.ts), so even a request refused by its checker is started and done here.
parentPort!.on('message', async (m: RpcRequest) => {
  if (m?.type !== 'call') return;
  const gated = m.op !== 'stop';
  let reply: RpcReply;
  try {
    let result: unknown;
    if (gated) platform.opBegin(OP_INDEX.get(String(m.op)) ?? -2);
    try {
      result = perform(m.op, m.args);
      if (result instanceof Promise) result = await result;
    } finally {
      if (gated) platform.opEnd();
    }
    reply = { type: 'reply', id: m.id, result };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    reply = { type: 'reply', id: m.id, error: { message: err.message, stack: err instanceof InputError ? undefined : err.stack } };
  }
  parentPort!.postMessage(reply);
});

/** Idle loop: interrupt turns when granted; otherwise an asynchronous wait, so requests get in. */
async function idle(): Promise<void> {
  const g = platform.grantWord();
  while (!kernel.stopping) {
    const seen = Atomics.load(g.view, g.index);
    try {
      if (platform.idleTurn()) continue;
    } catch (e) {
      // An interrupt handler failed: say so, like a kernel oops, and stay idle.
      platform.log('err', `cpu${cpu}: interrupt turn failed: ${(e as Error).message}`);
      if (platform.dead) process.stderr.write(`cpu${cpu}: ${(e as Error).message}\n`);
    }
    if (platform.dead) {
      await new Promise((r) => setTimeout(r, IDLE_WAIT_MS));
      continue;
    }
    Atomics.add(g.view, g.waiting, 1);
    const w = Atomics.waitAsync(g.view, g.index, seen, IDLE_WAIT_MS);
    if (w.async) await w.value;
    Atomics.sub(g.view, g.waiting, 1);
  }
}

serveUntilStopped(cpu, idle);
