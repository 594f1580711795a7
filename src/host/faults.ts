// Injecting a fault into a running system, threaded or lockstep: a hardware fault goes to the
// hardware (hw/faults.ts, through the hardware worker or directly in lockstep); a driver fault arms its
// should-fail point in the shared buffer, where every CPU's driver finds it (src/protocol/fail-points.ts);
// 'clear' goes to both.

import type { SharedViews } from '../machine/layout.ts';
import { FailPoints } from '../protocol/fail-points.ts';
import { isDriverFault, isDriverKind, type Fault, type HwFault } from '../protocol/faults.ts';

/**
 * Applies a checked fault: the driver's part here, the hardware's through `hw` (whose result is
 * returned, so a caller can await a worker's answer). `seed` seeds the driver fault's draws, `now` is
 * the platform time.
 */
export function routeFault<T>(views: SharedViews, seed: number, now: number, f: Fault, hw: (f: HwFault) => T): T | undefined {
  if (f.kind === 'clear') {
    const what = f.what;
    if (what === undefined) new FailPoints(views).clear();
    else if (isDriverKind(what)) new FailPoints(views).clear(what);
    return hw(f);
  }
  if (isDriverFault(f)) {
    new FailPoints(views).arm(f, seed, now);
    return undefined;
  }
  return hw(f);
}
