// In-thread micro-benchmarks (npm run bench:micro) with the `benchmark` package: what one command costs
// to encode (the driver's buildCmd), to decode (field reads from the shared command layout, generic
// and through per-field readers as the TLBI handlers do), to check (the RES0 mask; the consumer's
// legality table pre-check), and to consume in the hardware model (fetch, legality, execute), without
// any thread in between.
//   consume     the SMMU's command queue consumer alone: 64 commands + CMD_SYNC written straight into
//               the queue, one CMDQ_PROD write, the machine run until idle (lockstep machine)
//   issue+consume  the same batch through the driver (Linux's lock-free issue path) and the hardware,
//               in lockstep: the compute cost of one batch with no communication latency

import Benchmark from 'benchmark';
import { parseScriptArgs } from '../src/host/cli/args.ts';
import { buildCmd, buildSync, type CmdEnt } from '../drivers/arm-smmu-v3/cmds.ts';
import { ArmSmmuDevice } from '../drivers/arm-smmu-v3/smmu.ts';
import { CMDQ_BATCH_ENTRIES } from '../drivers/arm-smmu-v3/cmdq.ts';
import { F, OP } from '../src/arch/smmu/commands.ts';
import { compileCommands, legalityTable, passesLegalityTable } from '../hw/smmu/legality.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { OFF } from '../src/arch/smmu/regs.ts';
import { STAT } from '../src/machine/layout.ts';
import { PA } from '../src/arch/platform.ts';
import { createLockstep } from '../src/host/lockstep.ts';

// No options, but --help answers and anything else is refused before the benchmarks start.
parseScriptArgs(process.argv.slice(2), {}, 'bench:micro');

const TLBI: CmdEnt = { op: 'TLBI_NH_VA', tlbi: { asid: 1, vmid: 0, addr: 0x1234_5000, leaf: true, num: 0, scale: 0, tg: 1, ttl: 3 } };
const out = new Uint32Array(4 * 64);
let sink = 0;

// One TLBI_NH_VA as the workload builds it, for the decode and legality cases.
const cmd = new Uint32Array(4);
buildCmd(cmd, 0, TLBI);
const compiled = compileCommands(DEFAULT_FEATURES);
const legality = legalityTable(compiled);
const rd = { OP: F.OP.reader(), ASID: F.ASID.reader(), VMID: F.VMID.reader(), LEAF: F.LEAF.reader(), VA: F.VA.reader(), NUM: F.NUM.reader(), SCALE: F.SCALE.reader(), TG: F.TG.reader(), TTL: F.TTL.reader() };

/** A probed lockstep system and a batch of 64 TLBI_NH_VA ready to issue. */
function lockstepBatch() {
  const ls = createLockstep({ features: DEFAULT_FEATURES });
  const dev = ArmSmmuDevice.probe(ls.platform, {});
  const batch = new Uint32Array(CMDQ_BATCH_ENTRIES * 4);
  for (let i = 0; i < CMDQ_BATCH_ENTRIES; i++) {
    buildCmd(batch, i * 4, TLBI);
    F.VA.write(batch, i * 4, 0x12345 + i);
  }
  return { ...ls, dev, batch };
}

// Hardware alone: the driver is not used after probe; the benchmark is the only producer.
const hw = lockstepBatch();
const q = hw.dev.shared.cmdq;
const qMask = (1 << q.shift) - 1;
/** Queue index with its wrap bit. */
const idxMask = (2 << q.shift) - 1;
const qi32 = hw.platform.mem.i32;
const qBase = hw.platform.mem.idx32(q.basePa);
let prod = Atomics.load(hw.views.smmu, OFF.CMDQ_CONS >>> 2) & idxMask;
const syncWords = new Uint32Array(4);
buildSync(syncWords, 0, 0);

