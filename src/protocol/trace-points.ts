// Trace points: every point declared once, here: its name, which side emits it, and its typed fields.
// Names follow QEMU's hw/arm/trace-events where QEMU traces the same event (smmuv3_cmdq_consume,
// smmuv3_cmdq_opcode, smmuv3_record_event, smmuv3_translate_*); the rest follow the same style, with
// the block's prefix (smmuv3_, pcie_, testdev_, mmio_, fault_, sanitizer_) on the hardware side and the
// driver's function area (arm_smmu_, pci_, printk, fault_; irq_handler_* as Linux's irq events) on the
// driver side.
//
// Emitting: each side holds a Tracer (tracer.ts) whose property for a point is its emit function while
// the point is enabled and undefined otherwise, so a site writes `tr.smmuv3_cmdq_opcode?.(op)` and a
// disabled point costs one property load (its arguments are not even evaluated).
//
// Records go to the shared-buffer trace rings (src/machine/trace-ring.ts), one per producer, and the
// host reads them back onto one platform-time timeline (src/host/trace.ts).

import { hex } from '../arch/bits.ts';
import { formatBdf } from '../arch/pcie/bdf.ts';
import { commandName } from '../arch/smmu/commands.ts';
import { EVT_NAME } from '../arch/smmu/events.ts';
import { CERROR_NAMES } from '../arch/smmu/regs.ts';
import { FAULT_KINDS } from './faults.ts';
import { clip } from './check.ts';

/**
 * What a field holds and how it prints: u decimal, x hex, b boolean, s string, ns platform ns, bdf a
 * Requester ID printed as BB:DD.F, op a command opcode, cerror a CERROR code, evt an event type, or an
 * enumeration (emitted by name, stored as the name's index).
 */
export type FieldKind = 'u' | 'x' | 'b' | 's' | 'ns' | 'bdf' | 'op' | 'cerror' | 'evt' | { readonly enum: readonly string[] };
export type FieldDecl = readonly [name: string, kind: FieldKind];

export interface TracePointDecl {
  readonly side: 'hw' | 'driver';
  readonly fields: readonly FieldDecl[];
  readonly help: string;
}

/** Enumerations the hardware and the driver use, printed by name. */
export const WRITE_OUTCOMES = ['applied', 'guarded', 'unmapped', 'no-update'] as const;
export const RESET_KINDS = ['flr', 'hot', 'pm'] as const;
export const LOG_LEVELS = ['err', 'warn', 'info', 'debug'] as const;

