// The README's API examples are the files of examples/: the README shows each file as it is (and shows
// no JavaScript that is not one), and each runnable example (api-*.mjs) runs to completion from source
// and exits 0 by itself: it imports 'smmulab' (served from src/ by the package's "source" condition),
// asserts what it shows, and shuts its workers down. test/package.test.ts runs the same files from the
// packed package.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from './fixtures/run-node.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLES = join(ROOT, 'examples');
const exampleFiles = readdirSync(EXAMPLES).filter((f) => f.endsWith('.mjs')).sort();
const runnable = exampleFiles.filter((f) => f.startsWith('api-'));

/** The JavaScript code blocks of the README, as written. */
function readmeJsBlocks(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

describe('README API examples', () => {
  it('has the examples', () => {
    expect(runnable).toEqual(['api-basic.mjs', 'api-extra-ops.mjs']);
    expect(exampleFiles).toContain('my-ops.mjs');
  });

  it('shows every example file as it is, and no JavaScript that is not one', () => {
    const blocks = readmeJsBlocks();
    const files = exampleFiles.map((f) => readFileSync(join(EXAMPLES, f), 'utf8'));
    for (const [i, f] of exampleFiles.entries()) expect(blocks, `README.md shows examples/${f} as it is`).toContain(files[i]);
    for (const b of blocks) expect(files, `README.md js block is a file of examples/:\n${b}`).toContain(b);
    // Code is shown as ```js, so the check above sees it (shell, JSON and output blocks are not API code).
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme.match(/^```(ts|typescript|javascript|mjs|cjs|jsx|tsx)\b.*$/gm)).toBeNull();
  });

  it('imports the package by its name, as a user project does', () => {
    for (const f of exampleFiles) {
      const text = readFileSync(join(EXAMPLES, f), 'utf8');
      const specs = [...text.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]!);
      expect(specs.filter((s) => !s.startsWith('node:')), f).toEqual(['smmulab']);
    }
  });

  for (const f of runnable) {
    it(`${f} runs from source and exits 0 by itself`, async () => {
      const r = await runNode(['--conditions=source', 'bin/run-ts.mjs', `examples/${f}`], ROOT);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/arm-smmu-v3 9050000\.smmuv3: allocated \d+ entries for cmdq/);
    });
  }
});
