// The protocol between the host and the workers: checkers that name the bad field, one typed table of
// kernel operations that the CPU worker implements exactly and checks at its boundary, and faults with
// one vocabulary whichever side applies them.

import { describe, expect, it } from 'vitest';
import { InputError, arr, bool, int, obj, oneOf, opt, show, str } from '../src/protocol/check.ts';
import { KERNEL_OPS } from '../src/protocol/ops/index.ts';
import { HW_OPS } from '../src/protocol/ops/hw.ts';
import { FAULT_KINDS, checkFault, isDriverFault } from '../src/protocol/faults.ts';
import { KERNEL_IMPLS } from '../drivers/ops/index.ts';
import { System } from '../src/host/system.ts';
import { pcieStack } from './helpers/pcie-rig.ts';
import { pciResetFunction } from '../drivers/pci/reset.ts';
import { E } from '../src/protocol/errno.ts';

describe('checkers', () => {
  const c = obj({ bdf: str(), n: int(1, 9), on: opt(bool), list: opt(arr(obj({ k: oneOf(['a', 'b']) }))) });

  it('return the value typed, optional fields absent when absent', () => {
    expect(c({ bdf: 'x', n: 3 }, 'req')).toEqual({ bdf: 'x', n: 3 });
    expect(c({ bdf: 'x', n: 3, on: true, list: [{ k: 'b' }] }, 'req')).toEqual({ bdf: 'x', n: 3, on: true, list: [{ k: 'b' }] });
  });

  it('name the field by its path, with what was wrong and what was given', () => {
    expect(() => c({ bdf: 'x', n: 10 }, 'req')).toThrow(new InputError('req.n: must be an integer from 1 to 9 (got 10)'));
    expect(() => c({ n: 1 }, 'req')).toThrow(new InputError('req.bdf: missing'));
    expect(() => c({ bdf: 'x', n: 1, list: [{ k: 'a' }, { k: 'c' }] }, 'faults')).toThrow(new InputError('faults.list[1].k: must be one of a, b (got "c")'));
    expect(() => c([], 'req')).toThrow(new InputError('req: must be an object (got [])'));
  });

  it('refuse unknown fields, JavaScript property names included, never reading inherited values', () => {
    expect(() => c({ bdf: 'x', n: 1, extra: 1 }, 'req')).toThrow(new InputError('req.extra: unknown field (known: bdf, n, on, list)'));
    expect(() => c(JSON.parse('{"bdf":"x","n":1,"__proto__":5}'), 'req')).toThrow('req.__proto__: unknown field');
    expect(() => c({ bdf: 'x', n: 1, constructor: 1 }, 'req')).toThrow('req.constructor: unknown field');
    // `toString` is inherited by every object: as a required field it would be found without an own check.
    expect(() => obj({ toString: str() })({}, 'req')).toThrow('req.toString: missing');
  });

  it('echo input cut short with control characters escaped', () => {
    expect(show('a\u001b[31mb')).toBe('"a\\u001b[31mb"');
    expect(show('x'.repeat(1000)).length).toBeLessThanOrEqual(61);
    expect(() => int(0, 1)('\u001b]0;evil\u0007', 'v')).toThrow('v: must be an integer from 0 to 1 (got "\\u001b]0;evil\\u0007")');
  });
});