/** Every trace point. */
export const TRACE_POINTS = {
  // ---- hardware: the system bus ----
  mmio_write_dropped: { side: 'hw', fields: [['cpu', 'u'], ['region', 's'], ['offset', 'x'], ['value', 'x'], ['outcome', { enum: WRITE_OUTCOMES }]], help: 'an MMIO write a device ignored (guarded, no Update, unmapped offset)' },
  mmio_write_unassigned: { side: 'hw', fields: [['cpu', 'u'], ['pa', 'x']], help: 'an MMIO write to a PA no device decodes (dropped)' },

  // ---- hardware: the SMMU ----
  smmuv3_cmdq_consume: { side: 'hw', fields: [['prod', 'x'], ['cons', 'x']], help: 'the command queue starts consuming from CONS towards PROD' },
  smmuv3_cmdq_opcode: { side: 'hw', fields: [['opcode', 'op'], ['cons', 'x']], help: 'a command consumed' },
  smmuv3_cmdq_consume_error: { side: 'hw', fields: [['cmd', 's'], ['error', 'cerror'], ['cons', 'x'], ['reason', 's']], help: 'a command error (CERROR_*): the queue stops at CONS' },
  smmuv3_cmdq_inconsistent: { side: 'hw', fields: [['prod', 'x'], ['cons', 'x']], help: 'PROD is beyond CONS by more than the queue holds: nothing consumed' },
  smmuv3_cmd_sync_msi_abort: { side: 'hw', fields: [['pa', 'x']], help: 'the MSI write completing a CMD_SYNC aborted' },
  smmuv3_msi_abort: { side: 'hw', fields: [['source', 's'], ['pa', 'x']], help: 'a GERROR or event queue MSI write aborted' },
  smmuv3_update_ignored: { side: 'hw', fields: [['reg', 's'], ['value', 'x'], ['changed', 'x']], help: 'a write changing bits of a register during its Update (CR0/IRQ_CTRL/GBPA), ignored' },
  smmuv3_record_event: { side: 'hw', fields: [['type', 'evt'], ['sid', 'x'], ['recorded', 'b'], ['reason', 's']], help: 'a translation or configuration fault, and whether an event record was written' },
  smmuv3_event_lost: { side: 'hw', fields: [['type', 'evt'], ['why', 's']], help: 'an event record that could not be written (queue disabled, full, or in abort error)' },
  smmuv3_eventq_abort: { side: 'hw', fields: [['type', 'evt'], ['pa', 'x']], help: 'the write of an event record aborted (GERROR.EVENTQ_ABT_ERR)' },
  smmuv3_translate_success: { side: 'hw', fields: [['sid', 'x'], ['iova', 'x'], ['translated', 'x'], ['write', 'b']], help: 'an untranslated access translated' },
  smmuv3_ats_bad_request: { side: 'hw', fields: [['sid', 'x'], ['reason', 's']], help: 'an ATS Translation Request refused (F_BAD_ATS_TREQ)' },
  smmuv3_ats_no_access: { side: 'hw', fields: [['sid', 'x'], ['addr', 'x'], ['reason', 's']], help: 'an ATS Translation Request answered with R=W=0' },
  smmuv3_atc_inv: { side: 'hw', fields: [['sid', 'x'], ['addr', 'x'], ['size', 'u']], help: 'an ATC Invalidate Request sent to the function at a StreamID' },
  smmuv3_atc_inv_skipped: { side: 'hw', fields: [['sid', 'x'], ['why', 's']], help: 'an ATC_INV with nothing to send (SMMUEN=0, no ATS endpoint)' },
  smmuv3_atc_inv_timeout: { side: 'hw', fields: [['sid', 'x'], ['timeoutNs', 'ns']], help: 'an ATC invalidation not completed in time (CMD_SYNC fails with CERROR_ATC_INV_SYNC)' },
  smmuv3_atc_inv_late: { side: 'hw', fields: [['sid', 'x']], help: 'an ATC invalidation completion after its timeout, discarded' },

  // ---- hardware: PCIe ----
  pcie_config_write_dropped: { side: 'hw', fields: [['bdf', 'bdf'], ['offset', 'x'], ['why', 's']], help: 'a config write to a function that cannot take it (resetting, removed, no function)' },
  pcie_bar_write_unclaimed: { side: 'hw', fields: [['pa', 'x']], help: 'a write in the BAR window that no BAR decodes' },
  pcie_bar_outside_window: { side: 'hw', fields: [['bdf', 'bdf'], ['pa', 'x']], help: 'BAR0 programmed outside the BAR window: not decoded' },
  pcie_sbr: { side: 'hw', fields: [['bdf', 'bdf'], ['asserted', 'b']], help: 'Secondary Bus Reset asserted or released at a Root Port' },
  pcie_sbr_masked: { side: 'hw', fields: [['bdf', 'bdf']], help: 'Secondary Bus Reset masked by the CXL Port Control (Unmask SBR = 0)' },
  pcie_reset_start: { side: 'hw', fields: [['bdf', 'bdf'], ['kind', { enum: RESET_KINDS }], ['hang', 'b']], help: 'a function starts a reset (hang: it will never come back)' },
  pcie_reset_done: { side: 'hw', fields: [['bdf', 'bdf'], ['kind', { enum: RESET_KINDS }]], help: 'a function finished its reset' },
  pcie_removed: { side: 'hw', fields: [['bdf', 'bdf']], help: 'a function surprise-removed: it answers all-ones from now on' },
  pcie_pm_unsupported: { side: 'hw', fields: [['bdf', 'bdf'], ['state', 'u']], help: 'a PMCSR write of an unsupported D-state, ignored' },
  pcie_ats_disable: { side: 'hw', fields: [['bdf', 'bdf'], ['dropped', 'u']], help: 'ATS disabled at a function: its ATC entries dropped' },
  pcie_atc_inv_unanswered: { side: 'hw', fields: [['bdf', 'bdf'], ['sid', 'x'], ['why', 's']], help: 'an ATC Invalidate Request the function will not answer' },
  pcie_atc_inv_cancelled: { side: 'hw', fields: [['bdf', 'bdf'], ['count', 'u'], ['why', 's']], help: 'pending ATC invalidation completions that will never be sent' },
  pcie_dma_cut: { side: 'hw', fields: [['bdf', 'bdf'], ['done', 'u'], ['len', 'u'], ['why', 's']], help: 'a DMA transfer cut short (the bytes done landed, the rest dropped)' },
  pcie_dma_busy: { side: 'hw', fields: [['bdf', 'bdf']], help: 'a DMA doorbell while a transfer runs, ignored' },
  pcie_dma_error: { side: 'hw', fields: [['bdf', 'bdf'], ['error', 's'], ['reason', 's']], help: 'a DMA transfer ended with an error' },
  pcie_msi_abort: { side: 'hw', fields: [['bdf', 'bdf'], ['pa', 'x']], help: 'a function MSI write aborted' },
  pcie_atc_inv: { side: 'hw', fields: [['bdf', 'bdf'], ['sid', 'x'], ['addr', 'x'], ['size', 'u']], help: 'a function received an ATC Invalidate Request' },
  pcie_atc_inv_done: { side: 'hw', fields: [['bdf', 'bdf'], ['sid', 'x'], ['addr', 'x']], help: 'a function sent the Invalidate Completion of the request for addr' },
  pcie_dma_start: { side: 'hw', fields: [['bdf', 'bdf'], ['src', 'x'], ['dst', 'x'], ['len', 'u']], help: "a function's DMA engine starts a transfer" },
  pcie_dma_done: { side: 'hw', fields: [['bdf', 'bdf'], ['bytes', 'u'], ['ok', 'b']], help: 'a DMA transfer ended, ok or with the error pcie_dma_error names (bytes: how many it moved)' },

  // ---- hardware: injected faults and the DMA sanitizer ----
  fault_fire: { side: 'hw', fields: [['kind', { enum: FAULT_KINDS }], ['dev', 's']], help: 'an injected hardware fault fired: one of its chances, or a moment fault applied (dev: its function, or empty)' },
  sanitizer_dma_uaf: { side: 'hw', fields: [['dev', 's'], ['sid', 'x'], ['pa', 'x'], ['write', 'b'], ['translated', 'b']], help: 'the DMA sanitizer saw an access reach a page its domain no longer maps (use after free)' },

  // ---- hardware: the platform DMA test engine ----
  testdev_busy: { side: 'hw', fields: [['dev', 's']], help: 'a test engine doorbell while a transfer runs, ignored' },
  testdev_error: { side: 'hw', fields: [['dev', 's'], ['reason', 's']], help: 'a test engine transfer refused or failed' },
  testdev_msi_abort: { side: 'hw', fields: [['dev', 's'], ['pa', 'x']], help: 'a test engine completion MSI aborted' },

  // ---- driver ----
  printk: { side: 'driver', fields: [['level', { enum: LOG_LEVELS }], ['msg', 's']], help: 'a kernel log line' },
  arm_smmu_cmdq_reserve: { side: 'driver', fields: [['n', 'u'], ['sync', 'b'], ['prod', 'x'], ['waitNs', 'ns']], help: 'a CPU reserved queue slots for n commands (and a CMD_SYNC); waitNs: how long since it started (waiting for space, CAS retries)' },
  arm_smmu_cmdq_issue: { side: 'driver', fields: [['n', 'u'], ['sync', 'b'], ['prod', 'x']], help: 'a CPU wrote commands (and a CMD_SYNC) into its reserved slots and marked them valid, before PROD is published' },
  arm_smmu_cmdq_publish: { side: 'driver', fields: [['prod', 'x']], help: 'the owner CPU writes CMDQ_PROD: every command gathered up to prod goes to the SMMU' },
  arm_smmu_cmdq_sync_done: { side: 'driver', fields: [['prod', 'x'], ['ret', 'u'], ['waitNs', 'ns']], help: 'a CPU finished waiting for its CMD_SYNC (ret 0; 5, -EIO, when the SMMU failed it with CERROR_ATC_INV_SYNC; 110, -ETIMEDOUT); also fills the CMD_SYNC wait histogram (src/machine/histogram.ts)' },
  arm_smmu_atc_fence: { side: 'driver', fields: [['dev', 's'], ['sid', 'x']], help: 'ATC recovery fenced a device after a failed ATC invalidation: ATS off, STE.EATS cleared' },
  arm_smmu_atc_unfence: { side: 'driver', fields: [['dev', 's'], ['sid', 'x']], help: "a good reset lifted a device's fence" },
  irq_handler_entry: { side: 'driver', fields: [['irq', 'u'], ['name', 's']], help: 'a CPU enters the handler of an interrupt (Linux irq:irq_handler_entry)' },
  irq_handler_exit: { side: 'driver', fields: [['irq', 'u']], help: 'the handler returned (Linux irq:irq_handler_exit)' },
  fault_should_fail: { side: 'driver', fields: [['point', 's']], help: 'an injected driver fault made a should-fail point fail' },
} as const satisfies Record<string, TracePointDecl>;

