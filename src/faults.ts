// The fault-injection API: what a test or the CLI can make the emulated hardware do wrong, on purpose
// and repeatably. Faults are plain data so they cross the worker boundary as messages.

export type Fault =
  /** The next `count` command fetches abort (CERROR_ABT, 7.1). */
  | { kind: 'cmdq-fetch-abort'; count: number }
  /** The hardware stops answering: it consumes no MMIO writes and runs no activity until resumed. */
  | { kind: 'hang' }
  | { kind: 'resume' }
  /** Platform ns an Update of CR0/IRQ_CTRL/GBPA takes to be acknowledged. */
  | { kind: 'ack-latency'; ns: number };

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
  switch (o.kind) {
    case 'cmdq-fetch-abort':
      return { kind: 'cmdq-fetch-abort', count: count('count') };
    case 'hang':
    case 'resume':
      return { kind: o.kind };
    case 'ack-latency':
      return { kind: 'ack-latency', ns: count('ns') };
    default:
      throw new Error(`${where}.kind: unknown fault '${String(o.kind)}'`);
  }
}
