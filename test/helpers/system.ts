// Test helpers for systems with real workers (System.boot): boot/shutdown around a test body, the
// kernel log accumulated across calls, hardware counters by opcode name, SMMU registers as the
// hardware exposes them.

import { System, type SystemOptions } from '../../src/host/system.ts';
import { STAT } from '../../src/machine/layout.ts';
import { OP, type CommandName } from '../../src/arch/smmu/commands.ts';
import { OFF } from '../../src/arch/smmu/regs.ts';
import type { LogEntry } from '../../src/protocol/log.ts';
import type { DriverStats, TlbiResult, TlbiWorkload } from '../../src/protocol/ops/smmu.ts';

export class TestSystem {
  private readonly entries: LogEntry[] = [];

  constructor(readonly sys: System) {}

  /** Every kernel log entry so far (all CPUs). */
  async log(): Promise<LogEntry[]> {
    this.entries.push(...(await this.sys.dmesg()));
    return this.entries;
  }

  /** Kernel log messages so far, optionally of one CPU only. */
  async messages(cpu?: number): Promise<string[]> {
    return (await this.log()).filter((e) => cpu === undefined || e.cpu === cpu).map((e) => e.msg);
  }

  exec(op: CommandName): number {
    return this.sys.views.stats[STAT.EXEC + OP[op]]!;
  }

  stat(slot: number): number {
    return this.sys.views.stats[slot]!;
  }

  /** Every command the hardware executed, whatever its opcode. */
  execTotal(): number {
    return this.sys.views.stats.slice(STAT.EXEC, STAT.EXEC + 256).reduce((a, b) => a + b, 0);
  }

  /** An SMMU register as the hardware exposes it. */
  reg(name: keyof typeof OFF): number {
    return Atomics.load(this.sys.views.smmu, OFF[name] >>> 2) >>> 0;
  }

  workload(cpu: number, w: TlbiWorkload): Promise<TlbiResult> {
    return this.sys.cpu(cpu).op('workload', w);
  }

  driverStats(cpu: number): Promise<DriverStats> {
    return this.sys.cpu(cpu).op('driverStats');
  }
}

/** Boots a system, runs the test body, and always shuts the workers down. */
export async function withSystem<T>(opts: SystemOptions, body: (s: TestSystem) => Promise<T>): Promise<T> {
  const sys = await System.boot(opts);
  try {
    return await body(new TestSystem(sys));
  } finally {
    await sys.shutdown();
  }
}

/** Commands (4 words each) as the plain number list the replay operation takes. */
export function words(...list: Uint32Array[]): number[] {
  return list.flatMap((c) => Array.from(c));
}

/**
 * Polls a condition the workers reach on their own (host time), failing with `what` after `ms`: for
 * effects with nothing to wait on, e.g. the queue draining after an error is acknowledged, or a line
 * appearing in a CPU's log.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
