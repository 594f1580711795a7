// The driver's faults in the shared buffer: the should-fail points every CPU's driver asks
// (drivers/fault-inject.ts), armed by driver faults (faults.ts) from the host, each with a trigger
// cell (trigger.ts) so that "the next 2 calls", "with probability 0.1", "after the driver enters
// recovery" mean one count over every CPU. fail-nth (iommufd's fail_nth) counts every call of the
// points on real failure paths and fails the nth, so a campaign can walk every failure point of a call
// path. The driver also reports here when it enters recovery, for the hardware's triggers.

import { FP, type SharedViews } from '../machine/layout.ts';
import { FAIL_POINTS, NTH_POINTS, faultDevice, type DriverFault, type FailPoint } from './faults.ts';
import { TriggerCells, type Trigger } from './trigger.ts';
import { parseBdf, ridOf } from '../arch/pcie/bdf.ts';
import { deriveSeed } from './random.ts';

/** The should-fail point a driver fault arms. */
const POINT_OF: Record<Exclude<DriverFault['kind'], 'fail-nth'>, FailPoint> = {
  'fail-blocking-attach': 'blocking-attach',
  'fail-page-alloc': 'page-alloc',
  'fail-iova-alloc': 'iova-alloc',
  'skip-invalidation': 'skip-invalidation',
  'evtq-overflow': 'evtq-stall',
};

/** The driver fault whose firings a should-fail point counts. */
export const FAULT_OF_POINT = Object.fromEntries(Object.entries(POINT_OF).map(([kind, point]) => [point, kind])) as Record<FailPoint, DriverFault['kind']>;

export class FailPoints {
  private readonly words: Int32Array;
  private readonly cells: TriggerCells;

  constructor(views: SharedViews) {
    this.words = views.failPoints;
    this.cells = new TriggerCells(this.words.subarray(FP.HEADER_WORDS), FP.CELLS);
  }

  /** Arms a driver fault; `seed` seeds its draws unless its trigger gives one, `now` is the platform time. */
  arm(f: DriverFault, seed: number, now: number): void {
    if (f.kind === 'fail-nth') {
      Atomics.store(this.words, FP.NTH_CALLS, 0);
      Atomics.store(this.words, FP.NTH, f.nth);
      return;
    }
    // A deliberate driver bug lasts until cleared unless its trigger says otherwise.
    const t: Trigger = f.trigger ?? (f.kind === 'skip-invalidation' ? { count: 'forever' } : {});
    const dev = faultDevice(f);
    this.cells.arm(FAIL_POINTS.indexOf(POINT_OF[f.kind]), dev === null ? -1 : ridOf(parseBdf(dev)!), t, t.seed ?? deriveSeed(seed, FAIL_POINTS.indexOf(POINT_OF[f.kind])), now);
  }

  /** Disarms the driver's faults (of one kind, or all). */
  clear(kind?: DriverFault['kind']): void {
    if (kind === undefined || kind === 'fail-nth') Atomics.store(this.words, FP.NTH, 0);
    if (kind === 'fail-nth') return;
    const points = kind === undefined ? FAIL_POINTS.map((_, i) => i) : [FAIL_POINTS.indexOf(POINT_OF[kind])];
    for (const p of points) for (const c of this.cells.live(p)) this.cells.spend(c);
  }

  /** Whether this call of a point should fail, at platform time `now` (counts the failure). */
  shouldFail(point: FailPoint, now: number): boolean {
    const p = FAIL_POINTS.indexOf(point);
    let fail = false;
    if (NTH_POINTS.includes(point) && Atomics.load(this.words, FP.NTH) > 0) {
      fail = Atomics.add(this.words, FP.NTH_CALLS, 1) + 1 === Atomics.load(this.words, FP.NTH);
    }
    if (!fail) {
      for (const c of this.cells.live(p)) {
        if (this.cells.chance(c, now)) {
          fail = true;
          break;
        }
      }
    }
    if (fail) Atomics.add(this.words, FP.HITS + p, 1);
    return fail;
  }

  /** Calls of a point that failed so far. */
  hits(point: FailPoint): number {
    return Atomics.load(this.words, FP.HITS + FAIL_POINTS.indexOf(point));
  }

  /** Calls counted by fail-nth so far (a campaign walking a call path stops when it passes the calls made). */
  nthCalls(): number {
    return Atomics.load(this.words, FP.NTH_CALLS);
  }

  /** The driver enters recovery of device `rid`: arms the faults waiting for it, and tells the hardware. */
  enterRecovery(rid: number): void {
    this.cells.event('recovery', rid);
    Atomics.store(this.words, FP.RECOVERY_RID, rid);
    Atomics.add(this.words, FP.RECOVERIES, 1);
  }

  /** Recoveries the driver entered so far, and the device of the last (the hardware polls these). */
  recoveries(): { count: number; rid: number } {
    return { count: Atomics.load(this.words, FP.RECOVERIES), rid: Atomics.load(this.words, FP.RECOVERY_RID) };
  }
}
