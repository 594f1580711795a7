// A scenario run as a person reads it: violations first (they are what the run exists to find), then
// what did not hold, the devices, the counts, and the end of the kernel log.

import { hex } from '../../arch/bits.ts';
import type { ScenarioReport } from '../../protocol/scenario.ts';
import type { UafRecord } from '../../protocol/ops/hw.ts';

/** Kernel log lines the text report shows (the JSON report has more). */
const LOG_TAIL = 30;

/** One violation in one line: who, what, where, when, and what the page is now. */
export function formatViolation(v: UafRecord): string {
  const how = v.translated ? 'translated (through its ATC)' : 'untranslated';
  const iova = v.iova === null ? 'IOVA unknown' : `IOVA ${hex(v.iova, 0)}`;
  return `${v.bdf} (SID ${hex(v.sid, 0)}) ${v.write ? 'write' : 'read'}, ${how}, ${iova} -> PA ${hex(v.pa, 0)} at ${(v.t / 1e9).toFixed(6)} s: page ${v.page}`;
}

export function textReport(r: ScenarioReport): string {
  const out: string[] = [];
  out.push(`scenario ${r.scenario}, seed ${r.seed}: ${r.ok ? 'OK' : 'FAILED'}`);
  if (r.dmaUseAfterFree) {
    out.push('', `DMA use-after-free: ${r.dmaUseAfterFree} access(es)${r.violations.length < r.dmaUseAfterFree ? ` (first ${r.violations.length} shown)` : ''}`);
    for (const v of r.violations) out.push(`  ${formatViolation(v)}`);
  } else {
    out.push('', 'DMA use-after-free: none');
  }
  if (r.problems.length) out.push('', 'did not hold:', ...r.problems.map((p) => `  ${p}`));
  if (r.errors.length) out.push('', 'workload errors:', ...r.errors.map((e) => `  ${e}`));
  out.push('', 'devices:');
  for (const d of r.devices) out.push(`  ${d.bdf}  ${d.state.padEnd(8)} ATS ${d.atsEnabled ? 'on ' : 'off'}  ${d.fenced ? 'fenced' : 'not fenced'}  resets ${d.resets}`);
  const faults = Object.entries(r.faultsByKind).map(([k, n]) => `${k} ${n}`);
  out.push(
    '',
    `faults fired: ${r.faultsInjected}${faults.length ? ` (${faults.join(', ')})` : ''}`,
    `lazy-window accesses: ${r.lazyWindowAccesses}`,
    `commands lost: ${r.lostCommands}, duplicated: ${r.duplicatedCommands}; hangs: ${r.hangs}`,
    `platform time ${r.platformMs.toFixed(3)} ms, host time ${r.hostMs.toFixed(0)} ms`,
  );
  out.push('', `kernel log (last ${Math.min(LOG_TAIL, r.log.length)} lines):`, ...r.log.slice(-LOG_TAIL).map((l) => `  ${l}`));
  return out.join('\n') + '\n';
}
