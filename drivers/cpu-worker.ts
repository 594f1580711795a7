// A simulated CPU: one worker thread running the kernel driver against the shared buffer.
//
// The main thread asks it to perform operations (drivers/ops: probe the SMMU, join an SMMU another CPU
// probed, run a workload, submit commands) over a message port; everything it does to the hardware
// goes through the platform (MMIO write port, register read views, DMA memory, interrupt words).
// Between requests the CPU idles: it waits on its wake word and takes interrupts routed to it.

import { parentPort, workerData } from 'node:worker_threads';
import { CPUW, SharedViews, type Layout } from '../src/machine/layout.ts';
import { WorkerPlatform } from './platform/worker.ts';
import { serveOps } from '../src/protocol/rpc.ts';
import { SPIN_MS, waitWhileEqual } from '../src/machine/wait.ts';
import { Kernel } from './kernel.ts';
import { servedOps, serveUntilStopped } from './extra-ops.ts';

interface CpuWorkerData {
  sab: SharedArrayBuffer;
  layout: Layout;
  cpu: number;
  /** Print kernel log lines to stderr as they happen. */
  echo: boolean;
  /** URL of a module of extra operations to serve next to the built-in ones (drivers/extra-ops.ts). */
  extraOps?: string;
}

const { sab, layout, cpu, echo, extraOps } = workerData as CpuWorkerData;
const views = new SharedViews(sab, layout);
const platform = new WorkerPlatform(views, cpu, echo ? (line) => process.stderr.write(`${line}\n`) : undefined);
const kernel = new Kernel(platform);
const served = await servedOps(extraOps);
serveOps(parentPort!, served.table, served.impls, kernel);

/** Longest synchronous sleep of an idle CPU before a turn of the event loop (control-message latency). */
const IDLE_SLICE_MS = 2;

/**
 * Idle loop: take interrupts routed here as they arrive. Like the hardware loop, it spins one
 * wake-up's worth first, then sleeps in a synchronous Atomics.wait (which wakes in tens of microseconds,
 * where Atomics.waitAsync takes hundreds) with the waiter flag raised, and lets messages in between
 * slices.
 */
async function idle(): Promise<void> {
  const wakeIdx = views.cpuWord(cpu, CPUW.WAKE);
  const waiting = { view: views.cpus, index: views.cpuWord(cpu, CPUW.WAITING) };
  // Spin before sleeping only after something happened; a CPU that stays idle just sleeps.
  let spinMs = SPIN_MS;
  while (!kernel.stopping) {
    const seen = Atomics.load(views.cpus, wakeIdx);
    platform.irqCheckpoint();
    const woken = waitWhileEqual(views.cpus, wakeIdx, seen, IDLE_SLICE_MS, waiting, spinMs);
    spinMs = woken ? SPIN_MS : 0;
    await new Promise<void>((r) => setImmediate(r));
  }
}

serveUntilStopped(cpu, idle);
