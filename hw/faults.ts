// Where the hardware's faults are applied (the vocabulary is src/protocol/faults.ts): one switch, in the
// hardware worker or the lockstep thread, turning a fault into the device model's state.

import { NS_PER_MS } from '../src/arch/time.ts';
import type { HwFault } from '../src/protocol/faults.ts';
import type { Machine } from './machine.ts';

export function applyHwFault(m: Machine, f: HwFault): void {
  switch (f.kind) {
    case 'cmd-fetch-abort':
      m.smmu.cmdq.injectFetchAborts(f.count);
      return;
    case 'hang':
      m.hung = true;
      return;
    case 'resume':
      m.hung = false;
      return;
    case 'ack-latency':
      m.smmu.setAckLatency(f.ns);
      return;
    case 'smmu-fetch-abort':
      m.smmu.fetchAborts.add(f.what, f.count);
      return;
    case 'surprise-removal':
      m.pcie.endpoint(f.bdf).remove();
      return;
    case 'atc-inv-no-answer':
      m.pcie.endpoint(f.bdf).setIgnoreInvalidations(f.on);
      return;
    case 'flr-never-ready':
      m.pcie.endpoint(f.bdf).setFlrHang(f.on);
      return;
    case 'flr-slow':
      m.pcie.endpoint(f.bdf).setFlrTime(f.ms * NS_PER_MS);
      return;
    case 'aer':
      m.pcie.endpoint(f.bdf).recordError(f.error);
      return;
  }
}
