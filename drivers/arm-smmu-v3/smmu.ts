// The SMMUv3 driver core, modelled on Linux's drivers/iommu/arm/arm-smmu-v3: probing the ID registers,
// allocating queues and the stream table, the reset sequence that brings the SMMU up, interrupt
// setup, the global error handler with skip_err, and command batches.

import { CERROR, CMDQ_CONS, CR0, CR1, CR2, CACHE_WB, GBPA, GERROR, IDR0, IDR1, IDR3, IDR5, IRQ_CTRL, MEMATTR_DEVICE_nGnRE, OAS_BITS, OFF, Q_BASE, SH_ISH, STRTAB_BASE, STRTAB_BASE_CFG, STRTAB_FMT_2LVL, STRTAB_FMT_LINEAR, TTENDIAN_LE, TTF_AARCH64 } from '../../src/arch/smmu/regs.ts';
import { STE, STE_BYTES, STE_CONFIG, L1STD_BYTES } from '../../src/arch/smmu/ste.ts';
import { PA, PAGE_SIZE, SMMU_BYTES, VECTOR } from '../../src/arch/platform.ts';
import { TIMEOUT } from '../../src/arch/time.ts';
import { hex } from '../../src/arch/bits.ts';
import { F, OP } from '../../src/arch/smmu/commands.ts';
import type { IoMem, Platform } from '../platform/platform.ts';
import { buildCmd, buildSync, type CmdEnt } from './cmds.ts';
import { CMDQ_BATCH_ENTRIES, CMDQ_MAX_SZ_SHIFT, Cmdq, POLL_SPIN_COUNT, W, cmdqStateBytes } from './cmdq.ts';
import { FetchAbortRetry } from './fetch-abort.ts';
import { DEFAULT_ATC_RECOVERY, type SmmuDriverOptions, type SmmuShared } from '../../src/protocol/ops/smmu.ts';
import { EventQueueThread } from './evtq.ts';
import { allocIdState } from './ids.ts';

/** Linux's ARM_SMMU_FEAT_* bits, for the "features 0x%08x" probe line. */
export const FEAT = {
  TWO_LVL_STRTAB: 1 << 0,
  TWO_LVL_CDTAB: 1 << 1,
  TT_LE: 1 << 2,
  TT_BE: 1 << 3,
  PRI: 1 << 4,
  ATS: 1 << 5,
  SEV: 1 << 6,
  MSI: 1 << 7,
  COHERENCY: 1 << 8,
  TRANS_S1: 1 << 9,
  TRANS_S2: 1 << 10,
  STALLS: 1 << 11,
  HYP: 1 << 12,
  STALL_FORCE: 1 << 13,
  VAX: 1 << 14,
  RANGE_INV: 1 << 15,
  BTM: 1 << 16,
  SVA: 1 << 17,
  E2H: 1 << 18,
  NESTING: 1 << 19,
  ATTR_TYPES_OVR: 1 << 20,
} as const;

/** The event queue: the driver caps it at 2^12 entries of 32 bytes (Linux caps by allocation size). */
const EVTQ_MAX_SZ_SHIFT = 12;
/** 2-level stream table split: 256 STEs per level-2 table (Linux STRTAB_SPLIT). */
export const STRTAB_SPLIT = 8;
/** Most level-1 descriptors the driver allocates (Linux STRTAB_MAX_L1_ENTRIES). */
const STRTAB_MAX_L1_ENTRIES = 1 << 17;

/** MSI vectors this driver uses for the SMMU's interrupt sources (index order as Linux: evtq, gerror, priq). */
export const MSI_VECTORS = { EVTQ: VECTOR.MSI_BASE, GERROR: VECTOR.MSI_BASE + 1, PRIQ: VECTOR.MSI_BASE + 2 } as const;

// The probe options and the shared state are the protocol's (src/protocol/ops/smmu.ts): the host
// passes the one and hands the other from CPU to CPU.
export type { SmmuDriverOptions, SmmuShared };

export class ProbeError extends Error {}

const DEV = 'arm-smmu-v3 9050000.smmuv3';

