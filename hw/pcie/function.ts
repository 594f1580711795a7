// What every PCIe function model shares: its configuration space as a RegisterFile over its 4 KiB
// slice of the ECAM read view, the config write path, and the read-view overlay a function shows while
// it cannot answer config requests (in reset, link down, removed).
//
// While an overlay is shown, the function's register values are kept in a snapshot and the read view
// holds what a config read returns instead: all-ones (no completion, or the Root Port gave up), or,
// for a function completing with Request Retry Status below a Root Port with RRS Software Visibility
// on, 0x0001 in the Vendor ID and all-ones in every other byte (PCIe r6.0 2.3.2). Config writes are
// dropped meanwhile. Removing the overlay restores the snapshot.

import { RegisterFile, type WriteOutcome } from '../regfile.ts';
import { buildConfigSpace, type ConfigLayout, type ConfigSpec } from './config-space.ts';
import { CONFIG_BYTES, VENDOR_NONE, VENDOR_RRS } from '../../src/arch/pcie/regs.ts';
import type { PcieRegName } from '../../src/arch/pcie/caps.ts';
import { formatBdf } from '../../src/arch/pcie/bdf.ts';
import type { HwContext } from '../context.ts';

/** What config reads see while a function cannot answer. */
export type Overlay = 'all-ones' | 'rrs';

const DWORDS = CONFIG_BYTES / 4;

export abstract class PcieFunction {
  readonly regs: RegisterFile<PcieRegName>;
  readonly layout: ConfigLayout;
  /** The function's 4 KiB of the ECAM read view. */
  readonly view: Int32Array;
  readonly bdf: string;
  private snapshot: Int32Array | null = null;
  private overlayKind: Overlay | null = null;

  protected constructor(
    protected readonly ctx: HwContext,
    ecam: Int32Array,
    readonly rid: number,
    spec: ConfigSpec,
  ) {
    this.bdf = formatBdf(rid);
    this.layout = buildConfigSpace(spec);
    this.view = ecam.subarray(rid * DWORDS, (rid + 1) * DWORDS);
    this.regs = new RegisterFile(this.layout.map, this.view);
  }

  /** True while the read view shows an overlay instead of the registers. */
  get hidden(): boolean {
    return this.overlayKind !== null;
  }

  /** A config write from the ECAM decode (offset inside the function's 4 KiB). */
  configWrite(off: number, size: number, lo: number, hi: number): WriteOutcome {
    if (this.overlayKind !== null) {
      this.ctx.tr.pcie_config_write_dropped?.(this.rid, off, this.unavailableReason());
      return 'unmapped';
    }
    return this.regs.write(off, size, lo, hi);
  }

  /** Why config requests are not answered (for traces). */
  protected abstract unavailableReason(): string;

  /** True when config reads of this function see the RRS value (its Root Port has RRS SV enabled). */
  protected abstract rrsVisible(): boolean;

  /** Shows an overlay instead of the registers (snapshotting them the first time). */
  protected showOverlay(kind: Overlay): void {
    if (this.snapshot === null) {
      this.snapshot = new Int32Array(DWORDS);
      for (let d = 0; d < DWORDS; d++) this.snapshot[d] = Atomics.load(this.view, d);
    }
    this.overlayKind = kind;
    this.paintOverlay();
  }

  /** Repaints the overlay (the Root Port's RRS visibility may have changed). */
  paintOverlay(): void {
    if (this.overlayKind === null) return;
    for (let d = 1; d < DWORDS; d++) Atomics.store(this.view, d, -1);
    const rrs = this.overlayKind === 'rrs' && this.rrsVisible();
    // Device ID (upper half) is all-ones either way; Vendor ID is 0x0001 for a visible RRS completion.
    Atomics.store(this.view, 0, ((VENDOR_NONE << 16) | (rrs ? VENDOR_RRS : VENDOR_NONE)) | 0);
  }

  /** Removes the overlay: the registers are back as they were when it was shown. */
  protected removeOverlay(): void {
    if (this.snapshot === null) return;
    for (let d = 0; d < DWORDS; d++) Atomics.store(this.view, d, this.snapshot[d]!);
    this.snapshot = null;
    this.overlayKind = null;
  }

  /** A register's value, from the snapshot while an overlay is shown. */
  cfg(name: PcieRegName): number {
    return this.snapshot === null ? this.regs.get(name) : this.regs.getIn(name, this.snapshot);
  }

  /** Hardware-side update of some bits of a register (read-modify-write of its current value). */
  protected setBits(name: PcieRegName, mask: number, on: boolean): void {
    const v = this.regs.get(name);
    this.regs.set(name, on ? v | mask : v & ~mask);
  }

  /**
   * Loads the reset image (src/arch/regmap.ts reset with sticky bits kept), except for the registers in
   * `keep` and the sticky read-only registers, which keep their values. Call with no overlay shown.
   */
  protected resetRegisters(keep: readonly PcieRegName[]): void {
    const kept = [...keep, ...this.layout.sticky].map((n) => [n, this.regs.get(n)] as const);
    this.regs.reset(true);
    for (const [n, v] of kept) this.regs.set(n, v);
  }
}
