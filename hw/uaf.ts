// The sanitizer's eye on DMA: every page-sized piece of every device access passes the translation
// services' transfer path (hw/smmu/translate.ts), which asks here before touching memory. A piece that
// reaches a page its device's domain no longer maps is a use after free: recorded with what is known
// of it (the first MAX_RECORDS in full, all of them counted); one inside the domain's lazy flush window
// is counted apart. The state it judges by is the driver's, in the shared buffer (src/machine/sanitizer.ts).

import { STAT } from '../src/machine/layout.ts';
import { VERDICT, type Sanitizer } from '../src/machine/sanitizer.ts';
import type { UafRecord } from '../src/protocol/ops/hw.ts';
import type { Tracer } from '../src/protocol/tracer.ts';

/** Records kept in full; the rest are counted. */
const MAX_RECORDS = 200;

export class UafMonitor {
  readonly records: UafRecord[] = [];

  constructor(
    private readonly san: Sanitizer,
    private readonly stats: Float64Array,
    private readonly now: () => number,
    /** Trace point sanitizer_dma_uaf marks each use after free. */
    private readonly tr: Tracer<'hw'> = {},
  ) {}

  /**
   * Judges one piece about to reach `pa` (iova: its untranslated address, null when unknown; translated:
   * an ATS Translated transaction, from the requester's ATC). Never stops the access: the sanitizer
   * observes, the hardware decides.
   */
  check(requester: string, sid: number, pa: number, iova: number | null, translated: boolean, write: boolean): void {
    const v = this.san.verdict(sid, pa);
    if (v === VERDICT.OK) return;
    if (v === VERDICT.LAZY) {
      this.stats[STAT.SAN_LAZY]!++;
      return;
    }
    this.stats[STAT.SAN_UAF]!++;
    this.tr.sanitizer_dma_uaf?.(requester, sid, pa, write, translated);
    if (this.records.length < MAX_RECORDS) {
      this.records.push({ bdf: requester, sid, iova, pa, write, translated, t: this.now(), page: this.san.pageState(pa) });
    }
  }
}
