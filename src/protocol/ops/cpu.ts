// Operations every CPU worker serves whatever drivers it runs: its kernel log, and stopping.

import { none } from '../check.ts';
import type { LogEntry } from '../log.ts';
import { op } from './decl.ts';

export const CPU_OPS = {
  /** New kernel log entries of this CPU since the last call. */
  dmesg: op(none).returns<LogEntry[]>(),
  /** Ends the CPU's idle loop. */
  stop: op(none).returns<true>(),
};
