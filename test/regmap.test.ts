// Unit tests of the generic register model (src/arch/regmap.ts, hw/regfile.ts) on a small hand-made map: map validation,
// access modes, byte lanes, guards, the update protocol, hooks and (sticky) reset; and that the device models' register
// files are typed by the names of their maps, so a misspelt register name does not compile.

import { describe, expect, it } from 'vitest';
import { bits, range } from '../src/arch/bits.ts';
import { fieldDef as fd, reg, validateMap, type RegisterDef, type RegisterMap } from '../src/arch/regmap.ts';
import { RegisterFile } from '../hw/regfile.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { defaultTopology } from '../src/protocol/topology.ts';
import { capReg } from '../hw/pcie/config-space.ts';
import { DMA_REG, dmaEngineMap } from '../src/arch/pcie/dma-engine.ts';
import { TD_OFF, TESTDEV_MAP } from '../src/arch/testdev.ts';

const EN = bits('EN', 0);
const MODE = range('MODE', 7, 4);
const BUSY = bits('BUSY', 8);
const ERR = bits('ERR', 0);
const STICKY_ERR = bits('STICKY_ERR', 1);
const ID = range('ID', 15, 8);
const KEEP = range('KEEP', 15, 0);
const PLAIN = range('PLAIN', 31, 16);

function testMap(): RegisterMap {
  return {
    name: 'dev',
    size: 0x40,
    registers: [
      reg('CTRL', 0x00, 32, [fd(EN, 'RW'), fd(MODE, 'RW'), fd(BUSY, 'RO')]),
      reg('STATUS', 0x04, 32, [fd(ERR, 'W1C'), fd(STICKY_ERR, 'W1CS'), fd(ID, 'HwInit')], { reset: 0x5a00 }),
      reg('CFG', 0x08, 32, [fd(KEEP, 'RWS'), fd(PLAIN, 'RW')], { reset: 0x00010002 }),
      reg('GATE', 0x0c, 32, [fd(range('V', 31, 0), 'RAZ/WI')]),
      reg('BASE', 0x10, 64, [fd(range('ADDR', 47, 12), 'RW')], { guards: ['CTRL.EN'] }),
      reg('UPD', 0x18, 32, [fd(range('DATA', 7, 0), 'RW'), fd(bits('Update', 31), 'RW')], {
        guards: ['UPD.Update'],
        role: { kind: 'update', bit: 'Update' },
      }),
      reg('B0', 0x1c, 8, [fd(range('X', 7, 0), 'RW')], { reset: 0x11 }),
      reg('H1', 0x1e, 16, [fd(range('Y', 15, 0), 'RW')], { reset: 0x2233 }),
    ],
  };
}

function file(map = testMap()) {
  return new RegisterFile(map, new Int32Array(map.size / 4));
}

const word = (f: RegisterFile, off: number) => f.view[off >>> 2]! >>> 0;

