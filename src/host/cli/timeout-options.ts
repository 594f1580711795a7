// The options that set timers, each with its one bound (every command that takes the option takes its
// spec from here, so the bound is the same everywhere): --time-scale, and the two timeouts of ATC
// invalidation, in platform time: how long the SMMU waits for an endpoint's Invalidate Completion
// (--atc-timeout-ms) and how long the driver waits for a CMD_SYNC (--poll-timeout-ms, Linux's
// ARM_SMMU_POLL_TIMEOUT_US). Which one expires first decides whether the driver sees -ETIMEDOUT or a
// CERROR_ATC_INV_SYNC followed by a successful retry. `run` takes the two timeouts as run options, the
// PCIe commands directly (src/host/cli/pcie-boot.ts). --atc-recovery picks what the driver does when an
// ATC invalidation times out.
//
// Why the bounds: a platform span becomes a host timer of span / time scale. Node's setTimeout cannot
// wait longer than MAX_TIMER_MS (a longer delay fires after 1 ms, with a TimeoutOverflowWarning: a
// false "did not answer"), and a timeout that overflows to Infinity means no timeout at all. So the
// slowest time scale is the one at which run's longest workload still fits one host timer
// (runCallTimeoutMs), and the timeouts' ranges are the scenario files' (src/protocol/scenario.ts:
// pollTimeoutMs up to 1e6 ms), down to 1 ns, the platform clock's unit.

import { UsageError, type OptSpec } from './args.ts';
import { ATC_RECOVERY, DEFAULT_ATC_RECOVERY, type AtcRecovery } from '../../protocol/ops/smmu.ts';
import type { RunOption } from './workload-api.ts';
import { NS_PER_MS } from '../../arch/time.ts';
import { clip } from '../../protocol/check.ts';

/** The longest delay Node's setTimeout honours, in ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `run --seconds`: at most a day of platform time. */
export const SECONDS_MAX = 24 * 3600;

/** Host ms `run` gives the CPUs beyond the workload's own duration before it calls them unresponsive. */
const CALL_MARGIN_MS = 30_000;

export const TIME_SCALE_SPEC: OptSpec = {
  type: 'number',
  help: 'platform time runs this many times faster than host time',
  default: 1,
  // 0.05: a day-long run (SECONDS_MAX) still fits one host timer; 1e6: run's cap from the start.
  min: 0.05,
  max: 1e6,
};

/** Host ms a CPU may take to answer a call that lasts `seconds` of platform time (run's workload call). */
export function runCallTimeoutMs(seconds: number, timeScale: number): number {
  return (seconds * 1000) / timeScale + CALL_MARGIN_MS;
}

/** The two timeouts' range, in platform ms: 1 ns to 1000 s. */
const TIMEOUT_MS_BOUND = { min: 1e-6, max: 1e6, unit: 'ms' } as const;

/** A timeout option's value in whole platform ns (the driver counts in ns); undefined when absent. */
export function timeoutNs(value: unknown): number | undefined {
  return typeof value === 'number' ? Math.round(value * NS_PER_MS) : undefined;
}

export const atcTimeoutOption: RunOption = {
  spec: { type: 'number', help: 'platform ms the SMMU waits for an ATC invalidation completion (default 500)', ...TIMEOUT_MS_BOUND },
  apply(value, setup) {
    const ns = timeoutNs(value);
    if (ns !== undefined) setup.boot.atcTimeoutNs = ns;
  },
};

export const pollTimeoutOption: RunOption = {
  spec: { type: 'number', help: "platform ms the driver waits for a CMD_SYNC (default Linux's 1000)", ...TIMEOUT_MS_BOUND },
  apply(value, setup) {
    const ns = timeoutNs(value);
    if (ns !== undefined) setup.probe.pollTimeoutNs = ns;
  },
};

/** --atc-recovery POLICY: one of ATC_RECOVERY, or a UsageError naming the option. */
export function atcRecoveryOption(command: string, value: unknown): AtcRecovery {
  const v = String(value ?? DEFAULT_ATC_RECOVERY);
  const p = ATC_RECOVERY.find((x) => x === v);
  if (!p) throw new UsageError(`${command}: --atc-recovery '${clip(v)}' is not a policy (known: ${ATC_RECOVERY.join(', ')})`);
  return p;
}

export const atcRecoveryRunOption: RunOption = {
  spec: { type: 'string', help: `what the driver does when an ATC invalidation times out: ${ATC_RECOVERY.join(', ')}`, default: DEFAULT_ATC_RECOVERY },
  apply(value, setup) {
    setup.probe.atcRecovery = atcRecoveryOption('run', value);
  },
};
