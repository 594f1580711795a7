// Robustness (issue 11): nothing waits or grows for ever, nothing is lost silently, a dead worker is
// named, and a failure inside is one line.
//   7  a command fetch that always aborts: skip_err's retry backs off and gives up after the poll
//      timeout (threaded and lockstep), the kernel log is a bounded ring, and lockstep reports an
//      interrupt storm at one virtual instant instead of looping;
//   8  a dead worker (CPU or hardware) is named with what it was doing, and the others stop with that;
//  11  a failed boot leaves no timer behind, the RPC limit covers the longest platform wait of the
//      operation, and an error from inside is one line (its stack only with --debug);
//  15  a replay of thousands of illegal commands completes whatever the host's load.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import { withSystem, words } from './helpers/system.ts';
import { cmd } from './helpers/lockstep.ts';
import { System } from '../src/host/system.ts';
import { createLockstep, Hang } from '../src/host/lockstep.ts';
import { RPC_HOST_SLACK_MS } from '../src/host/rpc-limit.ts';
import { LOG_RING_LINES, LogRing, type LogEntry } from '../src/protocol/log.ts';
import { parseTopology, iommuMap } from '../src/protocol/topology.ts';
import { STAT } from '../src/machine/layout.ts';
import { CERROR } from '../src/arch/smmu/regs.ts';
import { TIMEOUT } from '../src/arch/time.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { POLL_SPIN_COUNT } from '../drivers/arm-smmu-v3/cmdq.ts';