/** Every error bit GERROR defines (Linux GERROR_ERR_MASK, 0x1fd). */
const GERROR_ERR_MASK = Object.values(GERROR).reduce((m, f) => m | f.bits, 0);
/** CMDQ_CONS.ERR codes as skip_err names them. */
const CERROR_TEXT = ['No error', 'Illegal command', 'Abort on command fetch', 'ATC invalidate timeout'];

export class ArmSmmuDevice {
  readonly regs: IoMem;
  cmdq!: Cmdq;
  /** skip_err's paced, bounded retry of command fetch aborts (fetch-abort.ts), shared by every CPU. */
  private fetchAbort!: FetchAbortRetry;
  /** A paced fetch-abort retry is queued as deferred work on this CPU. */
  private fetchRetryQueued = false;
  shared!: SmmuShared;
  /** Per-CPU batch buffer (Linux struct arm_smmu_cmdq_batch). */
  private readonly batchBuf = new Uint32Array(CMDQ_BATCH_ENTRIES * 4);
  private batchNum = 0;
  /** Global errors this CPU handled, by GERROR bit name. */
  readonly gerrors = new Map<string, number>();

  private constructor(readonly p: Platform) {
    this.regs = p.ioremap(PA.SMMU_BASE, SMMU_BYTES);
  }

  log(level: 'err' | 'warn' | 'info', msg: string): void {
    this.p.log(level, `${DEV}: ${msg}`);
  }

