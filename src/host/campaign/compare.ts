// Comparing the ATC invalidation timeout recovery designs (src/protocol/ops/smmu.ts ATC_RECOVERY) on
// the same faults: each scenario, and the same campaign seeds, run under each policy in lockstep, so
// the only difference between two rows is the driver's design.
//
// Per scenario and policy: DMA use-after-free accesses; invalidations that returned to their caller
// (an unmap, an attach) with an ATC left stale and nobody fenced; the CMD_SYNCs recovery added;
// platform time from issuing the failed invalidation to fencing (or, under `reset`, blocking) the
// device; innocent devices fenced (fenced, though no fault made them miss an invalidation); and the
// final device states. Per policy over the campaign: schedules, those with a use-after-free, the
// accesses, stale returns, extra SYNCs, fences, and schedules whose invariants failed.

import { loadScenario } from '../scenario/catalogue.ts';
import { runScenario } from '../scenario/run.ts';
import { runSeeds, type CampaignParams } from './campaign.ts';
import type { AtcRecovery } from '../../protocol/ops/smmu.ts';
import type { DeviceReport } from '../../protocol/scenario.ts';

/** The built-in scenarios about ATC invalidation timeouts, compared by default. */
export const ATC_SCENARIOS = ['atc-inv-no-answer', 'atc-inv-late', 'atc-timeout', 'atc-timeout-batch', 'atc-timeout-during-flr', 'atc-timeout-reset-fails'];
/**
 * The faults a comparison's campaign draws: those that make invalidations fail or devices misbehave
 * around them. Faults that lose commands whatever the policy (an illegal command, a hang, SFM, the
 * skip-invalidation bug) would blur the comparison and are left out.
 */
export const ATC_FAULTS = ['atc-inv-no-answer', 'atc-inv-late', 'atc-inv-slow', 'surprise-removal', 'flr-never-ready', 'flr-slow', 'aer', 'transactions-pending-stuck', 'fail-blocking-attach'];
/** The kinds of fault that make a device miss ATC invalidations: its culprits. */
const CULPRIT_FAULTS = new Set(['atc-inv-no-answer', 'atc-inv-late']);

export interface ScenarioRow {
  policy: AtcRecovery;
  violations: number;
  staleReturns: number;
  extraSyncs: number;
  fences: number;
  /** Platform ms from the failed invalidation to the fence: the longest, or null when nothing was fenced. */
  maxFenceMs: number | null;
  innocentFenced: string[];
  ok: boolean;
  devices: DeviceReport[];
}

export interface CampaignRow {
  policy: AtcRecovery;
  schedules: number;
  withViolations: number;
  violations: number;
  staleReturns: number;
  extraSyncs: number;
  fences: number;
  /** Schedules whose invariants (commands, hangs, device states) failed. */
  failedInvariants: number;
}

export interface Comparison {
  policies: AtcRecovery[];
  scenarios: Record<string, ScenarioRow[]>;
  campaign: { count: number; seedStart: number; faults: string[]; rows: CampaignRow[] };
}

export async function compare(policies: AtcRecovery[], scenarios: string[], count: number, seedStart: number, workers: number, progress: (line: string) => void): Promise<Comparison> {
  const out: Comparison = { policies, scenarios: {}, campaign: { count, seedStart, faults: ATC_FAULTS, rows: [] } };
  for (const name of scenarios) {
    const l = loadScenario(name);
    const culprits = new Set((l.scenario.faults ?? []).filter((f) => CULPRIT_FAULTS.has(f.kind)).map((f) => ('bdf' in f ? f.bdf : '')));
    out.scenarios[l.name] = [];
    for (const policy of policies) {
      const r = await runScenario(l.scenario, l.name, { baseDir: l.baseDir, atcRecovery: policy });
      const lat = r.recovery.fenceLatencyNs;
      out.scenarios[l.name]!.push({
        policy,
        violations: r.dmaUseAfterFree,
        staleReturns: r.recovery.staleReturns,
        extraSyncs: r.recovery.extraSyncs,
        fences: r.recovery.fences,
        maxFenceMs: lat.length ? Math.max(...lat) / 1e6 : null,
        innocentFenced: r.devices.filter((d) => d.fences > 0 && !culprits.has(d.bdf)).map((d) => d.bdf),
        // Invariants only: the scenario's own expectation is about the default policy.
        ok: r.lostCommands === 0 && r.duplicatedCommands === 0 && r.hangs === 0,
        devices: r.devices,
      });
    }
    progress(`compare: ${l.name} done`);
  }
  for (const policy of policies) {
    const params: CampaignParams = { count, seedStart, scenarios: [], noViolations: true, atcRecovery: policy, faults: ATC_FAULTS };
    const seeds = Array.from({ length: count }, (_, i) => (seedStart + i) >>> 0);
    const results = await runSeeds(params, seeds, workers, () => {});
    out.campaign.rows.push({
      policy,
      schedules: results.length,
      withViolations: results.filter((r) => r.dmaUseAfterFree > 0).length,
      violations: results.reduce((n, r) => n + r.dmaUseAfterFree, 0),
      staleReturns: results.reduce((n, r) => n + r.staleReturns, 0),
      extraSyncs: results.reduce((n, r) => n + r.extraSyncs, 0),
      fences: results.reduce((n, r) => n + r.fences, 0),
      failedInvariants: results.filter((r) => r.lostCommands || r.duplicatedCommands || r.hangs || r.problems.some((p) => !p.startsWith('DMA use-after-free'))).length,
    });
    progress(`compare: campaign under ${policy} done`);
  }
  return out;
}

export function textComparison(c: Comparison): string {
  const out: string[] = [];
  const head = `  ${'policy'.padEnd(18)}${'UAF'.padStart(6)}${'stale'.padStart(7)}${'+SYNCs'.padStart(8)}${'fences'.padStart(8)}${'fence ms'.padStart(10)}  innocent fenced / final states`;
  for (const [name, rows] of Object.entries(c.scenarios)) {
    out.push(`${name}:`, head);
    for (const r of rows) {
      const states = r.devices.map((d) => `${d.bdf} ${d.state}${d.fenced ? ' fenced' : ''}${d.atsEnabled ? '' : ' noATS'}`).join(', ');
      out.push(
        `  ${r.policy.padEnd(18)}${String(r.violations).padStart(6)}${String(r.staleReturns).padStart(7)}${String(r.extraSyncs).padStart(8)}${String(r.fences).padStart(8)}${(r.maxFenceMs === null ? '-' : r.maxFenceMs.toFixed(1)).padStart(10)}  ${r.innocentFenced.length ? r.innocentFenced.join(' ') : 'none'} / ${states}${r.ok ? '' : '  (INVARIANTS FAILED)'}`,
      );
    }
    out.push('');
  }
  const k = c.campaign;
  out.push(`campaign: ${k.count} seeds from ${k.seedStart}, faults drawn from ${k.faults.join(', ')}:`);
  out.push(`  ${'policy'.padEnd(18)}${'w/ UAF'.padStart(8)}${'UAF'.padStart(7)}${'stale'.padStart(8)}${'+SYNCs'.padStart(8)}${'fences'.padStart(8)}${'invariants failed'.padStart(19)}`);
  for (const r of k.rows) {
    out.push(`  ${r.policy.padEnd(18)}${String(r.withViolations).padStart(8)}${String(r.violations).padStart(7)}${String(r.staleReturns).padStart(8)}${String(r.extraSyncs).padStart(8)}${String(r.fences).padStart(8)}${String(r.failedInvariants).padStart(19)}`);
  }
  return out.join('\n') + '\n';
}
