// Redraws the SVG charts of CMDQ benchmark results files (bench/cmdq-plots.ts), e.g. of the committed
// ones: node bin/run-ts.mjs bench/plot.ts bench/results/cmdq.json
// Writes the charts next to each file and names them on stdout. Exit 2, with one line naming the file
// and field, for a file that is missing or not a cmdq results file.

import { parseArgs, UsageError } from '../src/host/cli/args.ts';
import { InputError } from '../src/protocol/check.ts';
import { writeCmdqPlots } from './cmdq-plots.ts';

const NAME = 'bench/plot.ts';
const USAGE = `usage: node bin/run-ts.mjs ${NAME} RESULTS.json...
Draws the charts of bench/cmdq.ts results files as SVG next to each file (cmdq.json -> cmdq-throughput.svg, ...).`;

function main(argv: string[]): number {
  try {
    const p = parseArgs(argv, { help: { type: 'boolean', help: 'show this help' } }, NAME);
    if (p.opts.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (p.positional.length === 0) throw new UsageError(`${NAME}: expected one or more results files, e.g. bench/results/cmdq.json`);
    for (const file of p.positional) for (const svg of writeCmdqPlots(file)) process.stdout.write(`wrote ${svg}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError || e instanceof InputError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
