// A simulated CPU: one worker thread running the kernel driver against the shared buffer.
//
// The main thread asks it to do things (probe the SMMU, join one another CPU probed, run a workload,
// submit commands) over a message port; everything it does to the hardware goes through the platform
// (MMIO write port, register read views, DMA memory, interrupt words). Between requests the CPU idles:
// it sleeps on its wake word and takes interrupts routed to it as they arrive.

import { parentPort, workerData } from 'node:worker_threads';
import { CPUW, SharedViews, type Layout } from '../src/layout.ts';
import { WorkerPlatform } from '../src/platform-worker.ts';
import { serveRpc } from '../src/rpc.ts';
import { formatLog, type LogEntry } from '../src/cpu.ts';
import { ArmSmmuDevice, type SmmuDriverOptions, type SmmuShared } from './arm-smmu-v3/smmu.ts';
import { runTlbiWorkload, type TlbiWorkload } from './workloads/cmdq-stress.ts';
import { replayCommands, type ReplayRequest } from './workloads/replay.ts';

interface CpuWorkerData {
  sab: SharedArrayBuffer;
  layout: Layout;
  cpu: number;
  /** Print kernel log lines to stderr as they happen. */
  echo: boolean;
}

const { sab, layout, cpu, echo } = workerData as CpuWorkerData;
const views = new SharedViews(sab, layout);
const platform = new WorkerPlatform(views, cpu, echo ? (line) => process.stderr.write(`${line}\n`) : undefined);
let smmu: ArmSmmuDevice | null = null;
let stopping = false;
let logRead = 0;

function device(): ArmSmmuDevice {
  if (!smmu) throw new Error(`cpu${cpu}: no SMMU probed or attached on this CPU`);
  return smmu;
}

serveRpc(parentPort!, {
  probe: (args: { opts: SmmuDriverOptions; initPages: boolean }) => {
    if (args.initPages) platform.pages.init();
    smmu = ArmSmmuDevice.probe(platform, args.opts);
    return smmu.shared;
  },
  attach: (shared: SmmuShared) => {
    smmu = ArmSmmuDevice.attach(platform, shared);
    return true;
  },
  requestIrqs: () => {
    device().requestIrqs();
    return true;
  },
  workload: (w: TlbiWorkload) => runTlbiWorkload(device(), w),
  replay: (r: ReplayRequest) => replayCommands(device(), r),
  /** New kernel log entries since the last call. */
  dmesg: (): LogEntry[] => {
    const all = platform.dmesg();
    const fresh = all.slice(logRead);
    logRead = all.length;
    return fresh;
  },
  /** What this CPU's driver has seen: command errors it handled and global errors. */
  driverStats: () => {
    const d = device();
    return {
      cmdqErrors: d.errorLog.slice(),
      gerrors: Object.fromEntries(d.gerrors),
      issued: d.cmdq.issuedCmds,
      syncs: d.cmdq.syncs,
      syncTimeouts: d.cmdq.syncTimeouts,
    };
  },
  stop: () => {
    stopping = true;
    return true;
  },
});

/** Idle loop: sleep on the wake word (letting messages in) and take interrupts routed here. */
async function idle(): Promise<void> {
  const wakeIdx = views.cpuWord(cpu, CPUW.WAKE);
  const waitingIdx = views.cpuWord(cpu, CPUW.WAITING);
  while (!stopping) {
    const seen = Atomics.load(views.cpus, wakeIdx);
    platform.irqCheckpoint();
    Atomics.add(views.cpus, waitingIdx, 1);
    const w = Atomics.waitAsync(views.cpus, wakeIdx, seen, 20);
    if (w.async) await w.value;
    Atomics.sub(views.cpus, waitingIdx, 1);
  }
}

parentPort!.postMessage({ type: 'ready', cpu });
idle().then(
  () => parentPort!.postMessage({ type: 'stopped', cpu }),
  (e) => {
    process.stderr.write(`cpu${cpu}: idle loop failed: ${String(e)}\n${platform.dmesg().map(formatLog).join('\n')}\n`);
    throw e;
  },
);
