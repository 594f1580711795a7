// `--lockstep STRATEGY` and `--seed N` for `smmulab run` (through the run-option registry): the CPUs run
// in lockstep, interleaved deterministically at every yield point of their platform by the strategy
// (round-robin, random, pct, pct:D, pct:D:K; src/protocol/lockstep.ts), with hardware and timers in
// virtual time (src/host/lockstep-n.ts). --seed seeds the strategy and the fault draws; the same
// options repeat the run exactly. The report then has a `lockstep` field: grants, switches, the final
// platform time, and the hash of the MMIO writes the hardware saw, in order.

import { UsageError, type OptSpec } from './args.ts';
import type { RunOption } from './workload-api.ts';
import { InputError, clip } from '../../protocol/check.ts';
import { DRIVER_BUGS, type DriverBug } from '../../protocol/ops/smmu.ts';
import { parseLockstepSpec } from '../../protocol/lockstep.ts';

export const LOCKSTEP_SPEC: OptSpec = { type: 'string', help: 'run the CPUs in deterministic lockstep, interleaved by round-robin, random, pct, pct:D or pct:D:K (seeded by --seed)' };
export const SEED_SPEC: OptSpec = { type: 'number', help: 'seed of the --lockstep strategy and of fault probability draws (default 1)', min: 0, max: 0xffff_ffff };

/** A `--lockstep` value, checked (a usage error of `command` names what is wrong); returned as given. */
export function lockstepOptionValue(command: string, value: unknown): string {
  try {
    parseLockstepSpec(String(value));
    return String(value);
  } catch (e) {
    if (e instanceof InputError) throw new UsageError(`${command}: ${e.message}`);
    throw e;
  }
}

/** A `--driver-bug` value: one of the known-broken driver variants (DRIVER_BUGS). */
export function driverBugOption(command: string, value: unknown): DriverBug {
  const v = String(value);
  const bug = DRIVER_BUGS.find((b) => b === v);
  if (!bug) throw new UsageError(`${command}: --driver-bug: '${clip(v)}' is not a known-broken variant (known: ${DRIVER_BUGS.join(', ')})`);
  return bug;
}

export const lockstepOption: RunOption = {
  spec: LOCKSTEP_SPEC,
  apply(value, setup) {
    if (value === undefined) return;
    setup.boot.lockstep = parseLockstepSpec(lockstepOptionValue('run', value));
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
