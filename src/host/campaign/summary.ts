// What a campaign says at the end — the same from one run or from merged shards: totals, a table by
// fault kind, and every failure with its seed, its shrunk schedule and the command that reproduces it.
// Shards travel as JSON Lines: a header naming the campaign and the shard, then one result per seed.

import { InputError, clip, int, oneOf, str } from '../../protocol/check.ts';
import { parseLockstepSpec } from '../../protocol/lockstep.ts';
import { INPUT_LIMITS, parseJsonText, readInputFile } from '../input-file.ts';
import { ATC_RECOVERY, DRIVER_BUGS } from '../../protocol/ops/smmu.ts';

const checkAtcRecovery = oneOf(ATC_RECOVERY);
import { reproduceCommand, type CampaignParams, type Shard } from './campaign.ts';
import type { ScheduleResult } from './run-one.ts';
import { SCENARIO_MAX_CPUS, type Scenario } from '../../protocol/scenario.ts';

/** A shard header's lockstep strategy, checked as --lockstep checks it. */
function lockstepHeader(v: unknown, path: string): string {
  const spec = str(40)(v, path);
  parseLockstepSpec(spec, path);
  return spec;
}

export interface CampaignSummary {
  campaign: CampaignParams;
  schedules: number;
  passed: number;
  failed: number;
  totals: { faultsInjected: number; dmaUseAfterFree: number; schedulesWithViolations: number; lazyWindowAccesses: number; lostCommands: number; duplicatedCommands: number; hangs: number };
  /** By fault kind: schedules where it fired, firings, schedules with violations among them, failures among them. */
  byFault: Record<string, { schedules: number; fired: number; withViolations: number; failed: number }>;
  failures: { seed: number; scenario: string; summary: string; problems: string[]; reproduce: string; shrunk?: Scenario }[];
  /** Not compared between a run and merged shards: how long it took. */
  timing: { hostSeconds: number; schedulesPerSec: number; bootMsAvg: number; runMsAvg: number };
}

