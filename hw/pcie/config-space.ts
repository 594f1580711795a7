// A function's 4 KiB configuration space as one register map: the Type 0 (endpoint) or Type 1 (bridge)
// header, then the capabilities of caps.ts placed and chained — legacy capabilities from 0x40 linked
// from the Capabilities Pointer, extended capabilities from 0x100 linked through their headers. The map
// is compiled by the generic RegisterFile (src/arch/regmap.ts); there is no other register model.

import { fieldDef as fd, reg, type RegisterDef, type RegisterMap } from '../../src/arch/regmap.ts';
import { range, hex } from '../../src/arch/bits.ts';
import {
  CAPABILITIES, LEGACY_CAPS, type CapabilityDef, type CapName, type CapParams, type CapRegName, type CapRegNames, type PcieRegName,
} from '../../src/arch/pcie/caps.ts';
import {
  BAR, BRIDGE_CONTROL, CAP_HDR, CLASS_REV, COMMAND, CONFIG_BYTES, EXT_CAP_START, EXT_HDR, HDR, HEADER_BYTES, HEADER_LAYOUT, HEADER_TYPE,
  LEGACY_BYTES, MEM_WINDOW, STATUS, type HeaderRegName,
} from '../../src/arch/pcie/regs.ts';

export interface ConfigSpec extends CapParams {
  /** For error messages and the map's name (e.g. "01:00.0"). */
  name: string;
  vendorId: number;
  deviceId: number;
  revision: number;
  /** 24-bit class code: base class, subclass, programming interface. */
  classCode: number;
  subsysVendorId: number;
  subsysId: number;
  /** Header Type bit 7 (function 0 of a multi-function device). */
  multifunction: boolean;
  /** Status.Immediate_Readiness: software need not wait after reset (7.5.1.1.4). */
  immReady: boolean;
  /** Endpoint BAR0 size in bytes (a power of two >= 16), or 0 for no BAR. */
  barBytes: number;
  caps: readonly CapName[];
}

export interface PlacedCap {
  readonly name: CapName;
  readonly def: CapabilityDef;
  readonly ext: boolean;
  readonly offset: number;
  readonly size: number;
}

export interface ConfigLayout {
  readonly map: RegisterMap<PcieRegName>;
  readonly caps: readonly PlacedCap[];
  /** Registers (full names) kept by every reset short of power-on: ROS registers (caps' `sticky`). */
  readonly sticky: readonly PcieRegName[];
  /** Registers (full names) an FLR leaves alone (caps' `flrExempt`). */
  readonly flrExempt: readonly PcieRegName[];
}

/** A capability register's name in the function's map: "EXP.DEVCTL"; a name the capability lacks does not compile. */
export function capReg<C extends CapName, R extends CapRegNames[C] | 'HDR'>(cap: C, name: R): CapRegName<C> & `${Uppercase<C>}.${R}` {
  // The compiler cannot follow the mapped type through a generic C; for each C and R this is exactly the name built here.
  return `${cap.toUpperCase()}.${name}` as CapRegName<C> & `${Uppercase<C>}.${R}`;
}

const COMMAND_RW = COMMAND.MEMORY.bits | COMMAND.MASTER.bits | COMMAND.PARITY.bits | COMMAND.SERR.bits | COMMAND.INTX_DISABLE.bits;
const STATUS_W1C = [STATUS.MDPE, STATUS.SIG_TARGET_ABORT, STATUS.REC_TARGET_ABORT, STATUS.REC_MASTER_ABORT, STATUS.SIG_SYSTEM_ERROR, STATUS.DETECTED_PARITY];