const DEV = 'arm-smmu-v3 9050000.smmuv3: ';
const ETIMEDOUT = -110;
const dir = mkdtempSync(join(tmpdir(), 'smmulab-robustness-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Four TLBI_NSNH_ALL: a batch whose commands are easy to count. */
const batch = () => words(...Array.from({ length: 4 }, () => cmd({ op: 'TLBI_NSNH_ALL' })));

/** The worker threads of a system (hardware first, then one per CPU), to make one of them die. */
const workersOf = (sys: System) => (sys as unknown as { workers: Worker[] }).workers;

describe('7: a command fetch that always aborts', () => {
  it('threaded, GERROR on an idle CPU: retries back off and stop after the poll timeout; the SYNC is reported; clearing the fault lets a timed-out SYNC restart the queue', async () => {
    // Platform time 10x: the 1 s poll timeout is 100 ms of host time.
    await withSystem({ cpus: 2, timeScale: 10 }, async (s) => {
      await s.sys.probe({ irqCpu: 1 });
      const nsnh0 = s.exec('TLBI_NSNH_ALL');
      const syncs0 = s.exec('SYNC');
      await s.sys.inject({ kind: 'cmd-fetch-abort', trigger: { count: 1e9 } });
      // CPU 1 takes the GERROR interrupt while idle: in Linux it retries for ever, an interrupt storm.
      expect(await s.sys.cpu(0).op('issueBatch', { words: batch(), sync: true })).toBe(ETIMEDOUT);
      // (The CPU that gave up may still be finishing its last retry as the SYNC's poll ends.)
      await s.sys.cpu(0).op('sleep', { ns: TIMEOUT.SMMU_POLL / 2 });
      const aborts = s.stat(STAT.FETCH_ABORTS);
      // POLL_SPIN_COUNT at once, then a doubling delay from 1 us over 1 s (about 20), then at most one
      // per poll timeout; a storm makes thousands.
      expect(aborts).toBeGreaterThan(POLL_SPIN_COUNT);
      expect(aborts).toBeLessThan(POLL_SPIN_COUNT + 40);
      // Whichever CPU handled an error (CPU 1's interrupt, or CPU 0 when its SYNC poll timed out).
      const log = (await s.messages()).map((l) => l.replace(DEV, ''));
      const gaveUp = log.filter((l) => l.includes('giving up'));
      expect(gaveUp).toHaveLength(1);
      expect(gaveUp[0]).toMatch(/^command fetch at cons 0x[0-9a-f]{8} still aborts after \d+ retries over \d+ ms: giving up; the command queue stays stopped/);
      // Every hardware error once in the log and in the error records; the log stays small.
      expect(log.filter((l) => l.endsWith('): Abort on command fetch'))).toHaveLength(aborts);
      expect((await s.driverStats(1)).cmdqErrors.length + (await s.driverStats(0)).cmdqErrors.length).toBe(aborts);
      expect(log.length).toBeLessThan(8 * aborts);
      // What became of the queue is reported: the SYNC timed out, nothing ran.
      expect(log.filter((l) => l.startsWith('CMD_SYNC timeout'))).toHaveLength(1);
      expect(s.exec('TLBI_NSNH_ALL')).toBe(nsnh0);
      // Still stopped a while later: no retry without a CMD_SYNC timing out.
      await s.sys.cpu(0).op('sleep', { ns: 3 * TIMEOUT.SMMU_POLL });
      expect(s.stat(STAT.FETCH_ABORTS)).toBe(aborts);

      await s.sys.inject({ kind: 'clear' });
      // The next SYNC times out once, retries the fetch, and completes: every command ran exactly once.
      expect(await s.sys.cpu(0).op('issueBatch', { words: batch(), sync: true })).toBe(0);
      expect(s.exec('TLBI_NSNH_ALL')).toBe(nsnh0 + 8);
      expect(s.exec('SYNC')).toBe(syncs0 + 2);
      expect(s.reg('CMDQ_CONS') & 0xfffff).toBe(s.reg('CMDQ_PROD'));
    });
  });

  it('lockstep: a scenario with a fetch that aborts 1e9 times ends (it looped for ever at one virtual instant), every command executed or reported', async () => {
    const file = join(dir, 'abort-forever.json');
    writeFileSync(file, JSON.stringify({ summary: 'every command fetch aborts', workload: [{ do: 'ats-dma', rounds: 1 }], faults: [{ kind: 'cmd-fetch-abort', trigger: { count: 1e9 } }] }));
    const r = await runCli(['run', '--scenario', file, '--json'], 120_000);
    const out = JSON.parse(r.stdout);
    expect(out.hangs).toBe(0);
    expect(out.lostCommands).toBe(0);
    expect(out.duplicatedCommands).toBe(0);
    expect(out.problems.filter((p: string) => p.startsWith('command count') || p.startsWith('hang'))).toEqual([]);
    // The SYNCs timed out and were reported; the retries were paced (at most one per poll timeout once given up).
    expect(out.commandErrors.syncFailures).toBeGreaterThan(0);
    expect(out.faultsByKind['cmd-fetch-abort']).toBeLessThan(out.platformMs / 1000 + 2 * POLL_SPIN_COUNT + 40);
    expect(out.commandErrors.cerrors.CERROR_ABT).toBe(out.faultsByKind['cmd-fetch-abort']);
  });

  it('lockstep: an interrupt storm at one virtual instant is reported as a hang', () => {
    const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20 });
    try {
      let taken = 0;
      // A handler whose work raises its own interrupt again at once.
      ls.platform.requestIrq(100, 'storm', (v) => {
        taken++;
        ls.platform.irqc.raise(v);
      });
      const t = ls.platform.clock.now();
      ls.platform.irqc.raise(100);
      expect(() => ls.platform.irqCheckpoint()).toThrow(Hang);
      expect(ls.platform.clock.now()).toBe(t);
      expect(taken).toBeGreaterThan(1000);
      ls.platform.freeIrq(100);
    } finally {
      ls.dispose();
    }
  });

  it('the kernel log is a ring: a CPU that prints without end keeps its last lines and says how many it dropped', () => {
    const ring = new LogRing(4);
    const line = (i: number): LogEntry => ({ t: i, cpu: 3, level: 'info', msg: `line ${i}` });
    for (let i = 0; i < 3; i++) ring.push(line(i));
    const first = ring.since(0);
    expect(first.entries.map((e) => e.msg)).toEqual(['line 0', 'line 1', 'line 2']);
    for (let i = 3; i < 10; i++) ring.push(line(i));
    // A reader at line 3 missed lines 3..5; the ring kept 6..9.
    const next = ring.since(first.next);
    expect(next.entries.map((e) => e.msg)).toEqual(['** 3 lines dropped (the kernel log keeps the last 4) **', 'line 6', 'line 7', 'line 8', 'line 9']);
    expect(next.entries[0]).toMatchObject({ t: 6, cpu: 3, level: 'warn' });
    expect(ring.since(next.next)).toEqual({ entries: [], next: 10 });

    // The same through a CPU's platform, at its real size.
    const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: 8 << 20 });
    try {
      for (let i = 0; i < LOG_RING_LINES + 100; i++) ls.platform.log('info', `message ${i}`);
      const log = ls.platform.dmesg();
      expect(log).toHaveLength(LOG_RING_LINES + 1);
      expect(log[0]!.msg).toBe(`** 100 lines dropped (the kernel log keeps the last ${LOG_RING_LINES}) **`);
      expect(log[log.length - 1]!.msg).toBe(`message ${LOG_RING_LINES + 99}`);
    } finally {
      ls.dispose();
    }
  });
});

