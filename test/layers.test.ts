// The dependency rule between the layers (README "Architecture"), checked by reading every import of
// every source file: a violation names the file, the line and the import.
//
//   src/arch      the architecture as data                 imports nothing else of the project
//   src/machine   the shared-buffer machine                 arch
//   src/protocol  operations, faults, trace points          arch, machine
//   hw/           the hardware models                       arch, machine, protocol
//   drivers/      the kernel driver (and its platform)      arch, machine, protocol
//   src/host      System, lockstep, CLI, package entry      everything
//
// and no import cycle anywhere in src/, hw/ or drivers/ (type-only imports included: a cycle of types
// still means two modules that cannot be understood one without the other).

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

type Layer = 'arch' | 'machine' | 'protocol' | 'hw' | 'drivers' | 'host';

const ALLOWED: Record<Layer, readonly Layer[]> = {
  arch: ['arch'],
  machine: ['arch', 'machine'],
  protocol: ['arch', 'machine', 'protocol'],
  hw: ['arch', 'machine', 'protocol', 'hw'],
  drivers: ['arch', 'machine', 'protocol', 'drivers'],
  host: ['arch', 'machine', 'protocol', 'hw', 'drivers', 'host'],
};

/** The layer a repository path belongs to, or null for a file in src/ outside every layer folder. */
function layerOf(rel: string): Layer | null {
  const [top, sub] = rel.split('/');
  if (top === 'hw') return 'hw';
  if (top === 'drivers') return 'drivers';
  if (top === 'src') {
    if (sub === 'arch' || sub === 'machine' || sub === 'protocol' || sub === 'host') return sub;
    return null;
  }
  throw new Error(`${rel}: not in src/, hw/ or drivers/`);
}

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs)$/.test(e.name)) out.push(p);
    }
  };
  for (const d of ['src', 'hw', 'drivers']) walk(d);
  return out.sort();
}

interface Import {
  line: number;
  spec: string;
  /** Repository path of the imported file, for a relative import. */
  target: string | null;
}

/** Every module a file names: static imports and re-exports, dynamic import(), worker URLs. */
function importsOf(file: string, text: string): Import[] {
  const out: Import[] = [];
  // Blank out comments (keeping line breaks) so an example in a comment is not an import.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?'([^']+)'/g,
    /\bimport\(\s*'([^']+)'\s*\)/g,
    /\bnew URL\(\s*'([^']+)'\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) {
      const spec = m[1]!;
      const line = code.slice(0, m.index).split('\n').length;
      const target = spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec)).replaceAll('\\', '/') : null;
      out.push({ line, spec, target });
    }
  }
  return out;
}

const files = sourceFiles();
const graph = new Map<string, Import[]>(files.map((f) => [f, importsOf(f, readFileSync(join(ROOT, f), 'utf8'))]));

/** What is wrong with one file's imports: one line per violation, naming file, line and import. */
function violations(file: string, imports: readonly Import[]): string[] {
  const from = layerOf(file);
  if (!from) return [];
  const out: string[] = [];
  for (const imp of imports) {
    if (imp.target === null) {
      // Packages: Node's built-ins anywhere; anything else only in the host layer.
      if (!imp.spec.startsWith('node:') && from !== 'host') out.push(`${file}:${imp.line}: imports package '${imp.spec}' (only the host layer may)`);
      continue;
    }
    if (!/^(src|hw|drivers)\//.test(imp.target)) {
      out.push(`${file}:${imp.line}: imports '${imp.spec}' from outside src/, hw/ and drivers/`);
      continue;
    }
    const to = layerOf(imp.target);
    if (to === null || !ALLOWED[from].includes(to)) out.push(`${file}:${imp.line}: ${from} imports ${to ?? 'no layer'} ('${imp.spec}')`);
  }
  return out;
}

/** Import cycles (Tarjan's strongly connected components over the file graph), each sorted. */
function cyclesOf(g: ReadonlyMap<string, readonly Import[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const { target: w } of g.get(v) ?? []) {
      if (w === null || !g.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) cycles.push(scc.sort());
    }
  };
  for (const f of g.keys()) if (!idx.has(f)) visit(f);
  return cycles;
}

describe('layers', () => {
  it('every file in src/ sits in a layer folder', () => {
    const stray = files.filter((f) => layerOf(f) === null);
    expect(stray, `files in src/ outside arch/, machine/, protocol/, host/: ${stray.join(', ')}`).toEqual([]);
  });

  it('every import follows the dependency rule', () => {
    const all = [...graph].flatMap(([f, imps]) => violations(f, imps));
    expect(all, all.join('\n')).toEqual([]);
  });

  it('no import cycles', () => {
    expect(cyclesOf(graph).map((c) => c.join(' <-> ')), 'import cycles').toEqual([]);
  });

  it('the checker sees every kind of import and judges it (negative control)', () => {
    const text = [
      "import { a } from '../../hw/x.ts';",
      "import type { B } from '../../drivers/y.ts';",
      "export { c } from './z.ts';",
      "import './side-effect.ts';",
      "const m = await import('../host/w.ts');",
      "const u = new URL('../../drivers/cpu-worker.ts', import.meta.url);",
      "import { pkg } from 'vitest';",
      "// import { no } from '../../hw/comment.ts';",
      "/* import { no } from '../../hw/block.ts'; */",
    ].join('\n');
    const imps = importsOf('src/protocol/t.ts', text);
    expect(imps.map((i) => `${i.line}:${i.target ?? i.spec}`).sort()).toEqual(
      ['1:hw/x.ts', '2:drivers/y.ts', '3:src/protocol/z.ts', '4:src/protocol/side-effect.ts', '5:src/host/w.ts', '6:drivers/cpu-worker.ts', '7:vitest'].sort(),
    );
    expect(violations('src/protocol/t.ts', imps)).toEqual([
      "src/protocol/t.ts:1: protocol imports hw ('../../hw/x.ts')",
      "src/protocol/t.ts:2: protocol imports drivers ('../../drivers/y.ts')",
      "src/protocol/t.ts:7: imports package 'vitest' (only the host layer may)",
      "src/protocol/t.ts:5: protocol imports host ('../host/w.ts')",
      "src/protocol/t.ts:6: protocol imports drivers ('../../drivers/cpu-worker.ts')",
    ]);
    const g = new Map<string, Import[]>([
      ['hw/a.ts', [{ line: 1, spec: './b.ts', target: 'hw/b.ts' }]],
      ['hw/b.ts', [{ line: 1, spec: './a.ts', target: 'hw/a.ts' }]],
      ['hw/c.ts', [{ line: 1, spec: './a.ts', target: 'hw/a.ts' }]],
    ]);
    expect(cyclesOf(g)).toEqual([['hw/a.ts', 'hw/b.ts']]);
  });
});
