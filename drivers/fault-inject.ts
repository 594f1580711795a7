// The driver's named should-fail points (like Linux's fail_function and iommufd's fail_nth): a place in
// driver code asks shouldFail(p, point) and takes its failure path when the answer is yes. Points are
// armed by driver faults (src/protocol/faults.ts) in the shared buffer, so every CPU sees one count.

import type { FailPoint } from '../src/protocol/faults.ts';
import type { Platform } from './platform/platform.ts';

/** Whether this call of `point` should take its failure path (a driver fault armed it). */
export function shouldFail(p: Platform, point: FailPoint): boolean {
  const fail = p.failPoints.shouldFail(point, p.clock.now());
  if (fail) p.trace.fault_should_fail?.(point);
  return fail;
}

/**
 * The driver enters error recovery of the device with Requester ID `rid`: faults waiting for recovery
 * are armed, in the driver and in the hardware.
 */
export function enterRecovery(p: Platform, rid: number): void {
  p.failPoints.enterRecovery(rid);
}
