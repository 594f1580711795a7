// Operations the hardware worker serves: apply a fault, report, give the recorded schedule, stop.

import { checkHwFault } from '../faults.ts';
import { none } from '../check.ts';
import type { ScheduleRecord } from '../schedule.ts';
import type { OpArgs, OpImpls, ReqOf, ResOf } from './decl.ts';
import { op } from './decl.ts';

/** A DMA access the sanitizer caught reaching a page its device's domain no longer maps. */
export interface UafRecord {
  /** The requester: a PCI function's BB:DD.F, or a platform device's name. */
  bdf: string;
  sid: number;
  /** The untranslated address (for a Translated transaction, the one its ATC entry was for); null when unknown. */
  iova: number | null;
  pa: number;
  write: boolean;
  /** Came through the device's ATC (an ATS Translated transaction). */
  translated: boolean;
  /** Platform ns. */
  t: number;
  /** What the page is now: 'free', or 'allocated to <owner>'. */
  page: string;
}

/** What the hardware saw of faults and of the sanitizer. */
export interface HwReport {
  /** Use-after-free accesses (all of them) and lazy-window accesses. */
  uaf: number;
  lazyWindow: number;
  /** The first use-after-free accesses in full. */
  records: UafRecord[];
  /** Hardware faults that fired, by kind. */
  faultsFired: Record<string, number>;
  /** Commands cmd-illegal corrupted in queue memory, by the name the driver issued them under. */
  corrupted: Record<string, number>;
  /** Each endpoint function: resets it completed, whether it was removed, whether it is in a reset now. */
  devices: { bdf: string; resets: number; removed: boolean; inReset: boolean }[];
}

export const HW_OPS = {
  /** Applies a hardware fault (src/protocol/faults.ts). */
  inject: op(checkHwFault).returns<true>(),
  /** What the hardware saw of faults and of the sanitizer. */
  report: op(none).returns<HwReport>(),
  /** The schedule recorded since boot (SystemOptions.record; src/protocol/schedule.ts). */
  schedule: op(none).returns<ScheduleRecord>(),
  /** Ends the hardware loop. */
  stop: op(none).returns<true>(),
};

export type HwOps = typeof HW_OPS;
export type HwOpName = keyof HwOps;
export type HwReq<K extends HwOpName> = ReqOf<HwOps, K>;
export type HwRes<K extends HwOpName> = ResOf<HwOps, K>;
export type HwOpArgs<K extends HwOpName> = OpArgs<HwOps, K>;
export type HwOpImpls<Ctx> = OpImpls<HwOps, Ctx>;