describe('validateMap', () => {
  const base = testMap();
  const withRegs = (...extra: RegisterDef[]): RegisterMap => ({ ...base, registers: [...base.registers, ...extra] });
  const cases: [string, RegisterMap, RegExp][] = [
    ['duplicate name', withRegs(reg('CTRL', 0x20, 32, [])), /dev: register CTRL declared twice/],
    ['misaligned offset', withRegs(reg('ODD', 0x22, 32, [])), /dev\.ODD: offset 0x22 not aligned/],
    ['beyond the space', withRegs(reg('FAR', 0x40, 32, [])), /dev\.FAR: beyond the 64-byte space/],
    ['overlapping registers', withRegs(reg('OVER', 0x14, 32, [])), /dev\.OVER: overlaps BASE/],
    ['field beyond the width', withRegs(reg('W', 0x20, 32, [fd(bits('TOP', 32), 'RW')])), /dev\.W\.TOP: bits beyond a 32-bit register/],
    [
      'overlapping fields',
      withRegs(reg('F', 0x20, 32, [fd(range('A', 7, 0), 'RW'), fd(range('B', 8, 7), 'RW')])),
      /dev\.F\.B: overlaps another field/,
    ],
    ['guard naming no field', withRegs(reg('G', 0x20, 32, [], { guards: ['CTRL.NOPE'] })), /dev: guard CTRL\.NOPE names no field/],
    ['guard naming no register', withRegs(reg('G', 0x20, 32, [], { guards: ['NOREG.EN'] })), /dev: guard NOREG\.EN names no field/],
    [
      'request without its ack register',
      withRegs(reg('REQ', 0x20, 32, [], { role: { kind: 'request', ack: 'REQACK' } })),
      /dev\.REQ: ack register REQACK missing/,
    ],
    ['toggle-ack of a missing register', withRegs(reg('T', 0x20, 32, [], { role: { kind: 'toggle-ack', of: 'ERRS' } })), /dev\.T: register ERRS missing/],
    [
      'update role without its bit',
      withRegs(reg('U', 0x20, 32, [fd(range('D', 7, 0), 'RW')], { role: { kind: 'update', bit: 'Update' } })),
      /dev\.U: update bit Update missing/,
    ],
    // The hook's triggered bits are one 32-bit number; a 64-bit register could not hand them all over.
    ['a W1T field in a 64-bit register', withRegs(reg('KICK64', 0x20, 64, [fd(bits('GO', 0), 'W1T')])), /dev\.KICK64\.GO: W1T bits only in registers up to 32 bits/],
  ];
  for (const [what, map, msg] of cases) {
    it(`rejects ${what}, naming the register and field`, () => {
      expect(() => validateMap(map)).toThrow(msg);
      expect(() => new RegisterFile(map, new Int32Array(map.size / 4))).toThrow(msg);
    });
  }

  it('accepts the test map', () => {
    expect(() => validateMap(base)).not.toThrow();
  });

  it('refuses a read view smaller than the map', () => {
    expect(() => new RegisterFile(base, new Int32Array(4))).toThrow(/dev: read view of 16 bytes, need 64/);
  });
});

describe('RegisterFile access modes', () => {
  it('reset() loads the reset image (the constructor does not)', () => {
    const f = file();
    expect(word(f, 0x04)).toBe(0);
    f.reset();
    expect(word(f, 0x04)).toBe(0x5a00);
    expect(word(f, 0x08)).toBe(0x00010002);
    expect(f.get('B0')).toBe(0x11);
    expect(f.get('H1')).toBe(0x2233);
    expect(word(f, 0x1c)).toBe(0x22330011);
  });

  it('RW bits take the written value, RO and RES0 bits do not', () => {
    const f = file();
    f.reset();
    expect(f.write(0x00, 4, 0xffffffff)).toBe('applied');
    expect(f.get('CTRL')).toBe(0xf1); // EN and MODE; BUSY (RO) and the RES0 bits stay 0
    f.set('CTRL', BUSY.bits); // the hardware sets its RO bit (and clears the rest)
    f.write(0x00, 4, 0x00000020);
    expect(f.get('CTRL')).toBe(BUSY.bits | 0x20); // software cannot clear BUSY
  });

  it('RAZ/WI registers ignore writes', () => {
    const f = file();
    f.reset();
    f.write(0x0c, 4, 0xdeadbeef);
    expect(f.get('GATE')).toBe(0);
  });

  it('W1C and W1CS bits clear only where a 1 is written; HwInit bits never change', () => {
    const f = file();
    f.reset();
    f.set('STATUS', 0x5a03);
    f.write(0x04, 4, 0);
    expect(f.get('STATUS')).toBe(0x5a03);
    f.write(0x04, 4, ERR.bits | 0xff00);
    expect(f.get('STATUS')).toBe(0x5a02); // ERR cleared, STICKY_ERR kept, ID unchanged
    f.write(0x04, 4, STICKY_ERR.bits);
    expect(f.get('STATUS')).toBe(0x5a00);
  });

  it('reset(keepSticky) keeps RWS and W1CS bits and reloads the rest', () => {
    const f = file();
    f.reset();
    f.write(0x08, 4, 0xabcd1234);
    f.set('STATUS', 0x5a03);
    f.write(0x00, 4, 0x31);
    f.reset(true);
    expect(f.get('CFG')).toBe(0x00011234); // KEEP (RWS) kept, PLAIN back to its reset value
    expect(f.get('STATUS')).toBe(0x5a02); // STICKY_ERR (W1CS) kept, ERR (W1C) reset
    expect(f.get('CTRL')).toBe(0);
    f.reset(false);
    expect(f.get('CFG')).toBe(0x00010002);
    expect(f.get('STATUS')).toBe(0x5a00);
  });

  it('setResetValue changes what reset() loads', () => {
    const f = file();
    f.setResetValue('CTRL', 0x51);
    f.setResetValue('B0', 0x7e);
    f.reset();
    expect(f.get('CTRL')).toBe(0x51);
    expect(f.get('B0')).toBe(0x7e);
    expect(f.get('H1')).toBe(0x2233); // the neighbour in the same dword is untouched
  });

  it('setResetValue refuses bits no readable field names (RES0, RAZ/WI, beyond the width), naming the register and the bits', () => {
    const f = file();
    expect(() => f.setResetValue('CTRL', 0x251)).toThrow(/^dev\.CTRL: reset value 0x251 sets bits 0x200 that no readable field names$/);
    expect(() => f.setResetValue('GATE', 1)).toThrow(/^dev\.GATE: reset value 0x1 sets bits 0x1 that no readable field names$/);
    expect(() => f.setResetValue('BASE', (1n << 48n) | 0x1000n)).toThrow(/^dev\.BASE: reset value 0x1000000001000 sets bits 0x1000000000000 that no readable field names$/);
    expect(() => f.setResetValue('B0', 0x17e)).toThrow(/^dev\.B0: reset value 0x17e sets bits 0x100 that no readable field names$/);
    // Nothing was changed by the refused calls; RO and HwInit bits are readable and may be set.
    f.setResetValue('STATUS', 0x7f00);
    f.reset();
    expect(f.get('CTRL')).toBe(0);
    expect(f.get64('BASE')).toBe(0n);
    expect(f.get('B0')).toBe(0x11);
    expect(f.get('STATUS')).toBe(0x7f00);
  });
});

