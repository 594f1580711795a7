// The fault vocabulary: every way smmulab can make the emulated hardware, or the driver, go wrong on
// purpose and repeatably. One name per fault, used by the API (System.inject, the lockstep system's
// inject), the CLI (`reset --fault`) and files alike. Faults are plain data, checked by `checkFault`, so
// they cross the worker boundary as messages.
//
// Who applies a fault: hardware faults go to the hardware (hw/faults.ts, in the hardware worker or the
// lockstep thread); driver faults arm a named should-fail point in the shared buffer
// (src/machine/fail-points.ts), which the driver asks at the matching place in its code
// (drivers/fault-inject.ts), as Linux's fail_function lets a test make a kernel function fail.

import { AER_COR, AER_UNCOR } from '../arch/pcie/regs.ts';
import { InputError, bdf, bool, int, literal, obj, oneOf, tagged, type Infer } from './check.ts';

export const SMMU_FETCHES = ['ste', 'cd', 'walk', 'evtq'] as const;
export type SmmuFetch = (typeof SMMU_FETCHES)[number];

/** AER error names a function can log: the Uncorrectable and Correctable Error Status bits. */
export const AER_ERRORS = [...Object.keys(AER_UNCOR), ...Object.keys(AER_COR)] as readonly string[];

/**
 * The driver's should-fail points, in the order of their slots in the shared fail-point table:
 * - blocking-attach: attaching a device to the blocking domain for a reset fails with -ENOMEM
 *   (pci_dev_reset_iommu_prepare's failure path)
 * - skip-invalidation: paging domains skip their TLB and ATC invalidations (a driver bug: the device
 *   keeps using stale translations)
 */
export const FAIL_POINTS = ['blocking-attach', 'skip-invalidation'] as const;
export type FailPoint = (typeof FAIL_POINTS)[number];

const count = int(0, 0x7fff_ffff);

const FAULT_CHECKS = {
  /** The next `count` command fetches abort (CERROR_ABT, 7.1). */
  'cmd-fetch-abort': obj({ kind: literal('cmd-fetch-abort'), count }),
  /** The hardware stops answering: it consumes no MMIO writes and runs no activity until resumed. */
  hang: obj({ kind: literal('hang') }),
  resume: obj({ kind: literal('resume') }),
  /** Platform ns an Update of CR0/IRQ_CTRL/GBPA takes to be acknowledged. */
  'ack-latency': obj({ kind: literal('ack-latency'), ns: int(0, 1e15) }),
  /**
   * The next `count` SMMU fetches of one kind abort as if the memory were not there: STE or L1STD
   * (F_STE_FETCH), CD or L1CD (F_CD_FETCH), translation table descriptor (F_WALK_EABT), or event
   * record write (GERROR.EVENTQ_ABT_ERR).
   */
  'smmu-fetch-abort': obj({ kind: literal('smmu-fetch-abort'), what: oneOf(SMMU_FETCHES), count }),
  /** Surprise removal: every access to the function returns all-ones, it answers nothing any more. */
  'surprise-removal': obj({ kind: literal('surprise-removal'), bdf }),
  /** While on, the function does not answer ATC Invalidate Requests (they time out in the SMMU). */
  'atc-inv-no-answer': obj({ kind: literal('atc-inv-no-answer'), bdf, on: bool }),
  /** While on, an FLR never completes: the function never becomes ready again (until a hot reset). */
  'flr-never-ready': obj({ kind: literal('flr-never-ready'), bdf, on: bool }),
  /** An FLR (and hot reset) keeps the function busy this many ms of platform time. */
  'flr-slow': obj({ kind: literal('flr-slow'), bdf, ms: int(0, 1e9) }),
  /** The function detects an error and logs it in AER / Device Status. */
  aer: obj({ kind: literal('aer'), bdf, error: oneOf(AER_ERRORS) }),
  /** Driver: the next `count` blocking-domain attaches fail with -ENOMEM. */
  'fail-blocking-attach': obj({ kind: literal('fail-blocking-attach'), count }),
  /** Driver: while on, paging domains skip their TLB and ATC invalidations. */
  'skip-invalidation': obj({ kind: literal('skip-invalidation'), on: bool }),
};

/** Checks a fault description from outside (API, CLI, JSON); throws InputError naming the bad field. */
export const checkFault = tagged('kind', FAULT_CHECKS);
export type Fault = Infer<typeof checkFault>;
export type FaultKind = Fault['kind'];
export const FAULT_KINDS = Object.keys(FAULT_CHECKS) as readonly FaultKind[];

/** Faults the driver's should-fail points take; every other fault is the hardware's. */
export type DriverFault = Extract<Fault, { kind: 'fail-blocking-attach' | 'skip-invalidation' }>;
export type HwFault = Exclude<Fault, DriverFault>;

export function isDriverFault(f: Fault): f is DriverFault {
  return f.kind === 'fail-blocking-attach' || f.kind === 'skip-invalidation';
}

/** The should-fail point a driver fault arms, and for how many calls (-1: until disarmed). */
export function failPointOf(f: DriverFault): { point: FailPoint; times: number } {
  switch (f.kind) {
    case 'fail-blocking-attach':
      return { point: 'blocking-attach', times: f.count };
    case 'skip-invalidation':
      return { point: 'skip-invalidation', times: f.on ? -1 : 0 };
  }
}

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'cmd-fetch-abort':
      return `next ${f.count} command fetch(es) abort`;
    case 'hang':
      return 'hardware stops answering';
    case 'resume':
      return 'hardware answers again';
    case 'ack-latency':
      return `register acknowledgements take ${f.ns} ns`;
    case 'smmu-fetch-abort':
      return `next ${f.count} SMMU ${f.what} access(es) abort`;
    case 'surprise-removal':
      return `${f.bdf} is surprise-removed`;
    case 'atc-inv-no-answer':
      return `${f.bdf} ${f.on ? 'stops' : 'resumes'} answering ATC invalidations`;
    case 'flr-never-ready':
      return `${f.bdf}: FLR ${f.on ? 'never completes' : 'completes again'}`;
    case 'flr-slow':
      return `${f.bdf}: FLR takes ${f.ms} ms`;
    case 'aer':
      return `${f.bdf} logs error ${f.error}`;
    case 'fail-blocking-attach':
      return `next ${f.count} blocking-domain attach(es) fail with -ENOMEM`;
    case 'skip-invalidation':
      return `paging domains ${f.on ? 'skip' : 'perform'} their TLB and ATC invalidations`;
  }
}

/** A fault the hardware applies (a driver fault here is an error naming it). */
export const checkHwFault = (v: unknown, path: string): HwFault => {
  const f = checkFault(v, path);
  if (isDriverFault(f)) throw new InputError(`${path}.kind: '${f.kind}' is a driver fault; the hardware cannot apply it`);
  return f;
};

/** Checks a fault from outside (API, JSON) with `where` as the path in errors (default "fault"). */
export function validateFault(f: unknown, where = 'fault'): Fault {
  return checkFault(f, where);
}