describe('8: a worker dies', () => {
  it('a CPU worker dies mid-workload: the other CPU stops at once naming it and what it was doing, not with "CMDQ full"', async () => {
    await withSystem({ cpus: 2 }, async (s) => {
      await s.sys.probe();
      const long = { batch: 8, durationNs: 60e9 };
      const w0 = s.sys.cpu(0).op('workload', long);
      const w1 = s.sys.cpu(1).op('workload', long);
      const r0 = w0.then(() => null, (e: Error) => ({ e, at: Date.now() }));
      const r1 = w1.then(() => null, (e: Error) => e);
      await new Promise((r) => setTimeout(r, 300));
      const killed = Date.now();
      // What an uncaught error or a resource limit does to the thread.
      await workersOf(s.sys)[2]!.terminate();
      const dead = await r1;
      expect(dead?.message).toBe('cpu1 workload: worker exited with code 1');
      const other = await r0;
      expect(other?.e.message).toBe("cpu0 workload: stopped: cpu1 died during 'workload': worker exited with code 1");
      // At once: not after CPU 0's own waits for a queue the dead CPU wedged ran out.
      expect(other!.at - killed).toBeLessThan(TIMEOUT.SMMU_POLL / 1e6);
      expect(s.sys.deathReason()).toBe("cpu1 died during 'workload': worker exited with code 1");
      // Later calls fail the same way, at once.
      await expect(s.sys.cpu(0).op('driverStats')).rejects.toThrow("cpu0 driverStats: stopped: cpu1 died during 'workload'");
    });
  });

  it('the hardware worker dies: the CPU stops naming it, instead of reporting CMD_SYNC timeouts until its workload ends', async () => {
    await withSystem({ cpus: 1, timeScale: 10 }, async (s) => {
      await s.sys.probe();
      const w = s.sys.cpu(0).op('workload', { batch: 8, durationNs: 30e9 }).then(
        (r) => r,
        (e: Error) => e,
      );
      await new Promise((r) => setTimeout(r, 200));
      await workersOf(s.sys)[0]!.terminate();
      const got = await w;
      expect(got).toBeInstanceOf(Error);
      expect((got as Error).message).toBe('cpu0 workload: stopped: hardware worker died between operations: worker exited with code 1');
    });
  });
});

