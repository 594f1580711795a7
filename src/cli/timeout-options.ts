// Run options for the two timeouts of ATC invalidation, in platform time: how long the SMMU waits for an
// endpoint's Invalidate Completion (--atc-timeout-ms) and how long the driver waits for a CMD_SYNC
// (--poll-timeout-ms, Linux's ARM_SMMU_POLL_TIMEOUT_US). Which one expires first decides whether the
// driver sees -ETIMEDOUT or a CERROR_ATC_INV_SYNC followed by a successful retry.

import { UsageError } from './args.ts';
import type { RunOption } from './workloads.ts';
import { NS_PER_MS } from '../time.ts';

function ms(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value > 0)) throw new UsageError(`run: --${name} must be a number of ms above 0 (got ${String(value)})`);
  return value * NS_PER_MS;
}

export const atcTimeoutOption: RunOption = {
  spec: { type: 'number', help: 'platform ms the SMMU waits for an ATC invalidation completion (default 500)' },
  apply(value, setup) {
    const ns = ms('atc-timeout-ms', value);
    if (ns !== undefined) setup.boot.atcTimeoutNs = ns;
  },
};

export const pollTimeoutOption: RunOption = {
  spec: { type: 'number', help: "platform ms the driver waits for a CMD_SYNC (default Linux's 1000)" },
  apply(value, setup) {
    const ns = ms('poll-timeout-ms', value);
    if (ns !== undefined) setup.probe.pollTimeoutNs = ns;
  },
};
