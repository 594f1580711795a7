// CPU operations every worker serves: the kernel log and stopping.

import type { KernelOpImpls } from '../../src/protocol/ops/index.ts';
import type { Kernel } from '../kernel.ts';

export const cpuOps = {
  dmesg: (k) => {
    const r = k.platform.dmesgSince(k.logRead);
    k.logRead = r.next;
    return r.entries;
  },
  dmesgAll: (k) => k.platform.dmesg().slice(),
  sleep: (k, r) => {
    k.platform.sleep(r.ns);
    return true;
  },
  stop: (k) => {
    k.stopping = true;
    return true;
  },
} satisfies Partial<KernelOpImpls<Kernel>>;
