// Boot the emulator, probe the SMMU, make two command fetches abort, run a workload, check what the
// SMMU executed and what the driver logged, and shut down (plain Node: `node api-basic.mjs`).
import assert from 'node:assert/strict';
import { System, STAT, CERROR, cerrorsByName, executedByOpcode, formatLog } from 'smmulab';

const sys = await System.boot({ cpus: 2 });
try {
  await sys.probe({ irqCpu: 1 }); // CPU 1 takes the GERROR interrupt
  await sys.inject({ kind: 'cmd-fetch-abort', trigger: { count: 2 } }); // the next 2 fetches abort
  const before = sys.stats();
  const run = await sys.cpu(0).op('workload', { batch: 8, iterations: 10 }); // 10 x (8 TLBI_NH_VA + CMD_SYNC)
  const after = sys.stats();

  assert.deepEqual(executedByOpcode(before, after), run.issuedByOpcode); // nothing lost, nothing twice
  assert.deepEqual(cerrorsByName(before, after), { CERROR_ABT: 2 });
  assert.equal(sys.stat(STAT.CERROR + CERROR.ABT), 2);
  const log = await sys.dmesg({ all: true }); // the whole kernel log; dmesg() alone returns what is new
  assert.equal(log.filter((e) => e.msg.endsWith('retrying command fetch')).length, 2);
  console.log(log.map(formatLog).join('\n'));
} finally {
  await sys.shutdown(); // ends the workers: the process exits
}
