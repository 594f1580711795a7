// CPU operations for the IOMMU layer: register devices (masters), create domains and attach them, map
// and unmap IOVA ranges directly or through the DMA API, drive the DMA test engine, and read back what
// happened. Objects stay on the CPU that created them; the caller refers to them by number.

import type { Kernel, KernelOp } from '../kernel.ts';
import { ArmSmmuIommu, type Domain, type Master, type PagingDomain } from '../arm-smmu-v3/domain.ts';
import { IommuDma, type DmaDirection, type DmaStats } from '../iommu/dma-iommu.ts';
import { TestDmaDriver, type TestDmaRequest, type TestDmaResult } from '../testdev.ts';
import { runDmaMapWorkload, type DmaMapWorkload } from '../workloads/dma-map.ts';

/** The IOMMU layer of one CPU and the objects handed out to callers. */
export class IommuState {
  readonly iommu: ArmSmmuIommu;
  readonly masters = new Map<number, Master>();
  readonly dmas = new Map<number, IommuDma>();
  private readonly domains = new Map<number, Domain>();
  private readonly testdevs = new Map<number, TestDmaDriver>();
  private nextHandle = 1;

  constructor(k: Kernel) {
    this.iommu = new ArmSmmuIommu(k.device());
    this.domains.set(this.iommu.identity.id, this.iommu.identity);
    this.domains.set(this.iommu.blocked.id, this.iommu.blocked);
  }

  handle(): number {
    return this.nextHandle++;
  }

  addDomain(d: Domain): number {
    this.domains.set(d.id, d);
    return d.id;
  }

  dropDomain(id: number): void {
    this.domains.delete(id);
  }

  domain(id: unknown): Domain {
    const d = this.domains.get(id as number);
    if (!d) throw new Error(`domain ${String(id)}: no such domain on this CPU`);
    return d;
  }

  paging(id: unknown): PagingDomain {
    const d = this.domain(id);
    if (d.type !== 'paging') throw new Error(`domain ${String(id)} is an ${d.type} domain, not a paging domain`);
    return d;
  }

  master(id: unknown): Master {
    const m = this.masters.get(id as number);
    if (!m) throw new Error(`master ${String(id)}: no such master on this CPU`);
    return m;
  }

  dma(id: unknown): IommuDma {
    const d = this.dmas.get(id as number);
    if (!d) throw new Error(`dma ${String(id)}: no such DMA context on this CPU`);
    return d;
  }

  testdev(k: Kernel, index: number): TestDmaDriver {
    let t = this.testdevs.get(index);
    if (!t) {
      t = new TestDmaDriver(k.platform, index);
      this.testdevs.set(index, t);
    }
    return t;
  }
}

export function iommuState(k: Kernel): IommuState {
  if (!k.iommu) k.iommu = new IommuState(k);
  return k.iommu;
}

// ---- argument checking: errors name the operation and the argument ----

type Args = Record<string, unknown>;

function int(op: string, a: Args, name: string, dflt?: number): number {
  const v = a[name] ?? dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`${op}: ${name} must be a non-negative integer (got ${String(a[name])})`);
  return v;
}

/** An optional non-negative integer argument: undefined when absent (the callee's default applies). */
function optInt(op: string, a: Args, name: string): number | undefined {
  return a[name] === undefined ? undefined : int(op, a, name);
}

function bool(op: string, a: Args, name: string, dflt: boolean): boolean {
  const v = a[name] ?? dflt;
  if (typeof v !== 'boolean') throw new Error(`${op}: ${name} must be true or false (got ${String(a[name])})`);
  return v;
}

const DIRS: readonly DmaDirection[] = ['to-device', 'from-device', 'bidirectional'];
function dir(op: string, a: Args): DmaDirection {
  const v = a.dir ?? 'bidirectional';
  if (!DIRS.includes(v as DmaDirection)) throw new Error(`${op}: dir must be one of ${DIRS.join(', ')} (got ${String(v)})`);
  return v as DmaDirection;
}

/** What the IOMMU layer of a CPU reports (the iommuStats op). */
export interface IommuStats {
  /** Commands this CPU's IOMMU layer issued, by opcode name (CMD_SYNCs under SYNC). */
  issued: Record<string, number>;
  syncTimeouts: number;
  /** Events the event queue thread of this CPU drained, by name; overflows it noticed. */
  events: Record<string, number>;
  evtqOverflows: number;
  dma: Record<number, DmaStats & { mapped: number; queued: number }>;
}

