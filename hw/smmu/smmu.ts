// The SMMUv3 device: its register file, control-register handshakes, global errors and interrupts.
//
// Register semantics come from the map (src/arch/smmu/regs.ts) through the generic write path; this file
// binds the behaviour: CR0 and IRQ_CTRL Updates acknowledged after a latency (6.3.9, 6.3.16), GBPA's
// Update protocol (6.3.14), GERROR/GERRORN toggle semantics (6.3.19-20, 7.5) with their interrupt
// (a pulse on the wired line, and an MSI as well when one is configured: 3.18.2), and the command
// queue (cmdq.ts).

import { CR0, GBPA, GERROR, IRQ_CFG0, IRQ_CFG1, IRQ_CTRL, type SmmuRegName } from '../../src/arch/smmu/regs.ts';
import { ID_REGISTERS, smmuIdRegisters, smmuRegisterMap } from '../../src/arch/smmu/implementation.ts';
import { truncateToOas, validateFeatures, type SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { RegisterFile } from '../regfile.ts';
import { STAT } from '../../src/machine/layout.ts';
import { VECTOR } from '../../src/arch/platform.ts';
import { NS_PER_S, TIMEOUT } from '../../src/arch/time.ts';
import type { HwContext } from '../context.ts';
import { RequestAck } from '../request-ack.ts';
import { CommandQueue } from './cmdq.ts';
import { AtcInvalidator } from './ats.ts';
import { ConfigCache } from './config-cache.ts';
import { installInvalidationHandlers } from './invalidation.ts';
import { Tlb } from './tlb.ts';
import { CdTables } from './cd.ts';
import { EventQueue } from './evtq.ts';
import type { AtsEndpoint } from './services.ts';
import { StreamTable } from './strtab.ts';
import { Translator } from './translate.ts';
import { Resolver } from './resolve.ts';
import { Walker } from './walk.ts';

export interface SmmuConfig {
  features: SmmuFeatures;
  /** Platform ns an Update of CR0/IRQ_CTRL/GBPA takes to be acknowledged. */
  ackLatencyNs?: number;
  /** The SMMU's wired interrupt outputs are implemented (each enabled source pulses its wire, MSI or not: 3.18.2). */
  wired?: boolean;
  /** Platform ns the SMMU waits for an ATC Invalidate Completion (default ats.ts ATC_INV_TIMEOUT_NS). */
  atcTimeoutNs?: number;
}

/** How long fault cmd-sync-irq-masked holds a GERROR interrupt by default: past the driver's 1 s CMD_SYNC poll. */
const IRQ_HOLD_NS = 2 * NS_PER_S;

export class SmmuV3 {
  readonly regs: RegisterFile<SmmuRegName>;
  readonly cmdq: CommandQueue;
  readonly evtq: EventQueue;
  readonly configCache = new ConfigCache();
  readonly tlb: Tlb;
  readonly strtab: StreamTable;
  /** What devices call: untranslated DMA, ATS translation, translated transactions (services.ts). */
  readonly services: Translator;
  /** Endpoints that receive ATC invalidations, by StreamID (attachAtsEndpoint/detachAtsEndpoint). */
  readonly atsEndpoints = new Map<number, AtsEndpoint>();
  /** ATC invalidation: CMD_ATC_INV delivery, queue-depth back-pressure, completion for CMD_SYNC (ats.ts). */
  readonly ats: AtcInvalidator;
  readonly features: SmmuFeatures;
  private ackLatencyNs: number;
  private readonly wired: boolean;

  constructor(
    private readonly ctx: HwContext,
    view: Int32Array,
    cfg: SmmuConfig,
  ) {
    validateFeatures(cfg.features);
    this.features = cfg.features;
    this.ackLatencyNs = cfg.ackLatencyNs ?? TIMEOUT.SMMU_ACK_LATENCY;
    this.wired = cfg.wired ?? true;
    this.regs = new RegisterFile(smmuRegisterMap(cfg.features), view);
    const ids = smmuIdRegisters(cfg.features);
    for (const name of ID_REGISTERS) this.regs.setResetValue(name, ids[name]);
    this.regs.reset();

    this.cmdq = new CommandQueue(ctx, this.regs, cfg.features, (bit) => this.raiseGerror(bit), () => this.pulse(VECTOR.SMMU_CMD_SYNC));
    // ATC_INV is illegal without ATS (the compiled legality says so); the ATS block delivers it.
    this.ats = new AtcInvalidator(ctx, this.cmdq, () => this.enabled('SMMUEN'), this.atsEndpoints, cfg.atcTimeoutNs);

    // Translation: stream table and CD tables through the configuration cache, walks through the IOTLB
    // and walk cache, faults into the event queue; CFGI_*/TLBI_* commands invalidate the caches.
    const stats = ctx.stats;
    this.tlb = new Tlb(stats);
    const aborts = ctx.faults;
    this.evtq = new EventQueue(ctx, this.regs, cfg.features, (bit) => this.raiseGerror(bit), () => this.interrupt('EVENTQ', VECTOR.SMMU_EVTQ), aborts);
    this.strtab = new StreamTable(ctx.mem, this.regs, cfg.features, this.configCache, stats, aborts);
    const cds = new CdTables(ctx.mem, cfg.features, this.configCache, stats, aborts);
    const walker = new Walker(ctx.mem, this.tlb, stats, aborts);
    const pipeline = new Resolver(ctx, this.regs, cfg.features, this.strtab, cds, walker, this.tlb);
    this.services = new Translator(ctx, this.regs, cfg.features, pipeline, this.evtq, this.atsEndpoints);
    installInvalidationHandlers(this.cmdq, this.configCache, this.tlb, this.regs, cfg.features);

    new RequestAck(ctx, this.regs, 'CR0', 'CR0ACK', () => this.ackLatencyNs, (old, next) => this.cr0Updated(old, next));
    new RequestAck(ctx, this.regs, 'IRQ_CTRL', 'IRQ_CTRLACK', () => this.ackLatencyNs, () => {});
    this.regs.onWrite('GBPA', () => {
      // The write carried Update=1 (the generic path ignores it otherwise); apply, then clear Update.
      ctx.sched.after(this.ackLatencyNs, () => this.regs.set('GBPA', this.regs.get('GBPA') & ~GBPA.Update.bits));
    });
    this.regs.onWrite('GERRORN', () => this.gerrornWritten());
  }

  /**
   * Service Failure Mode (6.3.20, fault 'sfm'): traffic through the SMMU stops, it processes no more
   * commands and records no more events; acknowledging GERROR.SFM_ERR does not leave the mode (this
   * model leaves it only with a new machine).
   */
  serviceFailure(): void {
    this.cmdq.halt();
    this.evtq.halt();
    this.services.halt();
    this.raiseGerror(GERROR.SFM_ERR.bits);
  }

  setAckLatency(ns: number): void {
    this.ackLatencyNs = ns;
  }

  /** Acknowledged state of a CR0 field (what the SMMU is actually doing). */
  enabled(bit: 'SMMUEN' | 'CMDQEN' | 'EVENTQEN' | 'ATSCHK' | 'PRIQEN'): boolean {
    return CR0[bit].get(this.regs.get('CR0ACK')) === 1;
  }

  private cr0Updated(old: number, next: number): void {
    const changed = old ^ next;
    if (changed & CR0.CMDQEN.bits) {
      if (next & CR0.CMDQEN.bits) this.cmdq.enable();
      else this.cmdq.disable();
    }
    if (changed & CR0.EVENTQEN.bits) {
      if (next & CR0.EVENTQEN.bits) this.evtq.enable();
      else this.evtq.disable();
    }
    // STRTAB_BASE(_CFG) can only have changed while SMMUEN was 0 (6.3.24-25).
    if (changed & CR0.SMMUEN.bits) this.strtab.reconfigure();
  }

  /** Activates a global error (7.5): toggles GERROR[bit] unless already active, then interrupts. */
  raiseGerror(bit: number): boolean {
    const g = this.regs.get('GERROR');
    if ((g ^ this.regs.get('GERRORN')) & bit) return false; // already active: not logged again
    this.regs.set('GERROR', (g ^ bit) >>> 0);
    this.ctx.stats[STAT.GERROR_RAISED]!++;
    // MSI_GERROR_ABT_ERR does not itself raise the GERROR interrupt (7.5.1).
    if (bit === GERROR.MSI_GERROR_ABT_ERR.bits) return true;
    // Fault cmd-sync-irq-masked: the interrupt waits, as on a CPU that polls its CMD_SYNC with
    // interrupts off; by default longer than the driver's CMD_SYNC poll.
    const held = this.ctx.faults.chance('cmd-sync-irq-masked');
    if (held) this.ctx.sched.after(held.holdNs ?? IRQ_HOLD_NS, () => this.interrupt('GERROR', VECTOR.SMMU_GERROR));
    else this.interrupt('GERROR', VECTOR.SMMU_GERROR);
    return true;
  }

  /** A pulse on a wired interrupt output, if the wires are implemented. */
  private pulse(wire: number): void {
    if (this.wired) this.ctx.irqc.raise(wire);
  }

  /**
   * Sends an interrupt of one source if its IRQ_CTRLACK enable is on (3.18.2): a pulse on its wired
   * output if implemented, and an MSI as well when MSIs are supported and the source's IRQ_CFG0.ADDR
   * is non-zero. An implementation with both uses both; software picks the one it listens to.
   */
  interrupt(source: 'GERROR' | 'EVENTQ' | 'PRIQ', wire: number): void {
    const en = IRQ_CTRL[`${source}_IRQEN`];
    if (!en.get(this.regs.get('IRQ_CTRLACK'))) return;
    this.pulse(wire);
    if (this.features.msi) {
      const field = IRQ_CFG0.ADDR.get64(this.regs.get64(`${source}_IRQ_CFG0`));
      // ADDR == 0 means no MSI; an address beyond the OAS is truncated to it (3.4.3).
      if (field !== 0n) {
        const addr = truncateToOas(this.features, field << 2n);
        const data = IRQ_CFG1.DATA.get(this.regs.get(`${source}_IRQ_CFG1`));
        const injected = source !== 'PRIQ' && this.ctx.faults.chance('msi-abort', -1, (f) => f.source === (source === 'GERROR' ? 'gerror' : 'evtq')) !== null;
        if (injected || !this.ctx.msiWrite(addr, data)) {
          this.ctx.tr.smmuv3_msi_abort?.(source, addr);
          this.raiseGerror(GERROR[`MSI_${source}_ABT_ERR`].bits);
        }
      }
    }
  }

  private gerrornWritten(): void {
    const active = this.regs.get('GERROR') ^ this.regs.get('GERRORN');
    // Toggling GERRORN for an inactive error is CONSTRAINED UNPREDICTABLE (6.3.20); GERRORN simply
    // stores the value here, so the error then reads as active.
    if (!(active & GERROR.CMDQ_ERR.bits)) this.cmdq.kick();
  }
}
