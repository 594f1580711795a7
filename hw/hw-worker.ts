// The hardware worker: one thread runs every device model as an event loop.
//
// Each pass drains the MMIO write port (applying writes through the register maps) and runs the
// scheduler's due tasks and timers. When there is nothing to do it spins for about one wake-up's worth
// (SPIN_MS), then sleeps with Atomics.waitAsync on the wake word, with the waiter flag raised so that
// producers notify only then, and never longer than the next timer. Sleeping through waitAsync, and
// yielding every few milliseconds when busy, keeps the thread's own event loop free for control
// messages (fault injection, statistics, stop).

import { parentPort, workerData } from 'node:worker_threads';
import { CTRL, SharedViews, type Layout } from '../src/layout.ts';
import { WritePortConsumer } from '../src/mmio-port.ts';
import { ScaledClock, hostNowMs } from '../src/time.ts';
import { SPIN_MS } from '../src/wait.ts';
import { serveRpc } from '../src/rpc.ts';
import { validateFault } from '../src/faults.ts';
import { Machine, type MachineConfig } from './machine.ts';

interface HwWorkerData {
  sab: SharedArrayBuffer;
  layout: Layout;
  config: MachineConfig;
}

/** Longest stretch of busy work before yielding to this thread's event loop. */
const YIELD_MS = 4;
/** Longest sleep without re-checking (so a lost wake-up costs at most this). */
const MAX_SLEEP_MS = 20;

const { sab, layout, config } = workerData as HwWorkerData;
const views = new SharedViews(sab, layout);
const clock = new ScaledClock(views.ctrlF64);
const machine = new Machine(views, clock, config);
const port = new WritePortConsumer(views);
const ctrl = views.ctrl;
let stopping = false;
const apply = machine.write.bind(machine);

serveRpc(parentPort!, {
  inject: (f: unknown) => {
    machine.inject(validateFault(f));
    return true;
  },
  query: () => ({ trace: machine.ctx.trace.slice(), lastCmdqError: machine.smmu.cmdq.lastError }),
  stop: () => {
    stopping = true;
    return true;
  },
});

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

async function loop(): Promise<void> {
  let lastYield = hostNowMs();
  while (!stopping) {
    Atomics.add(ctrl, CTRL.HW_HEARTBEAT, 1);
    if (machine.hung) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const did = port.drain(apply) + machine.run(1024);
    const now = hostNowMs();
    if (did > 0) {
      if (now - lastYield > YIELD_MS) {
        await yieldToEventLoop();
        lastYield = hostNowMs();
      }
      continue;
    }
    // Idle: spin briefly, watching the write port and the next timer.
    const deadline = machine.sched.nextDeadline();
    const untilTimerMs = clock.hostMs(deadline - clock.now());
    if (untilTimerMs <= 0 || machine.sched.hasReady()) continue;
    const spinUntil = now + Math.min(SPIN_MS, untilTimerMs);
    let woke = false;
    for (let i = 0; ; i++) {
      if (port.ready()) {
        woke = true;
        break;
      }
      if ((i & 63) === 63 && hostNowMs() >= spinUntil) break;
    }
    if (woke) continue;
    // Sleep: raise the waiter flag, re-check, then wait (yielding to the event loop meanwhile).
    const seen = Atomics.load(ctrl, CTRL.HW_WAKE);
    Atomics.store(ctrl, CTRL.HW_WAITING, 1);
    if (!port.ready()) {
      const ms = Math.max(0.01, Math.min(MAX_SLEEP_MS, clock.hostMs(machine.sched.nextDeadline() - clock.now())));
      const w = Atomics.waitAsync(ctrl, CTRL.HW_WAKE, seen, ms);
      if (w.async) await w.value;
    }
    Atomics.store(ctrl, CTRL.HW_WAITING, 0);
    lastYield = hostNowMs();
  }
}

Atomics.store(ctrl, CTRL.HW_READY, 1);
parentPort!.postMessage({ type: 'ready' });
loop().then(
  () => parentPort!.postMessage({ type: 'stopped' }),
  (e) => {
    throw e;
  },
);
