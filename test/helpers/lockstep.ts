// Test helpers for one-thread (lockstep) systems: the SMMU's registers through the generic write path,
// the driver probed on CPU 0, statistics by opcode name, and raw command encoding.

import { createLockstep } from '../../src/host/lockstep.ts';
import { toBody } from '../../src/host/trace.ts';
import { CTRL, STAT } from '../../src/machine/layout.ts';
import { PA, SMMU_BYTES } from '../../src/arch/platform.ts';
import type { Field } from '../../src/arch/bits.ts';
import { OP, type CommandName } from '../../src/arch/smmu/commands.ts';
import { CMDQ_CONS, CR0, GERROR, OFF } from '../../src/arch/smmu/regs.ts';
import type { SmmuFeatures } from '../../src/arch/smmu/features.ts';
import { ArmSmmuDevice } from '../../drivers/arm-smmu-v3/smmu.ts';
import { type SmmuDriverOptions } from '../../src/protocol/ops/smmu.ts';
import { buildCmd, type CmdEnt } from '../../drivers/arm-smmu-v3/cmds.ts';

/** CR0/IRQ_CTRL/GBPA acknowledgement latency used by these tests (platform ns). */
export const ACK_NS = 5_000;

export type Lockstep = ReturnType<typeof lockstep>;

/** A lockstep machine with nothing programmed yet; `io` is CPU 0's ioremap of the SMMU. */
export function lockstep(features: SmmuFeatures, ackLatencyNs = ACK_NS) {
  const ls = createLockstep({ features, ackLatencyNs, memBytes: 8 << 20, trace: { points: '*' } });
  const traced: string[] = [];
  const io = ls.platform.ioremap(PA.SMMU_BASE, SMMU_BYTES);
  const stats = ls.views.stats;
  return {
    ...ls,
    io,
    regs: ls.machine.smmu.regs,
    stats,
    /** Commands the hardware executed with this opcode (by spec name without CMD_, or number). */
    exec: (op: CommandName | number) => stats[STAT.EXEC + (typeof op === 'number' ? op : OP[op])]!,
    cerror: (code: number) => stats[STAT.CERROR + code]!,
    stat: (slot: number) => stats[slot]!,
    /** Every command the hardware executed, whatever its opcode. */
    execTotal: () => stats.slice(STAT.EXEC, STAT.EXEC + 256).reduce((a, b) => a + b, 0),
    sev: () => Atomics.load(ls.views.ctrl, CTRL.SEV),
    /** True while GERROR.CMDQ_ERR is active (GERROR != GERRORN). */
    cmdqErrActive: () => ((io.read32(OFF.GERROR) ^ io.read32(OFF.GERRORN)) & GERROR.CMDQ_ERR.bits) !== 0,
    cons: () => io.read32(OFF.CMDQ_CONS),
    consRd: () => CMDQ_CONS.RD.get(io.read32(OFF.CMDQ_CONS)),
    consErr: () => CMDQ_CONS.ERR.get(io.read32(OFF.CMDQ_CONS)),
    /** Kernel log messages of CPU 0 so far. */
    log: () => ls.platform.dmesg().map((e) => e.msg),
    /** Trace lines (`name field=value ...`) of every point so far: ignored writes, command errors, ... */
    trace: () => {
      traced.push(...ls.trace().map(toBody));
      return traced;
    },
  };
}

/** A lockstep machine with the driver probed on CPU 0. */
export function probed(features: SmmuFeatures, opts: SmmuDriverOptions = {}) {
  const h = lockstep(features);
  const dev = ArmSmmuDevice.probe(h.platform, opts);
  return { ...h, dev };
}

/** One command built the way the driver builds it. */
export function cmd(ent: CmdEnt): Uint32Array {
  const w = new Uint32Array(4);
  buildCmd(w, 0, ent);
  return w;
}

/** A raw command: an opcode and field values (anything else zero). */
export function raw(op: number, fields: [Field, number][] = []): Uint32Array {
  const w = new Uint32Array(4);
  w[0] = op & 0xff;
  for (const [f, v] of fields) f.write(w, 0, v);
  return w;
}

/** A raw command with one extra bit set (bit n of the 128-bit command). */
export function withBit(c: Uint32Array, n: number): Uint32Array {
  const w = Uint32Array.from(c);
  w[n >>> 5] = (w[n >>> 5]! | (1 << (n & 31))) >>> 0;
  return w;
}

/** Concatenates commands into one buffer of 4 words each. */
export function cmds(...list: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(list.length * 4);
  list.forEach((c, i) => out.set(c, i * 4));
  return out;
}

/** A freshly allocated, zeroed DRAM page's physical address. */
export const page = (h: Lockstep, pages = 1) => BigInt(h.platform.pages.alloc(pages));

/** A queue base register value (6.3.26): RA/WA hint, address, LOG2SIZE. */
export const queueAt = (pa: bigint, log2: number) => (1n << 62n) | pa | BigInt(log2);

/**
 * A command queue programmed by hand through the registers (no driver) and enabled. `log2` is the
 * size the SMMU uses; `programmedLog2` what CMDQ_BASE.LOG2SIZE says (the SMMU caps it at IDR1.CMDQS).
 */
export function manualQueue(h: Lockstep, log2 = 4, programmedLog2 = log2) {
  const size = 1 << log2;
  const pa = Number(page(h, Math.max(1, (16 << programmedLog2) / 4096)));
  h.io.write64(OFF.CMDQ_BASE, queueAt(BigInt(pa), programmedLog2));
  h.io.write32(OFF.CMDQ_PROD, 0);
  h.io.write32(OFF.CMDQ_CONS, 0);
  h.io.write32(OFF.CR0, CR0.CMDQEN.bits);
  h.platform.delay(ACK_NS);
  let prod = 0;
  return {
    pa,
    size,
    slot: (i: number) => pa + (i & (size - 1)) * 16,
    /** Writes commands at PROD and rings the doorbell once. */
    push(...list: Uint32Array[]) {
      for (const c of list) {
        for (let k = 0; k < 4; k++) h.platform.mem.write32(pa + (prod & (size - 1)) * 16 + 4 * k, c[k]!);
        prod = (prod + 1) & (2 * size - 1);
      }
      h.io.write32(OFF.CMDQ_PROD, prod);
    },
    /** PROD as software last wrote it (index and wrap bit). */
    prod: () => prod,
  };
}