describe('the operation tables', () => {
  it('the CPU worker implements every kernel operation and nothing else', () => {
    expect(Object.keys(KERNEL_IMPLS).sort()).toEqual(Object.keys(KERNEL_OPS).sort());
    expect(Object.keys(HW_OPS).sort()).toEqual(['inject', 'report', 'schedule', 'stop']);
  });

  it('requests are type-checked at the call site', () => {
    // Never run: the compiler (npm test runs tsc first) rejects each marked line.
    const typeOnly = (sys: System) => {
      // @ts-expect-error bdf must be a string
      void sys.cpu(0).op('pciReset', { bdf: 1 });
      // @ts-expect-error method must be one of Linux's reset method names
      void sys.cpu(0).op('pciReset', { bdf: '01:00.0', method: 'specific' });
      // @ts-expect-error no such operation
      void sys.cpu(0).op('pciFailBlockingAttach', { count: 1 });
      // Results carry their types: rc is a number.
      const rc: Promise<number> = sys.cpu(0).op('pciReset', { bdf: '01:00.0' }).then((r) => r.rc);
      void rc;
    };
    expect(typeof typeOnly).toBe('function');
  });

  it('a bad request is refused at the worker boundary naming the field, and the worker goes on serving', async () => {
    const sys = await System.boot({ cpus: 1 });
    try {
      await sys.probe();
      const probeDevice = (req: unknown) => sys.cpu(0).rpc.call('iommuProbeDevice', req);
      await expect(probeDevice({ name: 'dev', sids: [1, -2] })).rejects.toThrow('cpu0 iommuProbeDevice: iommuProbeDevice.sids[1]: must be an integer from 0 to 4294967295 (got -2)');
      await expect(sys.cpu(0).rpc.call('memRead', { pa: 0x4000_0000, len: 4, extra: 1 })).rejects.toThrow('memRead.extra: unknown field (known: pa, len)');
      await expect(sys.cpu(0).rpc.call('constructor', null)).rejects.toThrow('cpu0 constructor: unknown operation "constructor"');
      await expect(sys.cpu(0).rpc.call('dmesg', { x: 1 })).rejects.toThrow('dmesg: takes no arguments');
      await expect(sys.hw.rpc.call('inject', { kind: 'fail-blocking-attach', trigger: { count: 1 } })).rejects.toThrow("inject.kind: 'fail-blocking-attach' is a driver fault; the hardware cannot apply it");
      // Still serving, with typed results.
      const master: number = await sys.cpu(0).op('iommuProbeDevice', { name: 'dev', sids: [0x42] });
      expect(master).toBeGreaterThan(0);
    } finally {
      await sys.shutdown();
    }
  });
});

describe('faults: one vocabulary', () => {
  it('every kind checks, hardware and driver faults alike, naming a bad field', () => {
    expect(FAULT_KINDS).toContain('surprise-removal');
    expect(FAULT_KINDS).toContain('fail-blocking-attach');
    expect(checkFault({ kind: 'aer', bdf: '01:00.0', error: 'COMP_TIME' }, 'f')).toEqual({ kind: 'aer', bdf: '01:00.0', error: 'COMP_TIME' });
    expect(() => checkFault({ kind: 'aer', bdf: '01:00.0', error: '__proto__' }, 'f')).toThrow('f.error: must be one of');
    expect(() => checkFault({ kind: 'nope' }, 'faults[2]')).toThrow('faults[2].kind: must be one of');
    expect(isDriverFault(checkFault({ kind: 'skip-invalidation', trigger: { count: 'forever' } }, 'f'))).toBe(true);
    expect(isDriverFault(checkFault({ kind: 'hang' }, 'f'))).toBe(false);
  });

  it('a driver fault injected from the host arms the should-fail point the driver asks (lockstep)', () => {
    const r = pcieStack();
    const d = r.core.dev('01:00.0');
    r.inject({ kind: 'fail-blocking-attach', trigger: { count: 2 } });
    expect(pciResetFunction(r.core, d, ['flr'])).toBe(-E.ENOMEM);
    expect(pciResetFunction(r.core, d, ['flr'])).toBe(-E.ENOMEM);
    expect(pciResetFunction(r.core, d, ['flr'])).toBe(0);
    expect(r.platform.failPoints.hits('blocking-attach')).toBe(2);
  });

  it('the same fault through System.inject reaches a CPU worker (threaded)', async () => {
    const sys = await System.boot({ cpus: 1, timeScale: 50 });
    try {
      await sys.probe();
      await sys.pciInit();
      await sys.inject({ kind: 'fail-blocking-attach', trigger: { count: 1 } });
      const failed = await sys.cpu(0).op('pciReset', { bdf: '01:00.0', method: 'flr' });
      expect(failed).toMatchObject({ ok: false, rc: -E.ENOMEM, method: 'flr', depth: 0, blocked: false });
      expect((await sys.cpu(0).op('pciReset', { bdf: '01:00.0', method: 'flr' })).ok).toBe(true);
      await expect(sys.inject(JSON.parse('{"kind":"skip-invalidation","trigger":{"count":"yes"}}'))).rejects.toThrow(`fault.trigger.count: must be a count from 1, 'until-reset' or 'forever' (got "yes")`);
    } finally {
      await sys.shutdown();
    }
  });
});
