// The kernel log as it crosses to the host: one entry per line a CPU printed (dmesg), in platform time.

export type LogLevel = 'err' | 'warn' | 'info' | 'debug';

export interface LogEntry {
  /** Platform time in ns. */
  t: number;
  cpu: number;
  level: LogLevel;
  msg: string;
}

/** Formats a log entry as dmesg prints it: "[    1.234567] message". */
export function formatLog(e: LogEntry): string {
  const s = e.t / 1e9;
  return `[${s.toFixed(6).padStart(12)}] ${e.msg}`;
}
