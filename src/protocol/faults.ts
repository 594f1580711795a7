// The fault catalogue: every way smmulab can make the emulated hardware, or the driver, go wrong on
// purpose and repeatably. One name per fault, used by the API (System.inject, the lockstep system's
// inject), scenario files, campaigns and the CLI (`run --inject`, `reset --fault`) alike. Faults are
// plain data, checked by `checkFault`, so they cross the worker boundary as messages.
//
// Each fault says what it does (CATALOGUE, one line, printed by `smmulab faults`) and what its chances
// are; its trigger (trigger.ts) decides which chances fire. Who applies it: hardware faults go to the
// hardware (hw/faults.ts, in the hardware worker or the lockstep thread); driver faults arm a named
// should-fail point in the shared buffer (src/protocol/fail-points.ts), which the driver asks at the
// matching place in its code (drivers/fault-inject.ts), as Linux's fail_function lets a test make a
// kernel function fail.

import { AER_COR, AER_UNCOR } from '../arch/pcie/regs.ts';
import { InputError, bdf, int, literal, named, obj, oneOf, opt, sameSchema, tagged, type Check, type Infer } from './check.ts';
import { checkTrigger, type Trigger } from './trigger.ts';

export const SMMU_FETCHES = ['ste', 'cd', 'walk', 'evtq'] as const;
export type SmmuFetch = (typeof SMMU_FETCHES)[number];
/** The SMMU's MSI sources (GERROR.MSI_*_ABT_ERR). */
export const MSI_SOURCES = ['cmdq', 'evtq', 'gerror'] as const;
export type MsiSource = (typeof MSI_SOURCES)[number];

/** AER error names a function can log: the Uncorrectable and Correctable Error Status bits. */
export const AER_ERRORS = [...Object.keys(AER_UNCOR), ...Object.keys(AER_COR)] as readonly string[];

/**
 * The driver's should-fail points, in the order of their numbers in the shared table:
 * - blocking-attach: attaching a device to the blocking domain for a reset (pci_dev_reset_iommu_prepare)
 * - page-alloc: the page allocator (alloc_pages)
 * - iova-alloc: the DMA API's IOVA allocator (alloc_iova_fast)
 * - skip-invalidation: a paging domain's TLB and ATC invalidation (a driver bug when it "fails")
 * - evtq-stall: the event queue thread's drain (it stalls until the SMMU reports an overflow)
 */
export const FAIL_POINTS = ['blocking-attach', 'page-alloc', 'iova-alloc', 'skip-invalidation', 'evtq-stall'] as const;
export type FailPoint = (typeof FAIL_POINTS)[number];
/** The points fail-nth walks: the real failure paths (not the deliberate driver bugs). */
export const NTH_POINTS: readonly FailPoint[] = ['blocking-attach', 'page-alloc', 'iova-alloc'];

const trigger = opt(checkTrigger);
const count = int(1, 0x7fff_ffff);

