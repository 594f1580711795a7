// Operations of the IOMMU layer: register devices (masters), create domains and attach them, map and
// unmap IOVA ranges directly or through the DMA API, drive the DMA test engine, read back what
// happened. Objects stay on the CPU that created them; the caller refers to them by handle.

import { arr, bool, int, none, obj, oneOf, opt, str, type Infer } from '../check.ts';
import { op } from './decl.ts';

const u53 = int();
const handle = int(1);
const byte = int(0, 255);

export const DMA_DIRECTIONS = ['to-device', 'from-device', 'bidirectional'] as const;
export type DmaDirection = (typeof DMA_DIRECTIONS)[number];
const dir = opt(oneOf(DMA_DIRECTIONS));

export const DOMAIN_TYPES = ['identity', 'blocked', 'paging'] as const;

export interface DmaStats {
  maps: number;
  unmaps: number;
  /** Flush-queue flushes, and how many of them the timeout caused. */
  fqFlushes: number;
  fqTimeouts: number;
  /** IOVA allocations that failed (the address space was exhausted). */
  iovaExhausted: number;
}

/** What the IOMMU layer of a CPU reports (the iommuStats operation). */
export interface IommuStats {
  /** Commands this CPU's IOMMU layer issued, by opcode name (CMD_SYNCs under SYNC). */
  issued: Record<string, number>;
  syncTimeouts: number;
  /** Events the event queue thread of this CPU drained, by name; overflows it noticed. */
  events: Record<string, number>;
  evtqOverflows: number;
  dma: Record<number, DmaStats & { mapped: number; queued: number }>;
}

export type DomainInfo = { type: 'identity' | 'blocked' } | { type: 'paging'; stage: 1 | 2; asid: number; vmid: number; masters: string[] };

/** One transfer of a DMA test engine (hw/testdev.ts). */
export const testDmaRequest = obj({
  /** Which engine (PA.PLATDEV_BASE + index * 4 KiB). */
  index: opt(int(0, 15)),
  sid: int(0, 0xffff_ffff),
  /** SubstreamID (sent with SSV=1 when given). */
  ssid: opt(int(0, (1 << 20) - 1)),
  iova: u53,
  len: int(0, 1 << 20),
  /** true: the device writes memory at iova; false: it reads. */
  write: opt(bool),
  /** Data: PATTERN repeated (default 0), or the engine's local buffer at this PA (written data / read destination). */
  pattern: opt(int(0, 0xffff_ffff)),
  bufPa: opt(u53),
  priv: opt(bool),
  instr: opt(bool),
  /** Platform ns to wait for the engine. */
  timeoutNs: opt(int(1, 1e15)),
});
export type TestDmaRequest = Infer<typeof testDmaRequest>;

export const TESTDEV_FAULTS = ['NONE', 'SMMU', 'BUS', 'PARAM'] as const;

export interface TestDmaResult {
  ok: boolean;
  /** Bytes moved before the transfer stopped. */
  xferred: number;
  /** Reads: FNV-1a of the bytes read, and 32-bit words that differed from the pattern. */
  checksum: number;
  mismatches: number;
  /** Why it stopped: NONE, SMMU (terminated by the SMMU), BUS, PARAM. */
  fault: (typeof TESTDEV_FAULTS)[number];
  /** The event the SMMU recorded for the fault, if any (name), and the input address that faulted. */
  event: string | null;
  faultAddr: number;
}

/** The dma-map workload: map buffers for the CPU's test engine, DMA through the SMMU, unmap. */
export const dmaMapWorkload = obj({
  /** Buffers mapped at a time. */
  buffers: int(1, 1024),
  /** Bytes per buffer (not necessarily page-aligned in size). */
  bytes: int(1, 1 << 20),
  /** Strict invalidation on unmap; false = lazy with a flush queue. */
  strict: bool,
  /** StreamID of CPU c's engine is sidBase + c. */
  sidBase: int(0, 0xffff),
  /** Every this many rounds, DMA to a just-unmapped buffer (0 = never). */
  faultEvery: int(0, 1 << 30),
  durationNs: opt(u53),
  iterations: opt(u53),
});
export type DmaMapWorkload = Infer<typeof dmaMapWorkload>;

