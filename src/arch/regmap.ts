// Register maps as data: a device's registers (SMMUv3 pages, a PCIe function's config space) declared
// as a list of RegisterDefs (name, offset, width, reset value, fields), each field with an access mode,
// a register's guards (SMMUv3 6.3: e.g. CMDQ_BASE is ignored while CMDQEN) and its role (doorbell,
// request/acknowledge, toggle-acknowledge, update). The one write path that applies software writes
// through these rules is hardware behaviour: hw/regfile.ts.

import { Field, hex } from './bits.ts';

/** Software access to a field (hardware may change RO fields at any time). */
export type Access =
  | 'RO' // read-only: writes ignored
  | 'RW' // read/write
  | 'RAZ/WI' // reads as zero, writes ignored (also every bit no field names)
  | 'W1C' // write 1 to clear (PCIe RW1C)
  | 'W1CS' // write 1 to clear, sticky: kept across a function-level reset (PCIe RW1CS)
  | 'RWS' // read/write, sticky (PCIe RWS)
  | 'W1T' // write 1 to trigger: the write hook sees it, the bit always reads 0 (Initiate FLR, doorbells)
  | 'HwInit'; // fixed by hardware/firmware at reset, read-only to software

/**
 * What a register is for, beyond its bits. The generic path treats all of these as plain stores through
 * the masks; the device model binds the behaviour by role:
 * - doorbell: a write tells the device to look at a queue (CMDQ_PROD, EVENTQ_CONS)
 * - request: software writes the wanted state; the device mirrors what it accepted into `ack`
 *   (CR0 -> CR0ACK, IRQ_CTRL -> IRQ_CTRLACK)
 * - ack: the device-owned mirror of a request register
 * - toggle-ack: software acknowledges active errors by making its bits equal the error register
 *   (GERRORN against GERROR)
 * - update: a write only takes effect with its Update bit set, and the device clears Update when done
 *   (GBPA)
 */
export type Role =
  | { kind: 'doorbell' }
  | { kind: 'request'; ack: string }
  | { kind: 'ack'; of: string }
  | { kind: 'toggle-ack'; of: string }
  | { kind: 'update'; bit: string };

export interface FieldDef {
  readonly field: Field;
  readonly access: Access;
}

export interface RegisterDef<N extends string = string> {
  readonly name: N;
  /** Byte offset inside the device's register space. */
  readonly offset: number;
  readonly width: 8 | 16 | 32 | 64;
  /** Reset value (bits of RO fields are what the hardware reports at reset). */
  readonly reset: bigint;
  readonly fields: readonly FieldDef[];
  /** Writes are ignored while any of these `REG.FIELD` bits reads as 1. */
  readonly guards?: readonly string[];
  readonly role?: Role;
  /** Spec reference for the register. */
  readonly spec?: string;
}

export function fieldDef(field: Field, access: Access): FieldDef {
  return { field, access };
}

export function reg<N extends string>(
  name: N,
  offset: number,
  width: RegisterDef['width'],
  fields: readonly FieldDef[],
  opts: { reset?: bigint | number; guards?: readonly string[]; role?: Role; spec?: string } = {},
): RegisterDef<N> {
  return {
    name,
    offset,
    width,
    reset: BigInt(opts.reset ?? 0),
    fields,
    ...(opts.guards ? { guards: opts.guards } : {}),
    ...(opts.role ? { role: opts.role } : {}),
    ...(opts.spec ? { spec: opts.spec } : {}),
  };
}

/** A named register map: the data a RegisterFile compiles; N names its registers. */
export interface RegisterMap<N extends string = string> {
  readonly name: string;
  /** Size of the register space in bytes (a multiple of 4). */
  readonly size: number;
  readonly registers: readonly RegisterDef<N>[];
}

/** Throws with the register and field named when a map is inconsistent. */
export function validateMap(map: RegisterMap): void {
  const names = new Set<string>();
  const owner = new Map<number, string>(); // byte offset -> register name
  for (const r of map.registers) {
    if (names.has(r.name)) throw new Error(`${map.name}: register ${r.name} declared twice`);
    names.add(r.name);
    const bytes = r.width / 8;
    if (r.offset % bytes !== 0) throw new Error(`${map.name}.${r.name}: offset ${hex(r.offset, 0)} not aligned to its width`);
    if (r.offset + bytes > map.size) throw new Error(`${map.name}.${r.name}: beyond the ${map.size}-byte space`);
    for (let b = 0; b < bytes; b++) {
      const other = owner.get(r.offset + b);
      if (other) throw new Error(`${map.name}.${r.name}: overlaps ${other}`);
      owner.set(r.offset + b, r.name);
    }
    let used = 0n;
    for (const f of r.fields) {
      if (f.field.msb >= r.width) throw new Error(`${map.name}.${r.name}.${f.field.name}: bits beyond a ${r.width}-bit register`);
      if (f.access === 'W1T' && r.width > 32) throw new Error(`${map.name}.${r.name}.${f.field.name}: W1T bits only in registers up to 32 bits`);
      const m = ((1n << BigInt(f.field.width)) - 1n) << BigInt(f.field.lsb);
      if (used & m) throw new Error(`${map.name}.${r.name}.${f.field.name}: overlaps another field`);
      used |= m;
    }
  }
  for (const r of map.registers) {
    for (const g of r.guards ?? []) resolveFieldRef(map, g);
    const role = r.role;
    if (role?.kind === 'request' && !names.has(role.ack)) throw new Error(`${map.name}.${r.name}: ack register ${role.ack} missing`);
    if ((role?.kind === 'ack' || role?.kind === 'toggle-ack') && !names.has(role.of)) {
      throw new Error(`${map.name}.${r.name}: register ${role.of} missing`);
    }
    if (role?.kind === 'update' && !r.fields.some((f) => f.field.name === role.bit)) {
      throw new Error(`${map.name}.${r.name}: update bit ${role.bit} missing`);
    }
  }
}

/** The register and field a `REG.FIELD` reference names; throws naming the reference when there is none. */
export function resolveFieldRef(map: RegisterMap, ref: string): { reg: RegisterDef; field: Field } {
  const [rn, fn] = ref.split('.');
  const r = map.registers.find((x) => x.name === rn);
  const f = r?.fields.find((x) => x.field.name === fn);
  if (!r || !f) throw new Error(`${map.name}: guard ${ref} names no field`);
  return { reg: r, field: f.field };
}
