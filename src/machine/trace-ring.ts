// Trace rings in the shared buffer: one per producer (the hardware, and each CPU), written only by that
// producer's thread and read by the host, so hardware and driver records land in one place whichever
// thread runs what (threaded or lockstep) and survive the producer dying.
//
// A ring holds RECORDS fixed-size records of TR.SLOTS Float64 slots ([time, point, seq, fields..]) and a
// string area of STRING_UNITS UTF-16 units that string fields point into ((start << 16) | length, in
// a Float64). Both wrap: the producer never waits, the oldest records and strings are overwritten.
//
// Invariants (single producer, any number of readers, no locks):
// - Int32 word HEAD counts records ever written; record n lives in slot n % RECORDS and is complete
//   once the slot's stamp equals n + 1 (stored after the record's slots, with Atomics, so a reader that
//   sees the stamp sees the record).
// - A reader copies a record and then re-reads its stamp: if it changed, the producer overwrote the
//   slot meanwhile and the record is counted lost (the seqlock pattern; the copy races with the
//   producer's plain stores only when the stamp check then fails).
// - Int32 word STRINGS counts string units ever written; a string is readable while fewer than
//   STRING_UNITS units were written after its start (checked after copying, as for records).
// - Every record also takes a number from one counter all producers share (Atomics.add on the trace
//   header's SEQ word), so records of equal platform time order as they were written, whichever ring
//   holds them (in lockstep the hardware runs inside a driver's MMIO write, at the same virtual time).

/**
 * The trace region: a header (the bitmap of enabled trace points, TRACE.ENABLE_WORDS words, and the
 * sequence counter every producer numbers its records from), then one ring per producer: ring 0 the
 * hardware, ring 1 + n CPU n (trace-ring.ts).
 */
export const TRACE = {
  ENABLE_WORDS: 16,
  /** Int32 word of the header: records ever written, by all producers (orders records of equal time). */
  SEQ: 16,
  HEADER_BYTES: 128,
} as const;

/** Layout of one ring's header (Int32 words) and records. */
export const TR = {
  HEAD: 0,
  STRINGS: 1,
  HEADER_WORDS: 16,
  /** Float64 slots per record: time, point id, global sequence number, then fields. */
  SLOTS: 12,
  /** Fields per record. */
  FIELDS: 9,
  /** String units per ring, per record slot. */
  UNITS_PER_RECORD: 16,
} as const;

/** Records per ring must be a power of two (so slot and string positions stay continuous when the counters wrap). */
export function checkRingRecords(records: number): void {
  if (!Number.isInteger(records) || records < 16 || records > 1 << 20 || (records & (records - 1)) !== 0) {
    throw new RangeError(`trace ring: ${records} records must be a power of two from 16 to 2^20`);
  }
}

/** Bytes one ring of `records` records takes (a multiple of 8). */
export function traceRingBytes(records: number): number {
  return TR.HEADER_WORDS * 4 + records * 4 + records * TR.SLOTS * 8 + records * TR.UNITS_PER_RECORD * 2;
}

/** A record as read back: platform time, point id, fields (numbers; strings already resolved). */
export interface RawTraceRecord {
  t: number;
  point: number;
  fields: (number | string)[];
  /** Which ring (producer) it came from, and its sequence number there. */
  ring: number;
  /** The record's number in the global order of writing (see the invariants). */
  seq: number;
}

/** The views on one ring, shared by its writer and readers. */
class RingViews {
  readonly header: Int32Array;
  readonly stamps: Int32Array;
  readonly slots: Float64Array;
  readonly units: Uint16Array;

  constructor(
    sab: SharedArrayBuffer,
    offset: number,
    readonly records: number,
  ) {
    this.header = new Int32Array(sab, offset, TR.HEADER_WORDS);
    let at = offset + TR.HEADER_WORDS * 4;
    this.stamps = new Int32Array(sab, at, records);
    at += records * 4;
    this.slots = new Float64Array(sab, at, records * TR.SLOTS);
    at += records * TR.SLOTS * 8;
    this.units = new Uint16Array(sab, at, records * TR.UNITS_PER_RECORD);
  }
}

/** The producer's side of one ring. */
export class TraceRingWriter {
  private readonly v: RingViews;
  private head: number;
  private strings: number;

