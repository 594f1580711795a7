// Operations the hardware worker serves: apply a fault, stop.

import { checkHwFault } from '../faults.ts';
import { none } from '../check.ts';
import type { OpArgs, OpImpls, ReqOf, ResOf } from './decl.ts';
import { op } from './decl.ts';

export const HW_OPS = {
  /** Applies a hardware fault (src/protocol/faults.ts). */
  inject: op(checkHwFault).returns<true>(),
  /** Ends the hardware loop. */
  stop: op(none).returns<true>(),
};

export type HwOps = typeof HW_OPS;
export type HwOpName = keyof HwOps;
export type HwReq<K extends HwOpName> = ReqOf<HwOps, K>;
export type HwRes<K extends HwOpName> = ResOf<HwOps, K>;
export type HwOpArgs<K extends HwOpName> = OpArgs<HwOps, K>;
export type HwOpImpls<Ctx> = OpImpls<HwOps, Ctx>;
