// `smmulab trace-points [--json]`: every trace point, the side that emits it, its fields and what it
// means (src/protocol/trace-points.ts), for choosing a --trace pattern.

import { noArguments, parseCommandArgs } from './args.ts';
import type { CliCommand } from './command.ts';
import { POINT_NAMES, TRACE_POINTS, type FieldKind } from '../../protocol/trace-points.ts';

const NAME = 'trace-points';
const SPEC = { json: { type: 'boolean', help: 'print a JSON array of {name, side, fields, help}' } } as const;

const kindName = (k: FieldKind): string => (typeof k === 'object' ? k.enum.join('|') : k);

export const command: CliCommand = {
  name: NAME,
  summary: 'list the trace points --trace can print',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, '[--json]');
    if (!p) return 0;
    noArguments(p, NAME);
    const list = POINT_NAMES.map((name) => {
      const d = TRACE_POINTS[name];
      return { name, side: d.side, fields: d.fields.map(([n, k]) => `${n}:${kindName(k)}`), help: d.help };
    });
    if (p.opts.json) process.stdout.write(JSON.stringify(list) + '\n');
    else for (const d of list) process.stdout.write(`${d.name.padEnd(28)} ${d.side.padEnd(7)} ${d.help}\n${' '.repeat(37)}${d.fields.join(' ')}\n`);
    return 0;
  },
};
