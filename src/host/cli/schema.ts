// `smmulab schema`: the JSON Schema of scenario files, generated from their checker
// (src/protocol/scenario.ts). examples/scenario.schema.json is its output, committed so that editors
// find it through a file's "$schema"; a test keeps the two equal.

import { noArguments, parseCommandArgs } from './args.ts';
import type { CliCommand } from './command.ts';
import { scenarioSchema } from '../../protocol/scenario.ts';

const NAME = 'schema';

export const command: CliCommand = {
  name: NAME,
  summary: 'print the JSON Schema of scenario files',
  async run(argv) {
    const p = parseCommandArgs(argv, {}, NAME, '');
    if (!p) return 0;
    noArguments(p, NAME);
    process.stdout.write(JSON.stringify(scenarioSchema(), null, 2) + '\n');
    return 0;
  },
};
