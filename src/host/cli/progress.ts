// Progress lines of the commands that can run for more than a second (run with a long --seconds,
// campaign, compare): on stderr, and only when stderr is a terminal or --progress asks for them (a
// log file, CI), so a pipe or a test reading stderr gets results and errors alone. About one a second
// at most, and a final line saying the work is over.

import type { OptSpec, Parsed } from './args.ts';

export const PROGRESS_SPEC: OptSpec = { type: 'boolean', help: 'print progress lines on stderr even when it is not a terminal' };

/** Host ms between two progress lines. */
const EVERY_MS = 1000;

export class Progress {
  private last = -Infinity;

  constructor(
    /** Progress lines are printed at all. */
    readonly enabled: boolean,
    private readonly everyMs = EVERY_MS,
  ) {}

  /** On when the command got --progress, or when stderr is a terminal. */
  static of(p: Parsed): Progress {
    return new Progress(p.opts.progress === true || process.stderr.isTTY === true);
  }

  /** A line now, whatever the time since the last one (e.g. a step finished). */
  line(text: string): void {
    if (!this.enabled) return;
    this.last = performance.now();
    process.stderr.write(text + '\n');
  }

  /** A line unless one was printed less than a second ago; `text` is only built when printed. */
  tick(text: () => string): void {
    if (this.enabled && performance.now() - this.last >= this.everyMs) this.line(text());
  }

  /** The final line: printed when progress is on (also when nothing else was). */
  done(text: string): void {
    if (this.enabled) this.line(text);
  }
}