/** One line per fault: what it does and what its chances are. */
export const CATALOGUE = {
  'atc-inv-no-answer': 'the function does not answer an ATC Invalidate Request (chance: each request it receives); the SMMU times out: CERROR_ATC_INV_SYNC',
  'atc-inv-late': 'the function answers an ATC invalidation only after the SMMU has timed out (chance: each request); the SMMU discards the late completion',
  'atc-inv-slow': 'the function answers an ATC invalidation after delayUs, within the SMMU timeout (chance: each request)',
  'flr-never-ready': 'an FLR never completes: the function stays in reset (chance: each FLR it starts)',
  'flr-slow': 'an FLR keeps the function busy for ms of platform time (chance: each FLR it starts)',
  'transactions-pending-stuck': 'Device Status Transactions Pending stays set until the function next completes a reset (a moment)',
  'cmd-illegal': 'a command is corrupted in queue memory after the driver wrote it (a reserved opcode): CERROR_ILL (chance: each command fetch)',
  'cmd-fetch-abort': 'a command fetch aborts: CERROR_ABT, the SMMU refetches after the error is acknowledged (chance: each command fetch)',
  'smmu-fetch-abort': 'an SMMU fetch of `what` aborts: F_STE_FETCH, F_CD_FETCH, F_WALK_EABT, or an event write GERROR.EVENTQ_ABT_ERR (chance: each such fetch)',
  'msi-abort': 'an MSI write of `source` aborts: GERROR.MSI_CMDQ_ABT_ERR, MSI_EVTQ_ABT_ERR or MSI_GERROR_ABT_ERR (chance: each MSI write of that source)',
  sfm: 'the SMMU enters Service Failure Mode (GERROR.SFM_ERR) and stops: no command consumed, every transaction aborted (a moment)',
  'surprise-removal': 'the function is removed: every access returns all-ones, it answers nothing any more (a moment)',
  aer: 'the function detects an error and logs it in AER / Device Status (a moment)',
  'cmd-sync-irq-masked': 'a GERROR interrupt is held for holdNs, as on a CPU polling its CMD_SYNC with interrupts off (chance: each GERROR raised)',
  hang: 'the hardware stops answering: it consumes no MMIO write and runs nothing, for forNs or until resume (a moment)',
  resume: 'the hardware answers again after a hang (a moment)',
  'ack-latency': 'CR0/IRQ_CTRL/GBPA updates take ns of platform time to be acknowledged (a moment)',
  'fail-blocking-attach': 'driver: attaching a device to the blocking domain for a reset fails with -ENOMEM (chance: each attach)',
  'fail-page-alloc': 'driver: a page allocation fails with -ENOMEM (chance: each allocation)',
  'fail-iova-alloc': 'driver: an IOVA allocation of the DMA API fails with -ENOSPC (chance: each allocation)',
  'fail-nth': 'driver: the nth call, counted over every should-fail point (blocking attach, page and IOVA allocation), fails (iommufd fail_nth)',
  'skip-invalidation': 'driver bug: a paging domain skips its TLB and ATC invalidation (chance: each invalidation; default count forever)',
  'evtq-overflow': 'driver: the event queue thread stalls until the SMMU reports an event queue overflow (chance: each event interrupt)',
  clear: 'disarms the faults still live: every one, or those of kind `what`, or of function `bdf`',
} as const;
type KindName = keyof typeof CATALOGUE;
const KIND_NAMES = Object.keys(CATALOGUE) as KindName[];

const FAULT_CHECKS = {
  'atc-inv-no-answer': obj({ kind: literal('atc-inv-no-answer'), bdf, trigger }),
  'atc-inv-late': obj({ kind: literal('atc-inv-late'), bdf, lateUs: opt(int(1, 1e9)), trigger }),
  'atc-inv-slow': obj({ kind: literal('atc-inv-slow'), bdf, delayUs: int(1, 1e9), trigger }),
  'flr-never-ready': obj({ kind: literal('flr-never-ready'), bdf, trigger }),
  'flr-slow': obj({ kind: literal('flr-slow'), bdf, ms: int(0, 1e9), trigger }),
  'transactions-pending-stuck': obj({ kind: literal('transactions-pending-stuck'), bdf, trigger }),
  'cmd-illegal': obj({ kind: literal('cmd-illegal'), trigger }),
  'cmd-fetch-abort': obj({ kind: literal('cmd-fetch-abort'), trigger }),
  'smmu-fetch-abort': obj({ kind: literal('smmu-fetch-abort'), what: oneOf(SMMU_FETCHES), trigger }),
  'msi-abort': obj({ kind: literal('msi-abort'), source: oneOf(MSI_SOURCES), trigger }),
  sfm: obj({ kind: literal('sfm'), trigger }),
  'surprise-removal': obj({ kind: literal('surprise-removal'), bdf, trigger }),
  aer: obj({ kind: literal('aer'), bdf, error: oneOf(AER_ERRORS), trigger }),
  'cmd-sync-irq-masked': obj({ kind: literal('cmd-sync-irq-masked'), holdNs: opt(int(1, 1e15)), trigger }),
  hang: obj({ kind: literal('hang'), forNs: opt(int(1, 1e15)), trigger }),
  resume: obj({ kind: literal('resume'), trigger }),
  'ack-latency': obj({ kind: literal('ack-latency'), ns: int(0, 1e15), trigger }),
  'fail-blocking-attach': obj({ kind: literal('fail-blocking-attach'), trigger }),
  'fail-page-alloc': obj({ kind: literal('fail-page-alloc'), trigger }),
  'fail-iova-alloc': obj({ kind: literal('fail-iova-alloc'), trigger }),
  'fail-nth': obj({ kind: literal('fail-nth'), nth: count }),
  'skip-invalidation': obj({ kind: literal('skip-invalidation'), trigger }),
  'evtq-overflow': obj({ kind: literal('evtq-overflow'), trigger }),
  clear: obj({ kind: literal('clear'), what: opt(oneOf(KIND_NAMES)), bdf: opt(bdf) }),
};

