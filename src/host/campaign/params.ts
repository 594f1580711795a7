// What a campaign is: its seeds and how each seed's scenario runs. Shared by the pool (campaign.ts),
// each seed's run (run-one.ts), the summary and the shard files.

import type { AtcRecovery, DriverBug } from '../../protocol/ops/smmu.ts';

export interface CampaignParams {
  count: number;
  seedStart: number;
  /** Built-in scenarios (or files) instead of generated schedules. */
  scenarios: string[];
  noViolations: boolean;
  /** The driver's ATC invalidation timeout recovery policy. */
  atcRecovery: AtcRecovery;
  /** Fault kinds generated schedules draw from (empty: every kind). */
  faults: string[];
  /** Driver CPUs (default 1): beyond a scenario's own, each runs a command-queue stress alongside (withCpus). */
  cpus?: number;
  /**
   * How N CPUs interleave (`--lockstep`; default random with more than one CPU), seeded by each seed:
   * campaigns always run in lockstep, so every seed repeats.
   */
  lockstep?: string;
  /** A known-broken driver variant (tests of smmulab: a campaign must catch it). */
  bug?: DriverBug;
}
