// The small platform interface driver code runs against: MMIO, DMA memory, interrupts, delays, clock.
//
// Two implementations exist: WorkerPlatform (drivers/platform/worker.ts), where each simulated CPU is a
// worker thread and the hardware runs in its own worker, and LockstepPlatform (src/host/lockstep.ts), where
// driver and hardware share one thread, MMIO doorbells run the hardware synchronously and time is
// virtual. Driver code sees only this interface, so it runs unchanged on both.

import { CpuCore, type IrqHandler } from './cpu.ts';
import type { LogEntry, LogLevel } from '../../src/protocol/log.ts';
import { PageAllocator, PhysMem } from '../../src/machine/dma.ts';
import { InterruptController } from '../../src/machine/irq.ts';
import { FailPoints } from '../../src/protocol/fail-points.ts';
import type { Sanitizer } from '../../src/machine/sanitizer.ts';
import { createTracer, type Tracer } from '../../src/protocol/tracer.ts';
import { mmioRegion, type SharedViews } from '../../src/machine/layout.ts';
import type { Clock } from '../../src/machine/clock.ts';
import { hex } from '../../src/arch/bits.ts';

/** A mapped MMIO region (ioremap): offsets are relative to its base. */
export interface IoMem {
  readonly base: number;
  readonly size: number;
  read32(off: number): number;
  write32(off: number, v: number): void;
  read64(off: number): bigint;
  write64(off: number, v: bigint): void;
  read16(off: number): number;
  write16(off: number, v: number): void;
  read8(off: number): number;
  write8(off: number, v: number): void;
}

export interface Platform {
  readonly cpu: number;
  readonly ncpus: number;
  readonly clock: Clock;
  readonly mem: PhysMem;
  readonly pages: PageAllocator;
  readonly irqc: InterruptController;
  /** The driver's should-fail points (drivers/fault-inject.ts). */
  readonly failPoints: FailPoints;
  /** What the DMA use-after-free sanitizer knows of the driver's domains and mappings. */
  readonly sanitizer: Sanitizer;
  /** Bytes of the ECAM window at PA.ECAM_BASE (firmware's MCFG bus range, 1 MiB per bus). */
  readonly ecamBytes: number;
  /** The driver's trace points (src/protocol/trace-points.ts), into this CPU's trace ring. */
  readonly trace: Tracer<'driver'>;
  /** The shared statistics region: counters and histograms the host reads (src/machine/layout.ts STAT). */
  readonly stats: Float64Array;

  /** Maps a device's registers; throws if pa..pa+size is not a device region. */
  ioremap(pa: number, size: number): IoMem;

  /** One iteration of a busy-wait loop (cpu_relax). */
  cpuRelax(): void;
  /**
   * A point inside a lock-free algorithm where another CPU may run (a race window no yield point marks):
   * free on real concurrency and with one CPU; a yield point of no duration in lockstep with N CPUs, so
   * that a strategy can explore the window.
   */
  interleave(): void;
  /** Busy-waits for `ns` of platform time (udelay/ndelay); interrupts keep their state. */
  delay(ns: number): void;
  /** Sleeps for `ns` of platform time (msleep); an interrupts-on point, so pending IRQs are taken. */
  sleep(ns: number): void;
  /** Waits for an event (WFE): returns when the SEV word moves or after timeoutNs. */
  wfe(timeoutNs: number): void;
  /**
   * Waits while the 32-bit DRAM word at `pa` equals `expected`, up to timeoutNs; true when it changed.
   * The hardware's MSI writes into memory wake such waiters.
   */
  waitMemWhileEqual(pa: number, expected: number, timeoutNs: number): boolean;

  /** Interrupt mask of this CPU (local_irq_save / local_irq_restore). */
  localIrqSave(): boolean;
  localIrqRestore(wasEnabled: boolean): void;
  irqsEnabled(): boolean;
  /** Binds a handler to a vector and routes the vector to this CPU. */
  requestIrq(vector: number, name: string, handler: IrqHandler): void;
  freeIrq(vector: number): void;
  /** Takes pending interrupts now if interrupts are on (the kernel's interrupts-on points call this). */
  irqCheckpoint(): void;
  /**
   * Runs `work` at this CPU's interrupts-on points, from delayNs of platform time on, until it returns
   * true (a runnable kernel thread or workqueue item waiting for the CPU).
   */
  deferWork(work: () => boolean, delayNs?: number): void;

  /** Appends a kernel log line (dmesg style) for this CPU. */
  log(level: LogLevel, msg: string): void;
  /** This CPU's kernel log so far (the lines its ring kept, after a "N lines dropped" marker). */
  dmesg(): readonly LogEntry[];
  /** The log lines from sequence number `from` on (a reader's cursor) and the sequence to read next. */
  dmesgSince(from: number): { entries: LogEntry[]; next: number };
}

/** Where an IoMem's reads come from and its writes go. */
interface IoBackend {
  /** The read view of the region, as the hardware exposes it. */
  view: Int32Array;
  /** Called before every read (e.g. to wait until this CPU's posted writes are applied). */
  beforeRead(): void;
  /** Posts a write of `size` bytes at physical address pa. */
  post(pa: number, size: number, lo: number, hi: number): void;
}

/** IoMem over a read view: reads load from the view, writes go to the backend's write path. */
class IoRegion implements IoMem {
  constructor(
    readonly base: number,
    readonly size: number,
    /** Dword index of `base` inside backend.view. */
    private readonly first: number,
    private readonly b: IoBackend,
  ) {}