describe('W1T (write 1 to trigger)', () => {
  const GO = bits('GO', 0);
  const ABORT = bits('ABORT', 3);
  const KICK = bits('KICK', 1);
  /** The test map with a 32-bit doorbell, and a dword shared by a plain 16-bit register and a 16-bit doorbell. */
  function w1tFile() {
    const map = testMap();
    const f = file({
      ...map,
      registers: [
        ...map.registers,
        reg('DOORBELL', 0x20, 32, [fd(GO, 'W1T'), fd(ABORT, 'W1T'), fd(range('ARG', 15, 8), 'RW')]),
        reg('LO', 0x24, 16, [fd(range('V', 15, 0), 'RW')]),
        reg('HI', 0x26, 16, [fd(KICK, 'W1T'), fd(range('W', 15, 8), 'RW')]),
      ],
    });
    f.reset();
    return f;
  }

  it('hands the hook the W1T bits written as 1; they always read 0 while the RW bits of the same write are stored', () => {
    const f = w1tFile();
    const seen: [triggered: number, value: number][] = [];
    f.onWrite('DOORBELL', (rf, r, triggered) => seen.push([triggered, rf.get(r.name)]));
    f.write(0x20, 4, 0xffffffff);
    expect(seen).toEqual([[GO.bits | ABORT.bits, 0xff00]]);
    expect(f.get('DOORBELL')).toBe(0xff00);
    f.write(0x20, 4, ABORT.bits | 0x4200);
    f.write(0x20, 4, 0x4200); // no trigger: the hook still runs, with none
    f.write(0x20, 1, GO.bits); // a byte write reaches the trigger too
    expect(seen.slice(1)).toEqual([
      [ABORT.bits, 0x4200],
      [0, 0x4200],
      [GO.bits, 0x4200],
    ]);
    expect(f.view[0x20 / 4]! & (GO.bits | ABORT.bits)).toBe(0);
  });

  it('gives the triggered bits at the register\'s own bit positions when it does not start its dword', () => {
    const f = w1tFile();
    const seen: string[] = [];
    f.onWrite('LO', (_rf, _r, triggered) => seen.push(`LO ${triggered}`));
    f.onWrite('HI', (rf, _r, triggered) => seen.push(`HI ${triggered} reads ${rf.get('HI').toString(16)}`));
    f.write(0x26, 2, 0xab00 | KICK.bits);
    expect(seen).toEqual([`HI ${KICK.bits} reads ab00`]);
    f.write(0x24, 4, ((0xcd00 | KICK.bits) << 16) | 0xffff); // one dword write covering both
    expect(seen.slice(1)).toEqual(['LO 0', `HI ${KICK.bits} reads cd00`]);
    expect(f.get('LO')).toBe(0xffff);
  });

  it('setResetValue refuses a W1T bit, which always reads 0', () => {
    const f = w1tFile();
    expect(() => f.setResetValue('DOORBELL', 0x1)).toThrow(/^dev\.DOORBELL: reset value 0x1 sets bits 0x1 that no readable field names$/);
    f.setResetValue('DOORBELL', 0x500); // the RW argument field may be preset
    f.reset();
    expect(f.get('DOORBELL')).toBe(0x500);
  });
});

