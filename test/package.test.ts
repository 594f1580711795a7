// The package as a user's project gets it: `npm pack` (whose prepack builds dist/ with
// tsc -p tsconfig.build.json) makes a tarball, the tarball is installed into a fresh project, and there a
// plain `node` script (no loader flag, no tsx of its own) imports 'smmulab', boots a System with its
// workers, issues commands, shuts down and exits 0: the README's examples run as they are. The
// installed package keeps only dist/ for this, so nothing can fall back on the TypeScript sources. A
// TypeScript file of the project type-checks against the shipped declarations.
//
// Installing: `npm install --offline <tgz>` when npm's cache holds the dependencies; otherwise the
// tarball is unpacked into node_modules/smmulab (what npm does with it) and its dependencies are
// linked from this repository's node_modules.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, runNode } from './fixtures/run-node.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let tmp = '';
let project = '';
let tarball = '';
let tarFiles: string[] = [];
let installedWith = '';

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'smmulab-pack-'));
  const pack = await runCommand('npm', ['pack', '--pack-destination', tmp], ROOT, 60_000);
  expect(pack.code, `npm pack failed:\n${pack.stdout}\n${pack.stderr}`).toBe(0);
  const tgz = readdirSync(tmp).filter((f) => /^smmulab-.*\.tgz$/.test(f));
  expect(tgz).toHaveLength(1);
  tarball = join(tmp, tgz[0]!);
  tarFiles = (await runCommand('tar', ['tzf', tarball], tmp)).stdout.split('\n').filter(Boolean);

  project = join(tmp, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const npm = await runCommand('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], project, 60_000);
  const pkgDir = join(project, 'node_modules', 'smmulab');
  if (npm.code === 0) installedWith = 'npm install --offline';
  else {
    installedWith = 'unpacked, dependencies linked';
    rmSync(join(project, 'node_modules'), { recursive: true, force: true });
    mkdirSync(pkgDir, { recursive: true });
    const tar = await runCommand('tar', ['xzf', tarball, '-C', pkgDir, '--strip-components=1'], project);
    expect(tar.code, tar.stderr).toBe(0);
    const deps = Object.keys((JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {});
    for (const d of deps) {
      mkdirSync(dirname(join(project, 'node_modules', d)), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules', d), join(project, 'node_modules', d), 'dir');
    }
  }
  // The library must need nothing but the compiled JavaScript.
  for (const d of ['src', 'hw', 'drivers']) rmSync(join(pkgDir, d), { recursive: true, force: true });
  for (const f of readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.mjs'))) cpSync(join(ROOT, 'examples', f), join(project, f));
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships JavaScript and declarations built from the sources, not the tests', () => {
    for (const f of ['dist/src/host/index.js', 'dist/src/host/index.d.ts', 'dist/src/host/system.js', 'dist/hw/hw-worker.js', 'dist/drivers/cpu-worker.js', 'dist/drivers/extra-ops.js', 'bin/smmulab.mjs', 'README.md']) {
      expect(tarFiles, f).toContain(`package/${f}`);
    }
    expect(tarFiles.filter((f) => f.startsWith('package/test/') || f.startsWith('package/bench/'))).toEqual([]);
    // Relative imports were rewritten to the .js files that exist.
    const index = readFileSync(join(project, 'node_modules', 'smmulab', 'dist', 'src', 'host', 'index.js'), 'utf8');
    expect(index).toContain("from './system.js'");
    expect(index).not.toMatch(/from '[^']+\.ts'/);
  });

  it('resolves smmulab to dist/ for a plain node script', async () => {
    writeFileSync(join(project, 'where.mjs'), "console.log(import.meta.resolve('smmulab'));\n");
    const r = await runNode(['where.mjs'], project);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/\/node_modules\/smmulab\/dist\/src\/host\/index\.js$/);
    expect(existsSync(join(project, 'node_modules', 'smmulab', 'src'))).toBe(false);
  });

  for (const f of ['api-basic.mjs', 'api-extra-ops.mjs']) {
    it(`runs ${f} with plain node: boots, issues commands, shuts down, exits 0`, async () => {
      const r = await runNode([f], project, 60_000);
      expect(r.code, `${installedWith}\n${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/arm-smmu-v3 9050000\.smmuv3: allocated \d+ entries for cmdq/);
    });
  }

  it("type-checks a TypeScript user's code against the shipped declarations", async () => {
    mkdirSync(join(project, 'node_modules', '@types'), { recursive: true });
    if (!existsSync(join(project, 'node_modules', '@types', 'node'))) symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir');
    writeFileSync(
      join(project, 'user.ts'),
      [
        "import { System, OFF, STAT, OP, PA, type KernelRes, type ExtraOps, type DriverStats } from 'smmulab';",
        '',
        "export const ops: ExtraOps = { cr0: (kernel) => kernel.device().regs.read32(OFF.CR0) };",
        'export async function check(): Promise<number> {',
        "  const sys = await System.boot({ cpus: 1, extraOps: new URL('./my-ops.mjs', import.meta.url) });",
        "  const shared: KernelRes<'probe'> = await sys.probe();",
        "  const stats: DriverStats = await sys.cpu(0).op('driverStats');",
        "  // @ts-expect-error: the request type of 'workload' says batch is a number",
        "  await sys.cpu(0).op('workload', { batch: 'eight' });",
        '  await sys.shutdown();',
        '  return shared.sidBits + stats.syncs + sys.stat(STAT.SYNC_DONE + OP.SYNC) + PA.DRAM_BASE;',
        '}',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2023', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] }, include: ['user.ts'] }),
    );
    const r = await runNode([join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], project);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  });
});
