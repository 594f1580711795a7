// Command-line parsing shared by every subcommand: declared options, clear errors naming what is wrong.

export class UsageError extends Error {}

/** An option: its type, help, default; a repeatable string option collects every value (Parsed.lists). */
export type OptSpec = { type: 'string' | 'number' | 'boolean'; help: string; default?: string | number | boolean; repeatable?: boolean };

export interface Parsed {
  opts: Record<string, string | number | boolean | undefined>;
  /** Every value of each repeatable option, in order (absent: none given). */
  lists: Record<string, string[]>;
  positional: string[];
}

/** Parses `--name value`, `--name=value` and boolean `--name`; throws UsageError naming a bad option. */
export function parseArgs(argv: string[], spec: Record<string, OptSpec>, command: string): Parsed {
  const opts: Parsed['opts'] = {};
  const lists: Parsed['lists'] = {};
  const positional: string[] = [];
  for (const [k, s] of Object.entries(spec)) if (s.default !== undefined) opts[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new UsageError(`${command}: unknown option --${name} (known: ${Object.keys(spec).map((k) => '--' + k).join(', ')})`);
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      opts[name] = true;
      continue;
    }
    const raw = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (raw === undefined) throw new UsageError(`${command}: --${name} needs a value`);
    if (s.type === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new UsageError(`${command}: --${name} '${raw}' is not a number`);
      opts[name] = n;
    } else {
      if (s.repeatable) (lists[name] ??= []).push(raw);
      else if (opts[name] !== undefined && opts[name] !== s.default) throw new UsageError(`${command}: --${name} given twice`);
      opts[name] = raw;
    }
  }
  return { opts, lists, positional };
}

/** The --help option every subcommand takes. */
export const HELP_SPEC: OptSpec = { type: 'boolean', help: 'show this help' };

/** One line per option: `--name ARG` after `indent`, padded to `width`, then its help and default. */
export function optionLines(spec: Record<string, OptSpec>, indent: string, width: number): string[] {
  return Object.entries(spec).map(([k, s]) => {
    const arg = (s.type === 'boolean' ? '' : s.type === 'number' ? ' N' : ' VALUE') + (s.repeatable ? ' ...' : '');
    const def = s.default !== undefined && s.type !== 'boolean' ? ` (default ${s.default})` : '';
    return `${indent}--${k}${arg}`.padEnd(width) + s.help + def;
  });
}

export function usage(command: string, synopsis: string, spec: Record<string, OptSpec>): string {
  return [`usage: smmulab ${command} ${synopsis}`, ...optionLines(spec, '  ', 28)].join('\n');
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

/** Refuses positional arguments, for commands that take none. */
export function noArguments(p: Parsed, command: string): void {
  if (p.positional.length) throw new UsageError(`${command}: unexpected argument '${p.positional[0]}' (see smmulab ${command} --help)`);
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
    throw new UsageError(`${command}: --${name} must be ${what} (got ${String(value)})`);
  }
  return value;
}

/** An integer option within bounds, or a UsageError naming it. */
export function intOpt(p: Parsed, name: string, min: number, max: number, command: string): number {
  const v = p.opts[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new UsageError(`${command}: --${name} must be an integer from ${min} to ${max} (got ${String(v)})`);
  }
  return v;
}