let hwBatches = 0;
function hwBatch(): void {
  hwBatches++;
  for (let i = 0; i <= CMDQ_BATCH_ENTRIES; i++) {
    const src = i < CMDQ_BATCH_ENTRIES ? hw.batch : syncWords;
    const s = i < CMDQ_BATCH_ENTRIES ? i * 4 : 0;
    const d = qBase + ((prod + i) & qMask) * 4;
    qi32[d] = src[s]!;
    qi32[d + 1] = src[s + 1]!;
    qi32[d + 2] = src[s + 2]!;
    qi32[d + 3] = src[s + 3]!;
  }
  prod = (prod + CMDQ_BATCH_ENTRIES + 1) & idxMask;
  hw.machine.write({ pa: PA.SMMU_BASE + OFF.CMDQ_PROD, size: 4, lo: prod, hi: 0, cpu: 0 });
  hw.machine.run();
}

const both = lockstepBatch();

const results: { name: string; nsPerOp: number; perCmdNs: number; rme: number }[] = [];
const suite = new Benchmark.Suite('smmulab micro');
const add = (name: string, cmdsPerOp: number, fn: () => void) =>
  suite.add(name, fn, { onComplete: (e: Benchmark.Event) => {
    const b = e.target as unknown as Benchmark;
    const ns = 1e9 / b.hz!;
    results.push({ name, nsPerOp: ns, perCmdNs: ns / cmdsPerOp, rme: b.stats!.rme });
  } });

add('encode TLBI_NH_VA (buildCmd)', 1, () => buildCmd(out, 0, TLBI));
add('encode CFGI_STE (buildCmd)', 1, () => buildCmd(out, 4, { op: 'CFGI_STE', sid: 7, leaf: true }));
add('encode CMD_SYNC (buildSync)', 1, () => buildSync(out, 8, 0x4000_1000));
add('decode TLBI_NH_VA fields (F.*.read)', 1, () => {
  sink += F.OP.read(cmd) + F.ASID.read(cmd) + F.VMID.read(cmd) + F.LEAF.read(cmd) + F.VA.read(cmd) + F.NUM.read(cmd) + F.SCALE.read(cmd) + F.TG.read(cmd) + F.TTL.read(cmd);
});
add('decode TLBI_NH_VA fields (Field.reader)', 1, () => {
  sink += rd.OP(cmd) + rd.ASID(cmd) + rd.VMID(cmd) + rd.LEAF(cmd) + rd.VA(cmd) + rd.NUM(cmd) + rd.SCALE(cmd) + rd.TG(cmd) + rd.TTL(cmd);
});
add('legality RES0 mask (compiled data)', 1, () => {
  const cc = compiled[cmd[0]! & 0xff]!;
  const r = cc.res0;
  sink += (cmd[0]! & r[0]!) | (cmd[1]! & r[1]!) | (cmd[2]! & r[2]!) | (cmd[3]! & r[3]!);
});
add('legality table pre-check (passesLegalityTable)', 1, () => {
  sink += passesLegalityTable(legality, cmd) ? 1 : 0;
});
add('consume 64 TLBI + SYNC (hardware only)', CMDQ_BATCH_ENTRIES + 1, hwBatch);
add('issue+consume 64 TLBI + SYNC (driver + hardware, lockstep)', CMDQ_BATCH_ENTRIES + 1, () => {
  both.dev.issueRaw(both.batch, CMDQ_BATCH_ENTRIES, true);
});

suite.on('cycle', (e: Benchmark.Event) => process.stderr.write(`${String(e.target)}\n`));
suite.run();

// Every batch the hardware-only case wrote was executed.
const executed = hw.views.stats[STAT.EXEC + OP.TLBI_NH_VA]!;
if (executed !== hwBatches * CMDQ_BATCH_ENTRIES) throw new Error(`hardware executed ${executed} TLBI_NH_VA of ${hwBatches * CMDQ_BATCH_ENTRIES} written`);

const w = Math.max(...results.map((r) => r.name.length));
process.stdout.write(`${'benchmark'.padEnd(w)}  ${'ns/op'.padStart(10)}  ${'ns/command'.padStart(10)}  ±%\n`);
for (const r of results) {
  process.stdout.write(`${r.name.padEnd(w)}  ${r.nsPerOp.toFixed(1).padStart(10)}  ${r.perCmdNs.toFixed(1).padStart(10)}  ${r.rme.toFixed(1)}\n`);
}
