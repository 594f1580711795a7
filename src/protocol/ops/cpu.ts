// Operations every CPU worker serves whatever drivers it runs: its kernel log, and stopping.

import { int, none, obj } from '../check.ts';
import type { LogEntry } from '../log.ts';
import { op } from './decl.ts';

export const CPU_OPS = {
  /** New kernel log entries of this CPU since the last call (moves the CPU's dmesg cursor). */
  dmesg: op(none).returns<LogEntry[]>(),
  /** Every kernel log entry of this CPU since boot; leaves the dmesg cursor where it is. */
  dmesgAll: op(none).returns<LogEntry[]>(),
  /** Sleeps for ns of platform time (msleep: interrupts are taken meanwhile). */
  sleep: op(obj({ ns: int(0, 1e13) })).returns<true>(),
  /** Ends the CPU's idle loop. */
  stop: op(none).returns<true>(),
};