  constructor(
    sab: SharedArrayBuffer,
    offset: number,
    records: number,
    /** The trace header, whose SEQ word numbers every producer's records. */
    private readonly header: Int32Array,
  ) {
    this.v = new RingViews(sab, offset, records);
    this.head = Atomics.load(this.v.header, TR.HEAD);
    this.strings = Atomics.load(this.v.header, TR.STRINGS);
  }

  /** Copies a string into the string area; returns the field value that points at it. */
  string(s: string): number {
    const units = this.v.units;
    const n = Math.min(s.length, 0xffff, units.length);
    const start = this.strings;
    for (let i = 0; i < n; i++) units[(start + i) % units.length] = s.charCodeAt(i);
    this.strings = (start + n) % 0x4000_0000;
    Atomics.store(this.v.header, TR.STRINGS, this.strings);
    return start * 0x10000 + n;
  }

  /** Appends a record: time, point id and up to TR.FIELDS field values (strings already converted). */
  write(t: number, point: number, fields: ArrayLike<number>): void {
    const v = this.v;
    const n = this.head;
    const slot = n % v.records;
    Atomics.store(v.stamps, slot, 0);
    const base = slot * TR.SLOTS;
    v.slots[base] = t;
    v.slots[base + 1] = point;
    v.slots[base + 2] = Atomics.add(this.header, TRACE.SEQ, 1);
    const k = Math.min(fields.length, TR.FIELDS);
    for (let i = 0; i < k; i++) v.slots[base + 3 + i] = fields[i]!;
    this.head = (n + 1) % 0x4000_0000;
    Atomics.store(v.stamps, slot, this.head === 0 ? 0x4000_0000 : this.head);
    Atomics.store(v.header, TR.HEAD, this.head);
  }
}

/** A reader of one ring: returns the records written since its last read, and counts those it lost. */
export class TraceRingReader {
  private readonly v: RingViews;
  private tail = 0;
  /** Records overwritten before this reader got to them. */
  lost = 0;

  constructor(
    sab: SharedArrayBuffer,
    offset: number,
    records: number,
    readonly ring: number,
  ) {
    this.v = new RingViews(sab, offset, records);
  }

  /** Records written and not read yet (lost ones included). */
  get pending(): number {
    return (Atomics.load(this.v.header, TR.HEAD) - this.tail + 0x4000_0000) % 0x4000_0000;
  }

  /**
   * New records, oldest first. `stringFields(point)` says which field indexes of a point are strings
   * (resolved here while the string area still holds them; an overwritten one reads "<lost>").
   */
  read(stringFields: (point: number) => readonly number[]): RawTraceRecord[] {
    const v = this.v;
    const head = Atomics.load(v.header, TR.HEAD);
    let from = this.tail;
    let pending = (head - from + 0x4000_0000) % 0x4000_0000;
    if (pending > v.records) {
      this.lost += pending - v.records;
      from = (head - v.records + 0x4000_0000) % 0x4000_0000;
      pending = v.records;
    }
    const out: RawTraceRecord[] = [];
    for (let i = 0; i < pending; i++) {
      const n = (from + i) % 0x4000_0000;
      const slot = n % v.records;
      const want = (n + 1) % 0x4000_0000 || 0x4000_0000;
      if (Atomics.load(v.stamps, slot) !== want) {
        this.lost++;
        continue;
      }
      const base = slot * TR.SLOTS;
      const point = v.slots[base + 1]!;
      const seq = v.slots[base + 2]!;
      const fields: (number | string)[] = Array.from(v.slots.subarray(base + 3, base + 3 + TR.FIELDS));
      for (const f of stringFields(point)) fields[f] = this.stringAt(fields[f] as number);
      const t = v.slots[base]!;
      if (Atomics.load(v.stamps, slot) !== want) {
        this.lost++;
        continue;
      }
      out.push({ t, point, fields, ring: this.ring, seq });
    }
    this.tail = head;
    return out;
  }

  private stringAt(ref: number): string {
    const units = this.v.units;
    const start = Math.floor(ref / 0x10000);
    const len = ref % 0x10000;
    const written = Atomics.load(this.v.header, TR.STRINGS);
    const age = (written - start + 0x4000_0000) % 0x4000_0000;
    if (age > units.length || age < len) return '<lost>';
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(units[(start + i) % units.length]!);
    // Overwritten while copying?
    const after = (Atomics.load(this.v.header, TR.STRINGS) - start + 0x4000_0000) % 0x4000_0000;
    return after > units.length ? '<lost>' : s;
  }
}
