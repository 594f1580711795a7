// The PCIe topology: which Root Ports and endpoint functions the machine has, their BDFs and StreamIDs,
// capabilities and per-function behaviour. Written as JSON (`--topology FILE`), validated strictly:
// every problem is reported with the path of the offending field, nothing is silently fixed.
//
// Shape (every field but `ports`, a port's `bdf`/`secondaryBus`/`functions` and a function's `bdf` is
// optional; numbers may be written as JSON numbers or "0x..." strings):
//
//   { "ports": [ { "bdf": "00:01.0", "secondaryBus": 1, "rrsSv": true, "cxl": false,
//                  "functions": [ { "bdf": "01:00.0", "streamId": 256, "deviceId": "0x5a11",
//                                   "capabilities": ["pm","msi","exp","aer","acs","ats","pasid","pri"],
//                                   "atcEntries": 64, "invLatencyUs": 2, "invQueueDepth": 8,
//                                   "flr": true, "flrMs": 100, "resetResponse": "rrs" } ] } ] }
//
// Config routing uses these fixed bus numbers: the Root Ports come up with Primary/Secondary/
// Subordinate already programmed (as firmware leaves them), and the PCI core reuses them.

import { ALL_CAPS, type CapName } from '../arch/pcie/caps.ts';
import { ACS_BITS } from '../arch/pcie/regs.ts';
import { ECAM_MAX_BUSES } from '../arch/platform.ts';
import { formatBdf, parseBdf, ridOf, type Bdf } from '../arch/pcie/bdf.ts';
import { CLASS, IDS } from '../arch/pcie/ids.ts';
import { NS_PER_MS, NS_PER_US, TIMEOUT } from '../arch/time.ts';
import { clip, show } from './check.ts';

export type ResetResponse = 'rrs' | 'all-ones';

export interface FunctionTopology {
  bdf: string;
  /** Requester ID: bus << 8 | dev << 3 | fn. */
  rid: number;
  streamId: number;
  vendorId: number;
  deviceId: number;
  revision: number;
  classCode: number;
  capabilities: CapName[];
  /** Endpoint BAR0 (the DMA engine's registers), bytes. */
  barBytes: number;
  /** Translations the ATC holds. */
  atcEntries: number;
  /** Platform ns from receiving an ATC Invalidate Request to sending its completion. */
  invLatencyNs: number;
  /** ATS Invalidate Queue Depth (1..32). */
  invQueueDepth: number;
  atsPageAligned: boolean;
  /** Device Capabilities FLR. */
  flr: boolean;
  /** Platform ns an FLR (and a hot reset) keeps the function busy. */
  flrNs: number;
  /** What config reads see while the function is resetting: RRS completions or all-ones. */
  resetResponse: ResetResponse;
  /** PMCSR.No_Soft_Reset: D3hot->D0 does not reset the function. */
  pmNoSoftReset: boolean;
  /** Platform ns the internal reset on D3hot->D0 takes. */
  pmResetNs: number;
  immReady: boolean;
  /** Platform ns the DMA engine takes per 4 KiB chunk. */
  dmaNsPerPage: number;
  pasidWidth: number;
  priCapacity: number;
  acsCap: number;
  multifunction: boolean;
}

export interface PortTopology {
  bdf: string;
  rid: number;
  vendorId: number;
  deviceId: number;
  secondaryBus: number;
  /** Root Capabilities: Configuration RRS Software Visibility. */
  rrsSv: boolean;
  /** A CXL port: carries the CXL Extensions DVSEC whose Unmask SBR gates Secondary Bus Reset. */
  cxl: boolean;
  /** Platform ns the link takes to come back after a Secondary Bus Reset is released. */
  linkUpNs: number;
  capabilities: CapName[];
  /** Header Type MFD: function 0 of a device with more Root Ports on its other functions. */
  multifunction: boolean;
  functions: FunctionTopology[];
}

export interface Topology {
  ports: PortTopology[];
}

export class TopologyError extends Error {}

