// The hardware's operations (src/protocol/ops/hw.ts), one implementation for the hardware worker and
// for lockstep, where the host calls them in its own thread.

import type { OpImpls } from '../src/protocol/ops/decl.ts';
import type { HwOps } from '../src/protocol/ops/hw.ts';
import type { Machine } from './machine.ts';

/** The operations over a machine; `stop` ends whatever loop runs it. */
export function hwOps(machine: Machine, stop: () => void): OpImpls<HwOps, null> {
  return {
    inject: (_, f) => {
      machine.inject(f);
      return true;
    },
    report: () => machine.report(),
    schedule: () => machine.schedule(),
    stop: () => {
      stop();
      return true;
    },
  };
}