  private check(off: number, bytes: number): void {
    if (off < 0 || off + bytes > this.size || off % bytes !== 0) {
      throw new RangeError(`MMIO access of ${bytes} bytes at offset ${hex(off, 0)} outside or misaligned in region ${hex(this.base, 0)}+${hex(this.size, 0)}`);
    }
  }

  read32(off: number): number {
    this.check(off, 4);
    this.b.beforeRead();
    return Atomics.load(this.b.view, this.first + (off >>> 2)) >>> 0;
  }

  write32(off: number, v: number): void {
    this.check(off, 4);
    this.b.post(this.base + off, 4, v | 0, 0);
  }

  read64(off: number): bigint {
    this.check(off, 8);
    this.b.beforeRead();
    const i = this.first + (off >>> 2);
    const lo = Atomics.load(this.b.view, i) >>> 0;
    const hi = Atomics.load(this.b.view, i + 1) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  write64(off: number, v: bigint): void {
    this.check(off, 8);
    this.b.post(this.base + off, 8, Number(v & 0xffffffffn) | 0, Number((v >> 32n) & 0xffffffffn) | 0);
  }

  read16(off: number): number {
    this.check(off, 2);
    this.b.beforeRead();
    return (Atomics.load(this.b.view, this.first + (off >>> 2)) >>> ((off & 2) * 8)) & 0xffff;
  }

  write16(off: number, v: number): void {
    this.check(off, 2);
    this.b.post(this.base + off, 2, v & 0xffff, 0);
  }

  read8(off: number): number {
    this.check(off, 1);
    this.b.beforeRead();
    return (Atomics.load(this.b.view, this.first + (off >>> 2)) >>> ((off & 3) * 8)) & 0xff;
  }

  write8(off: number, v: number): void {
    this.check(off, 1);
    this.b.post(this.base + off, 1, v & 0xff, 0);
  }
}

/**
 * What both platforms share: memory, the page allocator, interrupts, should-fail points and trace
 * points over the shared buffer, the CPU's interrupt core and log, and ioremap over the device
 * regions. Subclasses provide the write path, the read barrier and how time passes (their clock).
 */
export abstract class PlatformBase<C extends Clock = Clock> implements Platform {
  readonly ncpus: number;
  readonly mem: PhysMem;
  readonly pages: PageAllocator;
  readonly irqc: InterruptController;
  readonly failPoints: FailPoints;
  readonly sanitizer: Sanitizer;
  readonly ecamBytes: number;
  readonly trace: Tracer<'driver'>;
  readonly stats: Float64Array;
  protected readonly core: CpuCore;

  constructor(
    protected readonly views: SharedViews,
    readonly cpu: number,
    readonly clock: C,
    echo?: (line: string, e: LogEntry) => void,
  ) {
    this.ncpus = views.layout.ncpus;
    this.mem = new PhysMem(views);
    this.sanitizer = views.sanitizer;
    this.ecamBytes = views.ecam.byteLength;
    this.pages = new PageAllocator(this.mem, views.sanitizer);
    this.irqc = new InterruptController(views);
    this.failPoints = new FailPoints(views);
    this.trace = createTracer(views, 'driver', 1 + cpu, clock);
    this.stats = views.stats;
    // (drivers/fault-inject.ts's shouldFail, which this module cannot import: it imports this one.)
    this.pages.shouldFail = () => {
      const fail = this.failPoints.shouldFail('page-alloc', this.clock.now());
      if (fail) this.trace.fault_should_fail?.('page-alloc');
      return fail;
    };
    this.core = new CpuCore(cpu, this.irqc, clock, this.trace, echo);
  }

  protected abstract post(pa: number, size: number, lo: number, hi: number): void;
  protected abstract beforeRead(): void;

  ioremap(pa: number, size: number): IoMem {
    const r = mmioRegion(this.views, pa, size);
    if (!r) throw new Error(`ioremap: PA ${hex(pa, 0)}+${hex(size, 0)} is not a device region`);
    return new IoRegion(pa, size, r.first, {
      view: r.view,
      beforeRead: () => this.beforeRead(),
      post: (a, s, lo, hi) => this.post(a, s, lo, hi),
    });
  }

  abstract cpuRelax(): void;
  interleave(): void {}
  abstract delay(ns: number): void;
  abstract sleep(ns: number): void;
  abstract wfe(timeoutNs: number): void;
  abstract waitMemWhileEqual(pa: number, expected: number, timeoutNs: number): boolean;

  localIrqSave(): boolean {
    return this.core.localIrqSave();
  }
  localIrqRestore(wasEnabled: boolean): void {
    this.core.localIrqRestore(wasEnabled);
  }
  irqsEnabled(): boolean {
    return this.core.irqsEnabled();
  }
  requestIrq(vector: number, name: string, handler: IrqHandler): void {
    this.core.requestIrq(vector, name, handler);
  }
  freeIrq(vector: number): void {
    this.core.freeIrq(vector);
  }
  deferWork(work: () => boolean, delayNs?: number): void {
    this.core.deferWork(work, delayNs);
  }
  irqCheckpoint(): void {
    this.core.schedule();
  }
  log(level: LogLevel, msg: string): void {
    this.core.log(level, msg);
  }
  /** This CPU's kernel log. */
  dmesg(): LogEntry[] {
    return this.core.logRing.all();
  }
  dmesgSince(from: number): { entries: LogEntry[]; next: number } {
    return this.core.logRing.since(from);
  }
}
