// --dmesg for the commands that boot the emulator: the kernel log (every CPU's printk lines, in
// platform time order: the probe, PCI enumeration, events the event queue thread decoded, command
// errors the GERROR handler met) on stderr, as dmesg prints it. A JSON report carries the same entries
// as LogEntry objects, with their platform time (whole ns), CPU and level.

import type { OptSpec } from './args.ts';
import { formatLog, type LogEntry } from '../../protocol/log.ts';

export const DMESG_SPEC: OptSpec = { type: 'boolean', help: 'print the kernel log on stderr' };

/** Writes log entries on stderr, one dmesg line each. */
export function printDmesg(entries: readonly LogEntry[]): void {
  if (entries.length) process.stderr.write(entries.map(formatLog).join('\n') + '\n');
}

/** Entries as a JSON report carries them: platform time in whole ns (the clock reads fractions). */
export function reportLog(entries: readonly LogEntry[]): LogEntry[] {
  return entries.map((e) => ({ ...e, t: Math.round(e.t) }));
}
