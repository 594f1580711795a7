// The one SharedArrayBuffer both sides share: its regions and the typed views on them.
//
// SAB regions, in order (each 4 KiB aligned):
//   control     clock epoch and scale, hardware wake word and waiter flag, SEV event word, shutdown flag
//   writePort   the MMIO write port: a multi-producer ring every driver CPU pushes its register writes
//               into, drained in order by the hardware worker (see mmio-port.ts)
//   cpus        one block per simulated CPU: wake word, waiter flag, pending interrupt bitmap
//   irq         interrupt routing: vector -> CPU
//   stats       counters (Float64): hardware per-opcode executions, errors, driver issue counts
//   failPoints  the driver's faults: should-fail points and their triggers (src/protocol/fail-points.ts)
//   sanitizer   the DMA use-after-free sanitizer: domains, mappings, page owners (sanitizer.ts)
//   trace       enabled trace points, and a trace ring per producer (trace-ring.ts)
//   smmu        SMMUv3 register pages 0 and 1 as the hardware exposes them (the "read view")
//   ecam        PCIe configuration space, 4 KiB per function (4 buses)
//   bars        PCIe BAR window (endpoint registers)
//   platdev     registers of non-PCI platform devices (4 KiB each)
//   dram        DMA-able physical memory
//
// The physical address map the driver sees is architecture (src/arch/platform.ts); this module only
// places the device regions' read views in the buffer.

import { hex } from '../arch/bits.ts';
import { TRACE, checkRingRecords, traceRingBytes } from './trace-ring.ts';
import { Sanitizer, sanitizerBytes } from './sanitizer.ts';
import { BAR_BYTES, ECAM_BUS_BYTES, ECAM_MAX_BUSES, IRQ_VECTORS, PA, PAGE_SIZE, PLATDEV_BYTES, SMMU_BYTES } from '../arch/platform.ts';

export const MAX_CPUS = 16;

/** Control block word indices (Int32). */
export const CTRL = {
  MAGIC: 0,
  NCPUS: 1,
  SHUTDOWN: 2,
  HW_WAKE: 3,
  HW_WAITING: 4,
  HW_READY: 5,
  /** Incremented by the hardware on CMD_SYNC CS=SEV and other wake-up events (WFE model). */
  SEV: 6,
  /** Number of CPUs sleeping in Atomics.wait on SEV or a DRAM word (skip notify when 0). */
  MEM_WAITERS: 7,
  /** Hardware heartbeat: incremented by every pass of the hardware loop. */
  HW_HEARTBEAT: 8,
  /**
   * Float64 slots (Float64Array indices, i.e. byte offset / 8) for the clock: epoch in host ms and the
   * platform time scale. They occupy Int32 words 16..19, clear of every word above.
   */
  F64_EPOCH_MS: 8,
  F64_SCALE: 9,
  /** Bytes 1024.. of the control page: the lockstep-N block (src/machine/lockstep-block.ts). */
  LOCKSTEP_BYTE: 1024,
} as const;
const MAGIC = 0x534d4d55; // "SMMU"

/** Write-port ring: header words, then entries of WP_ENTRY_WORDS Int32 each. */
export const WP = {
  RESERVE: 0, // next ticket to hand out (producers: Atomics.add)
  CONSUMED: 16, // tickets consumed by the hardware (own cache line)
  WAITERS: 17, // CPUs sleeping on CONSUMED
  HEADER_WORDS: 32,
  ENTRIES: 4096,
  ENTRY_WORDS: 8, // [stamp, pa, size, lo, hi, cpu, 0, 0]
} as const;

/** Per-CPU block word indices (Int32), CPU_BLOCK_WORDS each. */
export const CPUW = {
  WAKE: 0,
  WAITING: 1,
  LAST_TICKET: 2,
  PENDING: 16, // IRQ_VECTORS / 32 words of pending-interrupt bits, own cache line
  IRQ_SEQ: 24, // bumped after each pending bit is set (same line): a CPU polls one word, not the bitmap
  BLOCK_WORDS: 64,
} as const;

/** Interrupt routing words (Int32): per vector, the target CPU and an enable bit; then latched edges. */
export const IRQW = {
  ROUTE: 0, // IRQ_VECTORS words: bits [7:0] CPU, bit 8 enabled
  ENABLED: 1 << 8,
  LATCHED: IRQ_VECTORS, // IRQ_VECTORS / 32 words: edges raised while the vector was disabled
  WORDS: IRQ_VECTORS + IRQ_VECTORS / 32,
} as const;

