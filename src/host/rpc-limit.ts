// How long the host waits for a worker's answer to an operation before it calls the worker
// unresponsive ("did not answer").
//
// That limit is a safety net for a worker that never answers (a loop with no timeout): every wait
// inside an operation has its own timeout in platform time, so a working driver always answers. The
// limit must therefore outlast the platform waits an operation can do, which take longer in host time
// the slower platform time runs (a time scale below 1), plus host time for the work itself on a loaded
// host. A fixed 30 s host limit did not: enumerating a function that answers Configuration RRS for
// ever waits Linux's 60 s (pci_bus_wait_rrs), and the operation was reported as not answering.
//
// The longest single wait is Linux's readiness poll (PCIE_RESET_READY_POLL_MS, 60 s), which doubles its
// delay until the sum passes the limit, so up to ~2x; or a longer poll timeout the probe was given (a
// CMD_SYNC that times out is polled twice: once more after skip_err). A PCI operation may do one
// readiness wait per function (enumeration, or a bus reset waiting for every function below a port), so
// its budget grows with the topology.

import { TIMEOUT } from '../arch/time.ts';
import { PCI_OPS } from '../protocol/ops/pci.ts';
import type { Topology } from '../protocol/topology.ts';

/** Host ms an operation may take beyond its platform waits: the work itself, on a loaded host. */
export const RPC_HOST_SLACK_MS = 30_000;
/** The longest host timer Node keeps (a longer one fires after 1 ms); cli/timeout-options.ts, above System, has the same bound. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class RpcLimits {
  /** The longest single platform wait an operation may do, in ns. */
  private longestNs = 2 * TIMEOUT.RESET_READY_POLL;
  /** Readiness waits a PCI operation may do: one per Root Port and function, and one more. */
  private readonly pciWaits: number;

  constructor(
    /** Converts platform ns to host ms at the system's time scale. */
    private readonly clock: { hostMs(platformNs: number): number },
    topology: Topology,
  ) {
    this.pciWaits = 1 + topology.ports.reduce((n, p) => n + 1 + p.functions.length, 0);
  }

  /** Some operation may now wait this long (a poll timeout the probe was given, the SMMU's ATC timeout). */
  noteWait(ns: number): void {
    if (ns > this.longestNs) this.longestNs = ns;
  }

  /** The longest platform ns operation `op` can spend waiting. */
  budgetNs(op: string): number {
    return (Object.hasOwn(PCI_OPS, op) ? this.pciWaits : 2) * this.longestNs;
  }

  /** Host ms the host waits for `op`'s answer. */
  readonly limitMs = (op: string): number => Math.min(MAX_TIMER_MS, RPC_HOST_SLACK_MS + this.clock.hostMs(this.budgetNs(op)));
}
