// The hardware's counters in the shared buffer, as the host reads them: snapshots, and what happened
// between two (commands executed by opcode, command errors by name).

import { commandName } from '../arch/smmu/commands.ts';
import { CERROR_NAMES } from '../arch/smmu/regs.ts';
import { STAT, type SharedViews } from '../machine/layout.ts';

/** Counters read from the shared buffer. */
export interface StatsSnapshot {
  executed: Float64Array;
  cerrors: Float64Array;
  syncs: number;
  gerrors: number;
}

/** The counters now. */
export function statsSnapshot(views: SharedViews): StatsSnapshot {
  const s = views.stats;
  return {
    executed: s.slice(STAT.EXEC, STAT.EXEC + 256),
    cerrors: s.slice(STAT.CERROR, STAT.CERROR + 8),
    syncs: s[STAT.SYNC_DONE]!,
    gerrors: s[STAT.GERROR_RAISED]!,
  };
}

/** Commands executed between two snapshots, by spec name (opcode 0x04 is CFGI_STE_RANGE whatever its Range). */
export function executedByOpcode(before: StatsSnapshot, after: StatsSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (let op = 0; op < 256; op++) {
    const n = after.executed[op]! - before.executed[op]!;
    if (n > 0) out[commandName(op)] = n;
  }
  return out;
}

/** Command errors between two snapshots, by CERROR name. */
export function cerrorsByName(before: StatsSnapshot, after: StatsSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (let c = 1; c < 8; c++) {
    const n = after.cerrors[c]! - before.cerrors[c]!;
    if (n > 0) out[CERROR_NAMES[c] ?? `CERROR_${c}`] = n;
  }
  return out;
}
