// `smmulab scenarios [--json]`: the built-in scenarios (examples/scenarios), name and one line each.

import { noArguments, parseCommandArgs } from './args.ts';
import type { CliCommand } from './command.ts';
import { builtinNames, loadScenario } from '../scenario/catalogue.ts';

const NAME = 'scenarios';
const SPEC = { json: { type: 'boolean', help: 'print a JSON array of {name, summary, file}' } } as const;

export const command: CliCommand = {
  name: NAME,
  summary: 'list the built-in scenarios `run --scenario` takes',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, '[--json]');
    if (!p) return 0;
    noArguments(p, NAME);
    const list = builtinNames().map((n) => {
      const l = loadScenario(n);
      return { name: l.name, summary: l.scenario.summary ?? '', file: l.file };
    });
    if (p.opts.json) process.stdout.write(JSON.stringify(list) + '\n');
    else for (const s of list) process.stdout.write(`${s.name.padEnd(34)} ${s.summary}\n`);
    return 0;
  },
};
