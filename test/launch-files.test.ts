// The launch files that run a campaign on a CI system — the GitHub Actions workflow and the Kubernetes
// Indexed Job — parsed as YAML and their shell scripts executed with `node`, `git`, `npm` and `cd`
// stubbed out, so that the command lines they would run are checked rather than their text.

import { describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { tempDirs } from './fixtures/temp-dir.ts';

const REPO = new URL('../', import.meta.url);
const WORKFLOW = new URL('.github/workflows/campaign.yml', REPO);
const K8S_JOB = new URL('launch/kubernetes/campaign-job.yaml', REPO);

/** A fresh directory under this file's temp dir. */
const dir = tempDirs('smmulab-launch-files-');

/** Stubs for the shell scripts: `node` records its arguments (one a line) and exits with $STUB_RC. */
const NODE_STUB = `node() { printf '%s\\n' "$@" > "$STUB_LOG"; return "$STUB_RC"; }\n`;

interface ScriptRun {
  code: number | null;
  /** The arguments the script gave `node`, or null if it never ran it. */
  nodeArgs: string[] | null;
  stderr: string;
}

function runScript(shell: string[], prelude: string, script: string, cwd: string, env: Record<string, string>, stubRc: number): ScriptRun {
  const log = join(cwd, `node-args-${Math.random().toString(36).slice(2)}.txt`);
  const r = spawnSync(shell[0]!, [...shell.slice(1), prelude + script], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, STUB_LOG: log, STUB_RC: String(stubRc) }, encoding: 'utf8' });
  let nodeArgs: string[] | null = null;
  try {
    nodeArgs = readFileSync(log, 'utf8').split('\n').slice(0, -1);
    rmSync(log);
  } catch {
    nodeArgs = null;
  }
  return { code: r.status, nodeArgs, stderr: r.stderr };
}

/** Substitutes a workflow's `${{ expr }}` from `values`; an expression it does not know fails the test. */
function substitute(script: string, values: Record<string, string>): string {
  return script.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, e: string) => {
    expect(Object.keys(values), `workflow expression '${e}'`).toContain(e);
    return values[e]!;
  });
}