const DEFAULT_EP_CAPS: CapName[] = ['pm', 'msi', 'exp', 'aer', 'acs', 'ats', 'pasid', 'pri'];
const PORT_CAPS: CapName[] = ['pm', 'msi', 'exp', 'aer', 'acs'];
/** ACS of a Root Port: source validation, translation blocking, P2P redirects, upstream forwarding, direct translated P2P. */
export const ACS_ROOT_PORT = ACS_BITS.SV.bits | ACS_BITS.TB.bits | ACS_BITS.RR.bits | ACS_BITS.CR.bits | ACS_BITS.UF.bits | ACS_BITS.DT.bits;
/** ACS of an endpoint function (the controls that apply inside a multi-function device, 6.12.1.2). */
const ACS_ENDPOINT = ACS_BITS.RR.bits | ACS_BITS.CR.bits | ACS_BITS.DT.bits;

/** The topology used when no file is given: two Root Ports, each with one ATS- and FLR-capable endpoint. */
export const DEFAULT_TOPOLOGY_JSON = {
  ports: [
    { bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', deviceId: IDS.EP_FW_ACK }] },
    { bdf: '00:02.0', secondaryBus: 2, functions: [{ bdf: '02:00.0', deviceId: IDS.EP_FLR_IGNORE }] },
  ],
};

type Obj = Record<string, unknown>;

class Reader {
  constructor(
    readonly o: Obj,
    readonly path: string,
    known: readonly string[],
  ) {
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) throw new TopologyError(`${path}.${clip(k)}: unknown field (known: ${known.join(', ')})`);
    }
  }

  private fail(k: string, why: string): never {
    throw new TopologyError(`${this.path}.${k}: ${why}`);
  }

  int(k: string, def: number | undefined, min: number, max: number): number {
    let v = this.o[k];
    if (v === undefined) {
      if (def === undefined) this.fail(k, 'is required');
      return def;
    }
    if (typeof v === 'string' && /^0x[0-9a-fA-F]+$/.test(v)) v = parseInt(v.slice(2), 16);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(k, `must be an integer from ${min} to ${max} (got ${show(this.o[k])})`);
    }
    return v;
  }

  num(k: string, def: number, min: number, max: number): number {
    const v = this.o[k];
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(k, `must be a number from ${min} to ${max} (got ${show(v)})`);
    return v;
  }

  bool(k: string, def: boolean): boolean {
    const v = this.o[k];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(k, `must be true or false (got ${show(v)})`);
    return v;
  }

  oneOf<T extends string>(k: string, def: T, allowed: readonly T[]): T {
    const v = this.o[k];
    if (v === undefined) return def;
    if (typeof v !== 'string' || !allowed.includes(v as T)) this.fail(k, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')} (got ${show(v)})`);
    return v as T;
  }

  bdf(k: string): Bdf {
    const v = this.o[k];
    if (typeof v !== 'string') this.fail(k, `must be a "BB:DD.F" string (got ${show(v)})`);
    const b = parseBdf(v);
    if (!b) this.fail(k, `${show(v)} is not a BB:DD.F address (hex bus and device up to 1f, function 0-7)`);
    return b;
  }

  caps(k: string, def: CapName[]): CapName[] {
    const v = this.o[k];
    if (v === undefined) return [...def];
    if (!Array.isArray(v)) this.fail(k, 'must be an array of capability names');
    const out: CapName[] = [];
    v.forEach((c, i) => {
      if (typeof c !== 'string' || !ALL_CAPS.includes(c as CapName)) {
        throw new TopologyError(`${this.path}.${k}[${i}]: unknown capability ${show(c)} (known: ${ALL_CAPS.join(', ')})`);
      }
      if (out.includes(c as CapName)) throw new TopologyError(`${this.path}.${k}[${i}]: capability "${c}" listed twice`);
      out.push(c as CapName);
    });
    return out;
  }

  array(k: string): unknown[] {
    const v = this.o[k];
    if (!Array.isArray(v)) this.fail(k, v === undefined ? 'is required' : 'must be an array');
    return v;
  }
}

function object(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TopologyError(`${path}: must be an object`);
  return v as Obj;
}

const FUNCTION_FIELDS = [
  'bdf', 'streamId', 'vendorId', 'deviceId', 'revision', 'classCode', 'capabilities', 'barBytes', 'atcEntries', 'invLatencyUs',
  'invQueueDepth', 'atsPageAligned', 'flr', 'flrMs', 'resetResponse', 'pmNoSoftReset', 'pmResetMs', 'immReady', 'dmaNsPerPage',
  'pasidWidth', 'priCapacity', 'acsCap',
] as const;
const PORT_FIELDS = ['bdf', 'secondaryBus', 'vendorId', 'deviceId', 'rrsSv', 'cxl', 'linkUpMs', 'functions'] as const;