export function summarize(p: CampaignParams, results: readonly ScheduleResult[], hostSeconds: number): CampaignSummary {
  const sorted = [...results].sort((a, b) => a.seed - b.seed);
  // A Map, not an object: the kinds come from shard files too, and `byFault["__proto__"] ??= ...` on an
  // object would reach Object.prototype.
  const byFault = new Map<string, CampaignSummary['byFault'][string]>();
  const totals = { faultsInjected: 0, dmaUseAfterFree: 0, schedulesWithViolations: 0, lazyWindowAccesses: 0, lostCommands: 0, duplicatedCommands: 0, hangs: 0 };
  let boot = 0;
  let host = 0;
  for (const r of sorted) {
    for (const [k, n] of Object.entries(r.faultsByKind)) {
      let b = byFault.get(k);
      if (!b) byFault.set(k, (b = { schedules: 0, fired: 0, withViolations: 0, failed: 0 }));
      b.schedules++;
      b.fired += n;
      if (r.dmaUseAfterFree) b.withViolations++;
      if (!r.ok) b.failed++;
      totals.faultsInjected += n;
    }
    totals.dmaUseAfterFree += r.dmaUseAfterFree;
    if (r.dmaUseAfterFree) totals.schedulesWithViolations++;
    totals.lazyWindowAccesses += r.lazyWindowAccesses;
    totals.lostCommands += r.lostCommands;
    totals.duplicatedCommands += r.duplicatedCommands;
    totals.hangs += r.hangs;
    boot += r.bootHostMs;
    host += r.hostMs;
  }
  const failures = sorted
    .filter((r) => !r.ok)
    .map((r) => ({ seed: r.seed, scenario: r.scenario, summary: r.summary, problems: r.problems, reproduce: reproduceCommand(p, r.seed), ...(r.shrunk ? { shrunk: r.shrunk } : {}) }));
  const n = sorted.length || 1;
  return {
    campaign: p,
    schedules: sorted.length,
    passed: sorted.length - failures.length,
    failed: failures.length,
    totals,
    byFault: Object.fromEntries([...byFault].sort(([a], [b]) => (a < b ? -1 : 1))),
    failures,
    timing: { hostSeconds: round(hostSeconds), schedulesPerSec: round(sorted.length / Math.max(hostSeconds, 1e-9)), bootMsAvg: round(boot / n), runMsAvg: round((host - boot) / n) },
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export function textSummary(s: CampaignSummary): string {
  const out: string[] = [];
  const c = s.campaign;
  out.push(
    `campaign: ${s.schedules} schedules from seed ${c.seedStart}${c.scenarios.length ? ` (scenarios ${c.scenarios.join(', ')})` : ''}${c.faults.length ? ` (faults ${c.faults.join(', ')})` : ''}, ATC recovery ${c.atcRecovery}${c.noViolations ? ', no violations allowed' : ''}: ${s.passed} passed, ${s.failed} failed`,
  );
  out.push('', `${'fault'.padEnd(28)}${'schedules'.padStart(10)}${'fired'.padStart(10)}${'w/ UAF'.padStart(10)}${'failed'.padStart(10)}`);
  for (const [k, b] of Object.entries(s.byFault)) out.push(`${k.padEnd(28)}${String(b.schedules).padStart(10)}${String(b.fired).padStart(10)}${String(b.withViolations).padStart(10)}${String(b.failed).padStart(10)}`);
  const t = s.totals;
  out.push(
    '',
    `DMA use-after-free: ${t.dmaUseAfterFree} access(es) in ${t.schedulesWithViolations} schedule(s); lazy-window accesses ${t.lazyWindowAccesses}`,
    `commands lost ${t.lostCommands}, duplicated ${t.duplicatedCommands}; hangs ${t.hangs}; faults fired ${t.faultsInjected}`,
    `${s.timing.hostSeconds} s, ${s.timing.schedulesPerSec} schedules/s (per schedule: boot and probe ${s.timing.bootMsAvg} ms, the run ${s.timing.runMsAvg} ms)`,
  );
  for (const f of s.failures) {
    out.push('', `FAILED seed ${f.seed} (${f.scenario}): ${f.summary}`, ...f.problems.map((p) => `  ${p}`), `  reproduce: ${f.reproduce}`);
    if (f.shrunk) out.push(`  smallest failing schedule (save it as a .json file; smmulab run --scenario FILE fails the same way):`, `  ${JSON.stringify(f.shrunk)}`);
  }
  return out.join('\n') + '\n';
}

/** The first line of a shard's JSON Lines. */
export function headerLine(p: CampaignParams, shard: Shard | null): string {
  return JSON.stringify({ type: 'campaign', ...p, shard: shard ? `${shard.k}/${shard.n}` : '1/1' });
}

export function resultLine(r: ScheduleResult): string {
  return JSON.stringify({ type: 'result', ...r });
}

/** The last line of a shard: how long it took (a merge reports the shards' host time summed). */
export function doneLine(hostSeconds: number): string {
  return JSON.stringify({ type: 'done', hostSeconds });
}

/**
 * Reads shard files back: the campaign they belong to, every result, and the shards' host seconds
 * summed, checking they fit together (one campaign, every shard once, every seed once).
 */
export function readShards(files: readonly string[]): { params: CampaignParams; results: ScheduleResult[]; hostSeconds: number } {
  if (files.length === 0) throw new InputError('campaign merge: name the shard files (JSON Lines written by campaign --shard K/N)');
  let params: CampaignParams | null = null;
  let total = 0;
  let hostSeconds = 0;
  const shards = new Set<number>();
  const seen = new Set<number>();
  const results: ScheduleResult[] = [];
  for (const file of files) {
    const text = readInputFile(file, 'shard file', INPUT_LIMITS.shard);
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const v = parseJsonText(line, `${file}:${i + 1}`);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${file}:${i + 1}: not a JSON object`);
      const o = v as { type?: string; shard?: string; seed?: number } & Record<string, unknown>;
      if (o.type === 'campaign') {
        const p: CampaignParams = {
          count: Number(o.count),
          seedStart: Number(o.seedStart),
          scenarios: (o.scenarios as string[]) ?? [],
          noViolations: o.noViolations === true,
          atcRecovery: checkAtcRecovery(o.atcRecovery, `${file}:${i + 1}: atcRecovery`),
          faults: (o.faults as string[]) ?? [],
          ...(o.cpus !== undefined ? { cpus: int(1, SCENARIO_MAX_CPUS)(o.cpus, `${file}:${i + 1}: cpus`) } : {}),
          ...(o.lockstep !== undefined ? { lockstep: lockstepHeader(o.lockstep, `${file}:${i + 1}: lockstep`) } : {}),
          ...(o.bug !== undefined ? { bug: oneOf(DRIVER_BUGS)(o.bug, `${file}:${i + 1}: bug`) } : {}),
        };
        if (params && JSON.stringify(params) !== JSON.stringify(p)) throw new InputError(`${file}:${i + 1}: a shard of another campaign (${clip(JSON.stringify(p), 200)} vs ${clip(JSON.stringify(params), 200)})`);
        params = p;
        const [k, n] = String(o.shard).split('/').map(Number) as [number, number];
        if (total && n !== total) throw new InputError(`${file}:${i + 1}: shard ${clip(String(o.shard))} of ${n}, the others are of ${total}`);
        if (shards.has(k)) throw new InputError(`${file}:${i + 1}: shard ${clip(String(o.shard))} given twice`);
        shards.add(k);
        total = n;
      } else if (o.type === 'done') {
        hostSeconds += Number(o.hostSeconds) || 0;
      } else if (o.type === 'result') {
        if (!params) throw new InputError(`${file}:${i + 1}: a result before the campaign header line`);
        if (seen.has(Number(o.seed))) throw new InputError(`${file}:${i + 1}: seed ${clip(String(o.seed))} appears twice (a shard given twice?)`);
        seen.add(Number(o.seed));
        const { type: _type, ...r } = o;
        results.push(r as unknown as ScheduleResult);
      } else {
        throw new InputError(`${file}:${i + 1}: neither a campaign header nor a result line`);
      }
    });
  }
  if (!params) throw new InputError(`campaign merge: no campaign header line in ${files.join(', ')}`);
  const p: CampaignParams = params;
  const missing = Array.from({ length: total }, (_, i) => i + 1).filter((k) => !shards.has(k));
  if (missing.length) throw new InputError(`campaign merge: shard(s) ${missing.map((k) => `${k}/${total}`).join(', ')} missing (${results.length} of the campaign's ${p.count} schedules are in these files)`);
  if (results.length !== p.count) throw new InputError(`campaign merge: ${results.length} of the campaign's ${p.count} schedules are in these files (a shard cut short?)`);
  return { params: p, results, hostSeconds };
}
