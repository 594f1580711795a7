// A 64-bit hash of the MMIO writes the hardware saw, in order: (cpu, pa, size, lo, hi) of each. The
// lockstep coordinator reports it (lockstepStats' writeHash) and a recorded schedule keeps it
// (ScheduleRecord.writeHash), so one run's writes are compared with another's as two strings.

import type { PortWrite } from '../src/machine/mmio-port.ts';

export class WriteHash {
  /** The two independent 32-bit halves. */
  a = 0x811c9dc5;
  b = 0x9747b28c;

  add(w: PortWrite): void {
    this.a = mix(mix(mix(mix(mix(this.a, w.cpu), w.pa), w.size), w.lo), w.hi);
    this.b = mix2(mix2(mix2(mix2(mix2(this.b, w.cpu), w.pa), w.size), w.lo), w.hi);
  }

  /** The hash as 16 hex digits (as LockstepBlock.writeHash() prints it). */
  hex(): string {
    return hex32(this.a) + hex32(this.b);
  }
}

/** A 32-bit word as 8 hex digits. */
function hex32(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0');
}

/** FNV-1a over one 32-bit value, byte by byte. */
function mix(h: number, v: number): number {
  for (let i = 0; i < 4; i++) {
    h ^= (v >>> (8 * i)) & 0xff;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A second, independent 32-bit mix (murmur3's), so the two together make a 64-bit hash. */
function mix2(h: number, v: number): number {
  let k = Math.imul(v | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}