export interface DmaMapResult {
  rounds: number;
  maps: number;
  unmaps: number;
  transfers: number;
  bytesMoved: number;
  /** Transfers to mapped buffers that did not complete, or whose data was wrong (should be 0). */
  dataErrors: number;
  /** DMA to just-unmapped buffers: how many faulted, and how many still reached memory (lazy mode). */
  staleFaulted: number;
  staleReached: number;
  fqFlushes: number;
  /** Commands this CPU issued during the workload, by opcode name (CMD_SYNCs under SYNC). */
  issuedByOpcode: Record<string, number>;
  syncTimeouts: number;
  elapsedNs: number;
}

export const IOMMU_OPS = {
  /** Registers a device with its StreamIDs; returns the master's handle. */
  iommuProbeDevice: op(obj({ name: str(), sids: arr(int(0, 0xffff_ffff), 64), ssidBits: opt(int(0, 20)), stall: opt(bool) })).returns<number>(),
  iommuReleaseDevice: op(obj({ master: handle })).returns<true>(),
  /** Returns the domain's handle (identity and blocked domains are singletons). */
  iommuAllocDomain: op(obj({ type: opt(oneOf(DOMAIN_TYPES)), stage: opt(int(1, 2)) })).returns<number>(),
  iommuFreeDomain: op(obj({ domain: handle })).returns<true>(),
  iommuAttach: op(obj({ master: handle, domain: handle })).returns<true>(),
  iommuMap: op(obj({ domain: handle, iova: u53, pa: u53, size: u53, prot: int(0, 0xff) })).returns<true>(),
  /** Returns the bytes unmapped (invalidated before return). */
  iommuUnmap: op(obj({ domain: handle, iova: u53, size: u53 })).returns<number>(),
  iommuDomainInfo: op(obj({ domain: handle })).returns<DomainInfo>(),
  /** The PA an IOVA maps to in the domain's page table, or null. */
  iommuIovaToPhys: op(obj({ domain: handle, iova: u53 })).returns<number | null>(),
  /** The STE of a StreamID as 8 hex qwords. */
  iommuReadSte: op(obj({ sid: int(0, 0xffff_ffff) })).returns<string[]>(),
  iommuStats: op(none).returns<IommuStats>(),

  /** A DMA API context over a paging domain; returns its handle. */
  dmaCreate: op(obj({ domain: handle, strict: opt(bool), dmaBits: opt(int(13, 64)), coherent: opt(bool), fqSize: opt(int(1, 1 << 20)), fqTimeoutNs: opt(u53) })).returns<number>(),
  /** Returns the IOVA. */
  dmaMap: op(obj({ dma: handle, pa: u53, size: int(1), dir })).returns<number>(),
  dmaUnmap: op(obj({ dma: handle, iova: u53, size: int(1), dir })).returns<true>(),
  /** Runs the flush-queue timer of a lazy DMA context; returns the ranges still queued. */
  dmaPoll: op(obj({ dma: handle })).returns<number>(),
  dmaFlush: op(obj({ dma: handle })).returns<true>(),

  /** Returns the PA of zeroed, naturally aligned pages. */
  memAlloc: op(obj({ pages: opt(int(1, 1 << 18)) })).returns<number>(),
  memFree: op(obj({ pa: u53, pages: opt(int(1, 1 << 18)) })).returns<true>(),
  memWrite: op(obj({ pa: u53, bytes: arr(byte) })).returns<true>(),
  /** Returns the byte values. */
  memRead: op(obj({ pa: u53, len: int(0, 1 << 24) })).returns<number[]>(),

  testdevTransfer: op(testDmaRequest).returns<TestDmaResult>(),
  dmaMapWorkload: op(dmaMapWorkload).returns<DmaMapResult>(),
};