/** Stats slots (Float64 indices). */
export const STAT = {
  /** Hardware: commands executed, by opcode (256 slots). */
  EXEC: 0,
  /** Hardware: command errors by CERROR code (8 slots). */
  CERROR: 256,
  SYNC_DONE: 264,
  MMIO_WRITES: 265,
  MSI_WRITES: 266,
  GERROR_RAISED: 267,
  FETCH_ABORTS: 268,
  IRQS_RAISED: 269,
  /** The sanitizer: DMA that reached a page its domain no longer maps, and DMA in a lazy flush window. */
  SAN_UAF: 270,
  SAN_LAZY: 271,
  /** Translation statistics (issue 3 onwards) start here. */
  XLATE: 512,
  /** Events recorded, by event type (256 slots). */
  EVENTS: 768,
  /** Driver: commands issued per CPU and opcode (MAX_CPUS x 256). */
  DRV_ISSUED: 1024,
  /** Driver: CMD_SYNCs completed per CPU. */
  DRV_SYNCS: 1024 + MAX_CPUS * 256,
  DRV_SYNC_TIMEOUTS: 1024 + MAX_CPUS * 256 + MAX_CPUS,
  /** Driver: CMD_SYNC waits per CPU, a power-of-two histogram each (MAX_CPUS x POW2_BUCKETS, histogram.ts). */
  DRV_SYNC_WAIT: 1024 + MAX_CPUS * 256 + 2 * MAX_CPUS,
  /** PCIe functions and ATS (512 slots; offsets in src/machine/pcie-stats.ts). */
  PCIE: 6144,
  SLOTS: 8192,
} as const;

/** Named translation statistics (Float64 slots from STAT.XLATE; events by type stay at STAT.EVENTS + type). */
export const XSTAT = {
  /** Translations performed (one per page-sized piece of a transaction, SMMUEN=1). */
  TRANSLATIONS: STAT.XLATE + 0,
  IOTLB_HITS: STAT.XLATE + 1,
  IOTLB_MISSES: STAT.XLATE + 2,
  /** A walk that started from a cached table descriptor counts one hit; one from the base, one miss. */
  WALK_HITS: STAT.XLATE + 3,
  WALK_MISSES: STAT.XLATE + 4,
  /** STE and CD lookups answered by / missing the configuration cache. */
  CONFIG_HITS: STAT.XLATE + 5,
  CONFIG_MISSES: STAT.XLATE + 6,
  /** Structure fetches from memory: STEs (with L1STDs), CDs (with L1CDs), translation table descriptors. */
  STE_FETCHES: STAT.XLATE + 7,
  CD_FETCHES: STAT.XLATE + 8,
  DESC_READS: STAT.XLATE + 9,
  /** Event records written to the queue, and records lost (queue full, disabled, or in abort error). */
  EVENTS_WRITTEN: STAT.XLATE + 10,
  EVENTS_LOST: STAT.XLATE + 11,
  /** Times PROD.OVFLG was toggled (7.4). */
  EVENTQ_OVERFLOWS: STAT.XLATE + 12,
  ATS_REQUESTS: STAT.XLATE + 13,
  TRANSLATED_ACCESSES: STAT.XLATE + 14,
  /** Transactions terminated by the SMMU (with or without an event). */
  DMA_ABORTS: STAT.XLATE + 15,
  DMA_BYTES: STAT.XLATE + 16,
  /** Transfers completed by the DMA test engines (hw/testdev.ts). */
  TESTDEV_TRANSFERS: STAT.XLATE + 17,
} as const;

/**
 * The driver's faults (src/protocol/fail-points.ts): FP.HEADER_WORDS of counters (fail-nth, calls and
 * failures per should-fail point, the driver's recovery events the hardware waits for), then FP.CELLS
 * trigger cells of FP.CELL_WORDS words.
 */
export const FP = {
  HEADER_WORDS: 64,
  /** fail-nth: the call that fails (0: off), and the calls counted so far. */
  NTH: 0,
  NTH_CALLS: 1,
  /** Times the driver entered recovery, and the RID of the last device it recovered. */
  RECOVERIES: 2,
  RECOVERY_RID: 3,
  /** Per should-fail point (FP.POINTS of them): calls that failed. */
  HITS: 8,
  POINTS: 32,
  CELLS: 64,
  CELL_WORDS: 24,
} as const;

export interface LayoutConfig {
  /** Bytes of DMA-able memory (multiple of 4 KiB). */
  memBytes: number;
  ncpus: number;
  /** Records per trace ring (a power of two), one ring for the hardware and one per CPU; 0: no tracing. */
  traceRecords?: number;
  /** PCI buses the ECAM window covers (0 .. ecamBuses-1); default 1, bus 0 alone. */
  ecamBuses?: number;
  /** False turns the DMA use-after-free sanitizer off (only for benchmarks of its cost); default on. */
  sanitizerOn?: boolean;
}


