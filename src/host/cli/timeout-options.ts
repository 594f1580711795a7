// Run options for the two timeouts of ATC invalidation, in platform time: how long the SMMU waits for an
// endpoint's Invalidate Completion (--atc-timeout-ms) and how long the driver waits for a CMD_SYNC
// (--poll-timeout-ms, Linux's ARM_SMMU_POLL_TIMEOUT_US). Which one expires first decides whether the
// driver sees -ETIMEDOUT or a CERROR_ATC_INV_SYNC followed by a successful retry. The PCIe commands
// take the same two options (src/host/cli/pcie-boot.ts). --atc-recovery picks what the driver does when
// an ATC invalidation times out.

import { UsageError, positiveNumber } from './args.ts';
import { ATC_RECOVERY, DEFAULT_ATC_RECOVERY, type AtcRecovery } from '../../protocol/ops/smmu.ts';
import type { RunOption } from './workload-api.ts';
import { NS_PER_MS } from '../../arch/time.ts';

/** A timeout option's value in platform ns (undefined when absent), or a UsageError naming it. */
export function timeoutNs(command: string, name: string, value: unknown): number | undefined {
  const ms = positiveNumber(command, name, value, { unit: 'ms' });
  return ms === undefined ? undefined : ms * NS_PER_MS;
}

export const atcTimeoutOption: RunOption = {
  spec: { type: 'number', help: 'platform ms the SMMU waits for an ATC invalidation completion (default 500)' },
  apply(value, setup) {
    const ns = timeoutNs('run', 'atc-timeout-ms', value);
    if (ns !== undefined) setup.boot.atcTimeoutNs = ns;
  },
};

export const pollTimeoutOption: RunOption = {
  spec: { type: 'number', help: "platform ms the driver waits for a CMD_SYNC (default Linux's 1000)" },
  apply(value, setup) {
    const ns = timeoutNs('run', 'poll-timeout-ms', value);
    if (ns !== undefined) setup.probe.pollTimeoutNs = ns;
  },
};

/** --atc-recovery POLICY: one of ATC_RECOVERY, or a UsageError naming the option. */
export function atcRecoveryOption(command: string, value: unknown): AtcRecovery {
  const v = String(value ?? DEFAULT_ATC_RECOVERY);
  const p = ATC_RECOVERY.find((x) => x === v);
  if (!p) throw new UsageError(`${command}: --atc-recovery '${v}' is not a policy (known: ${ATC_RECOVERY.join(', ')})`);
  return p;
}

export const atcRecoveryRunOption: RunOption = {
  spec: { type: 'string', help: `what the driver does when an ATC invalidation times out: ${ATC_RECOVERY.join(', ')}`, default: DEFAULT_ATC_RECOVERY },
  apply(value, setup) {
    setup.probe.atcRecovery = atcRecoveryOption('run', value);
  },
};
