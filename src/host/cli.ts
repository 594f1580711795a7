// smmulab command line: dispatches to one module per subcommand (src/host/cli/<name>.ts), listed in
// src/host/cli/commands.ts. The conventions every command follows (-h/--help, --version, `--`) live in
// the shared parser, src/host/cli/args.ts; the dispatcher answers --version for all of them.

import { UsageError, VersionRequest, versionLine } from './cli/args.ts';
import { InputError, show } from '../protocol/check.ts';
import { TopologyError } from '../protocol/topology.ts';
import { COMMANDS } from './cli/commands.ts';

async function help(): Promise<string> {
  const cmds = await Promise.all([...COMMANDS.values()].map((l) => l()));
  return [
    'usage: smmulab COMMAND [options]   (smmulab COMMAND --help for its options)',
    '       smmulab --version',
    '       (--debug, with any command: an internal error shows its stack traces)',
    '',
    ...cmds.map((c) => `  ${c.name.padEnd(14)}${c.summary}`),
  ].join('\n');
}

/**
 * Takes `--debug` out of the arguments (anywhere before `--`, so every command accepts it without
 * declaring it): an internal error then shows its stack traces, the worker's included.
 */
export function takeDebug(argv: string[]): { argv: string[]; debug: boolean } {
  const end = argv.indexOf('--');
  const head = end < 0 ? argv : argv.slice(0, end);
  if (!head.includes('--debug')) return { argv, debug: false };
  return { argv: [...head.filter((a) => a !== '--debug'), ...(end < 0 ? [] : argv.slice(end))], debug: true };
}

/** An error from inside as the CLI reports it: its message (one line), or with --debug its stack. */
export function describeError(e: unknown, debug: boolean): string {
  if (!(e instanceof Error)) return String(e);
  return debug ? (e.stack ?? e.message) : e.message;
}

export async function main(args: string[]): Promise<number> {
  const { argv, debug } = takeDebug(args);
  const [name, ...rest] = argv;
  if (!name) {
    // No command is a usage error: the list goes where errors go.
    process.stderr.write((await help()) + '\n');
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await help()) + '\n');
    return 0;
  }
  if (name === '--version') {
    process.stdout.write(versionLine() + '\n');
    return 0;
  }
  const load = COMMANDS.get(name);
  if (!load) {
    // One line: the names are short enough to list, the full help is one --help away.
    const what = name.startsWith('-') ? 'option' : 'command';
    process.stderr.write(`smmulab: unknown ${what} ${show(name)} (commands: ${[...COMMANDS.keys()].join(', ')}; smmulab --help describes them)\n`);
    return 2;
  }
  try {
    return await (await load()).run(rest);
  } catch (e) {
    if (e instanceof VersionRequest) {
      process.stdout.write(versionLine() + '\n');
      return 0;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    // Bad input (a scenario or topology file, a fault): one line naming the field, exit 2.
    if (e instanceof InputError || e instanceof TopologyError) {
      process.stderr.write(`smmulab ${name}: ${e.message}\n`);
      return 2;
    }
    // Something failed inside: one line saying what (its stack traces only with --debug), exit 1.
    process.stderr.write(`smmulab ${name}: ${describeError(e, debug)}\n`);
    return 1;
  }
}