export interface Layout extends LayoutConfig {
  control: number;
  writePort: number;
  cpus: number;
  irq: number;
  stats: number;
  failPoints: number;
  /** The DMA use-after-free sanitizer's state (sanitizer.ts). */
  sanitizer: number;
  /** The trace region (TRACE), and the bytes of one ring in it (0 when tracing is off). */
  trace: number;
  traceRingBytes: number;
  smmu: number;
  ecam: number;
  ecamBuses: number;
  bars: number;
  platdev: number;
  dram: number;
  total: number;
}

const align = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

export const DEFAULT_MEM_BYTES = 64 << 20;

export function computeLayout(cfg: LayoutConfig): Layout {
  if (!Number.isInteger(cfg.memBytes) || cfg.memBytes < 1 << 20 || cfg.memBytes % PAGE_SIZE !== 0) {
    throw new Error(`memBytes: ${cfg.memBytes} must be a multiple of 4096 and at least 1 MiB`);
  }
  if (cfg.memBytes > 1 << 30) throw new Error(`memBytes: ${cfg.memBytes} exceeds the 1 GiB this model supports`);
  if (!Number.isInteger(cfg.ncpus) || cfg.ncpus < 1 || cfg.ncpus > MAX_CPUS) {
    throw new Error(`cpus: ${cfg.ncpus} must be between 1 and ${MAX_CPUS}`);
  }
  let off = 0;
  const take = (bytes: number) => {
    const at = off;
    off = align(off + bytes);
    return at;
  };
  const control = take(PAGE_SIZE);
  const writePort = take((WP.HEADER_WORDS + WP.ENTRIES * WP.ENTRY_WORDS) * 4);
  const cpus = take(MAX_CPUS * CPUW.BLOCK_WORDS * 4);
  const irq = take(IRQW.WORDS * 4);
  const stats = take(STAT.SLOTS * 8);
  const failPoints = take((FP.HEADER_WORDS + FP.CELLS * FP.CELL_WORDS) * 4);
  const sanitizer = take(sanitizerBytes(cfg.memBytes));
  const records = cfg.traceRecords ?? 0;
  if (records !== 0) checkRingRecords(records);
  const ringBytes = records === 0 ? 0 : traceRingBytes(records);
  const trace = take(TRACE.HEADER_BYTES + (cfg.ncpus + 1) * ringBytes);
  const smmu = take(SMMU_BYTES);
  const ecamBuses = cfg.ecamBuses ?? 1;
  if (!Number.isInteger(ecamBuses) || ecamBuses < 1 || ecamBuses > ECAM_MAX_BUSES) throw new Error(`ecamBuses: ${ecamBuses} must be between 1 and ${ECAM_MAX_BUSES}`);
  const ecam = take(ecamBuses * ECAM_BUS_BYTES);
  const bars = take(BAR_BYTES);
  const platdev = take(PLATDEV_BYTES);
  const dram = take(cfg.memBytes);
  return { ...cfg, ecamBuses, control, writePort, cpus, irq, stats, failPoints, sanitizer, trace, traceRingBytes: ringBytes, smmu, ecam, bars, platdev, dram, total: off };
}

/** A buffer a finished run gave back (SharedViews.recycle), for the next create() in this thread. */
let spare: SharedArrayBuffer | null = null;

/** Typed views on the shared buffer, created once per thread. */
export class SharedViews {
  readonly ctrl: Int32Array;
  readonly ctrlF64: Float64Array;
  readonly wp: Int32Array;
  readonly cpus: Int32Array;
  readonly irqRoute: Int32Array;
  readonly stats: Float64Array;
  readonly failPoints: Int32Array;
  /** The sanitizer's state (domains, mappings, page owners). */
  readonly sanitizer: Sanitizer;
  /** The trace header: enabled points (one bit per point in TRACE_POINTS order) and the sequence word. */
  readonly traceHeader: Int32Array;
  readonly smmu: Int32Array;
  readonly ecam: Int32Array;
  readonly bars: Int32Array;
  readonly platdev: Int32Array;
  /** DRAM as 32-bit words, bytes and 64-bit words (descriptors are read and written 64 bits at a time). */
  readonly dram32: Int32Array;
  readonly dram8: Uint8Array;
  readonly dram64: BigInt64Array;

