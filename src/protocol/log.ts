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

/**
 * Lines a CPU's kernel log keeps. Like Linux's log buffer (log_buf_len), it is a ring: a CPU that
 * prints without end (an interrupt storm, a retry loop) overwrites its oldest lines instead of growing
 * without bound, and a reader is told how many it missed.
 */
export const LOG_RING_LINES = 8192;

/** What a reader sees in place of lines the ring overwrote before it read them. */
export function droppedMarker(n: number, before: LogEntry, capacity: number): LogEntry {
  return { t: before.t, cpu: before.cpu, level: 'warn', msg: `** ${n} lines dropped (the kernel log keeps the last ${capacity}) **` };
}

/** One CPU's kernel log: a ring of the last `capacity` lines, read by sequence number. */
export class LogRing {
  private readonly buf: LogEntry[] = [];
  /** Index in buf of the oldest line once the ring is full. */
  private head = 0;
  /** Lines ever printed: the sequence number the next line gets. */
  private total = 0;

  constructor(readonly capacity = LOG_RING_LINES) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`log ring of ${capacity} lines: must be a positive integer`);
  }

  push(e: LogEntry): void {
    if (this.buf.length < this.capacity) this.buf.push(e);
    else {
      this.buf[this.head] = e;
      this.head = (this.head + 1) % this.capacity;
    }
    this.total++;
  }

  /**
   * The lines from sequence number `from` on, oldest first, and the sequence number to read from next;
   * when the ring overwrote some of them, a "N lines dropped" marker comes first.
   */
  since(from: number): { entries: LogEntry[]; next: number } {
    const oldest = this.total - this.buf.length;
    const start = Math.max(from, oldest);
    const entries: LogEntry[] = [];
    for (let s = start; s < this.total; s++) entries.push(this.buf[(this.head + s - oldest) % this.buf.length]!);
    if (from < oldest && entries.length) entries.unshift(droppedMarker(oldest - from, entries[0]!, this.capacity));
    return { entries, next: this.total };
  }

  /** Every line kept, oldest first, after the marker of those dropped. */
  all(): LogEntry[] {
    return this.since(0).entries;
  }
}
