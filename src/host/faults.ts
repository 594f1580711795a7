// Injecting a fault into a running system, threaded or lockstep: a hardware fault goes to the
// hardware (hw/faults.ts, through the hardware worker or directly in lockstep); a driver fault arms its
// should-fail point in the shared buffer, where every CPU's driver finds it (drivers/fault-inject.ts).

import { FailPoints } from '../machine/fail-points.ts';
import type { SharedViews } from '../machine/layout.ts';
import { FAIL_POINTS, failPointOf, type DriverFault } from '../protocol/faults.ts';

export function armDriverFault(views: SharedViews, f: DriverFault): void {
  const { point, times } = failPointOf(f);
  new FailPoints(views).arm(FAIL_POINTS.indexOf(point), times);
}