function commonHeader(s: ConfigSpec, layout: number, hasCaps: boolean): RegisterDef<HeaderRegName>[] {
  const status = (hasCaps ? STATUS.CAP_LIST.bits : 0) | (s.immReady ? STATUS.IMM_READY.bits : 0);
  const classRev = CLASS_REV.REVISION.set(0, s.revision) | ((s.classCode & 0xffffff) << 8);
  return [
    reg('VENDOR_ID', HDR.VENDOR_ID, 16, [fd(range('Value', 15, 0), 'RO')], { reset: s.vendorId, spec: '7.5.1.1.1' }),
    reg('DEVICE_ID', HDR.DEVICE_ID, 16, [fd(range('Value', 15, 0), 'RO')], { reset: s.deviceId, spec: '7.5.1.1.2' }),
    // I/O Space is hardwired to 0: no function here decodes I/O (7.5.1.1.3).
    reg(
      'COMMAND',
      HDR.COMMAND,
      16,
      Object.values(COMMAND).map((f) => fd(f, (f.bits & COMMAND_RW) !== 0 ? 'RW' : 'RO')),
      { spec: '7.5.1.1.3' },
    ),
    reg('STATUS', HDR.STATUS, 16, [fd(STATUS.IMM_READY, 'RO'), fd(STATUS.INTERRUPT, 'RO'), fd(STATUS.CAP_LIST, 'RO'), ...STATUS_W1C.map((f) => fd(f, 'W1C'))], {
      reset: status,
      spec: '7.5.1.1.4',
    }),
    reg('CLASS_REV', HDR.REVISION, 32, Object.values(CLASS_REV).map((f) => fd(f, 'RO')), { reset: classRev >>> 0, spec: '7.5.1.1.5-6' }),
    reg('CACHE_LINE', HDR.CACHE_LINE, 8, [fd(range('Value', 7, 0), 'RW')], { spec: '7.5.1.1.7' }),
    reg('LATENCY', HDR.LATENCY, 8, [fd(range('Value', 7, 0), 'RO')], { spec: '7.5.1.1.8' }),
    reg('HEADER_TYPE', HDR.HEADER_TYPE, 8, [fd(HEADER_TYPE.LAYOUT, 'RO'), fd(HEADER_TYPE.MFD, 'RO')], {
      reset: HEADER_TYPE.MFD.set(HEADER_TYPE.LAYOUT.set(0, layout), s.multifunction ? 1 : 0),
      spec: '7.5.1.1.9',
    }),
    reg('BIST', HDR.BIST, 8, [fd(range('Value', 7, 0), 'RO')], { spec: '7.5.1.1.10' }),
    reg('INT_LINE', HDR.INT_LINE, 8, [fd(range('Value', 7, 0), 'RW')], { spec: '7.5.1.1.13' }),
    // No INTx: Interrupt Pin 0 (the functions signal with MSI).
    reg('INT_PIN', HDR.INT_PIN, 8, [fd(range('Value', 7, 0), 'RO')], { spec: '7.5.1.1.14' }),
  ];
}

function type0Header(s: ConfigSpec): RegisterDef<HeaderRegName>[] {
  const out: RegisterDef<HeaderRegName>[] = [];
  if (s.barBytes > 0) {
    // A 32-bit non-prefetchable memory BAR: address bits below the size are read-only zero, so writing
    // all-ones and reading back gives the size (7.5.1.2.1).
    const sizeBits = Math.log2(s.barBytes);
    out.push(
      reg('BAR0', HDR.BAR0, 32, [fd(BAR.IO_SPACE, 'RO'), fd(BAR.TYPE, 'RO'), fd(BAR.PREFETCH, 'RO'), fd(range('Address', 31, sizeBits), 'RW')], {
        spec: '7.5.1.2.1',
      }),
    );
  }
  out.push(
    reg('SUBSYS_VENDOR', HDR.SUBSYS_VENDOR, 16, [fd(range('Value', 15, 0), 'RO')], { reset: s.subsysVendorId, spec: '7.5.1.2.3' }),
    reg('SUBSYS_ID', HDR.SUBSYS_ID, 16, [fd(range('Value', 15, 0), 'RO')], { reset: s.subsysId, spec: '7.5.1.2.3' }),
  );
  return out;
}

function type1Header(): RegisterDef<HeaderRegName>[] {
  const byte = (name: HeaderRegName, off: number, access: 'RW' | 'RO', spec: string) => reg(name, off, 8, [fd(range('Value', 7, 0), access)], { spec });
  return [
    byte('PRIMARY_BUS', HDR.PRIMARY_BUS, 'RW', '7.5.1.3.2'),
    byte('SECONDARY_BUS', HDR.SECONDARY_BUS, 'RW', '7.5.1.3.3'),
    byte('SUBORDINATE_BUS', HDR.SUBORDINATE_BUS, 'RW', '7.5.1.3.4'),
    byte('SEC_LATENCY', HDR.SEC_LATENCY, 'RO', '7.5.1.3.5'),
    // No I/O window and no prefetchable window: both pairs read-only zero (7.5.1.3.6, 7.5.1.3.9).
    byte('IO_BASE', HDR.IO_BASE, 'RO', '7.5.1.3.6'),
    byte('IO_LIMIT', HDR.IO_LIMIT, 'RO', '7.5.1.3.6'),
    reg('SEC_STATUS', HDR.SEC_STATUS, 16, STATUS_W1C.map((f) => fd(f, 'W1C')), { spec: '7.5.1.3.7' }),
    // Base above limit: the window is closed until software programs it.
    reg('MEM_BASE', HDR.MEM_BASE, 16, [fd(MEM_WINDOW.ADDR, 'RW')], { reset: 0xfff0, spec: '7.5.1.3.8' }),
    reg('MEM_LIMIT', HDR.MEM_LIMIT, 16, [fd(MEM_WINDOW.ADDR, 'RW')], { spec: '7.5.1.3.8' }),
    reg('PREF_BASE', HDR.PREF_BASE, 16, [], { spec: '7.5.1.3.9' }),
    reg('PREF_LIMIT', HDR.PREF_LIMIT, 16, [], { spec: '7.5.1.3.9' }),
    reg('BRIDGE_CONTROL', HDR.BRIDGE_CONTROL, 16, [
      fd(BRIDGE_CONTROL.PARITY, 'RW'),
      fd(BRIDGE_CONTROL.SERR, 'RW'),
      fd(BRIDGE_CONTROL.ISA, 'RW'),
      fd(BRIDGE_CONTROL.VGA, 'RW'),
      // Master Abort Mode does not apply to PCI Express (7.5.1.3.13).
      fd(BRIDGE_CONTROL.MASTER_ABORT, 'RO'),
      fd(BRIDGE_CONTROL.BUS_RESET, 'RW'),
    ], { spec: '7.5.1.3.13' }),
  ];
}

