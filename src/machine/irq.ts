// Interrupt lines: wired SMMU interrupts and MSIs, routed to simulated CPUs through the shared buffer.
//
// Each vector is routed to one CPU and enabled or not, like a GIC interrupt's affinity and enable
// bit. Raising an enabled vector sets its bit in the target CPU's pending bitmap and bumps that CPU's
// wake word; the CPU takes pending interrupts at its next interrupts-on point (see drivers/platform/cpu.ts). An edge
// on a disabled vector is latched and delivered when the vector is enabled, as a GIC keeps an edge
// pending while the interrupt is disabled. An MSI is a 32-bit write of the vector number to the MSI
// doorbell (PA.MSI_DOORBELL, modelled on GITS_TRANSLATER).

import { CPUW, IRQW, STAT, type SharedViews } from './layout.ts';
import { IRQ_VECTORS, PA } from '../arch/platform.ts';
import { wakeWord } from './wait.ts';

export class InterruptController {
  /**
   * Told every interrupt raise() delivers: the vector and the CPU it is routed to (an edge on a disabled
   * vector is only latched). Set by a schedule recorder (hw/schedule-recorder.ts); null costs one load
   * per interrupt.
   */
  onRaise: ((vector: number, cpu: number) => void) | null = null;

  constructor(private readonly v: SharedViews) {}

  /** Routes a vector to a CPU and enables it (irq_set_affinity + enable_irq). */
  route(vector: number, cpu: number): void {
    this.check(vector);
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.v.layout.ncpus) {
      throw new Error(`irq ${vector}: CPU ${cpu} does not exist (${this.v.layout.ncpus} CPUs)`);
    }
    Atomics.store(this.v.irqRoute, IRQW.ROUTE + vector, cpu | IRQW.ENABLED);
    const w = IRQW.LATCHED + (vector >>> 5);
    const bit = 1 << (vector & 31);
    if (Atomics.and(this.v.irqRoute, w, ~bit) & bit) this.raise(vector);
  }

  /** Disables a vector (disable_irq); later edges are latched until it is routed again. */
  disable(vector: number): void {
    this.check(vector);
    Atomics.and(this.v.irqRoute, IRQW.ROUTE + vector, ~IRQW.ENABLED);
  }

  /** Hardware side: asserts an edge on a vector. */
  raise(vector: number): void {
    this.check(vector);
    const route = Atomics.load(this.v.irqRoute, IRQW.ROUTE + vector);
    if (!(route & IRQW.ENABLED)) {
      Atomics.or(this.v.irqRoute, IRQW.LATCHED + (vector >>> 5), 1 << (vector & 31));
      return;
    }
    this.onRaise?.(vector, route & 0xff);
    const base = (route & 0xff) * CPUW.BLOCK_WORDS;
    Atomics.or(this.v.cpus, base + CPUW.PENDING + (vector >>> 5), 1 << (vector & 31));
    // After the bit: a CPU that sees the new sequence number also sees the bit.
    Atomics.add(this.v.cpus, base + CPUW.IRQ_SEQ, 1);
    this.v.stats[STAT.IRQS_RAISED]!++;
    wakeWord(this.v.cpus, base + CPUW.WAKE, { view: this.v.cpus, index: base + CPUW.WAITING });
  }

  /** True if pa is the MSI doorbell. */
  isDoorbell(pa: number): boolean {
    return pa === PA.MSI_DOORBELL;
  }

  /** An MSI write of `data` to the doorbell; false if data names no vector (the write is dropped). */
  msi(data: number): boolean {
    if (!Number.isInteger(data) || data < 0 || data >= IRQ_VECTORS) return false;
    this.raise(data);
    return true;
  }

  /**
   * CPU side: a number that changes whenever an interrupt becomes pending for the CPU. Unchanged since
   * a look at the pending bits found nothing (or took everything) means nothing new is pending.
   */
  raisedSeq(cpu: number): number {
    return Atomics.load(this.v.cpus, cpu * CPUW.BLOCK_WORDS + CPUW.IRQ_SEQ);
  }

  /** CPU side: true if any interrupt is pending for the CPU. */
  anyPending(cpu: number): boolean {
    const base = cpu * CPUW.BLOCK_WORDS + CPUW.PENDING;
    for (let w = 0; w < IRQ_VECTORS / 32; w++) if (Atomics.load(this.v.cpus, base + w) !== 0) return true;
    return false;
  }

  /** CPU side: takes (and clears) the lowest pending vector, or -1. */
  takeOne(cpu: number): number {
    const base = cpu * CPUW.BLOCK_WORDS + CPUW.PENDING;
    for (let w = 0; w < IRQ_VECTORS / 32; w++) {
      for (;;) {
        const now = Atomics.load(this.v.cpus, base + w);
        if (now === 0) break;
        const low = now & -now;
        if (Atomics.compareExchange(this.v.cpus, base + w, now, now & ~low) === now) {
          return w * 32 + (31 - Math.clz32(low));
        }
      }
    }
    return -1;
  }

  private check(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector >= IRQ_VECTORS) throw new Error(`irq vector ${vector} out of range 0..${IRQ_VECTORS - 1}`);
  }
}
