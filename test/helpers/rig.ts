// A lockstep SMMU bench for hardware tests: registers programmed through the platform's ioremap'd MMIO
// (the path a driver takes), tables written by hand (tables.ts), commands pushed into the command
// queue, events read back from the event queue and decoded, DMA issued through the SMMU's services.

import { buildCmd, type CmdEnt } from '../../drivers/arm-smmu-v3/cmds.ts';
import { createLockstep, type LockstepPlatform, type LockstepSystem } from '../../src/host/lockstep.ts';
import type { Machine } from '../../hw/machine.ts';
import type { IoMem } from '../../drivers/platform/platform.ts';
import { type SharedViews } from '../../src/machine/layout.ts';
import { PA, SMMU_BYTES } from '../../src/arch/platform.ts';
import { DEFAULT_FEATURES, type SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { CR0, CR2, GBPA, IRQ_CTRL, OFF, Q_BASE, Q_IDX, Q_OVFLG, STRTAB_BASE_CFG } from '../../src/arch/smmu/regs.ts';
import { EVT_BYTES, EVT_NAME, EVTF } from '../../src/arch/smmu/events.ts';
import { L1STD, STE_BYTES } from '../../src/arch/smmu/ste.ts';
import { TIMEOUT } from '../../src/arch/time.ts';
import type { DmaAccess } from '../../hw/smmu/services.ts';
import { PageTable, l1std, makeCd, makeSte, writeStruct, type CdOpts, type SteOpts } from './tables.ts';

/** A decoded event record (7.3), for assertions. */
export interface Ev {
  type: number;
  name: string;
  sid: number;
  ssv: number;
  ssid: number;
  rnw: number;
  ind: number;
  pnu: number;
  s2: number;
  cls: number;
  ttrnw: number;
  inputAddr: bigint;
  ipa: bigint;
  fetchAddr: bigint;
  words: Uint32Array;
}

export function decodeEvent(w: Uint32Array): Ev {
  const type = EVTF.TYPE.read(w);
  return {
    type,
    name: EVT_NAME[type] ?? `0x${type.toString(16)}`,
    sid: EVTF.SID.read(w),
    ssv: EVTF.SSV.read(w),
    ssid: EVTF.SSID.read(w),
    rnw: EVTF.RNW.read(w),
    ind: EVTF.IND.read(w),
    pnu: EVTF.PNU.read(w),
    s2: EVTF.S2.read(w),
    cls: EVTF.CLASS.read(w),
    ttrnw: EVTF.TTRNW.read(w),
    inputAddr: EVTF.INPUT_ADDR.read64(w),
    ipa: EVTF.IPA.read64(w) << 12n,
    fetchAddr: EVTF.FETCH_ADDR.read64(w) << 3n,
    words: w,
  };
}

export interface RigOptions {
  features?: Partial<SmmuFeatures>;
  memBytes?: number;
  /** Stream table: linear with 2^log2 entries (default), or 2-level with SPLIT. */
  strtab?: { log2size: number; split?: number };
  /** log2 of event queue entries. */
  evtqLog2?: number;
  cr2?: number;
  /** Leave SMMUEN=0 after bring-up. */
  smmuen?: boolean;
}

export class Rig {
  readonly views: SharedViews;
  readonly machine: Machine;
  readonly platform: LockstepPlatform;
  /** Applies a fault (the lockstep system's inject). */
  readonly inject: LockstepSystem['inject'];
  readonly io: IoMem;
  readonly features: SmmuFeatures;
  strtabBase = 0;
  readonly strtab: { log2size: number; split?: number };
  cmdqBase = 0;
  private cmdqLog2 = 8;
  private cmdqProd = 0;
  evtqBase = 0;
  evtqLog2: number;

  constructor(o: RigOptions = {}) {
    this.features = { ...DEFAULT_FEATURES, ...o.features };
    const ls = createLockstep({ features: this.features, memBytes: o.memBytes ?? 16 << 20 });
    this.views = ls.views;
    this.machine = ls.machine;
    this.platform = ls.platform;
    this.inject = ls.inject;
    this.io = this.platform.ioremap(PA.SMMU_BASE, SMMU_BYTES);
    this.strtab = o.strtab ?? { log2size: 6 };
    this.evtqLog2 = o.evtqLog2 ?? 6;
    this.bringUp(o);
  }

  get mem() {
    return this.platform.mem;
  }
  get pages() {
    return this.platform.pages;
  }
  get smmu() {
    return this.machine.smmu;
  }
  get services() {
    return this.machine.smmu.services;
  }
  get stats() {
    return this.views.stats;
  }

  alloc(pages = 1): number {
    return this.pages.alloc(pages, 'test');
  }

  /** Writes CR0 and waits (virtual time) until CR0ACK shows it. */
  setCr0(v: number): void {
    this.io.write32(OFF.CR0, v);
    for (let i = 0; i < 100 && this.io.read32(OFF.CR0ACK) !== v; i++) this.platform.delay(TIMEOUT.SMMU_ACK_LATENCY);
    if (this.io.read32(OFF.CR0ACK) !== v) throw new Error(`CR0ACK 0x${this.io.read32(OFF.CR0ACK).toString(16)} never reached 0x${v.toString(16)}`);
  }

  cr0(): number {
    return this.io.read32(OFF.CR0ACK);
  }

  private bringUp(o: RigOptions): void {
    const { log2size, split } = this.strtab;
    const l1 = split !== undefined;
    const tableBytes = l1 ? Math.max(2 ** (log2size - split) * 8, 64) : 2 ** log2size * STE_BYTES;
    this.strtabBase = this.alloc(Math.ceil(tableBytes / 4096));
    this.io.write64(OFF.STRTAB_BASE, BigInt(this.strtabBase));
    let cfg = STRTAB_BASE_CFG.LOG2SIZE.set(0, log2size);
    if (l1) cfg = STRTAB_BASE_CFG.SPLIT.set(STRTAB_BASE_CFG.FMT.set(cfg, 1), split);
    this.io.write32(OFF.STRTAB_BASE_CFG, cfg);

    this.cmdqBase = this.alloc(Math.ceil((16 << this.cmdqLog2) / 4096));
    this.io.write64(OFF.CMDQ_BASE, BigInt(this.cmdqBase) | BigInt(this.cmdqLog2));
    this.evtqBase = this.alloc(Math.max(1, Math.ceil((EVT_BYTES << this.evtqLog2) / 4096)));
    this.io.write64(OFF.EVENTQ_BASE, Q_BASE.LOG2SIZE.set64(BigInt(this.evtqBase), this.evtqLog2));
    this.io.write32(OFF.CR2, o.cr2 ?? CR2.RECINVSID.bits);
    this.io.write32(OFF.IRQ_CTRL, IRQ_CTRL.EVENTQ_IRQEN.bits | IRQ_CTRL.GERROR_IRQEN.bits);
    this.platform.delay(TIMEOUT.SMMU_ACK_LATENCY * 2);
    this.setCr0(CR0.CMDQEN.bits | CR0.EVENTQEN.bits);
    this.cmd({ op: 'CFGI_ALL' });
    this.cmd({ op: 'TLBI_NSNH_ALL' });
    if (o.smmuen !== false) this.setCr0(CR0.CMDQEN.bits | CR0.EVENTQEN.bits | CR0.SMMUEN.bits);
  }

  /** Sets GBPA (with Update) and waits for Update to clear. */
  setGbpa(abort: boolean): void {
    this.io.write32(OFF.GBPA, GBPA.Update.bits | (abort ? GBPA.ABORT.bits : 0));
    for (let i = 0; i < 100 && (this.io.read32(OFF.GBPA) & GBPA.Update.bits) !== 0; i++) this.platform.delay(TIMEOUT.SMMU_ACK_LATENCY);
  }

  /** Pushes commands and rings the doorbell; lockstep consumes them before this returns. */
  cmd(...ents: CmdEnt[]): void {
    const words = new Uint32Array(4);
    const size = 1 << this.cmdqLog2;
    for (const e of ents) {
      buildCmd(words, 0, e);
      writeStruct(this.mem, this.cmdqBase + (this.cmdqProd & (size - 1)) * 16, words);
      this.cmdqProd = (this.cmdqProd + 1) & ((2 << this.cmdqLog2) - 1);
    }
    this.io.write32(OFF.CMDQ_PROD, this.cmdqProd);
    const cons = this.io.read32(OFF.CMDQ_CONS);
    if ((cons & ((2 << this.cmdqLog2) - 1)) !== this.cmdqProd) throw new Error(`CMDQ stopped at CONS 0x${cons.toString(16)}: ${JSON.stringify(this.smmu.cmdq.lastError)}`);
  }

  /** Address of a StreamID's STE: linear, or through the L1STD of a 2-level table (which must be valid). */
  steAddr(sid: number): number {
    const split = this.strtab.split;
    if (split === undefined) return this.strtabBase + sid * STE_BYTES;
    const d = this.mem.read64(this.strtabBase + Math.floor(sid / 2 ** split) * 8);
    if (L1STD.SPAN.get64(d) === 0n) throw new Error(`rig: no L2 stream table for StreamID ${sid}`);
    return Number(L1STD.L2PTR.get64(d)) * 64 + (sid % 2 ** split) * STE_BYTES;
  }

  /** 2-level table: gives the StreamIDs of L1 entry `l1` an L2 array of 2^(span-1) STEs; returns its address. */
  installL2(l1: number, span: number): number {
    const l2 = this.alloc(Math.max(1, (2 ** (span - 1) * STE_BYTES) / 4096));
    this.mem.write64(this.strtabBase + l1 * 8, l1std(l2, span));
    return l2;
  }

  /** Writes an STE into the stream table (no invalidation). */
  writeSte(sid: number, o: SteOpts): number {
    const at = this.steAddr(sid);
    writeStruct(this.mem, at, makeSte(o));
    return at;
  }

  writeCd(pa: number, o: CdOpts): void {
    writeStruct(this.mem, pa, makeCd(o));
  }

  /** A stage 1 stream: a single CD (ASID) over a fresh stage 1 table; returns the table and CD address. */
  s1Stream(sid: number, o: { asid?: number; t0sz?: number; cd?: Partial<CdOpts>; ste?: Partial<SteOpts> } = {}): { pt: PageTable; cd: number } {
    const pt = new PageTable(this.mem, this.pages, 1, o.t0sz ?? 25);
    const cd = this.alloc();
    this.writeCd(cd, { asid: o.asid ?? 1, ttb0: pt.root, t0sz: o.t0sz ?? 25, ...o.cd });
    this.writeSte(sid, { config: 0b101, cdPtr: cd, ...o.ste });
    return { pt, cd };
  }

  /** Reads and consumes every event written since the last call. */
  events(): Ev[] {
    const out: Ev[] = [];
    const mask = (2 << this.evtqLog2) - 1;
    const size = 1 << this.evtqLog2;
    const prodReg = this.io.read32(OFF.EVENTQ_PROD);
    let consReg = this.io.read32(OFF.EVENTQ_CONS);
    let cons = Q_IDX.WR.get(consReg) & mask;
    const prod = Q_IDX.WR.get(prodReg) & mask;
    while (cons !== prod) {
      const pa = this.evtqBase + (cons & (size - 1)) * EVT_BYTES;
      const w = new Uint32Array(8);
      for (let q = 0; q < 4; q++) {
        const v = this.mem.read64(pa + q * 8);
        w[2 * q] = Number(v & 0xffffffffn);
        w[2 * q + 1] = Number(v >> 32n);
      }
      out.push(decodeEvent(w));
      cons = (cons + 1) & mask;
    }
    consReg = (consReg & Q_OVFLG.bits) | cons;
    this.io.write32(OFF.EVENTQ_CONS, consReg);
    return out;
  }

  dma(a: Partial<DmaAccess> & { sid: number; addr: number }, data?: Uint8Array) {
    const bytes = a.bytes ?? data?.length ?? 4;
    const buf = data ?? new Uint8Array(bytes);
    const access: DmaAccess = { write: false, ...a, bytes };
    return { r: this.services.transfer(access, buf, false), buf };
  }

  read(sid: number, addr: number, extra: Partial<DmaAccess> = {}) {
    return this.dma({ sid, addr, ...extra, write: false });
  }

  write(sid: number, addr: number, data: Uint8Array, extra: Partial<DmaAccess> = {}) {
    return this.dma({ sid, addr, ...extra, write: true }, data);
  }
}