export type TracePointName = keyof typeof TRACE_POINTS;
export type Side = TracePointDecl['side'];
/** The points one side emits. */
export type PointsOf<S extends Side> = { [K in TracePointName]: (typeof TRACE_POINTS)[K]['side'] extends S ? K : never }[TracePointName];

type ValueOf<K extends FieldKind> = K extends 's' ? string : K extends 'b' ? boolean : K extends { readonly enum: readonly (infer E)[] } ? E : number;
type ArgsOf<F extends readonly FieldDecl[]> = { -readonly [I in keyof F]: F[I] extends readonly [string, infer K extends FieldKind] ? ValueOf<K> : never };
/** The emit arguments of a point: its field values in declaration order. */
export type EmitArgs<K extends TracePointName> = ArgsOf<(typeof TRACE_POINTS)[K]['fields']>;

/** Point names in declaration order: a record stores a point as its index here. */
export const POINT_NAMES = Object.keys(TRACE_POINTS) as TracePointName[];
const DECLS: readonly TracePointDecl[] = POINT_NAMES.map((n) => TRACE_POINTS[n]);

/** Field indexes of a point that hold strings (for reading records back). */
export function stringFields(point: number): readonly number[] {
  const d = DECLS[point];
  if (!d) return [];
  const out: number[] = [];
  d.fields.forEach(([, k], i) => {
    if (k === 's') out.push(i);
  });
  return out;
}

