// Configuration-space dumps in the text format `lspci -xxxx` prints and `lspci -F FILE` reads back
// (pciutils 3.9): a "BB:DD.F " line (the space is required), then "OFF: " lines of 16 hex bytes with
// the offset in lower-case hex without padding beyond two digits (00:, 10:, ..., 100:, ..., ff0:).

import { CONFIG_BYTES } from '../arch/pcie/regs.ts';

/** Formats config space bytes (256 or 4096 of them) as one lspci -xxxx device block. */
export function formatConfigDump(bdf: string, bytes: Uint8Array, title = ''): string {
  if (bytes.length % 16 !== 0 || bytes.length === 0 || bytes.length > CONFIG_BYTES) {
    throw new Error(`config dump of ${bytes.length} bytes: must be a non-empty multiple of 16 up to ${CONFIG_BYTES}`);
  }
  const lines = [`${bdf} ${title}`.trimEnd() + (title ? '' : ' ')];
  for (let off = 0; off < bytes.length; off += 16) {
    const row: string[] = [];
    for (let i = 0; i < 16; i++) row.push(bytes[off + i]!.toString(16).padStart(2, '0'));
    lines.push(`${off.toString(16).padStart(2, '0')}: ${row.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

/** Little-endian bytes of config dwords (as read with 32-bit accesses). */
export function dwordsToBytes(dwords: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(dwords.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < dwords.length; i++) dv.setUint32(i * 4, dwords[i]! >>> 0, true);
  return out;
}