export const iommuOps: Record<string, KernelOp> = {
  /** Registers a device with StreamIDs: { name, sids, ssidBits?, stall? } -> master handle. */
  iommuProbeDevice: (k, a: Args) => {
    const s = iommuState(k);
    if (typeof a.name !== 'string' || !a.name) throw new Error('iommuProbeDevice: name must be a non-empty string');
    if (!Array.isArray(a.sids)) throw new Error('iommuProbeDevice: sids must be an array of StreamIDs');
    const sids = a.sids.map((v: unknown, i) => int('iommuProbeDevice', { [`sids[${i}]`]: v }, `sids[${i}]`));
    const m = s.iommu.probeDevice(a.name, sids, { ssidBits: int('iommuProbeDevice', a, 'ssidBits', 0), stall: bool('iommuProbeDevice', a, 'stall', false) });
    const h = s.handle();
    s.masters.set(h, m);
    return h;
  },
  iommuReleaseDevice: (k, a: Args) => {
    const s = iommuState(k);
    const h = int('iommuReleaseDevice', a, 'master');
    s.iommu.releaseDevice(s.master(h));
    s.masters.delete(h);
    return true;
  },
  /** { type: 'identity' | 'blocked' | 'paging', stage?, skipInvalidation? } -> domain handle. */
  iommuAllocDomain: (k, a: Args) => {
    const s = iommuState(k);
    switch (a.type ?? 'paging') {
      case 'identity':
        return s.iommu.identity.id;
      case 'blocked':
        return s.iommu.blocked.id;
      case 'paging': {
        const stage = a.stage ?? undefined;
        if (stage !== undefined && stage !== 1 && stage !== 2) throw new Error(`iommuAllocDomain: stage must be 1 or 2 (got ${String(stage)})`);
        return s.addDomain(s.iommu.allocPaging({ stage, skipInvalidation: bool('iommuAllocDomain', a, 'skipInvalidation', false) }));
      }
      default:
        throw new Error(`iommuAllocDomain: type must be identity, blocked or paging (got ${String(a.type)})`);
    }
  },
  iommuFreeDomain: (k, a: Args) => {
    const s = iommuState(k);
    const id = int('iommuFreeDomain', a, 'domain');
    s.paging(id).free();
    s.dropDomain(id);
    return true;
  },
  /** { master, domain } */
  iommuAttach: (k, a: Args) => {
    const s = iommuState(k);
    s.iommu.attach(s.master(int('iommuAttach', a, 'master')), s.domain(int('iommuAttach', a, 'domain')));
    return true;
  },
  /** { domain, iova, pa, size, prot } */
  iommuMap: (k, a: Args) => {
    const op = 'iommuMap';
    iommuState(k).paging(int(op, a, 'domain')).map(int(op, a, 'iova'), int(op, a, 'pa'), int(op, a, 'size'), int(op, a, 'prot'));
    return true;
  },
  /** { domain, iova, size } -> bytes unmapped (invalidated before return). */
  iommuUnmap: (k, a: Args) => {
    const op = 'iommuUnmap';
    return iommuState(k).paging(int(op, a, 'domain')).unmap(int(op, a, 'iova'), int(op, a, 'size'));
  },
  /** { domain } -> what the domain is: type, stage, and its TLB tag. */
  iommuDomainInfo: (k, a: Args) => {
    const d = iommuState(k).domain(int('iommuDomainInfo', a, 'domain'));
    return d.type === 'paging' ? { type: d.type, stage: d.stage, asid: d.asid, vmid: d.vmid, masters: [...d.masters].map((m) => m.name) } : { type: d.type };
  },
  iommuIovaToPhys: (k, a: Args) => iommuState(k).paging(int('iommuIovaToPhys', a, 'domain')).iovaToPhys(int('iommuIovaToPhys', a, 'iova')),
  /** The STE of a StreamID as 8 hex qwords. */
  iommuReadSte: (k, a: Args) => [...iommuState(k).iommu.strtab.readSte(int('iommuReadSte', a, 'sid'))].map((q) => q.toString(16)),
  iommuStats: (k): IommuStats => {
    const s = iommuState(k);
    const dev = k.device();
    const dma: IommuStats['dma'] = {};
    for (const [h, d] of s.dmas) dma[h] = { ...d.stats, mapped: d.mapped, queued: d.queued };
    return { issued: { ...s.iommu.cmds.issued }, syncTimeouts: s.iommu.cmds.syncTimeouts, events: dev.evtq.countsByName(), evtqOverflows: dev.evtq.overflows, dma };
  },

  // ---- the DMA API ----

  /** { domain, strict, dmaBits?, fqSize?, fqTimeoutNs?, coherent? } -> DMA context handle. */
  dmaCreate: (k, a: Args) => {
    const s = iommuState(k);
    const op = 'dmaCreate';
    const d = new IommuDma(k.platform, s.paging(int(op, a, 'domain')), {
      strict: bool(op, a, 'strict', true),
      dmaBits: optInt(op, a, 'dmaBits'),
      coherent: bool(op, a, 'coherent', true),
      fqSize: optInt(op, a, 'fqSize'),
      fqTimeoutNs: optInt(op, a, 'fqTimeoutNs'),
    });
    const h = s.handle();
    s.dmas.set(h, d);
    return h;
  },
  /** { dma, pa, size, dir } -> IOVA. */
  dmaMap: (k, a: Args) => iommuState(k).dma(int('dmaMap', a, 'dma')).map(int('dmaMap', a, 'pa'), int('dmaMap', a, 'size'), dir('dmaMap', a)),
  /** { dma, iova, size, dir } */
  dmaUnmap: (k, a: Args) => {
    iommuState(k).dma(int('dmaUnmap', a, 'dma')).unmap(int('dmaUnmap', a, 'iova'), int('dmaUnmap', a, 'size'), dir('dmaUnmap', a));
    return true;
  },
  /** Runs the flush-queue timer of a lazy DMA context; { dma } -> ranges still queued. */
  dmaPoll: (k, a: Args) => {
    const d = iommuState(k).dma(int('dmaPoll', a, 'dma'));
    d.poll();
    return d.queued;
  },
  dmaFlush: (k, a: Args) => {
    iommuState(k).dma(int('dmaFlush', a, 'dma')).flushQueue();
    return true;
  },

  // ---- memory the CPU reads and writes (buffers for devices) ----

  /** { pages } -> PA of zeroed, naturally aligned pages. */
  memAlloc: (k, a: Args) => k.platform.pages.alloc(int('memAlloc', a, 'pages', 1), 'memAlloc'),
  memFree: (k, a: Args) => {
    k.platform.pages.free(int('memFree', a, 'pa'), int('memFree', a, 'pages', 1));
    return true;
  },
  /** { pa, bytes: number[] } */
  memWrite: (k, a: Args) => {
    if (!Array.isArray(a.bytes)) throw new Error('memWrite: bytes must be an array of byte values');
    k.platform.mem.writeBytes(int('memWrite', a, 'pa'), Uint8Array.from(a.bytes as number[]), 'memWrite');
    return true;
  },
  /** { pa, len } -> byte values. */
  memRead: (k, a: Args) => [...k.platform.mem.readBytes(int('memRead', a, 'pa'), int('memRead', a, 'len'), 'memRead')],

  // ---- the DMA test engine ----

  /** { index?, sid, ssid?, iova, len, write, pattern?, bufPa?, priv?, instr?, timeoutNs? } -> result. */
  testdevTransfer: (k, a: Args): TestDmaResult => {
    const op = 'testdevTransfer';
    const r: TestDmaRequest = {
      sid: int(op, a, 'sid'),
      iova: int(op, a, 'iova'),
      len: int(op, a, 'len'),
      write: bool(op, a, 'write', false),
      pattern: int(op, a, 'pattern', 0),
      priv: bool(op, a, 'priv', false),
      instr: bool(op, a, 'instr', false),
      ssid: optInt(op, a, 'ssid'),
      bufPa: optInt(op, a, 'bufPa'),
    };
    return iommuState(k).testdev(k, int(op, a, 'index', 0)).transfer(r, int(op, a, 'timeoutNs', 1e9));
  },

  dmaMapWorkload: (k, w: DmaMapWorkload) => runDmaMapWorkload(k, w),
};
