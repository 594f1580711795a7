// `--lockstep STRATEGY` and `--seed N` for `smmulab run` (through the run-option registry): the CPUs run
// in lockstep, interleaved deterministically at every yield point of their platform by the strategy
// (round-robin, random, pct, pct:D, pct:D:K; src/protocol/lockstep.ts), with hardware and timers in
// virtual time (src/host/lockstep-n.ts). --seed seeds the strategy and the fault draws; the same
// options repeat the run exactly. The report then has a `lockstep` field: grants, switches, the final
// platform time, and the hash of the MMIO writes the hardware saw, in order.

import { UsageError, type OptSpec } from './args.ts';
import type { RunOption } from './workload-api.ts';
import { InputError } from '../../protocol/check.ts';
import { parseLockstepSpec } from '../../protocol/lockstep.ts';

export const LOCKSTEP_SPEC: OptSpec = { type: 'string', help: 'run the CPUs in deterministic lockstep, interleaved by round-robin, random, pct, pct:D or pct:D:K (seeded by --seed)' };
export const SEED_SPEC: OptSpec = { type: 'number', help: 'seed of the --lockstep strategy and of fault probability draws (default 1)', min: 0, max: 0xffff_ffff };

export const lockstepOption: RunOption = {
  spec: LOCKSTEP_SPEC,
  apply(value, setup) {
    if (value === undefined) return;
    try {
      setup.boot.lockstep = parseLockstepSpec(String(value));
    } catch (e) {
      if (e instanceof InputError) throw new UsageError(`run: ${e.message}`);
      throw e;
    }
  },
};

export const seedOption: RunOption = {
  spec: SEED_SPEC,
  apply(value, setup) {
    if (value === undefined) return;
    if (!Number.isInteger(value)) throw new UsageError(`run: --seed must be an integer from 0 to ${0xffff_ffff} (got ${String(value)})`);
    // System.boot seeds lockstep from its seed when the lockstep options carry none.
    setup.boot.seed = Number(value);
  },
};