/** Builds the register map of a function's configuration space; throws naming what does not fit. */
export function buildConfigSpace(s: ConfigSpec): ConfigLayout {
  const seen = new Set<CapName>();
  for (const c of s.caps) {
    if (!CAPABILITIES[c]) throw new Error(`${s.name}: unknown capability '${c}'`);
    if (seen.has(c)) throw new Error(`${s.name}: capability '${c}' listed twice`);
    seen.add(c);
  }
  if (s.barBytes !== 0 && (s.barBytes < 16 || (s.barBytes & (s.barBytes - 1)) !== 0 || s.barBytes > 2 ** 30)) {
    throw new Error(`${s.name}: BAR size ${s.barBytes} must be 0 or a power of two from 16 bytes to 1 GiB`);
  }
  const legacy = s.caps.filter((c) => LEGACY_CAPS.includes(c));
  const ext = s.caps.filter((c) => !LEGACY_CAPS.includes(c));
  const placed: PlacedCap[] = [];
  const registers: RegisterDef<PcieRegName>[] = [];
  const sticky: PcieRegName[] = [];
  const flrExempt: PcieRegName[] = [];

  const place = (list: CapName[], start: number, limit: number, isExt: boolean) => {
    let at = start;
    for (const name of list) {
      const def = CAPABILITIES[name];
      const size = Math.ceil(def.size(s) / 4) * 4;
      if (at + size > limit) throw new Error(`${s.name}: capability '${name}' does not fit below ${hex(limit, 0)}`);
      placed.push({ name, def, ext: isExt, offset: at, size });
      at += size;
    }
  };
  place(legacy, HEADER_BYTES, LEGACY_BYTES, false);
  place(ext, EXT_CAP_START, CONFIG_BYTES, true);

  const layout = s.port ? HEADER_LAYOUT.BRIDGE : HEADER_LAYOUT.NORMAL;
  registers.push(...commonHeader(s, layout, legacy.length > 0), ...(s.port ? type1Header() : type0Header(s)));
  const legacyPlaced = placed.filter((p) => !p.ext);
  registers.push(
    reg('CAP_PTR', HDR.CAP_PTR, 8, [fd(range('Value', 7, 0), 'RO')], { reset: legacyPlaced[0]?.offset ?? 0, spec: '7.5.1.1.11' }),
  );
  placed.forEach((p) => {
    const sameKind = placed.filter((q) => q.ext === p.ext);
    const next = sameKind[sameKind.indexOf(p) + 1]?.offset ?? 0;
    if (p.ext) {
      const hdr = EXT_HDR.NEXT.set(EXT_HDR.VERSION.set(EXT_HDR.ID.set(0, p.def.id), p.def.version), next);
      registers.push(reg(capReg(p.name, 'HDR'), p.offset, 32, Object.values(EXT_HDR).map((f) => fd(f, 'RO')), { reset: hdr >>> 0, spec: '7.6.3' }));
    } else {
      const hdr = CAP_HDR.NEXT.set(CAP_HDR.ID.set(0, p.def.id), next);
      registers.push(reg(capReg(p.name, 'HDR'), p.offset, 16, Object.values(CAP_HDR).map((f) => fd(f, 'RO')), { reset: hdr, spec: '7.5.1.1.11' }));
    }
    const names = new Set<string>();
    for (const r of p.def.registers(s)) {
      const name = capReg(p.name, r.name);
      if (r.offset < (p.ext ? 4 : 2) || r.offset + r.width / 8 > p.size) throw new Error(`${s.name}: ${name} lies outside its capability`);
      registers.push({ ...r, name, offset: p.offset + r.offset });
      names.add(r.name);
    }
    // Only the registers this instance has (e.g. the Root Port part of AER).
    for (const n of p.def.sticky ?? []) if (names.has(n)) sticky.push(capReg(p.name, n));
    for (const n of p.def.flrExempt ?? []) if (names.has(n)) flrExempt.push(capReg(p.name, n));
  });
  return { map: { name: `pcie ${s.name}`, size: CONFIG_BYTES, registers }, caps: placed, sticky, flrExempt };
}
