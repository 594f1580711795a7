// `smmulab faults [--json]`: the fault catalogue (src/protocol/faults.ts), one line each, with the
// fields each takes, for writing --inject and scenario faults.

import { noArguments, parseCommandArgs } from './args.ts';
import type { CliCommand } from './command.ts';
import { CATALOGUE, FAULT_KINDS, checkFault, isDriverKind } from '../../protocol/faults.ts';
import { defsOf } from '../../protocol/check.ts';

const NAME = 'faults';
const SPEC = { json: { type: 'boolean', help: 'print a JSON array of {kind, side, fields, help}' } } as const;

/** The fields of each fault kind, from the checker's schema (kind itself left out). */
function fieldsOf(kind: string): string[] {
  const variants = (defsOf(checkFault).Fault?.oneOf ?? []) as { properties?: Record<string, unknown>; required?: string[] }[];
  const v = variants.find((x) => (x.properties?.kind as { const?: string } | undefined)?.const === kind);
  return Object.keys(v?.properties ?? {})
    .filter((k) => k !== 'kind')
    .map((k) => (v?.required?.includes(k) ? k : `${k}?`));
}

export const command: CliCommand = {
  name: NAME,
  summary: 'list the faults --inject and scenario files can name',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, '[--json]');
    if (!p) return 0;
    noArguments(p, NAME);
    const list = FAULT_KINDS.map((kind) => ({ kind, side: isDriverKind(kind) ? 'driver' : kind === 'clear' ? 'both' : 'hardware', fields: fieldsOf(kind), help: CATALOGUE[kind] }));
    if (p.opts.json) process.stdout.write(JSON.stringify(list) + '\n');
    else {
      for (const f of list) process.stdout.write(`${f.kind.padEnd(28)} ${f.side.padEnd(9)} ${f.help}\n${' '.repeat(39)}fields: ${f.fields.join(' ') || '(none)'}\n`);
      process.stdout.write(`\nEvery fault but clear takes a trigger: {count: N|'until-reset'|'forever', after: {event: atc-inv|flr-start|recovery|cmd-sync, nth, bdf}, atNs, window: {fromNs, toNs}, probability, seed}.\n`);
    }
    return 0;
  },
};