function readFunction(v: unknown, path: string, port: { secondaryBus: number; bdf: string }): FunctionTopology {
  const r = new Reader(object(v, path), path, FUNCTION_FIELDS);
  const bdf = r.bdf('bdf');
  if (bdf.bus !== port.secondaryBus) throw new TopologyError(`${path}.bdf: bus ${bdf.bus} is not the secondary bus ${port.secondaryBus} of Root Port ${port.bdf}`);
  // A Root Port's link leads to one device: device number 0 (Linux scans only devfn 0-7 below it).
  if (bdf.dev !== 0) throw new TopologyError(`${path}.bdf: device ${bdf.dev} cannot exist below a Root Port (a PCIe link has only device 0)`);
  const rid = ridOf(bdf);
  const capabilities = r.caps('capabilities', DEFAULT_EP_CAPS);
  const need = (cap: CapName, why: string) => {
    if (!capabilities.includes(cap)) throw new TopologyError(`${path}.capabilities: ${why}`);
  };
  need('exp', 'an endpoint behind a Root Port needs the PCI Express capability "exp"');
  if (capabilities.includes('pri')) need('ats', '"pri" needs "ats" (Page Requests are part of ATS, PCIe 10.4)');
  if (capabilities.includes('cxl')) throw new TopologyError(`${path}.capabilities: "cxl" (the CXL port DVSEC) belongs on a Root Port`);
  const hasAts = capabilities.includes('ats');
  if (!hasAts) {
    for (const k of ['atcEntries', 'invLatencyUs', 'invQueueDepth', 'atsPageAligned'] as const) {
      if (r.o[k] !== undefined) throw new TopologyError(`${path}.${k}: only meaningful with the "ats" capability`);
    }
  }
  const flr = r.bool('flr', true);
  if (!flr && r.o.flrMs !== undefined) throw new TopologyError(`${path}.flrMs: set but "flr" is false`);
  return {
    bdf: formatBdf(rid),
    rid,
    streamId: r.int('streamId', rid, 0, 0xffff),
    vendorId: r.int('vendorId', IDS.EP_VENDOR, 0, 0xfffe),
    deviceId: r.int('deviceId', IDS.EP_PLAIN, 0, 0xffff),
    revision: r.int('revision', 1, 0, 0xff),
    classCode: r.int('classCode', CLASS.SYSTEM_OTHER, 0, 0xffffff),
    capabilities,
    barBytes: (() => {
      const b = r.int('barBytes', 4096, 4096, 1 << 16);
      if ((b & (b - 1)) !== 0) throw new TopologyError(`${path}.barBytes: ${b} is not a power of two`);
      return b;
    })(),
    atcEntries: r.int('atcEntries', 64, 1, 4096),
    invLatencyNs: Math.round(r.num('invLatencyUs', 2, 0, 60e6) * NS_PER_US),
    invQueueDepth: r.int('invQueueDepth', 8, 1, 32),
    atsPageAligned: r.bool('atsPageAligned', true),
    flr,
    flrNs: Math.round(r.num('flrMs', TIMEOUT.FLR / NS_PER_MS, 0, 3_600_000) * NS_PER_MS),
    resetResponse: r.oneOf<ResetResponse>('resetResponse', 'rrs', ['rrs', 'all-ones']),
    pmNoSoftReset: r.bool('pmNoSoftReset', false),
    pmResetNs: Math.round(r.num('pmResetMs', 10, 0, 3_600_000) * NS_PER_MS),
    immReady: r.bool('immReady', false),
    dmaNsPerPage: r.int('dmaNsPerPage', 2000, 1, 1e9),
    pasidWidth: r.int('pasidWidth', 20, 1, 20),
    priCapacity: r.int('priCapacity', 512, 0, 0xffffffff),
    acsCap: r.int('acsCap', ACS_ENDPOINT, 0, 0x7f),
    multifunction: false,
  };
}

