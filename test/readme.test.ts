// The README documents every fault and every built-in scenario in one line each, with the same words
// `smmulab faults` and `smmulab scenarios` print: a new fault or scenario without its line fails here.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CATALOGUE, FAULT_KINDS } from '../src/protocol/faults.ts';
import { builtinNames, loadScenario } from '../src/host/scenario/catalogue.ts';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
/** The table row for `name` in the README section whose heading starts with `heading`. */
function rowOf(heading: string, name: string): string | undefined {
  const from = README.indexOf(`\n${heading}`);
  const section = README.slice(from, README.indexOf('\n#', from + 1));
  return section.split('\n').find((l) => l.startsWith(`| \`${name}\` |`));
}

describe('README', () => {
  it.each([...FAULT_KINDS])('documents fault %s with its catalogue line', (kind) => {
    const row = rowOf('## Fault injection', kind);
    expect(row, `no README row for fault ${kind}`).toBeDefined();
    expect(row).toContain(`| ${CATALOGUE[kind]} |`);
  });

  it.each(builtinNames())('documents built-in scenario %s with its summary', (name) => {
    const row = rowOf('### Scenarios', name);
    expect(row, `no README row for scenario ${name}`).toBeDefined();
    expect(row).toContain(`| ${loadScenario(name).scenario.summary} |`);
  });
});
