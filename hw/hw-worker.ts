// The hardware worker: one thread runs every device model as an event loop.
//
// Each pass drains the MMIO write port (applying writes through the register maps) and runs the
// scheduler's due tasks and timers. The wake policy matters as much as the models' speed:
// - after any activity the loop stays hot, spinning on the write port for HOT_MS, so a driver that
//   comes back within that time (the next batch of a workload) never pays for a wake-up;
// - once idle it still spins one wake-up's worth (SPIN_MS) and then sleeps in a synchronous
//   Atomics.wait on the wake word, with the waiter flag raised so producers notify only then. The wait
//   is synchronous because it wakes in tens of microseconds; an asynchronous one resolves through the
//   event loop, slow enough for both sides to fall asleep on every round trip;
// - sleeps are sliced (SLEEP_SLICE_MS, never past the next timer) and every slice, like every YIELD_MS of
//   busy work, ends with a turn of the thread's own event loop for control messages (fault injection,
//   statistics, stop).
// When more threads spin than the host has cores, staying hot steals the core a driver CPU needs, so
// the hot window shrinks to a tenth.

import { availableParallelism } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { CTRL, SharedViews, type Layout } from '../src/machine/layout.ts';
import { WritePortConsumer } from '../src/machine/mmio-port.ts';
import { ScaledClock, hostNowMs } from '../src/machine/clock.ts';
import { SPIN_MS } from '../src/machine/wait.ts';
import { serveOps } from '../src/protocol/rpc.ts';
import { HW_OPS, type HwOps } from '../src/protocol/ops/hw.ts';
import { Machine, type MachineConfig } from './machine.ts';
import { hwOps } from './ops.ts';

interface HwWorkerData {
  sab: SharedArrayBuffer;
  layout: Layout;
  config: MachineConfig;
}

/** Longest stretch of busy work before yielding to this thread's event loop. */
const YIELD_MS = 4;
/** Longest synchronous sleep before a turn of the event loop (bounds control-message latency). */
const SLEEP_SLICE_MS = 2;

const { sab, layout, config } = workerData as HwWorkerData;
const views = new SharedViews(sab, layout);
const clock = new ScaledClock(views.ctrlF64);
const machine = new Machine(views, clock, config);
const port = new WritePortConsumer(views);
const ctrl = views.ctrl;
let stopping = false;
const apply = machine.write.bind(machine);
/** Spinning threads: this one and every driver CPU (the main thread mostly sleeps). */
const HOT_MS = layout.ncpus + 1 <= availableParallelism() ? 1 : 0.1;

serveOps<HwOps, null>(parentPort!, HW_OPS, hwOps(machine, () => (stopping = true)), null);

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

async function loop(): Promise<void> {
  let lastYield = hostNowMs();
  let lastWork = lastYield;
  while (!stopping) {
    Atomics.add(ctrl, CTRL.HW_HEARTBEAT, 1);
    if (machine.hung) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const did = port.drain(apply) + machine.run(1024);
    let now = hostNowMs();
    if (did > 0) {
      lastWork = now;
      if (now - lastYield > YIELD_MS) {
        await yieldToEventLoop();
        lastYield = hostNowMs();
      }
      continue;
    }
    if (machine.sched.hasReady()) continue;
    const untilTimerMs = clock.hostMs(machine.sched.nextDeadline() - clock.now());
    if (untilTimerMs <= 0) continue;
    // Spin while hot (recent work) or for one wake-up's worth, but not past the next timer.
    const spinUntil = now + Math.min(Math.max(lastWork + HOT_MS - now, SPIN_MS), untilTimerMs);
    let woke = false;
    for (let i = 0; ; i++) {
      if (port.ready()) {
        woke = true;
        break;
      }
      if ((i & 63) === 63) {
        now = hostNowMs();
        if (now >= spinUntil) break;
      }
    }
    if (woke || now - lastYield > YIELD_MS) {
      if (!woke) {
        await yieldToEventLoop();
        lastYield = hostNowMs();
      }
      continue;
    }
    // Sleep: raise the waiter flag, re-check, then wait synchronously for a write or the next timer.
    const seen = Atomics.load(ctrl, CTRL.HW_WAKE);
    Atomics.store(ctrl, CTRL.HW_WAITING, 1);
    if (!port.ready()) {
      const ms = Math.min(SLEEP_SLICE_MS, clock.hostMs(machine.sched.nextDeadline() - clock.now()));
      if (ms > 0) Atomics.wait(ctrl, CTRL.HW_WAKE, seen, ms);
    }
    Atomics.store(ctrl, CTRL.HW_WAITING, 0);
    await yieldToEventLoop();
    lastYield = hostNowMs();
  }
}

Atomics.store(ctrl, CTRL.HW_READY, 1);
parentPort!.postMessage({ type: 'ready' });
// A failure in a device model rejects the loop; unhandled, it ends the worker with that error.
void loop().then(() => parentPort!.postMessage({ type: 'stopped' }));