/** Validates a parsed topology JSON value; throws TopologyError naming the offending field. */
export function parseTopology(json: unknown, where = 'topology'): Topology {
  const root = new Reader(object(json, where), where, ['ports']);
  const ports = root.array('ports');
  if (ports.length === 0) throw new TopologyError(`${where}.ports: needs at least one Root Port`);
  const rids = new Map<number, string>();
  const sids = new Map<number, string>();
  const buses = new Map<number, string>();
  const out: PortTopology[] = [];
  ports.forEach((pv, pi) => {
    const path = `${where}.ports[${pi}]`;
    const r = new Reader(object(pv, path), path, PORT_FIELDS);
    const bdf = r.bdf('bdf');
    if (bdf.bus !== 0) throw new TopologyError(`${path}.bdf: Root Ports live on bus 0 (got bus ${bdf.bus})`);
    const rid = ridOf(bdf);
    if (rids.has(rid)) throw new TopologyError(`${path}.bdf: ${formatBdf(rid)} is already used by ${rids.get(rid)}`);
    rids.set(rid, path);
    const secondaryBus = r.int('secondaryBus', undefined, 1, ECAM_MAX_BUSES - 1);
    if (buses.has(secondaryBus)) throw new TopologyError(`${path}.secondaryBus: bus ${secondaryBus} is already below ${buses.get(secondaryBus)}`);
    buses.set(secondaryBus, path);
    const cxl = r.bool('cxl', false);
    const port: PortTopology = {
      bdf: formatBdf(rid),
      rid,
      vendorId: r.int('vendorId', IDS.PORT_VENDOR, 0, 0xfffe),
      deviceId: r.int('deviceId', IDS.PORT_DEVICE, 0, 0xffff),
      secondaryBus,
      rrsSv: r.bool('rrsSv', true),
      cxl,
      linkUpNs: Math.round(r.num('linkUpMs', 20, 0, 60_000) * NS_PER_MS),
      capabilities: cxl ? [...PORT_CAPS, 'cxl'] : [...PORT_CAPS],
      multifunction: false,
      functions: [],
    };
    const fns = r.array('functions');
    if (fns.length === 0) throw new TopologyError(`${path}.functions: needs at least one function`);
    fns.forEach((fv, fi) => {
      const fpath = `${path}.functions[${fi}]`;
      const f = readFunction(fv, fpath, port);
      if (rids.has(f.rid)) throw new TopologyError(`${fpath}.bdf: ${f.bdf} is already used by ${rids.get(f.rid)}`);
      rids.set(f.rid, fpath);
      if (sids.has(f.streamId)) throw new TopologyError(`${fpath}.streamId: ${f.streamId} is already used by ${sids.get(f.streamId)}`);
      sids.set(f.streamId, fpath);
      port.functions.push(f);
    });
    if (!port.functions.some((f) => (f.rid & 7) === 0)) throw new TopologyError(`${path}.functions: a device needs function 0 (software finds the others through it)`);
    const fn0 = port.functions.find((f) => (f.rid & 7) === 0)!;
    fn0.multifunction = port.functions.length > 1;
    port.functions.sort((a, b) => a.rid - b.rid);
    out.push(port);
  });
  out.sort((a, b) => a.rid - b.rid);
  // Software finds the functions of a device through function 0: Linux reads function 0 first and
  // looks at functions 1-7 only when its Header Type says multi-function (pci_scan_slot, next_fn).
  const portRids = new Set(out.map((p) => p.rid));
  for (const p of out) {
    const fn0 = p.rid & ~7;
    if (!portRids.has(fn0)) {
      throw new TopologyError(`${rids.get(p.rid)}.bdf: Root Port ${p.bdf} is a function of device ${formatBdf(fn0).slice(0, -2)} without a function 0 (${formatBdf(fn0)}), so software would never find it`);
    }
    p.multifunction = p.rid === fn0 && out.some((q) => q.rid !== fn0 && (q.rid & ~7) === fn0);
  }
  return { ports: out };
}

export function defaultTopology(): Topology {
  return parseTopology(DEFAULT_TOPOLOGY_JSON);
}

/** The buses a topology's ECAM window must cover: 0 up to the highest secondary bus. */
export function ecamBuses(t: Topology): number {
  return 1 + Math.max(0, ...t.ports.map((p) => p.secondaryBus));
}

/** Every endpoint function of a topology, port by port. */
function allFunctions(t: Topology): FunctionTopology[] {
  return t.ports.flatMap((p) => p.functions);
}

/** The firmware's RID -> StreamID table (what IORT or a DT iommu-map gives Linux). */
export function iommuMap(t: Topology): { rid: number; sid: number }[] {
  return allFunctions(t).map((f) => ({ rid: f.rid, sid: f.streamId }));
}