/**
 * The names matching a pattern: comma-separated globs over point names (`*` any run of characters,
 * `?` one), each optionally prefixed with `-` to remove what it matches. Throws naming a glob that
 * matches nothing.
 */
export function matchPoints(pattern: string): TracePointName[] {
  const chosen = new Set<TracePointName>();
  for (const raw of pattern.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const neg = raw.startsWith('-');
    const glob = neg ? raw.slice(1) : raw;
    const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    const hits = POINT_NAMES.filter((n) => re.test(n));
    if (hits.length === 0) throw new Error(`trace pattern '${clip(glob)}' matches no trace point (smmulab trace-points lists them)`);
    for (const h of hits) {
      if (neg) chosen.delete(h);
      else chosen.add(h);
    }
  }
  return POINT_NAMES.filter((n) => chosen.has(n));
}

/** One field value as the text trace prints it. */
export function formatField(kind: FieldKind, v: number | string): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof kind === 'object') return kind.enum[v] ?? String(v);
  switch (kind) {
    case 'u':
    case 's':
      return String(v);
    case 'x':
      return hex(v, 0);
    case 'b':
      return v ? '1' : '0';
    case 'ns':
      return `${Math.round(v)}ns`;
    case 'bdf':
      return formatBdf(v);
    case 'op':
      return commandName(v);
    case 'cerror':
      return CERROR_NAMES[v] ?? `CERROR_${v}`;
    case 'evt':
      return EVT_NAME[v] ?? hex(v, 2);
  }
}

/** One record as a trace event: the point's name and its fields by name, printable values. */
export interface TraceEvent {
  /** Platform ns. */
  t: number;
  name: TracePointName;
  /** Which producer: 'hw' or the CPU number. */
  from: 'hw' | number;
  fields: Record<string, number | string>;
}

/** Decodes a record's fields by name (strings stay strings, enumerations become their names). */
export function decodeFields(point: number, values: readonly (number | string)[]): Record<string, number | string> {
  const d = DECLS[point];
  const out: Record<string, number | string> = {};
  d?.fields.forEach(([name, kind], i) => {
    const v = values[i]!;
    out[name] = typeof kind === 'object' && typeof v === 'number' ? (kind.enum[v] ?? v) : v;
  });
  return out;
}

/** A record's point and fields as text: `name field=value ...` (QEMU's trace style). */
export function formatTraceBody(point: number, values: readonly (number | string)[]): string {
  const name = POINT_NAMES[point] ?? `point${point}`;
  const d = DECLS[point];
  const fields = d ? d.fields.map(([n, k], i) => `${n}=${formatField(k, values[i]!)}`).join(' ') : '';
  return fields ? `${name} ${fields}` : name;
}

/** A record as a trace line: platform seconds, producer, then the body (`0.012345678 cpu0 name f=v`). */
export function formatTraceLine(t: number, from: 'hw' | number, point: number, values: readonly (number | string)[]): string {
  return `${(t / 1e9).toFixed(9)} ${from === 'hw' ? 'hw  ' : `cpu${from}`} ${formatTraceBody(point, values)}`;
}