describe('RegisterFile write path', () => {
  it('applies byte and halfword writes to their lanes only', () => {
    const f = file();
    f.reset();
    f.write(0x08, 4, 0x11223344);
    f.write(0x09, 1, 0xab);
    expect(f.get('CFG')).toBe(0x1122ab44);
    f.write(0x0a, 2, 0xbeef);
    expect(f.get('CFG')).toBe(0xbeefab44);
    f.write(0x1f, 1, 0x99); // high byte of the 16-bit register at 0x1e
    expect(f.get('H1')).toBe(0x9933);
    expect(f.get('B0')).toBe(0x11);
    f.write(0x1c, 2, 0xffff); // covers B0 (8-bit) and the RES0 byte above it
    expect(word(f, 0x1c)).toBe(0x993300ff);
  });

  it('writes 64-bit registers whole or as two 32-bit halves', () => {
    const f = file();
    f.reset();
    f.write(0x10, 8, 0x12345fff, 0xffff89ab);
    expect(f.get64('BASE')).toBe(0x000089ab12345000n); // ADDR[47:12] only
    f.write(0x10, 4, 0x0000a000);
    f.write(0x14, 4, 0x00000001);
    expect(f.get64('BASE')).toBe(0x000000010000a000n);
    f.set64('BASE', 0xffffffffffffffffn);
    expect(f.get64('BASE')).toBe(0xffffffffffffffffn); // hardware-side stores bypass the masks
  });

  it('ignores the whole write to a guarded register while its guard reads 1', () => {
    const f = file();
    f.reset();
    f.write(0x10, 8, 0x1000, 0);
    f.write(0x00, 4, EN.bits);
    expect(f.write(0x10, 8, 0x2000, 0)).toBe('guarded');
    expect(f.write(0x14, 4, 1)).toBe('guarded');
    expect(f.get64('BASE')).toBe(0x1000n);
    f.write(0x00, 4, 0);
    expect(f.write(0x10, 8, 0x2000, 0)).toBe('applied');
    expect(f.get64('BASE')).toBe(0x2000n);
  });

  it('an update-protocol register takes a write only with Update set, and not while Update reads 1', () => {
    const f = file();
    f.reset();
    expect(f.write(0x18, 4, 0x42)).toBe('no-update');
    expect(f.get('UPD')).toBe(0);
    expect(f.write(0x18, 4, 0x80000042)).toBe('applied');
    expect(f.get('UPD')).toBe(0x80000042);
    expect(f.write(0x18, 4, 0x80000077)).toBe('guarded');
    expect(f.get('UPD')).toBe(0x80000042);
    f.set('UPD', 0x42); // the device completes the update
    expect(f.write(0x18, 1, 0x66)).toBe('no-update'); // a byte write cannot carry Update (bit 31)
    expect(f.write(0x18, 4, 0x80000066)).toBe('applied');
    expect(f.get('UPD')).toBe(0x80000066);
  });

  it('reports writes outside every register as unmapped and changes nothing', () => {
    const f = file();
    f.reset();
    const before = Array.from(f.view);
    expect(f.write(0x30, 4, 0xffffffff)).toBe('unmapped');
    expect(f.write(0x100, 4, 0xffffffff)).toBe('unmapped');
    expect(Array.from(f.view)).toEqual(before);
  });

  it('runs a hook after the masked value is stored, and not for ignored writes', () => {
    const f = file();
    f.reset();
    const seen: number[] = [];
    f.onWrite('CTRL', (rf, r) => seen.push(rf.get(r.name)));
    f.onWrite('BASE', (rf) => seen.push(Number(rf.get64('BASE'))));
    f.write(0x00, 4, 0xffffffff);
    expect(seen).toEqual([0xf1]);
    f.write(0x10, 8, 0x3000, 0); // guarded by CTRL.EN: no hook
    expect(seen).toEqual([0xf1]);
    expect(() => f.onWrite('NOPE', () => {})).toThrow(/dev: no register NOPE to hook/);
  });

  it('names the register when asked for one that does not exist', () => {
    const f = file();
    expect(() => f.get('NOPE')).toThrow(/dev: no register NOPE/);
    expect(() => f.setResetValue('NOPE', 1)).toThrow(/dev: no register NOPE/);
  });
});

