// The fault-injection API: what a test or the CLI can make the emulated hardware do wrong, on purpose
// and repeatably. Faults are plain data so they cross the worker boundary as messages.

import { formatBdf, parseBdf, ridOf } from '../arch/pcie/bdf.ts';

export type Fault =
  /** The next `count` command fetches abort (CERROR_ABT, 7.1). */
  | { kind: 'cmdq-fetch-abort'; count: number }
  /** The hardware stops answering: it consumes no MMIO writes and runs no activity until resumed. */
  | { kind: 'hang' }
  | { kind: 'resume' }
  /** Platform ns an Update of CR0/IRQ_CTRL/GBPA takes to be acknowledged. */
  | { kind: 'ack-latency'; ns: number }
  /**
   * The next `count` SMMU fetches of one kind abort as if the memory were not there: STE or L1STD
   * (F_STE_FETCH), CD or L1CD (F_CD_FETCH), translation table descriptor (F_WALK_EABT), or event
   * record write (GERROR.EVENTQ_ABT_ERR).
   */
  | { kind: 'smmu-fetch-abort'; what: SmmuFetch; count: number }
  | PcieFault;

export const SMMU_FETCHES = ['ste', 'cd', 'walk', 'evtq'] as const;
export type SmmuFetch = (typeof SMMU_FETCHES)[number];

/** Faults of one PCIe endpoint function (hw/pcie). */
export type PcieFault =
  /** Surprise removal: every access to the function returns all-ones, it answers nothing any more. */
  | { kind: 'pcie-unplug'; bdf: string }
  /** While on, the function does not answer ATC Invalidate Requests (they time out in the SMMU). */
  | { kind: 'pcie-atc-inv-ignore'; bdf: string; on: boolean }
  /** While on, an FLR never completes: the function never becomes ready again (until a hot reset). */
  | { kind: 'pcie-flr-hang'; bdf: string; on: boolean }
  /** An FLR (and hot reset) keeps the function busy this many ms of platform time. */
  | { kind: 'pcie-flr-time'; bdf: string; ms: number }
  /** The function detects an error and logs it in AER / Device Status (an AER_UNCOR or AER_COR name). */
  | { kind: 'pcie-aer'; bdf: string; error: string };

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'cmdq-fetch-abort':
      return `next ${f.count} command fetch(es) abort`;
    case 'hang':
      return 'hardware stops answering';
    case 'resume':
      return 'hardware answers again';
    case 'ack-latency':
      return `register acknowledgements take ${f.ns} ns`;
    case 'smmu-fetch-abort':
      return `next ${f.count} SMMU ${f.what} access(es) abort`;
    case 'pcie-unplug':
      return `${f.bdf} is surprise-removed`;
    case 'pcie-atc-inv-ignore':
      return `${f.bdf} ${f.on ? 'stops' : 'resumes'} answering ATC invalidations`;
    case 'pcie-flr-hang':
      return `${f.bdf}: FLR ${f.on ? 'never completes' : 'completes again'}`;
    case 'pcie-flr-time':
      return `${f.bdf}: FLR takes ${f.ms} ms`;
    case 'pcie-aer':
      return `${f.bdf} logs error ${f.error}`;
  }
}

/** Checks a fault description from outside (CLI, JSON); throws naming the bad field. */
export function validateFault(f: unknown, where = 'fault'): Fault {
  if (typeof f !== 'object' || f === null) throw new Error(`${where}: must be an object`);
  const o = f as Record<string, unknown>;
  const count = (k: string) => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${where}.${k}: must be a non-negative integer`);
    return v;
  };
  const bdf = () => {
    const b = typeof o.bdf === 'string' ? parseBdf(o.bdf) : null;
    if (!b) throw new Error(`${where}.bdf: must be a "BB:DD.F" address (hex bus and device up to 1f, function 0-7)`);
    return formatBdf(ridOf(b));
  };
  const flag = (k: string) => {
    if (typeof o[k] !== 'boolean') throw new Error(`${where}.${k}: must be true or false`);
    return o[k] as boolean;
  };
  switch (o.kind) {
    case 'cmdq-fetch-abort':
      return { kind: 'cmdq-fetch-abort', count: count('count') };
    case 'hang':
    case 'resume':
      return { kind: o.kind };
    case 'ack-latency':
      return { kind: 'ack-latency', ns: count('ns') };
    case 'smmu-fetch-abort': {
      if (!(SMMU_FETCHES as readonly unknown[]).includes(o.what)) throw new Error(`${where}.what: must be one of ${SMMU_FETCHES.join(', ')}`);
      return { kind: 'smmu-fetch-abort', what: o.what as SmmuFetch, count: count('count') };
    }
    case 'pcie-unplug':
      return { kind: o.kind, bdf: bdf() };
    case 'pcie-atc-inv-ignore':
    case 'pcie-flr-hang':
      return { kind: o.kind, bdf: bdf(), on: flag('on') };
    case 'pcie-flr-time':
      return { kind: 'pcie-flr-time', bdf: bdf(), ms: count('ms') };
    case 'pcie-aer': {
      if (typeof o.error !== 'string' || !o.error) throw new Error(`${where}.error: must name an AER error bit`);
      return { kind: 'pcie-aer', bdf: bdf(), error: o.error };
    }
    default:
      throw new Error(`${where}.kind: unknown fault '${String(o.kind)}'`);
  }
}