  constructor(
    readonly sab: SharedArrayBuffer,
    readonly layout: Layout,
  ) {
    if (sab.byteLength < layout.total) throw new Error(`shared buffer of ${sab.byteLength} bytes, layout needs ${layout.total}`);
    this.ctrl = new Int32Array(sab, layout.control, PAGE_SIZE / 4);
    this.ctrlF64 = new Float64Array(sab, layout.control, PAGE_SIZE / 8);
    this.wp = new Int32Array(sab, layout.writePort, WP.HEADER_WORDS + WP.ENTRIES * WP.ENTRY_WORDS);
    this.cpus = new Int32Array(sab, layout.cpus, MAX_CPUS * CPUW.BLOCK_WORDS);
    this.irqRoute = new Int32Array(sab, layout.irq, IRQW.WORDS);
    this.stats = new Float64Array(sab, layout.stats, STAT.SLOTS);
    this.failPoints = new Int32Array(sab, layout.failPoints, FP.HEADER_WORDS + FP.CELLS * FP.CELL_WORDS);
    this.traceHeader = new Int32Array(sab, layout.trace, TRACE.HEADER_BYTES / 4);
    this.sanitizer = new Sanitizer(sab, layout.sanitizer, layout.memBytes);
    this.smmu = new Int32Array(sab, layout.smmu, SMMU_BYTES / 4);
    this.ecam = new Int32Array(sab, layout.ecam, (layout.ecamBuses * ECAM_BUS_BYTES) / 4);
    this.bars = new Int32Array(sab, layout.bars, BAR_BYTES / 4);
    this.platdev = new Int32Array(sab, layout.platdev, PLATDEV_BYTES / 4);
    this.dram32 = new Int32Array(sab, layout.dram, layout.memBytes / 4);
    this.dram8 = new Uint8Array(sab, layout.dram, layout.memBytes);
    this.dram64 = new BigInt64Array(sab, layout.dram, layout.memBytes / 8);
  }

  /** Creates and initialises a fresh shared buffer for a layout. */
  static create(layout: Layout): SharedViews {
    let sab: SharedArrayBuffer;
    if (spare && spare.byteLength >= layout.total) {
      sab = spare;
      spare = null;
      new Int32Array(sab, 0, layout.total / 4).fill(0);
    } else {
      sab = new SharedArrayBuffer(layout.total);
    }
    const v = new SharedViews(sab, layout);
    Atomics.store(v.ctrl, CTRL.MAGIC, MAGIC);
    Atomics.store(v.ctrl, CTRL.NCPUS, layout.ncpus);
    // Absent PCI functions and unassigned BAR space read as all-ones (a master abort).
    v.ecam.fill(-1);
    v.bars.fill(-1);
    v.sanitizer.init(layout.sanitizerOn !== false);
    return v;
  }

  /**
   * Gives this buffer, which nothing will use again, to the next create() in this thread: clearing a
   * buffer costs a fifth of touching a fresh one, which matters to campaigns of short lockstep runs.
   */
  recycle(): void {
    spare = this.sab;
  }

  /** Byte offset of trace ring `ring` (0 the hardware, 1 + n CPU n); only when tracing is on. */
  traceRing(ring: number): number {
    if (this.layout.traceRingBytes === 0 || ring < 0 || ring > this.layout.ncpus) throw new RangeError(`trace ring ${ring}: none (tracing off or no such producer)`);
    return this.layout.trace + TRACE.HEADER_BYTES + ring * this.layout.traceRingBytes;
  }

  cpuWord(cpu: number, word: number): number {
    return cpu * CPUW.BLOCK_WORDS + word;
  }
}

/** A physical address range that is not DRAM: what a DMA or table fetch from it does (external abort). */
export class BusAbort extends Error {
  constructor(
    readonly pa: number,
    readonly bytes: number,
    readonly what: string,
  ) {
    super(`${what}: external abort at PA ${hex(pa, 0)} (+${bytes} bytes): not RAM`);
  }
}

/** The read view and first dword index of the device region holding pa..pa+size, or null. */
export function mmioRegion(v: SharedViews, pa: number, size: number): { view: Int32Array; first: number; name: string } | null {
  const within = (base: number, bytes: number) => pa >= base && pa + size <= base + bytes;
  if (within(PA.SMMU_BASE, SMMU_BYTES)) return { view: v.smmu, first: (pa - PA.SMMU_BASE) >>> 2, name: 'smmu' };
  if (within(PA.ECAM_BASE, v.ecam.byteLength)) return { view: v.ecam, first: (pa - PA.ECAM_BASE) >>> 2, name: 'ecam' };
  if (within(PA.BAR_BASE, BAR_BYTES)) return { view: v.bars, first: (pa - PA.BAR_BASE) >>> 2, name: 'bars' };
  if (within(PA.PLATDEV_BASE, PLATDEV_BYTES)) return { view: v.platdev, first: (pa - PA.PLATDEV_BASE) >>> 2, name: 'platdev' };
  return null;
}
