// smmulab command line: dispatches to one module per subcommand (src/host/cli/<name>.ts), listed in
// src/host/cli/commands.ts.

import { UsageError } from './cli/args.ts';
import { InputError } from '../protocol/check.ts';
import { TopologyError } from '../protocol/topology.ts';
import { COMMANDS } from './cli/commands.ts';

async function help(): Promise<string> {
  const cmds = await Promise.all([...COMMANDS.values()].map((l) => l()));
  return ['usage: smmulab COMMAND [options]   (smmulab COMMAND --help for its options)', '', ...cmds.map((c) => `  ${c.name.padEnd(14)}${c.summary}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
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
  const load = COMMANDS.get(name);
  if (!load) {
    process.stderr.write(`smmulab: unknown command '${name}'\n${await help()}\n`);
    return 2;
  }
  try {
    return await (await load()).run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    // Bad input (a scenario or topology file, a fault): one line naming the field, exit 2.
    if (e instanceof InputError || e instanceof TopologyError) {
      process.stderr.write(`smmulab ${name}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`smmulab ${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}
