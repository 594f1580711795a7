// The SMMUv3 command queue consumer (IHI 0070 3.5, 4.1, 7.1).
//
// While CMDQEN is acknowledged and no CMDQ_ERR is active, the queue consumes commands from CONS towards
// PROD in slices, as a scheduler task, so other hardware activity interleaves. Each command is fetched
// from memory (an abort is CERROR_ABT), decoded and checked against the feature set (CERROR_ILL), then
// executed by the handler registered for its opcode. A handler may stall the queue at a command (e.g. an
// ATC invalidation beyond the endpoint's invalidate queue depth); CMD_SYNC stalls until every earlier
// command's outstanding work has settled, and reports CERROR_ATC_INV_SYNC when some of it failed.
// On an error CONS stays on the failing command, CONS.ERR is written, GERROR.CMDQ_ERR is toggled, and
// consumption resumes from CONS only after software acknowledges through GERRORN (7.1).

import { CERROR, CERROR_NAMES, CMDQ_CONS, GERROR, Q_BASE, Q_IDX, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { COMMANDS, CS, F, OP, commandName, type CommandName } from '../../src/arch/smmu/commands.ts';
import { compileCommands, illegalCode, illegalReason, legalityTable, passesLegalityTable, type CompiledCommand, type LegalityTable } from './legality.ts';
import { truncateToOas, type SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { STAT } from '../../src/machine/layout.ts';
import type { RegisterFile } from '../regfile.ts';
import type { HwContext } from '../context.ts';
import { Field, hex } from '../../src/arch/bits.ts';

/**
 * What a command handler did: finished; stall the queue at this command until kicked again; or
 * failed, having reported a command error (the queue stops with CONS on the command).
 */
export const DONE = 0;
export const STALL = 1;
export const FAILED = 2;
export type ExecResult = typeof DONE | typeof STALL | typeof FAILED;

export type CommandHandler = (cmd: Uint32Array) => ExecResult;

/** Work started by earlier commands that a CMD_SYNC must wait for (e.g. ATC invalidations). */
export interface SyncParticipant {
  /** True while earlier work is outstanding; must call `wake` once it settles. */
  busy(wake: () => void): boolean;
  /** The command error to report at this CMD_SYNC for failures since the last one (forgets them), or 0. */
  takeError(): number;
}

/** The last command error, for diagnostics: where, what and why. */
export interface CmdqErrorInfo {
  cons: number;
  code: number;
  name: string;
  op: number;
  reason: string;
}

/**
 * CMD_SYNC's MSIAddress[55:2] is 54 bits, one more than a number holds exactly, so it is read in two
 * parts: the 53 bits below the top one (address bits [54:2]), and the top bit, which lies above every
 * OAS and so only takes part in the field's zero test (4.7.3).
 */
const msiAddrLow = new Field('MSIAddress[54:2]', F.MSIADDR.lsb, F.MSIADDR.width - 1).reader();
const msiAddrTop = new Field('MSIAddress[55]', F.MSIADDR.msb, 1).reader();

/** The opcode fault cmd-illegal writes over a command: reserved (4.1.1), so CERROR_ILL. */
const CORRUPT_OPCODE = 0xff;

/** Commands consumed per scheduler task before yielding to other hardware activity. */
const SLICE = 256;

export class CommandQueue {
  private readonly compiled: (CompiledCommand | undefined)[];
  private readonly legality: LegalityTable;
  private readonly handlers: (CommandHandler | undefined)[] = new Array(256).fill(undefined);
  private readonly participants: SyncParticipant[] = [];
  private readonly cmd = new Uint32Array(4);
  private readonly prodIdx: number;
  private readonly consIdx: number;
  private readonly gerrorIdx: number;
  private readonly gerrornIdx: number;
  private readonly kickFn = () => this.consume();

  private enabled = false;
  private baseIdx = 0; // dword index of the queue base in DRAM
  private basePa = 0;
  private qs = 0; // log2 of entries
  private cons = 0; // RD including the wrap bit
  private errCode = 0;
  private scheduled = false;
  /** Service Failure Mode: the queue consumes nothing any more. */
  private halted = false;
  /** A CMD_SYNC's completion signal (a CS value), sent once CONS has moved past it. */
  private signal: number = CS.SIG_NONE;
  /** SIG_IRQ with an MSI as well as the wired pulse (MSIs supported and MSIAddress non-zero). */
  private signalMsi = false;
  private signalAddr = 0;
  /** 2^OAS: SMMU-originated addresses wrap at it (3.4.3). */
  private readonly oasSpan: number;
  private signalData = 0;
  lastError: CmdqErrorInfo | null = null;

  constructor(
    private readonly ctx: HwContext,
    private readonly regs: RegisterFile<SmmuRegName>,
    private readonly feat: SmmuFeatures,
    /** Activates a GERROR bit (and interrupts); false if it was already active. */
    private readonly raiseGerror: (bit: number) => boolean,
    /** Pulses the CMD_SYNC wired interrupt output (nothing when the wires are not connected). */
    private readonly pulseSyncWire: () => void = () => {},
  ) {
    this.compiled = compileCommands(feat);
    this.oasSpan = 2 ** feat.oasBits;
    this.legality = legalityTable(this.compiled);
    this.prodIdx = regs.dword('CMDQ_PROD');
    this.consIdx = regs.dword('CMDQ_CONS');
    this.gerrorIdx = regs.dword('GERROR');
    this.gerrornIdx = regs.dword('GERRORN');
    regs.onWrite('CMDQ_PROD', () => this.kick());
    // Every legal command is traced, also those with nothing to do (no handler of their own).
    if (this.ctx.tr.smmuv3_cmdq_opcode) for (const d of COMMANDS) this.setHandler(d.name, () => DONE);
    this.setHandler('SYNC', (c) => this.sync(c));
  }

  setHandler(name: CommandName, h: CommandHandler): void {
    const op = OP[name];
    const trace = this.ctx.tr.smmuv3_cmdq_opcode;
    // Tracing wraps the handler, so the consume loop has no trace check of its own.
    this.handlers[op] = trace === undefined ? h : (c) => (trace(op, this.cons), h(c));
  }

  addSyncParticipant(p: SyncParticipant): void {
    this.participants.push(p);
  }

  /** Fault injection: the next n command fetches abort (CERROR_ABT). */
  /** Service Failure Mode: stops consuming for good. */
  halt(): void {
    this.halted = true;
  }

  /** CMDQEN Update 0 -> 1: take the queue geometry from CMDQ_BASE and CONS (6.3.9.3). */
  enable(): void {
    const base = this.regs.get64('CMDQ_BASE');
    // LOG2SIZE is capped at IDR1.CMDQS for any use but readback (6.3.26).
    this.qs = Math.min(Number(Q_BASE.LOG2SIZE.get64(base)), this.feat.cmdqLog2);
    const bytes = Math.max(16 << this.qs, 32);
    // The base is aligned to the queue size: low address bits are treated as zero (6.3.26); bits beyond
    // the OAS are truncated (3.4.3). (In bigint: a 32-bit `&` would fold an address above 4 GiB into DRAM.)
    this.basePa = truncateToOas(this.feat, (Q_BASE.ADDR.get64(base) << 5n) & ~BigInt(bytes - 1));
    this.baseIdx = -1;
    if (this.ctx.mem.contains(this.basePa, bytes)) this.baseIdx = this.ctx.mem.idx32(this.basePa);
    this.cons = CMDQ_CONS.RD.get(this.regs.get('CMDQ_CONS')) & this.wrapMask();
    this.errCode = CMDQ_CONS.ERR.get(this.regs.get('CMDQ_CONS'));
    this.enabled = true;
    this.kick();
  }

  /** CMDQEN Update 1 -> 0: stop; CONS shows the index after the last consumed command (6.3.9.3). */
  disable(): void {
    this.enabled = false;
    this.publishCons();
  }

  /** Looks at the queue again (PROD written, error acknowledged, a stall resolved). */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.ctx.sched.soon(this.kickFn);
  }

  private wrapMask(): number {
    return (2 << this.qs) - 1;
  }

  private errorActive(): boolean {
    const v = this.regs.view;
    return ((Atomics.load(v, this.gerrorIdx) ^ Atomics.load(v, this.gerrornIdx)) & GERROR.CMDQ_ERR.bits) !== 0;
  }

  private publishCons(): void {
    Atomics.store(this.regs.view, this.consIdx, ((this.errCode << 24) | this.cons) | 0);
  }

  private consume(): void {
    this.scheduled = false;
    if (!this.enabled || this.errorActive() || this.halted) return;
    const mask = this.wrapMask();
    const faults = this.ctx.faults;
    // Fault chances per fetch only when a command fault is armed (looked up once per slice).
    const fetchFaults = faults.mayFire('cmd-fetch-abort', 'cmd-illegal');
    const size = 1 << this.qs;
    const stats = this.ctx.stats;
    const exec = STAT.EXEC;
    const mem = this.ctx.mem.i32;
    const cmd = this.cmd;
    const handlers = this.handlers;
    const legality = this.legality;
    let n = 0;
    let signalledAt = -1;
    let prod = Q_IDX.WR.get(Atomics.load(this.regs.view, this.prodIdx)) & mask;
    this.ctx.tr.smmuv3_cmdq_consume?.(prod, this.cons);
    while (n < SLICE) {
      const cons = this.cons;
      if (prod === cons) {
        prod = Q_IDX.WR.get(Atomics.load(this.regs.view, this.prodIdx)) & mask;
        if (prod === cons) break;
      }
      // Inconsistent PROD/CONS (3.5.1, 3.21.2): this model takes the permitted choice of consuming
      // nothing while the indexes are inconsistent.
      if (((prod - cons) & mask) > size) {
        this.ctx.tr.smmuv3_cmdq_inconsistent?.(prod, cons);
        break;
      }
      const idx = cons & (size - 1);
      if (this.baseIdx < 0 || (fetchFaults && faults.chance('cmd-fetch-abort'))) {
        stats[STAT.FETCH_ABORTS]!++;
        this.error(CERROR.ABT, -1, `fetch of entry ${idx} at PA ${hex(this.basePa + idx * 16, 0)} aborted`);
        break;
      }
      const w = this.baseIdx + idx * 4;
      if (fetchFaults && faults.chance('cmd-illegal')) {
        // The command changed in queue memory after the driver wrote it: a reserved opcode (4.1.3).
        faults.noteCorrupted(mem[w]! & 0xff);
        mem[w] = (mem[w]! & ~0xff) | CORRUPT_OPCODE;
      }
      cmd[0] = mem[w]!;
      cmd[1] = mem[w + 1]!;
      cmd[2] = mem[w + 2]!;
      cmd[3] = mem[w + 3]!;
      const op = cmd[0]! & 0xff;
      // The table pre-check passes legal commands; anything else gets the full check (and its reason).
      if (!passesLegalityTable(legality, cmd)) {
        const bad = illegalCode(this.compiled[op], cmd);
        if (bad !== 0) {
          this.error(CERROR.ILL, op, illegalReason(this.compiled[op], bad, op, cmd));
          break;
        }
      }
      const h = handlers[op];
      if (h !== undefined && h(cmd) !== DONE) break;
      stats[exec + op]!++;
      this.cons = (cons + 1) & mask; // carries into the wrap bit at bit qs
      n++;
      if (this.signal !== CS.SIG_NONE) {
        // Everything a CMD_SYNC orders, and CONS moving past it, is visible before its signal (3.18).
        this.publishCons();
        signalledAt = this.cons;
        this.sendSignal();
      }
    }
    // (Already visible when the slice ended on a CMD_SYNC's signal.)
    if (this.cons !== signalledAt) this.publishCons();
    if (n === SLICE) this.kick();
  }



  /** Records a command error at the current CONS and raises GERROR.CMDQ_ERR (7.1). */
  error(code: number, op: number, reason: string): void {
    // CONS.ERR is written before the GERROR bit is activated (6.3.28).
    this.errCode = code;
    this.publishCons();
    this.ctx.stats[STAT.CERROR + code]!++;
    this.lastError = { cons: this.cons, code, name: CERROR_NAMES[code]!, op, reason };
    this.ctx.tr.smmuv3_cmdq_consume_error?.(op >= 0 ? commandName(op) : 'fetch', code, this.cons, reason);
    this.raiseGerror(GERROR.CMDQ_ERR.bits);
  }

  /**
   * CMD_SYNC (4.7.3): completes once every earlier command's work has settled; an ATC invalidation
   * that timed out makes it fail with CERROR_ATC_INV_SYNC, CONS staying on the SYNC.
   */
  private sync(c: Uint32Array): ExecResult {
    for (const p of this.participants) if (p.busy(this.kickFn)) return STALL;
    for (const p of this.participants) {
      const code = p.takeError();
      if (code !== 0) {
        this.error(code, c[0]! & 0xff, 'an earlier ATC invalidation did not complete');
        return FAILED;
      }
    }
    this.ctx.stats[STAT.SYNC_DONE]!++;
    this.ctx.faults.event('cmd-sync');
    const cs = F.CS.read(c);
    if (cs === CS.SIG_IRQ) {
      // SIG_IRQ (4.7.3): the wired CMD_SYNC output is asserted whatever MSIAddress holds; on an
      // implementation with MSIs an MSI is written as well, unless MSIAddress == 0 over the whole field.
      // An address beyond the OAS is truncated to it (3.4.3). low * 4 < 2^55 is exact, and so is the
      // remainder.
      this.signal = CS.SIG_IRQ;
      const low = msiAddrLow(c);
      this.signalMsi = this.feat.msi && (low !== 0 || msiAddrTop(c) !== 0);
      if (this.signalMsi) {
        this.signalAddr = (low * 4) % this.oasSpan;
        this.signalData = F.MSIDATA.read(c);
      }
    } else if (cs === CS.SIG_SEV && this.feat.sev) {
      this.signal = CS.SIG_SEV;
    }
    return DONE;
  }

  private sendSignal(): void {
    const kind = this.signal;
    this.signal = CS.SIG_NONE;
    if (kind === CS.SIG_SEV) {
      this.ctx.sev();
      return;
    }
    // SIG_IRQ: a pulse on the wired output, accompanied by the MSI when one is configured (3.18.2:
    // each source asserts its wire if implemented, and sends an MSI if enabled; both when both are).
    this.pulseSyncWire();
    if (!this.signalMsi) return;
    this.ctx.stats[STAT.MSI_WRITES]!++;
    // An aborted MSI write is reported in GERROR.MSI_CMDQ_ABT_ERR (6.3.19).
    if (this.ctx.faults.chance('msi-abort', -1, (f) => f.source === 'cmdq') !== null || !this.ctx.msiWrite(this.signalAddr, this.signalData)) {
      this.ctx.tr.smmuv3_cmd_sync_msi_abort?.(this.signalAddr);
      this.raiseGerror(GERROR.MSI_CMDQ_ABT_ERR.bits);
    }
  }
}