/** A glob with `*` only, as a RegExp over whole names. */
const globRe = (g: string) => new RegExp(`^${g.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** The value of `--name` in an argument list. */
function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
}

interface Step {
  uses?: string;
  run?: string;
  env?: Record<string, unknown>;
  with?: Record<string, unknown>;
}
interface Workflow {
  on: { workflow_dispatch: { inputs: Record<string, { default: string }> } };
  jobs: Record<string, { needs?: string | string[]; strategy?: { matrix: { shard: unknown[] } }; steps: Step[] }>;
}

describe('launch files', () => {
  it('.github/workflows/campaign.yml: N matrix shards run --shard K/N; a merge job after them runs campaign merge on every shard file', () => {
    const wf = parseYaml(readFileSync(WORKFLOW, 'utf8')) as Workflow;
    const inputs = wf.on.workflow_dispatch.inputs;
    expect(Object.keys(inputs).sort()).toEqual(['count', 'seed-start']);
    const shardJob = wf.jobs['shard'];
    expect(shardJob, 'a job named shard').toBeDefined();
    const list = shardJob!.strategy!.matrix.shard;
    const N = list.length;
    expect(N).toBeGreaterThanOrEqual(2);
    expect(list, 'matrix.shard is 1..N').toEqual(Array.from({ length: N }, (_, i) => i + 1));

    const runSteps = shardJob!.steps.filter((s) => s.run?.includes('campaign'));
    expect(runSteps, 'one step runs the campaign').toHaveLength(1);
    const script = runSteps[0]!.run!;
    expect(script).toMatch(new RegExp(`--shard\\s+"?\\$\\{\\{\\s*matrix\\.shard\\s*\\}\\}/${N}"?`));
    const upload = shardJob!.steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
    expect(upload, 'the shard job uploads its JSON Lines').toBeDefined();

    // Run the step's script (GitHub's default bash) with `node` stubbed, once per matrix shard.
    const GH_BASH = ['bash', '--noprofile', '--norc', '-eo', 'pipefail', '-c'];
    const d = dir('workflow');
    const outs: string[] = [];
    const artifacts: string[] = [];
    for (const k of list as number[]) {
      const values = { 'inputs.count': inputs['count']!.default, 'inputs.seed-start': inputs['seed-start']!.default, 'matrix.shard': String(k) };
      // The step's environment (where the inputs go), with GitHub's ${{ }} expressions substituted.
      const stepEnv = Object.fromEntries(Object.entries(runSteps[0]!.env ?? {}).map(([key, v]) => [key, substitute(String(v), values)]));
      const run = runScript(GH_BASH, NODE_STUB, substitute(script, values), d, stepEnv, 0);
      expect(run.code, `shard ${k}: ${run.stderr}`).toBe(0);
      const args = run.nodeArgs!;
      expect(args.slice(0, 2), `shard ${k}`).toEqual(['bin/smmulab.mjs', 'campaign']);
      expect(opt(args, '--shard'), `shard ${k}`).toBe(`${k}/${N}`);
      expect(opt(args, '--count')).toBe(inputs['count']!.default);
      expect(opt(args, '--seed-start')).toBe(inputs['seed-start']!.default);
      const out = opt(args, '--out');
      expect(out, `shard ${k} writes --out`).toBeDefined();
      outs.push(out!);
      // The file it writes is the one it uploads, as an artifact of its own.
      expect(substitute(String(upload!.with!['path']), values), `shard ${k}: the uploaded path`).toBe(out);
      artifacts.push(substitute(String(upload!.with!['name']), values));
      // Exit 1 (failing schedules) is a result for the merge; exit 2 (bad input) fails the job.
      expect(runScript(GH_BASH, NODE_STUB, substitute(script, values), d, stepEnv, 1).code, `shard ${k}, campaign exit 1`).toBe(0);
      expect(runScript(GH_BASH, NODE_STUB, substitute(script, values), d, stepEnv, 2).code, `shard ${k}, campaign exit 2`).not.toBe(0);
    }
    expect(new Set(outs).size, 'every shard writes its own file').toBe(N);
    expect(new Set(artifacts).size, 'every shard uploads its own artifact').toBe(N);

    // The merge job: after the shards, downloads every artifact into one directory and merges them all.
    const mergeJobs = Object.entries(wf.jobs).filter(([, j]) => j.steps.some((s) => s.run?.includes('campaign merge')));
    expect(mergeJobs.map(([n]) => n)).toHaveLength(1);
    const [, mergeJob] = mergeJobs[0]!;
    expect([mergeJob.needs].flat(), 'the merge job needs the shard job').toContain('shard');
    const download = mergeJob.steps.find((s) => s.uses?.startsWith('actions/download-artifact@'));
    expect(download, 'the merge job downloads the shards').toBeDefined();
    const pattern = String(download!.with!['pattern']);
    for (const a of artifacts) expect(a, `artifact ${a} matches the download pattern ${pattern}`).toMatch(globRe(pattern));
    expect(download!.with!['merge-multiple'], 'all artifacts into one directory').toBe(true);
    const mergeScript = mergeJob.steps.find((s) => s.run?.includes('campaign merge'))!.run!;
    // In a directory holding exactly the downloaded files, the merge command names every one of them.
    const md = dir('merge-dir');
    for (const f of outs) writeFileSync(join(md, f), '');
    const merge = runScript(GH_BASH, NODE_STUB, substitute(mergeScript, {}), md, {}, 0);
    expect(merge.code, merge.stderr).toBe(0);
    expect(merge.nodeArgs!.slice(0, 3)).toEqual(['bin/smmulab.mjs', 'campaign', 'merge']);
    expect(merge.nodeArgs!.slice(3).sort()).toEqual([...outs].sort());
    // The merge job fails when a schedule failed (exit 1 is not swallowed there).
    expect(runScript(GH_BASH, NODE_STUB, substitute(mergeScript, {}), md, {}, 1).code).not.toBe(0);
  });

  it('launch/kubernetes/campaign-job.yaml: an Indexed Job of N pods, pod i running shard i+1 of N into the mounted volume', () => {
    const job = parseYaml(readFileSync(K8S_JOB, 'utf8')) as {
      apiVersion: string;
      kind: string;
      spec: {
        completionMode: string;
        completions: number;
        parallelism: number;
        template: {
          spec: {
            restartPolicy: string;
            containers: { command: string[]; args: string[]; env: { name: string; value: string }[]; volumeMounts: { name: string; mountPath: string }[] }[];
            volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
          };
        };
      };
    };
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.kind).toBe('Job');
    expect(job.spec.completionMode).toBe('Indexed');
    const N = job.spec.completions;
    expect(Number.isInteger(N) && N >= 2, `completions ${N}`).toBe(true);
    expect(job.spec.parallelism).toBe(N);
    const pod = job.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0]!;
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    expect(Number(env['SHARDS']), 'SHARDS is the N of completions and parallelism').toBe(N);
    expect(env['JOB_COMPLETION_INDEX'], 'JOB_COMPLETION_INDEX comes from Kubernetes, not the manifest').toBeUndefined();
    const text = [...c.command, ...c.args].join('\n');
    expect(text).toContain('JOB_COMPLETION_INDEX');
    expect(text).toMatch(/--shard\s+"?\$K\/\$SHARDS"?|--shard\s+"?[^"\s]*\$\{?SHARDS\}?/);
    expect(c.command.at(-1), 'the script is the one argument of sh -c').toBe('-c');
    expect(c.args).toHaveLength(1);

    // Run the pod's script as each index would, with git, npm, cd and node stubbed.
    const prelude = `git() { :; }\nnpm() { :; }\ncd() { :; }\n${NODE_STUB}`;
    const d = dir('k8s');
    const baseEnv = { SHARDS: env['SHARDS']!, COUNT: env['COUNT']!, SEED_START: env['SEED_START']!, REPO_URL: env['REPO_URL']! };
    const outs: string[] = [];
    for (let i = 0; i < N; i++) {
      const run = runScript(c.command, prelude, c.args[0]!, d, { ...baseEnv, JOB_COMPLETION_INDEX: String(i) }, 0);
      expect(run.code, `index ${i}: ${run.stderr}`).toBe(0);
      const args = run.nodeArgs!;
      expect(args, `index ${i} runs the campaign`).not.toBeNull();
      expect(args.slice(0, 2)).toEqual(['bin/smmulab.mjs', 'campaign']);
      expect(opt(args, '--shard'), `index ${i}`).toBe(`${i + 1}/${N}`);
      expect(opt(args, '--count')).toBe(env['COUNT']);
      expect(opt(args, '--seed-start')).toBe(env['SEED_START']);
      const out = opt(args, '--out');
      expect(out, `index ${i} writes --out`).toBeDefined();
      outs.push(out!);
      // Exit 1 (failing schedules) leaves the pod successful; exit 2 fails it.
      expect(runScript(c.command, prelude, c.args[0]!, d, { ...baseEnv, JOB_COMPLETION_INDEX: String(i) }, 1).code).toBe(0);
      expect(runScript(c.command, prelude, c.args[0]!, d, { ...baseEnv, JOB_COMPLETION_INDEX: String(i) }, 2).code).not.toBe(0);
    }
    expect(new Set(outs).size, 'every pod writes its own file').toBe(N);
    // Every --out lies in a volume mounted in the container, backed by a volume of the pod.
    for (const out of outs) {
      const m = c.volumeMounts.find((v) => out.startsWith(v.mountPath.replace(/\/?$/, '/')));
      expect(m, `${out} is under a mounted volume (${c.volumeMounts.map((v) => v.mountPath).join(', ')})`).toBeDefined();
      const vol = pod.volumes.find((v) => v.name === m!.name);
      expect(vol, `volume ${m!.name}`).toBeDefined();
      expect(vol!.persistentVolumeClaim?.claimName, 'results outlive the pods').toBeTruthy();
    }
  });
});
