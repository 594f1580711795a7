// Add a kernel operation of your own (my-ops.mjs), make the SMMU see the command it issues as illegal,
// and check what the driver logged: its GERROR handler skipped the command, your operation completed.
import assert from 'node:assert/strict';
import { System, STAT, CERROR } from 'smmulab';

const sys = await System.boot({ cpus: 2, extraOps: new URL('./my-ops.mjs', import.meta.url) });
try {
  await sys.probe({ irqCpu: 1 });
  await sys.inject({ kind: 'cmd-illegal' }); // the next command fetched is corrupted: CERROR_ILL
  const { ret } = await sys.extraOp(0, 'flushAsid', { asid: 7 });

  assert.equal(ret, 0); // the CMD_SYNC completed once the GERROR handler replaced the bad command
  assert.equal(sys.stat(STAT.CERROR + CERROR.ILL), 1);
  const log = (await sys.dmesg({ all: true })).map((e) => `cpu${e.cpu}: ${e.msg}`);
  console.log(log.join('\n'));
  assert.ok(log.some((m) => /: CMDQ error \(cons 0x[0-9a-f]+\): Illegal command$/.test(m)));
  assert.ok(log.some((m) => m.endsWith('skipping command in error state:')));
  assert.ok(log.some((m) => m.startsWith('cpu0: my-driver: flushed ASID 7: ret 0')));
} finally {
  await sys.shutdown();
}