const checkAnyFault = tagged('kind', FAULT_CHECKS);
export type Fault = Infer<typeof checkAnyFault>;
export type FaultKind = Fault['kind'];
export const FAULT_KINDS = Object.keys(FAULT_CHECKS) as readonly FaultKind[];

/** Faults the driver's should-fail points take; 'clear' goes to both sides; every other fault is the hardware's. */
const DRIVER_FAULTS = ['fail-blocking-attach', 'fail-page-alloc', 'fail-iova-alloc', 'fail-nth', 'skip-invalidation', 'evtq-overflow'] as const;
export type DriverFault = Extract<Fault, { kind: (typeof DRIVER_FAULTS)[number] }>;
export type ClearFault = Extract<Fault, { kind: 'clear' }>;
export type HwFault = Exclude<Fault, DriverFault>;
/** Hardware faults that happen once, at a moment, rather than at each of a series of chances. */
export const MOMENT_FAULTS: readonly FaultKind[] = ['sfm', 'surprise-removal', 'aer', 'hang', 'resume', 'ack-latency', 'transactions-pending-stuck'];

export function isDriverKind(kind: FaultKind): kind is DriverFault['kind'] {
  return (DRIVER_FAULTS as readonly string[]).includes(kind);
}

export function isDriverFault(f: Fault): f is DriverFault {
  return isDriverKind(f.kind);
}

/** A fault's device, for faults of one PCI function. */
export function faultDevice(f: Fault): string | null {
  return 'bdf' in f ? (f.bdf ?? null) : null;
}

/**
 * Checks a fault from outside (API, CLI, JSON): the shape, then the rules between fields; throws an
 * InputError naming the field by path.
 */
export const checkFault: Check<Fault> = named('Fault', sameSchema((v, path) => {
  const f = checkAnyFault(v, path);
  const t: Trigger | undefined = 'trigger' in f ? f.trigger : undefined;
  if (t?.count === 'until-reset' && faultDevice(f) === null) throw new InputError(`${path}.trigger.count: 'until-reset' needs a fault of one function (with bdf)`);
  if (isDriverFault(f) && t?.after && t.after.event !== 'recovery') {
    throw new InputError(`${path}.trigger.after.event: a driver fault can only wait for 'recovery' (the hardware's events are not seen by the driver)`);
  }
  return f;
}, checkAnyFault));

/** A fault the hardware applies (a driver fault here is an error naming it). */
export const checkHwFault: Check<HwFault> = (v, path) => {
  const f = checkFault(v, path);
  if (isDriverFault(f)) throw new InputError(`${path}.kind: '${f.kind}' is a driver fault; the hardware cannot apply it`);
  return f;
};

/** Checks a fault from outside with `where` as the path in errors (default "fault"). */
export function validateFault(f: unknown, where = 'fault'): Fault {
  return checkFault(f, where);
}

export function describeFault(f: Fault): string {
  const where = 'bdf' in f ? `${f.bdf}: ` : '';
  return `${where}${f.kind}${'trigger' in f && f.trigger ? ` (${JSON.stringify(f.trigger)})` : ''}: ${CATALOGUE[f.kind]}`;
}