describe('registers sharing a dword (PCIe-style 8- and 16-bit registers)', () => {
  it('runs the hook of the register whose bytes were written', () => {
    const f = file();
    f.reset();
    const seen: string[] = [];
    f.onWrite('B0', (rf) => seen.push(`B0=${rf.get('B0').toString(16)}`));
    f.onWrite('H1', (rf) => seen.push(`H1=${rf.get('H1').toString(16)}`));
    f.write(0x1c, 1, 0x5a);
    expect(seen).toEqual(['B0=5a']);
    f.write(0x1e, 2, 0x1234);
    expect(seen).toEqual(['B0=5a', 'H1=1234']);
    f.write(0x1c, 4, 0xabcd0077); // one dword write covering both
    expect(seen).toEqual(['B0=5a', 'H1=1234', 'B0=77', 'H1=abcd']);
  });

  it('applies a guard only to the register it belongs to', () => {
    const map = testMap();
    const regs = map.registers.map((r) => (r.name === 'H1' ? { ...r, guards: ['CTRL.EN'] } : r));
    const f = file({ ...map, registers: regs });
    f.reset();
    f.write(0x00, 4, EN.bits);
    expect(f.write(0x1c, 1, 0x5a)).toBe('applied'); // B0 is not guarded
    expect(f.get('B0')).toBe(0x5a);
    expect(f.write(0x1e, 2, 0x1234)).toBe('guarded');
    f.write(0x1c, 4, 0x99990066);
    expect(f.get('B0')).toBe(0x66);
    expect(f.get('H1')).toBe(0x2233);
  });
});

describe('register names are checked by the compiler (tsc --noEmit fails on an unused @ts-expect-error)', () => {
  const { machine } = createLockstep({ features: DEFAULT_FEATURES, topology: defaultTopology(), testDevices: 1 });
  const ep = machine.pcie.endpoint('01:00.0');
  const port = machine.pcie.ports[0]!;
  const td = machine.testdevs[0]!;

  it('SMMU registers', () => {
    expect(machine.smmu.regs.get('GERROR')).toBe(0);
    // @ts-expect-error no SMMU register GERRORR
    expect(() => machine.smmu.regs.get('GERRORR')).toThrow(/no register GERRORR/);
  });

  it('PCIe config-space registers: header and capability names (capReg checks the capability has it)', () => {
    expect(ep.regs.get('VENDOR_ID')).toBe(ep.cfg('VENDOR_ID'));
    expect(ep.regs.get(capReg('exp', 'DEVCTL'))).toBe(ep.regs.get('EXP.DEVCTL'));
    expect(port.regs.get('BRIDGE_CONTROL')).toBe(0);
    // @ts-expect-error no config register COMMANDD
    expect(() => ep.regs.get('COMMANDD')).toThrow(/no register COMMANDD/);
    // @ts-expect-error no config register EXP.DEVCTLL
    expect(() => ep.cfg('EXP.DEVCTLL')).toThrow(/no register EXP\.DEVCTLL/);
    // @ts-expect-error DEVCTL is a register of the Express capability, not of Power Management
    expect(() => port.regs.get('PM.DEVCTL')).toThrow(/no register PM\.DEVCTL/);
    // @ts-expect-error the Express capability has no register DEVCTLL
    expect(capReg('exp', 'DEVCTLL')).toBe('EXP.DEVCTLL');
  });

  it('PCIe endpoint BAR (DMA engine) registers', () => {
    expect(ep.bar.regs.get('LEN')).toBe(0);
    // @ts-expect-error no DMA engine register LENN
    expect(() => ep.bar.regs.get('LENN')).toThrow(/no register LENN/);
  });

  it('test-device registers', () => {
    expect(td.regs.get('XFERRED')).toBe(0);
    // @ts-expect-error no test-device register XFERREDD
    expect(() => td.regs.get('XFERREDD')).toThrow(/no register XFERREDD/);
  });

  it('the test device and the DMA engine declare a register at each offset their names come from', () => {
    const at = (map: RegisterMap) => Object.fromEntries(map.registers.map((r) => [r.name, r.offset]));
    expect(at(TESTDEV_MAP)).toEqual(TD_OFF);
    expect(at(dmaEngineMap(4096))).toEqual(DMA_REG);
  });
});
