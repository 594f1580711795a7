// Command-line parsing shared by every subcommand and the benchmark scripts: declared options, clear
// errors naming what is wrong. The conventions every command gets from here, without knowing of them:
// `-h` is `--help`, `--version` prints the version, `--` ends the options, and an empty value is a
// missing one.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clip, show } from '../../protocol/check.ts';

export class UsageError extends Error {}

/**
 * Thrown by parseArgs on `--version`, so that every command answers it without declaring it: the
 * dispatcher (src/host/cli.ts) and parseScriptArgs print versionLine() and exit 0.
 */
export class VersionRequest extends Error {
  constructor() {
    super('--version');
  }
}

/**
 * An option: its type, help, default; a repeatable string option collects every value (Parsed.lists).
 * A number option with min/max is refused outside [min, max] when parsed, so every command that shares
 * the spec shares the bound; unit names what the number counts in the message.
 */
export type OptSpec = {
  type: 'string' | 'number' | 'boolean';
  help: string;
  default?: string | number | boolean;
  repeatable?: boolean;
  min?: number;
  max?: number;
  unit?: string;
};

export interface Parsed {
  opts: Record<string, string | number | boolean | undefined>;
  /** Every value of each repeatable option, in order (absent: none given). */
  lists: Record<string, string[]>;
  positional: string[];
}

/** How an argument that names an option is echoed: as typed when it is a plain name, else quoted and escaped. */
function optionText(arg: string): string {
  return /^--?[\w-]*$/.test(arg) ? arg : show(arg);
}

/**
 * Parses `--name value`, `--name=value` and boolean `--name` (`-h` is `--help`; everything after `--`
 * is positional); throws UsageError naming a bad option, VersionRequest on `--version`.
 */
export function parseArgs(argv: string[], spec: Record<string, OptSpec>, command: string): Parsed {
  const opts: Parsed['opts'] = {};
  const lists: Parsed['lists'] = {};
  const positional: string[] = [];
  // Own keys only: a name such as `constructor` or `__proto__` must not find Object.prototype's.
  const specOf = (name: string): OptSpec | undefined => (Object.hasOwn(spec, name) ? spec[name] : undefined);
  const known = () => Object.keys(spec).map((k) => '--' + k).join(', ');
  for (const [k, s] of Object.entries(spec)) if (s.default !== undefined) opts[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    // A lone `-` is an argument (conventionally stdin); `-x` is an option, and only -h exists.
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a === '-h' ? 'help' : a.startsWith('--') ? a.slice(2, eq < 0 ? undefined : eq) : '';
    if (name === 'version' && !specOf('version')) throw new VersionRequest();
    const s = specOf(name);
    if (!s) throw new UsageError(`${command}: unknown option ${optionText(a.startsWith('--') && eq >= 0 ? a.slice(0, eq) : a)} (known: ${known()})`);
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      opts[name] = true;
      continue;
    }
    const raw = eq >= 0 ? a.slice(eq + 1) : argv[i + 1];
    // The next argument is an option, not this one's value: `--cpus --json` lacks the count.
    if (eq < 0 && raw !== undefined && raw.startsWith('--')) {
      throw new UsageError(`${command}: --${name} is missing its value (the next argument, ${optionText(raw)}, is an option)`);
    }
    if (eq < 0) i++;
    // An empty value is a missing one: Number('') is 0, and '' names no file or profile.
    if (raw === undefined || raw.trim() === '') throw new UsageError(`${command}: --${name} is missing its value`);
    if (s.type === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new UsageError(`${command}: --${name} '${clip(raw)}' is not a number`);
      if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) {
        throw new UsageError(`${command}: --${name} must be a number${s.unit ? ` of ${s.unit}` : ''} ${rangeText(s)} (got ${n})`);
      }
      opts[name] = n;
    } else {
      if (s.repeatable) (lists[name] ??= []).push(raw);
      else if (opts[name] !== undefined && opts[name] !== s.default) throw new UsageError(`${command}: --${name} given twice`);
      opts[name] = raw;
    }
  }
  return { opts, lists, positional };
}

/** "from MIN to MAX" (or the one bound there is) of a number option. */
function rangeText(s: OptSpec): string {
  if (s.min !== undefined && s.max !== undefined) return `from ${s.min} to ${s.max}`;
  return s.min !== undefined ? `of at least ${s.min}` : `of at most ${s.max}`;
}

/** The --help option every subcommand takes (`-h` too). */
export const HELP_SPEC: OptSpec = { type: 'boolean', help: 'show this help' };

