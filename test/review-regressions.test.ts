// Regression tests for review fixes with no better home: a NaN timeout to the shared-word wait the
// worker platform is built on (src/machine/wait.ts), and the BDF check of the fault-injection API
// (src/protocol/faults.ts), which must accept exactly what the topology's BDF parser accepts.

import { describe, expect, it } from 'vitest';
import { waitWhileEqual } from '../src/machine/wait.ts';
import { validateFault } from '../src/protocol/faults.ts';

describe('waitWhileEqual', () => {
  it('refuses a NaN timeout with a RangeError naming the word, before looking at it or raising the waiter flag', () => {
    const view = new Int32Array(new SharedArrayBuffer(8));
    const waiters = { view, index: 1 };
    // The word already differs from `expected`: without the check this would simply return true.
    expect(() => waitWhileEqual(view, 0, 1, NaN, waiters)).toThrow(RangeError);
    expect(() => waitWhileEqual(view, 0, 1, NaN, waiters)).toThrow('wait on word 0: timeout is NaN');
    // The word equals `expected`: without the check both loops would run until it changed (never).
    expect(() => waitWhileEqual(view, 0, 0, NaN, waiters)).toThrow('wait on word 0: timeout is NaN');
    expect(view[1]).toBe(0);
    // A real timeout still times out (false: the word did not change).
    expect(waitWhileEqual(view, 0, 0, 0, waiters)).toBe(false);
  });
});

describe('validateFault: BDFs', () => {
  const MSG = /^faults\[3\]\.bdf: must be a "BB:DD\.F" address \(hex bus and device up to 1f, function 0-7\) \(got .+\)$/;

  it('refuses a device number above 0x1f (e.g. 00:ff.0), and other malformed BDFs, naming where', () => {
    for (const bdf of ['00:ff.0', '00:20.0', '01:80.1', '00:1f.8', '0:1f.0', '001:00.0', '00:00', 7]) {
      expect(() => validateFault({ kind: 'surprise-removal', bdf }, 'faults[3]')).toThrow(MSG);
    }
    expect(() => validateFault({ kind: 'flr-never-ready', bdf: '00:ff.0', trigger: { count: 'forever' } }, 'faults[3]')).toThrow(MSG);
  });

  it('accepts the largest device and function (00:1f.7) and normalises hex to lower case', () => {
    expect(validateFault({ kind: 'surprise-removal', bdf: '00:1f.7' })).toEqual({ kind: 'surprise-removal', bdf: '00:1f.7' });
    expect(validateFault({ kind: 'flr-slow', bdf: 'AB:1F.7', ms: 5 })).toEqual({ kind: 'flr-slow', bdf: 'ab:1f.7', ms: 5 });
  });
});