describe('11: boot failures, RPC limits and errors from inside', () => {
  it('a worker that fails at boot fails the boot at once and leaves no boot timer behind', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const t0 = Date.now();
    // The hardware worker refuses a negative ACK latency; the CPU workers start fine.
    await expect(System.boot({ cpus: 2, ackLatencyNs: -1 })).rejects.toThrow(/^hardware worker failed to start: ackLatencyNs: -1 must be a non-negative number of platform ns$/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    // Each worker's 30 s boot timer kept the process alive (a CLI exited 30 s later).
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it("the host's limit for pciInit covers a function that answers Configuration RRS for ever (Linux waits 60 s)", async () => {
    const topology = parseTopology({ ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', vendorId: 1 }] }] }, 'topology');
    // How long pciInit waits for it, in platform time (lockstep: exact, and instant).
    const ls = createLockstep({ features: DEFAULT_FEATURES, memBytes: 16 << 20, topology });
    let waitedNs: number;
    try {
      await ls.cpu(0).op('probe', { opts: {}, initPages: true });
      const t0 = ls.platform.clock.now();
      const found = await ls.cpu(0).op('pciInit', { iommuMap: iommuMap(topology), strict: true });
      waitedNs = ls.platform.clock.now() - t0;
      expect(found.map((d) => d.bdf)).not.toContain('01:00.0');
      expect(ls.platform.dmesg().some((e) => e.msg.includes('01:00.0: not ready after') && e.msg.endsWith('giving up'))).toBe(true);
    } finally {
      ls.dispose();
    }
    expect(waitedNs).toBeGreaterThan(TIMEOUT.RESET_READY_POLL);
    // At time scale 1 that is as many host ms; the host's fixed 30 s limit called it "did not answer".
    await withSystem({ cpus: 1, topology, timeScale: 1 }, async (s) => {
      const limit = s.sys.cpu(0).limitMs!('pciInit');
      expect(limit).toBeGreaterThan(waitedNs / 1e6 + RPC_HOST_SLACK_MS);
      // Scaled: 10x faster platform time, a tenth of the platform part.
      expect(limit).toBeGreaterThan(s.sys.cpu(0).limitMs!('driverStats'));
    });
    await withSystem({ cpus: 1, topology, timeScale: 10 }, async (s) => {
      expect(s.sys.cpu(0).limitMs!('pciInit')).toBeGreaterThan(waitedNs / 1e7 + RPC_HOST_SLACK_MS);
      expect(s.sys.cpu(0).limitMs!('pciInit')).toBeLessThan(waitedNs / 1e6 + RPC_HOST_SLACK_MS);
    });
  });

  it('running out of DMA memory is one line on stderr, exit 1; its stack traces only with --debug', async () => {
    const args = ['run', '--mem', '1', '--workload', 'dma-map', '--seconds', '0.2', '--buffers', '64', '--buffer-bytes', '1000000'];
    const r = await runCli(args, 120_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n'), r.stderr).toEqual([expect.stringMatching(/^smmulab run: cpu\d dmaMapWorkload: dma-map buffer: no \d+ free contiguous pages \(\d+\/\d+ in use\)$/)]);
    const d = await runCli([...args, '--debug'], 120_000);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/\n {4}at PageAllocator\.alloc /);
    expect(d.stderr).toMatch(/--- in cpu\d ---/);
  });
});

describe('15: a replay of thousands of illegal commands', () => {
  const N = 3000;
  const file = join(dir, 'illegal.jsonl');
  // A reserved opcode (0x0b) with the line number in the upper word: CERROR_ILL every time.
  writeFileSync(file, Array.from({ length: N }, (_, i) => JSON.stringify({ w0: `0x${(i + 1).toString(16)}0000000b`, w1: '0x0' })).join('\n') + '\n');

  async function replayOnce(): Promise<void> {
    const r = await runCli(['replay', file, '--json'], 180_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.commands).toBe(N);
    expect(out.executedByOpcode).toEqual({});
    expect(out.errors).toHaveLength(N);
    expect(out.errors.every((e: { line: number; code: number }, i: number) => e.line === i + 1 && e.code === CERROR.ILL)).toBe(true);
  }

  it('completes every time, on an idle host and with a busy loop on another thread', async () => {
    await replayOnce();
    await replayOnce();
    // A thread that spins all along competes with the hardware worker and CPU 1 for the cores.
    const busy = new Worker('for (;;) {}', { eval: true });
    try {
      await replayOnce();
      await replayOnce();
    } finally {
      await busy.terminate();
    }
  }, 600_000);
});