/** One line per option: `--name ARG` after `indent`, padded to `width`, then its help, default and bounds. */
export function optionLines(spec: Record<string, OptSpec>, indent: string, width: number): string[] {
  return Object.entries(spec).map(([k, s]) => {
    const arg = (s.type === 'boolean' ? '' : s.type === 'number' ? ' N' : ' VALUE') + (s.repeatable ? ' ...' : '');
    const def = s.default !== undefined && s.type !== 'boolean' ? ` (default ${s.default})` : '';
    const range = s.min !== undefined || s.max !== undefined ? ` (${rangeText(s)})` : '';
    return `${indent}${k === 'help' ? '-h, ' : ''}--${k}${arg}`.padEnd(width) + s.help + def + range;
  });
}

/** The usage text: `usage: PROGRAM COMMAND SYNOPSIS`, the options, and --version (which every command takes). */
export function usage(command: string, synopsis: string, spec: Record<string, OptSpec>, program = 'smmulab'): string {
  return [`usage: ${[program, command, synopsis].filter(Boolean).join(' ')}`, ...optionLines(spec, '  ', 28), `${'  --version'.padEnd(28)}print smmulab's version and exit`].join('\n');
}

/** `smmulab VERSION`, the version from the package.json of this checkout or installed package. */
export function versionLine(): string {
  // Walk up from this module: it runs from src/host/cli in a checkout and from dist/... when built.
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'smmulab') return `smmulab ${String(pkg.version)}`;
    } catch {
      // No package.json here (or not JSON): keep walking up.
    }
    if (dirname(dir) === dir) throw new Error("smmulab's package.json not found above " + fileURLToPath(import.meta.url));
  }
}

/**
 * Parses a subcommand's arguments, taking --help too: with --help it prints the usage on stdout and
 * returns null, and the command exits 0.
 */
export function parseCommandArgs(argv: string[], spec: Record<string, OptSpec>, command: string, synopsis: string): Parsed | null {
  const full = { ...spec, help: HELP_SPEC };
  const p = parseArgs(argv, full, command);
  if (!p.opts.help) return p;
  process.stdout.write(usage(command, synopsis, full) + '\n');
  return null;
}

/**
 * parseCommandArgs for a script run on its own (the benchmarks, `npm run bench:NAME -- ...`), which has
 * no dispatcher to end it: prints the usage (exit 0), the version (exit 0) or the usage error as one
 * line (exit 2) and exits; otherwise returns the options.
 */
export function parseScriptArgs(argv: string[], spec: Record<string, OptSpec>, name: string): Parsed {
  const full = { ...spec, help: HELP_SPEC };
  try {
    const p = parseArgs(argv, full, name);
    if (!p.opts.help) return p;
    process.stdout.write(usage(name, '-- [options]', full, 'npm run') + '\n');
  } catch (e) {
    if (e instanceof VersionRequest) process.stdout.write(versionLine() + '\n');
    else if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    } else throw e;
  }
  process.exit(0);
}

/**
 * Runs a script's main (the benchmarks): a bad option value it reads (intOpt and the like) ends the
 * script with its one-line message and exit 2, as parseScriptArgs does for the rest, not a stack trace.
 */
export async function runScript(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
}

/** Refuses positional arguments, for commands that take none. */
export function noArguments(p: Parsed, command: string): void {
  if (p.positional.length) throw new UsageError(`${command}: unexpected argument '${clip(p.positional[0]!)}' (see smmulab ${command} --help)`);
}

/**
 * A number above 0 (and at most `max`), in `unit` if given, or a UsageError naming the option;
 * undefined when the option is absent.
 */
export function positiveNumber(command: string, name: string, value: unknown, o: { max?: number; unit?: string } = {}): number | undefined {
  if (value === undefined) return undefined;
  const max = o.max ?? Infinity;
  if (typeof value !== 'number' || !(value > 0) || value > max) {
    const what = `a number${o.unit ? ` of ${o.unit}` : ''} above 0${max < Infinity ? ` and at most ${max}` : ''}`;
    throw new UsageError(`${command}: --${name} must be ${what} (got ${clip(String(value))})`);
  }
  return value;
}

/** An integer option within bounds, or a UsageError naming it. */
export function intOpt(p: Parsed, name: string, min: number, max: number, command: string): number {
  const v = p.opts[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new UsageError(`${command}: --${name} must be an integer from ${min} to ${max} (got ${clip(String(v))})`);
  }
  return v;
}
