// Users' own kernel code (SystemOptions.extraOps, drivers/extra-ops.ts) and the kernel log's two reads
// (dmesg with its cursor, dmesg({ all: true }) without), through System as the package exports it.

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { System } from '../src/host/index.ts';

const fixture = (name: string) => new URL(`./fixtures/extra-ops/${name}.mjs`, import.meta.url);

describe('extraOps', () => {
  it('serves the module on every CPU next to the built-in operations', async () => {
    const sys = await System.boot({ cpus: 2, extraOps: fixture('good') });
    try {
      expect(await sys.extraOp(1, 'echo', { a: [1, 2] })).toEqual({ cpu: 1, request: { a: [1, 2] } });
      expect(await sys.extraOp(0, 'echo')).toEqual({ cpu: 0, request: undefined });
      expect(await sys.extraOp<number>(0, 'later', { value: 21 })).toBe(42);
      await expect(sys.extraOp(0, 'fail')).rejects.toThrow('cpu0 fail: my op failed');
      await expect(sys.extraOp(0, 'nope')).rejects.toThrow('cpu0 nope: unknown operation "nope"');
      // The built-in operations are untouched, and still check their requests.
      await sys.probe();
      expect((await sys.cpu(0).op('driverStats')).syncTimeouts).toBe(0);
      await expect(sys.cpu(0).rpc.call('dmesg', { x: 1 })).rejects.toThrow('dmesg: takes no arguments');
    } finally {
      await sys.shutdown();
    }
  });

  it('refuses a module that names a built-in operation or exports no ops', async () => {
    await expect(System.boot({ cpus: 1, extraOps: fixture('clash') })).rejects.toThrow(/cpu0 failed to start: extraOps .*clash\.mjs: ops\.probe: a built-in operation has that name/);
    await expect(System.boot({ cpus: 1, extraOps: fixture('none') })).rejects.toThrow(/cpu0 failed to start: extraOps .*none\.mjs: the module exports no 'ops' object/);
  });
});

describe('dmesg', () => {
  it('returns what is new and moves the cursor; { all: true } returns everything and moves nothing', async () => {
    // extraOps as a file path this time.
    const sys = await System.boot({ cpus: 2, extraOps: fileURLToPath(fixture('good')) });
    try {
      await sys.extraOp(0, 'say', { msg: 'one' });
      await sys.extraOp(1, 'say', { msg: 'two' });
      const msgs = (entries: { msg: string }[]) => entries.map((e) => e.msg);
      expect(msgs(await sys.dmesg({ all: true }))).toEqual(['one', 'two']);
      expect(msgs(await sys.dmesg())).toEqual(['one', 'two']);
      expect(msgs(await sys.dmesg())).toEqual([]);
      await sys.extraOp(0, 'say', { msg: 'three' });
      expect(msgs(await sys.dmesg({ all: true }))).toEqual(['one', 'two', 'three']);
      expect(msgs(await sys.dmesg({ all: true }))).toEqual(['one', 'two', 'three']);
      expect(msgs(await sys.dmesg())).toEqual(['three']);
    } finally {
      await sys.shutdown();
    }
  });
});