  has(f: number): boolean {
    return (this.shared.features & f) !== 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Probe (arm_smmu_device_probe): hw_probe, init_structures, device_reset.

  static probe(p: Platform, opts: SmmuDriverOptions = {}): ArmSmmuDevice {
    const d = new ArmSmmuDevice(p);
    d.hwProbe(opts);
    d.initStructures();
    d.deviceReset(opts.irqCpu ?? p.cpu);
    return d;
  }

  /** Joins an SMMU another CPU probed: same queues and shared state, this CPU's own batch buffer. */
  static attach(p: Platform, shared: SmmuShared): ArmSmmuDevice {
    const d = new ArmSmmuDevice(p);
    d.shared = shared;
    d.useQueue();
    return d;
  }

  /** Logs why the probe cannot go on (dev_err) and abandons it. */
  private probeFail(msg: string): never {
    this.log('err', msg);
    throw new ProbeError(msg);
  }

  private hwProbe(opts: SmmuDriverOptions): void {
    const idr0 = this.regs.read32(OFF.IDR0);
    let features = 0;
    if (IDR0.ST_LEVEL.get(idr0) === 1) features |= FEAT.TWO_LVL_STRTAB;
    if (IDR0.CD2L.get(idr0)) features |= FEAT.TWO_LVL_CDTAB;
    const endian = IDR0.TTENDIAN.get(idr0);
    if (endian === 0) features |= FEAT.TT_LE | FEAT.TT_BE;
    else if (endian === TTENDIAN_LE) features |= FEAT.TT_LE;
    else this.probeFail('unknown/unsupported TT endianness!');
    if (IDR0.PRI.get(idr0)) features |= FEAT.PRI;
    if (IDR0.ATS.get(idr0)) features |= FEAT.ATS;
    if (IDR0.SEV.get(idr0)) features |= FEAT.SEV;
    const coherent = opts.coherent ?? IDR0.COHACC.get(idr0) === 1;
    if (coherent) features |= FEAT.COHERENCY;
    if (coherent !== (IDR0.COHACC.get(idr0) === 1)) this.log('warn', `IDR0.COHACC overridden by FW configuration (${coherent})`);
    let msiPoll = false;
    if (IDR0.MSI.get(idr0)) {
      features |= FEAT.MSI;
      // ARM_SMMU_OPT_MSIPOLL: CMD_SYNC completion by MSI into the queue needs a coherent SMMU.
      msiPoll = coherent && !opts.disableMsiPolling;
    }
    if (IDR0.HYP.get(idr0)) features |= FEAT.HYP;
    if (IDR0.STALL_MODEL.get(idr0) === 0) features |= FEAT.STALLS;
    if (IDR0.STALL_MODEL.get(idr0) === 2) features |= FEAT.STALLS | FEAT.STALL_FORCE;
    if (IDR0.S1P.get(idr0)) features |= FEAT.TRANS_S1;
    if (IDR0.S2P.get(idr0)) features |= FEAT.TRANS_S2;
    if (!(features & (FEAT.TRANS_S1 | FEAT.TRANS_S2))) this.probeFail('no translation support!');
    let ias = 0;
    const ttf = IDR0.TTF.get(idr0);
    if (ttf === 3) ias = 40;
    else if (ttf !== TTF_AARCH64) this.probeFail('AArch64 table format not supported!');
    const asidBits = IDR0.ASID16.get(idr0) ? 16 : 8;
    const vmidBits = IDR0.VMID16.get(idr0) ? 16 : 8;

    const idr1 = this.regs.read32(OFF.IDR1);
    if (IDR1.TABLES_PRESET.get(idr1) || IDR1.QUEUES_PRESET.get(idr1) || IDR1.REL.get(idr1)) this.probeFail('embedded implementation not supported');
    if (IDR1.ATTR_TYPES_OVR.get(idr1)) features |= FEAT.ATTR_TYPES_OVR;
    const cmdqShift = Math.min(CMDQ_MAX_SZ_SHIFT, IDR1.CMDQS.get(idr1));
    if (cmdqShift <= Math.log2(CMDQ_BATCH_ENTRIES)) this.probeFail(`command queue size <= ${CMDQ_BATCH_ENTRIES} entries not supported`);
    const evtqShift = Math.min(EVTQ_MAX_SZ_SHIFT, IDR1.EVENTQS.get(idr1));
    const ssidBits = IDR1.SSIDSIZE.get(idr1);
    const sidBits = IDR1.SIDSIZE.get(idr1);
    // A small SID space fits a linear table (Linux: sid_bits <= STRTAB_SPLIT).
    if (sidBits <= STRTAB_SPLIT) features &= ~FEAT.TWO_LVL_STRTAB;

    const idr3 = this.regs.read32(OFF.IDR3);
    if (IDR3.RIL.get(idr3)) features |= FEAT.RANGE_INV;

    const idr5 = this.regs.read32(OFF.IDR5);
    const oasEnc = IDR5.OAS.get(idr5);
    let oas: number = OAS_BITS[oasEnc] ?? 0;
    if (oasEnc > 6) {
      this.log('info', 'unknown output address size. Truncating to 48-bit');
      oas = 48;
    }
    ias = Math.max(ias, oas);
    if ((features & FEAT.TRANS_S1) && (features & FEAT.TRANS_S2)) features |= FEAT.NESTING;
    this.log('info', `ias ${ias}-bit, oas ${oas}-bit (features ${hex(features >>> 0)})`);

    this.shared = {
      features,
      cmdq: { basePa: 0, shift: cmdqShift, statePa: 0, msiPoll, sev: (features & FEAT.SEV) !== 0 },
      evtq: { basePa: 0, shift: evtqShift },
      strtab: { basePa: 0, twoLevel: (features & FEAT.TWO_LVL_STRTAB) !== 0, sidBits, l1Entries: 0 },
      ias,
      oas,
      sidBits,
      ssidBits,
      asidBits,
      vmidBits,
      irqVectors: (features & FEAT.MSI) !== 0 ? { gerror: MSI_VECTORS.GERROR, evtq: MSI_VECTORS.EVTQ } : { gerror: VECTOR.SMMU_GERROR, evtq: VECTOR.SMMU_EVTQ },
      pollTimeoutNs: opts.pollTimeoutNs ?? TIMEOUT.SMMU_POLL,
      atcRecovery: opts.atcRecovery ?? DEFAULT_ATC_RECOVERY,
      ...(opts.bug !== undefined ? { bug: opts.bug } : {}),
      idStatePa: 0,
    };
  }

  /** Allocates a queue of 2^shift entries (arm_smmu_init_one_queue), logging its size. */
  private allocQueue(shift: number, entryBytes: number, name: string): number {
    const bytes = (1 << shift) * entryBytes;
    const pa = this.p.pages.alloc(Math.ceil(bytes / PAGE_SIZE), `${name} queue`);
    this.log('info', `allocated ${1 << shift} entries for ${name}`);
    return pa;
  }

  private initStructures(): void {
    const s = this.shared;
    s.cmdq.basePa = this.allocQueue(s.cmdq.shift, 16, 'cmdq');
    s.cmdq.statePa = this.p.pages.alloc(Math.ceil(cmdqStateBytes(s.cmdq.shift) / PAGE_SIZE), 'cmdq state');
    Cmdq.initState(this.p, s.cmdq.statePa, s.cmdq.shift);
    s.evtq.basePa = this.allocQueue(s.evtq.shift, 32, 'evtq');
    this.initStrtab();
    s.idStatePa = allocIdState(this.p);
    this.useQueue();
  }

  /** The command queue in shared.cmdq, as this CPU issues to it and recovers its errors. */
  private useQueue(): void {
    const s = this.shared;
    this.cmdq = new Cmdq(this.p, this.regs, s.cmdq, s.pollTimeoutNs, (l, m) => this.log(l, m), () => this.checkGerror(), s.bug);
    this.fetchAbort = new FetchAbortRetry(this.p.mem, s.cmdq.statePa + W.ABT * 4, s.pollTimeoutNs, POLL_SPIN_COUNT);
  }

  /** The stream table: 2-level with lazily allocated leaves, or linear; every STE starts as abort. */
  private initStrtab(): void {
    const st = this.shared.strtab;
    if (st.twoLevel) {
      const l1 = Math.min(2 ** Math.max(0, st.sidBits - STRTAB_SPLIT), STRTAB_MAX_L1_ENTRIES);
      if (l1 * 2 ** STRTAB_SPLIT < 2 ** st.sidBits) {
        this.log('warn', `2-level strtab only covers ${Math.log2(l1) + STRTAB_SPLIT}/${st.sidBits} bits of SID`);
      }
      st.l1Entries = l1;
      st.basePa = this.p.pages.alloc(Math.ceil((l1 * L1STD_BYTES) / PAGE_SIZE), 'l1 stream table');
    } else {
      const n = 2 ** st.sidBits;
      st.basePa = this.p.pages.alloc(Math.ceil((n * STE_BYTES) / PAGE_SIZE), 'linear stream table');
      this.initAbortStes(st.basePa, n);
    }
  }

  /** Fills STEs with V=1, Config=abort (arm_smmu_init_initial_stes). */
  initAbortStes(pa: number, count: number): void {
    const qw0 = BigInt(STE.V.set(STE.CONFIG.set(0, STE_CONFIG.ABORT), 1));
    for (let i = 0; i < count; i++) this.p.mem.write64(pa + i * STE_BYTES, qw0);
  }

  // ---------------------------------------------------------------------------------------------
  // Reset (arm_smmu_device_reset)

  /**
   * Reads a register every 1 us until `done` accepts its value, for at most the poll timeout
   * (readl_relaxed_poll_timeout with ARM_SMMU_POLL_TIMEOUT_US); the value, or null on timeout.
   */
  private pollReg(reg: number, done: (v: number) => boolean): number | null {
    const deadline = this.p.clock.now() + this.shared.pollTimeoutNs;
    for (;;) {
      const v = this.regs.read32(reg);
      if (done(v)) return v;
      if (this.p.clock.now() > deadline) return null;
      this.p.delay(1000);
    }
  }

  /** Writes a register and polls its ACK until it matches (arm_smmu_write_reg_sync). */
  private writeRegSync(val: number, reg: number, ack: number): boolean {
    this.regs.write32(reg, val);
    return this.pollReg(ack, (v) => v === val >>> 0) !== null;
  }

  /** Waits for GBPA.Update to clear, then writes a new value with Update set (arm_smmu_update_gbpa). */
  private updateGbpa(set: number, clr: number): boolean {
    const idle = (v: number) => !GBPA.Update.get(v);
    const old = this.pollReg(OFF.GBPA, idle);
    if (old === null) return false;
    this.regs.write32(OFF.GBPA, ((old & ~clr) | set | GBPA.Update.bits) >>> 0);
    if (this.pollReg(OFF.GBPA, idle) === null) {
      this.log('err', 'GBPA not responding to update');
      return false;
    }
    return true;
  }

  private deviceReset(irqCpu: number): void {
    const s = this.shared;
    // Disable bypass while the SMMU is being reset, if a previous owner left it on.
    if (CR0.SMMUEN.get(this.regs.read32(OFF.CR0))) {
      this.log('warn', 'SMMU currently enabled! Resetting...');
      this.updateGbpa(GBPA.ABORT.bits, 0);
    }
    if (!this.writeRegSync(0, OFF.CR0, OFF.CR0ACK)) this.probeFail('failed to clear cr0');

    // Table and queue accesses: inner-shareable, write-back cacheable.
    let cr1 = 0;
    for (const [f, v] of [
      [CR1.QUEUE_IC, CACHE_WB],
      [CR1.QUEUE_OC, CACHE_WB],
      [CR1.QUEUE_SH, SH_ISH],
      [CR1.TABLE_IC, CACHE_WB],
      [CR1.TABLE_OC, CACHE_WB],
      [CR1.TABLE_SH, SH_ISH],
    ] as const) {
      cr1 = f.set(cr1, v);
    }
    this.regs.write32(OFF.CR1, cr1);
    // CR2: private TLB maintenance, record invalid StreamIDs (E2H only with a VHE host: not modelled).
    this.regs.write32(OFF.CR2, CR2.PTM.bits | CR2.RECINVSID.bits);

    // Stream table.
    const st = s.strtab;
    this.regs.write64(OFF.STRTAB_BASE, STRTAB_BASE.RA.set64(STRTAB_BASE.ADDR.set64(0n, BigInt(st.basePa) >> 6n), 1n));
    let cfg = 0;
    if (st.twoLevel) {
      cfg = STRTAB_BASE_CFG.FMT.set(cfg, STRTAB_FMT_2LVL);
      cfg = STRTAB_BASE_CFG.SPLIT.set(cfg, STRTAB_SPLIT);
      cfg = STRTAB_BASE_CFG.LOG2SIZE.set(cfg, Math.log2(st.l1Entries) + STRTAB_SPLIT);
    } else {
      cfg = STRTAB_BASE_CFG.FMT.set(cfg, STRTAB_FMT_LINEAR);
      cfg = STRTAB_BASE_CFG.LOG2SIZE.set(cfg, st.sidBits);
    }
    this.regs.write32(OFF.STRTAB_BASE_CFG, cfg);

    // Command queue.
    this.regs.write64(OFF.CMDQ_BASE, queueBase(s.cmdq.basePa, s.cmdq.shift));
    this.regs.write32(OFF.CMDQ_PROD, 0);
    this.regs.write32(OFF.CMDQ_CONS, 0);
    let enables = CR0.CMDQEN.bits;
    if (!this.writeRegSync(enables, OFF.CR0, OFF.CR0ACK)) this.probeFail('failed to enable command queue');

    // Invalidate any cached configuration and TLB entries, each with its own CMD_SYNC.
    this.issueCmdWithSync({ op: 'CFGI_ALL' });
    if (this.has(FEAT.HYP)) this.issueCmdWithSync({ op: 'TLBI_EL2_ALL' });
    this.issueCmdWithSync({ op: 'TLBI_NSNH_ALL' });

    // Event queue (PROD/CONS live in page 1).
    this.regs.write64(OFF.EVENTQ_BASE, queueBase(s.evtq.basePa, s.evtq.shift));
    this.regs.write32(OFF.EVENTQ_PROD, 0);
    this.regs.write32(OFF.EVENTQ_CONS, 0);
    enables |= CR0.EVENTQEN.bits;
    if (!this.writeRegSync(enables, OFF.CR0, OFF.CR0ACK)) this.probeFail('failed to enable event queue');

    // Linux sets up the PRI queue here when IDR0.PRI (PRIQ_BASE, PRIQEN, and later its IRQ). Nothing
    // in this model issues page requests, so the driver leaves the PRI queue disabled.

    if (this.has(FEAT.ATS)) {
      enables |= CR0.ATSCHK.bits;
      if (!this.writeRegSync(enables, OFF.CR0, OFF.CR0ACK)) this.probeFail('failed to enable ATS check');
    }

    this.setupIrqs(irqCpu);

    enables |= CR0.SMMUEN.bits;
    if (!this.writeRegSync(enables, OFF.CR0, OFF.CR0ACK)) this.probeFail('failed to enable SMMU interface');
  }

  /** arm_smmu_setup_irqs: IRQs off, MSI configuration, handlers, then IRQ_CTRL enables. */
  private setupIrqs(irqCpu: number): void {
    if (!this.writeRegSync(0, OFF.IRQ_CTRL, OFF.IRQ_CTRLACK)) this.probeFail('failed to disable irqs');
    // arm_smmu_setup_msis: clear the MSI addresses (Linux does so before it looks at IDR0.MSI; without
    // MSIs the registers are RES0), then point each source at the MSI doorbell with its vector as
    // data, Device-nGnRE.
    this.regs.write64(OFF.GERROR_IRQ_CFG0, 0n);
    this.regs.write64(OFF.EVENTQ_IRQ_CFG0, 0n);
    if (this.has(FEAT.MSI)) {
      for (const [cfg0, cfg1, cfg2, vec] of [
        [OFF.EVENTQ_IRQ_CFG0, OFF.EVENTQ_IRQ_CFG1, OFF.EVENTQ_IRQ_CFG2, MSI_VECTORS.EVTQ],
        [OFF.GERROR_IRQ_CFG0, OFF.GERROR_IRQ_CFG1, OFF.GERROR_IRQ_CFG2, MSI_VECTORS.GERROR],
      ] as const) {
        this.regs.write64(cfg0, BigInt(PA.MSI_DOORBELL));
        this.regs.write32(cfg1, vec);
        this.regs.write32(cfg2, MEMATTR_DEVICE_nGnRE);
      }
    }
    if (irqCpu === this.p.cpu) this.requestIrqs();
    if (!this.writeRegSync(IRQ_CTRL.EVENTQ_IRQEN.bits | IRQ_CTRL.GERROR_IRQEN.bits, OFF.IRQ_CTRL, OFF.IRQ_CTRLACK)) {
      this.log('warn', 'failed to enable irqs');
    }
  }

  /** Binds the GERROR and event queue handlers on this CPU (and routes their vectors here). */
  requestIrqs(): void {
    const v = this.shared.irqVectors;
    this.p.requestIrq(v.gerror, 'arm-smmu-v3-gerror', () => this.gerrorHandler());
    this.p.requestIrq(v.evtq, 'arm-smmu-v3-evtq', () => this.evtq.run());
  }

  /** The event queue thread (evtq.ts). */
  readonly evtq = new EventQueueThread(this);

  // ---------------------------------------------------------------------------------------------
  // Global errors (arm_smmu_gerror_handler, __arm_smmu_cmdq_skip_err)

  /** The GERROR interrupt's handler. */
  gerrorHandler(): void {
    this.cmdq.withErrorLock(() => this.handleGerror());
  }

  /**
   * A CPU whose CMD_SYNC poll timed out looks at GERROR itself (its interrupt may be masked on this
   * CPU, which polls with interrupts off); true when it found and handled an error (other than a
   * fetch abort it leaves active: then the queue stays stopped and polling again is pointless).
   */
  checkGerror(): boolean {
    return this.cmdq.withErrorLock(() => this.handleGerror());
  }

  /** arm_smmu_gerror_handler; false when no error was pending (or only a fetch abort left active). */
  private handleGerror(): boolean {
    const gerror = this.regs.read32(OFF.GERROR);
    const gerrorn = this.regs.read32(OFF.GERRORN);
    const active = (gerror ^ gerrorn) >>> 0;
    if (!(active & GERROR_ERR_MASK)) return false;
    const cmdqErr = active & GERROR.CMDQ_ERR.bits;
    const cons = cmdqErr ? this.regs.read32(OFF.CMDQ_CONS) : 0;
    const toggle = gerror & GERROR.CMDQ_ERR.bits;
    // A fetch abort whose retry waits (or was given up) stays active; it was reported when raised.
    const known = cmdqErr && CMDQ_CONS.ERR.get(cons) === CERROR.ABT && this.fetchAbort.isLeft(CMDQ_CONS.RD.get(cons), toggle) ? cmdqErr : 0;
    const fresh = active & ~known;
    if (fresh & GERROR_ERR_MASK) this.log('warn', `unexpected global error reported (${hex(fresh)}), this could be serious`);
    for (const [name, f] of Object.entries(GERROR)) if (fresh & f.bits) this.gerrors.set(name, (this.gerrors.get(name) ?? 0) + 1);
    if (active & GERROR.SFM_ERR.bits) {
      this.failed = true;
      this.log('err', 'device has entered Service Failure Mode!');
      this.deviceDisable();
    }
    if (active & GERROR.MSI_GERROR_ABT_ERR.bits) this.log('warn', 'GERROR MSI write aborted');
    if (active & GERROR.MSI_PRIQ_ABT_ERR.bits) this.log('warn', 'PRIQ MSI write aborted');
    if (active & GERROR.MSI_EVENTQ_ABT_ERR.bits) this.log('warn', 'EVTQ MSI write aborted');
    if (active & GERROR.MSI_CMDQ_ABT_ERR.bits) this.log('warn', 'CMDQ MSI write aborted');
    if (active & GERROR.PRIQ_ABT_ERR.bits) this.log('err', 'PRIQ write aborted -- events may have been lost');
    if (active & GERROR.EVENTQ_ABT_ERR.bits) this.log('err', 'EVTQ write aborted -- events may have been lost');
    const restart = !cmdqErr || (known ? this.retryFetch(CMDQ_CONS.RD.get(cons), toggle) : this.skipErr(cons, toggle));
    // Acknowledge: make GERRORN equal GERROR, but for a command error skip_err leaves active.
    this.regs.write32(OFF.GERRORN, restart ? gerror : (gerror & ~cmdqErr) | (gerrorn & cmdqErr));
    return restart || (active & ~cmdqErr & GERROR_ERR_MASK) !== 0;
  }

  /** The SMMU entered Service Failure Mode: it translates nothing and consumes no command any more. */
  failed = false;
  /** Platform times at which this CPU handled a CERROR_ATC_INV_SYNC. */
  readonly atcTimeouts: number[] = [];
  /** Under atcRecovery 'reset' (v1): the StreamID of the ATC_INV just before a failed CMD_SYNC. */
  onAtcTimeout: ((sid: number) => void) | null = null;

  /** Command errors this CPU handled: CONS (with the error code in ERR) at each. */
  readonly errorLog: { cons: number; code: number }[] = [];

  /**
   * __arm_smmu_cmdq_skip_err for the command error now active (CMDQ_CONS `cons`, GERROR.CMDQ_ERR
   * toggle `toggle`); true when it may be acknowledged now, so that the queue goes on.
   */
  private skipErr(cons: number, toggle: number): boolean {
    const idx = CMDQ_CONS.ERR.get(cons);
    this.log('err', `CMDQ error (cons ${hex(cons >>> 0)}): ${CERROR_TEXT[idx] ?? 'Unknown'}`);
    this.errorLog.push({ cons: CMDQ_CONS.RD.get(cons), code: idx });
    switch (idx) {
      case CERROR.ABT:
        return this.retryFetch(CMDQ_CONS.RD.get(cons), toggle);
      case CERROR.NONE:
        return true;
      case CERROR.ATC_INV_SYNC: {
        // CONS still points at the CMD_SYNC; acknowledging the error makes the SMMU retry it. Its
        // issuer learns that it failed from the record (Linux v2's atc_sync_timeouts), and under the
        // v1 design the ATC_INV just before the SYNC names the device to reset.
        this.cmdq.markSyncFailed(cons);
        this.atcTimeouts.push(this.p.clock.now());
        const prev = this.cmdq.slot(CMDQ_CONS.RD.get(cons) - 1);
        if (this.shared.atcRecovery === 'reset' && F.OP.read(prev, 0) === OP.ATC_INV) this.onAtcTimeout?.(F.SID.read(prev, 0));
        return true;
      }
      default:
        break;
    }
    // CERROR_ILL (or unknown): dump the command and replace it with a CMD_SYNC in place.
    const slotPa = this.shared.cmdq.basePa + (cons & ((1 << this.shared.cmdq.shift) - 1)) * 16;
    const q0 = this.p.mem.read64(slotPa);
    const q1 = this.p.mem.read64(slotPa + 8);
    this.log('err', 'skipping command in error state:');
    this.log('err', `\t${hex(q0, 16)}`);
    this.log('err', `\t${hex(q1, 16)}`);
    const sync = new Uint32Array(4);
    buildSync(sync, 0, 0);
    const i = this.p.mem.idx32(slotPa);
    for (let k = 0; k < 4; k++) Atomics.store(this.p.mem.i32, i + k, sync[k]! | 0);
    return true;
  }

  /**
   * CERROR_ABT at CONS.RD `rd`: retry the fetch now, later (deferred work on this CPU, after the
   * back-off), or give up, as fetch-abort.ts decides; true when the error may be acknowledged now.
   */
  private retryFetch(rd: number, toggle: number): boolean {
    const d = this.fetchAbort.decide(rd, toggle, this.p.clock.now());
    switch (d.kind) {
      case 'retry':
        this.log('err', 'retrying command fetch');
        return true;
      case 'later':
        if (!this.fetchRetryQueued) {
          this.fetchRetryQueued = true;
          // Done once this CPU could take the error lock (another CPU may be handling an error).
          const retry = () => {
            this.fetchRetryQueued = false;
            this.handleGerror();
            return true;
          };
          this.p.deferWork(() => this.cmdq.withErrorLock(retry), d.inNs);
        }
        return false;
      case 'give-up':
        this.log('err', `command fetch at cons ${hex(rd)} still aborts after ${d.retries} retries over ${(d.forNs / 1e6).toFixed(0)} ms: giving up; the command queue stays stopped (CMD_SYNCs behind it time out; one that does retries the fetch)`);
        return false;
      case 'stopped':
        return false;
    }
  }

  deviceDisable(): boolean {
    const ok = this.writeRegSync(0, OFF.CR0, OFF.CR0ACK);
    if (!ok) this.log('err', 'failed to clear cr0');
    return ok;
  }

  // ---------------------------------------------------------------------------------------------
  // Command submission helpers (arm_smmu_cmdq_issue_cmd_with_sync, arm_smmu_cmdq_batch_*)

  issueCmdWithSync(ent: CmdEnt): number {
    const buf = new Uint32Array(4);
    buildCmd(buf, 0, ent);
    return this.cmdq.issue(buf, 1, true).ret;
  }

  /** Issues raw commands (4 words each) in batches of 64, only the last with a CMD_SYNC. */
  issueRaw(cmds: Uint32Array, n: number, sync: boolean): number {
    let done = 0;
    let ret = 0;
    while (n - done > CMDQ_BATCH_ENTRIES) {
      this.cmdq.issue(cmds.subarray(done * 4, (done + CMDQ_BATCH_ENTRIES) * 4), CMDQ_BATCH_ENTRIES, false);
      done += CMDQ_BATCH_ENTRIES;
    }
    if (n - done > 0 || sync) ret = this.cmdq.issue(cmds.subarray(done * 4, n * 4), n - done, sync).ret;
    return ret;
  }

  /**
   * Adds an encoded command (4 words) to this CPU's batch; a full batch is issued without a sync first
   * (arm_smmu_cmdq_batch_add).
   */
  batchAddRaw(words: Uint32Array): void {
    if (this.batchNum === CMDQ_BATCH_ENTRIES) {
      this.cmdq.issue(this.batchBuf, this.batchNum, false);
      this.batchNum = 0;
    }
    const b = this.batchBuf;
    const at = this.batchNum * 4;
    b[at] = words[0]!;
    b[at + 1] = words[1]!;
    b[at + 2] = words[2]!;
    b[at + 3] = words[3]!;
    this.batchNum++;
  }

  /** Issues what the batch holds with a CMD_SYNC and waits for it (arm_smmu_cmdq_batch_submit). */
  batchSubmit(): number {
    const r = this.cmdq.issue(this.batchBuf, this.batchNum, true);
    this.batchNum = 0;
    return r.ret;
  }
}

/** Queue base register value: RA/WA hint, address, log2 size (6.3.26). */
function queueBase(pa: number, shift: number): bigint {
  let v = Q_BASE.RWA.set64(0n, 1n);
  v = Q_BASE.ADDR.set64(v, BigInt(pa) >> 5n);
  return Q_BASE.LOG2SIZE.set64(v, BigInt(shift));
}
