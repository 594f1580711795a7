// Bus/Device/Function addresses and Requester IDs (PCIe r6.0 2.2.6.2: RID = bus << 8 | device << 3 |
// function), written as lspci writes them: "BB:DD.F" in hex.

export interface Bdf {
  bus: number;
  dev: number;
  fn: number;
}

export function ridOf(b: Bdf): number {
  return (b.bus << 8) | (b.dev << 3) | b.fn;
}

export function formatBdf(rid: number): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${h((rid >> 8) & 0xff, 2)}:${h((rid >> 3) & 0x1f, 2)}.${rid & 7}`;
}

/** Parses "BB:DD.F" (hex bus and device, function 0-7); null if malformed. */
export function parseBdf(s: string): Bdf | null {
  const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(s);
  if (!m) return null;
  const bus = parseInt(m[1]!, 16);
  const dev = parseInt(m[2]!, 16);
  const fn = parseInt(m[3]!, 10);
  if (dev > 31) return null;
  return { bus, dev, fn };
}
