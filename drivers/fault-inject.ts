// The driver's named should-fail points (like Linux's fail_function and iommufd's fail_nth): a place in
// driver code asks shouldFail(p, point) and takes its failure path when the answer is yes. Points are
// armed by driver faults (src/protocol/faults.ts) in the shared buffer, so every CPU sees one count.

import { FAIL_POINTS, type FailPoint } from '../src/protocol/faults.ts';
import type { Platform } from './platform/platform.ts';

export function shouldFail(p: Platform, point: FailPoint): boolean {
  return p.failPoints.shouldFail(FAIL_POINTS.indexOf(point));
}
