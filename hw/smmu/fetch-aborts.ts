// Injected aborts of the SMMU's own memory accesses (fault 'smmu-fetch-abort', src/protocol/faults.ts): the next
// N accesses of one kind fail as an external abort would, so the architected response (F_STE_FETCH,
// F_CD_FETCH, F_WALK_EABT, GERROR.EVENTQ_ABT_ERR) can be provoked without corrupting any table.

import type { SmmuFetch } from '../../src/protocol/faults.ts';
import { BusAbort } from '../../src/machine/layout.ts';

export class FetchAborts {
  private readonly pending: Record<SmmuFetch, number> = { ste: 0, cd: 0, walk: 0, evtq: 0 };

  add(what: SmmuFetch, n: number): void {
    this.pending[what] += n;
  }

  /** Throws BusAbort for an access of `bytes` at pa when an abort of this kind is pending. */
  check(what: SmmuFetch, pa: number, bytes: number, desc: string): void {
    if (this.pending[what] === 0) return;
    this.pending[what]--;
    throw new BusAbort(pa, bytes, `${desc} (injected)`);
  }
}
