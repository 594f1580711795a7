// Queue wrap-around (IHI 0070 3.5.1, 6.3.26-28): PROD/CONS carry a wrap flag at bit QS; the queue is
// used many times over, by the hardware alone, through the driver in lockstep, and with real workers.
// Counts are exact and the indexes are checked after every batch.

import { describe, expect, it } from 'vitest';
import { F, OP } from '../src/arch/smmu/commands.ts';
import { PROFILES } from '../src/arch/smmu/features.ts';
import { CMDQ_CONS, OFF } from '../src/arch/smmu/regs.ts';
import { cmds, lockstep, manualQueue, probed, raw } from './helpers/lockstep.ts';
import { rng } from '../src/protocol/random.ts';
import { withSystem } from './helpers/system.ts';

const MINIMAL = PROFILES['v3.1-minimal']!; // IDR1.CMDQS = 8: 256 entries
const NSNH = () => raw(OP.TLBI_NSNH_ALL);
describe('hardware alone', () => {
  it('a 4-entry queue wraps 100 times: CONS follows PROD with the wrap flag at bit 2, bits above it read 0', () => {
    const h = lockstep(MINIMAL);
    const q = manualQueue(h, 2);
    let total = 0;
    const rnd = rng(1);
    const seenWraps = new Set<number>();
    while (total < 400) {
      const n = 1 + Math.floor(rnd() * 4); // 1..4: a batch of 4 fills the queue (indexes equal, wraps differ)
      q.push(...Array.from({ length: n }, NSNH));
      total += n;
      const cons = h.io.read32(OFF.CMDQ_CONS);
      expect(cons).toBe(total & 7);
      expect(cons).toBe(q.prod());
      seenWraps.add(cons >> 2);
      expect(h.exec('TLBI_NSNH_ALL')).toBe(total);
    }
    expect([...seenWraps].sort()).toEqual([0, 1]);
    expect(h.cmdqErrActive()).toBe(false);
  });

  it('CMDQ_BASE.LOG2SIZE above IDR1.CMDQS is capped: the wrap flag sits at bit CMDQS', () => {
    const h = lockstep(MINIMAL);
    const q = manualQueue(h, 8, 10); // programmed 2^10, the SMMU uses 2^8
    for (let i = 0; i < 3; i++) q.push(...Array.from({ length: 200 }, NSNH));
    expect(h.exec('TLBI_NSNH_ALL')).toBe(600);
    expect(h.io.read32(OFF.CMDQ_CONS)).toBe(600 & 0x1ff);
    expect(h.io.read64(OFF.CMDQ_BASE) & 0x1fn).toBe(10n); // readback shows what was written
  });

  it('an inconsistent PROD (more than a queue ahead of CONS) is not consumed', () => {
    const h = lockstep(MINIMAL);
    const q = manualQueue(h, 2);
    q.push(NSNH(), NSNH());
    expect(h.io.read32(OFF.CMDQ_CONS)).toBe(2);
    h.io.write32(OFF.CMDQ_PROD, 2 + 5); // index 3, wrap 1: 5 entries ahead in a 4-entry queue
    expect(h.io.read32(OFF.CMDQ_CONS)).toBe(2);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(2);
    expect(h.trace().some((t) => t.startsWith('smmuv3_cmdq_inconsistent '))).toBe(true);
    h.platform.mem.write32(q.slot(2), OP.TLBI_NSNH_ALL);
    h.io.write32(OFF.CMDQ_PROD, 3); // consistent again: one more entry
    expect(h.io.read32(OFF.CMDQ_CONS)).toBe(3);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(3);
  });
});

describe('through the driver (lockstep)', () => {
  for (const [mode, opts] of [
    ['MSI-poll', {}],
    ['CONS-poll', { disableMsiPolling: true }],
  ] as const) {
    it(`${mode}: more than 20 times round a 256-entry queue in random batches (1..200 commands + CMD_SYNC)`, () => {
      const h = probed(MINIMAL, opts);
      expect(h.dev.shared.cmdq.shift).toBe(8);
      expect(h.dev.shared.cmdq.msiPoll).toBe(mode === 'MSI-poll');
      let entries = h.io.read32(OFF.CMDQ_PROD); // the probe's commands and syncs
      expect(entries).toBe(4);
      const sync0 = h.exec('SYNC');
      const rnd = rng(7);
      let issued = 0;
      let batches = 0;
      while (entries < 21 * 256) {
        const n = 1 + Math.floor(rnd() * 200);
        const list = Array.from({ length: n }, (_, i) => raw(OP.TLBI_NH_VA, [[F.ASID, 1], [F.VA, issued + i]]));
        expect(h.dev.issueRaw(cmds(...list), n, true)).toBe(0);
        issued += n;
        entries += n + 1;
        batches++;
        const prod = h.io.read32(OFF.CMDQ_PROD);
        const cons = h.io.read32(OFF.CMDQ_CONS);
        expect(prod).toBe(entries & 0x1ff);
        expect(CMDQ_CONS.RD.get(cons)).toBe(prod);
        expect(h.exec('TLBI_NH_VA')).toBe(issued);
        expect(h.exec('SYNC')).toBe(sync0 + batches);
      }
      expect(h.log().filter((l) => l.includes('timeout'))).toEqual([]);
      expect(h.dev.cmdq.issuedCmds).toBe(issued + 2); // + the probe's two commands
    });
  }
});

describe('with real workers', () => {
  it('1 CPU, 256-entry queue, batches of 100 (issued as 64 + 36 + CMD_SYNC) more than 20 times round', async () => {
    await withSystem({ cpus: 1, features: MINIMAL }, async (s) => {
      await s.sys.probe();
      const sync0 = s.exec('SYNC');
      const w = await s.workload(0, { batch: 100, iterations: 55 });
      expect(w.batches).toBe(55);
      expect(w.syncTimeouts).toBe(0);
      expect(s.exec('TLBI_NH_VA')).toBe(5500);
      expect(s.exec('SYNC')).toBe(sync0 + 55);
      const entries = 4 + 55 * 101;
      expect(entries).toBeGreaterThan(20 * 256);
      expect(s.reg('CMDQ_PROD')).toBe(entries & 0x1ff);
      expect(s.reg('CMDQ_CONS')).toBe(entries & 0x1ff);
    });
  });
});
