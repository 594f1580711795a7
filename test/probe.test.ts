// The driver's probe (Linux arm_smmu_device_probe / arm_smmu_device_reset, see notes/linux-smmu.md 1.2-1.3):
// the exact register writes in order, the final register state, the probe log lines, the
// invalidations each with its own CMD_SYNC, and the "SMMU currently enabled" path; in lockstep for
// the details, then once with real workers.

import { describe, expect, it } from 'vitest';
import { join64 } from '../src/arch/bits.ts';
import { STAT } from '../src/machine/layout.ts';
import { PA } from '../src/arch/platform.ts';
import type { PortWrite } from '../src/machine/mmio-port.ts';
import { CS, F, OP } from '../src/arch/smmu/commands.ts';
import { DEFAULT_FEATURES, PROFILES, type SmmuFeatures } from '../src/arch/smmu/features.ts';
import { GBPA, OFF } from '../src/arch/smmu/regs.ts';
import { ArmSmmuDevice, MSI_VECTORS } from '../drivers/arm-smmu-v3/smmu.ts';
import { lockstep, type Lockstep } from './helpers/lockstep.ts';
import { withSystem } from './helpers/system.ts';

const NAME_AT = new Map<number, string>(Object.entries(OFF).map(([n, o]) => [o, n]));
const RA = 1n << 62n;
const DEV = 'arm-smmu-v3 9050000.smmuv3: ';

/** Records every MMIO write CPU 0 sends to the SMMU, as "REG=value". */
function captureWrites(h: Lockstep): string[] {
  const out: string[] = [];
  const apply = h.machine.write.bind(h.machine);
  h.machine.write = (w: PortWrite) => {
    const off = w.pa - PA.SMMU_BASE;
    const v = w.size === 8 ? join64(w.lo, w.hi) : BigInt(w.lo >>> 0);
    out.push(`${NAME_AT.get(off) ?? `+0x${off.toString(16)}`}=0x${v.toString(16)}`);
    apply(w);
  };
  return out;
}

interface Expect {
  features: string;
  cmdqShift: number;
  evtqShift: number;
  strtabCfg: number;
  hyp: boolean;
  ats: boolean;
  msi: boolean;
}

const CASES: [string, SmmuFeatures, Expect][] = [
  ['default', DEFAULT_FEATURES, { features: '0x000897e7', cmdqShift: 14, evtqShift: 12, strtabCfg: 0x10210, hyp: true, ats: true, msi: true }],
  // SIDSIZE 6: a linear table of 64 STEs (FMT=0, LOG2SIZE=6).
  ['linear', PROFILES.linear!, { features: '0x000897e6', cmdqShift: 14, evtqShift: 12, strtabCfg: 0x6, hyp: true, ats: true, msi: true }],
  ['qemu-like', PROFILES['qemu-like']!, { features: '0x00008307', cmdqShift: 14, evtqShift: 12, strtabCfg: 0x10210, hyp: false, ats: false, msi: false }],
  ['v3.1-minimal', PROFILES['v3.1-minimal']!, { features: '0x00000387', cmdqShift: 8, evtqShift: 8, strtabCfg: 0x10210, hyp: false, ats: false, msi: true }],
  ['no-hyp', { ...DEFAULT_FEATURES, hyp: false }, { features: '0x000887e7', cmdqShift: 14, evtqShift: 12, strtabCfg: 0x10210, hyp: false, ats: true, msi: true }],
];

/** The register writes of arm_smmu_device_reset + arm_smmu_setup_irqs, in Linux's order. */
function linuxSequence(e: Expect, bases: { strtab: number; cmdq: number; evtq: number }): string[] {
  const h = (v: bigint | number) => `0x${v.toString(16)}`;
  const seq = [
    'CR0=0x0',
    'CR1=0xd75', // queues and tables: inner-shareable, write-back
    'CR2=0x6', // PTM | RECINVSID
    `STRTAB_BASE=${h(RA | BigInt(bases.strtab))}`,
    `STRTAB_BASE_CFG=${h(e.strtabCfg)}`,
    `CMDQ_BASE=${h(RA | BigInt(bases.cmdq) | BigInt(e.cmdqShift))}`,
    'CMDQ_PROD=0x0',
    'CMDQ_CONS=0x0',
    'CR0=0x8', // CMDQEN
    'CMDQ_PROD=0x2', // CFGI_ALL + CMD_SYNC
    ...(e.hyp ? ['CMDQ_PROD=0x4'] : []), // TLBI_EL2_ALL + CMD_SYNC
    `CMDQ_PROD=${h(e.hyp ? 6 : 4)}`, // TLBI_NSNH_ALL + CMD_SYNC
    `EVENTQ_BASE=${h(RA | BigInt(bases.evtq) | BigInt(e.evtqShift))}`,
    'EVENTQ_PROD=0x0',
    'EVENTQ_CONS=0x0',
    'CR0=0xc', // | EVENTQEN
    ...(e.ats ? ['CR0=0x1c'] : []), // | ATSCHK
    'IRQ_CTRL=0x0',
    'GERROR_IRQ_CFG0=0x0',
    'EVENTQ_IRQ_CFG0=0x0',
    ...(e.msi
      ? [
          `EVENTQ_IRQ_CFG0=${h(PA.MSI_DOORBELL)}`,
          `EVENTQ_IRQ_CFG1=${h(MSI_VECTORS.EVTQ)}`,
          'EVENTQ_IRQ_CFG2=0x1', // Device-nGnRE
          `GERROR_IRQ_CFG0=${h(PA.MSI_DOORBELL)}`,
          `GERROR_IRQ_CFG1=${h(MSI_VECTORS.GERROR)}`,
          'GERROR_IRQ_CFG2=0x1',
        ]
      : []),
    'IRQ_CTRL=0x5', // EVENTQ_IRQEN | GERROR_IRQEN
    `CR0=${h(e.ats ? 0x1d : 0xd)}`, // | SMMUEN
  ];
  return seq;
}

describe('probe (lockstep)', () => {
  for (const [name, f, e] of CASES) {
    it(`${name}: Linux's register writes in order, final state, log lines, one CMD_SYNC per invalidation`, () => {
      const h = lockstep(f);
      const writes = captureWrites(h);
      const dev = ArmSmmuDevice.probe(h.platform);
      const s = dev.shared;
      expect(s.strtab.twoLevel).toBe(e.strtabCfg !== 0x6);
      expect(writes).toEqual(linuxSequence(e, { strtab: s.strtab.basePa, cmdq: s.cmdq.basePa, evtq: s.evtq.basePa }));

      // Final register state as the hardware exposes it.
      const r = (n: keyof typeof OFF) => h.io.read32(OFF[n]);
      expect(r('CR0ACK')).toBe(e.ats ? 0x1d : 0xd); // SMMUEN | EVENTQEN | CMDQEN (| ATSCHK)
      expect(r('CR0')).toBe(r('CR0ACK'));
      expect(r('CR1')).toBe(0xd75);
      expect(r('CR2')).toBe(0x2); // PTM is RES0 without IDR0.BTM
      expect(r('IRQ_CTRLACK')).toBe(0x5);
      expect(r('GBPA')).toBe(0);
      expect(r('STRTAB_BASE_CFG')).toBe(e.strtabCfg);
      expect(h.io.read64(OFF.CMDQ_BASE)).toBe(RA | BigInt(s.cmdq.basePa) | BigInt(e.cmdqShift));
      expect(h.io.read64(OFF.GERROR_IRQ_CFG0)).toBe(e.msi ? BigInt(PA.MSI_DOORBELL) : 0n);
      expect(r('GERROR_IRQ_CFG1')).toBe(e.msi ? MSI_VECTORS.GERROR : 0);
      expect(r('EVENTQ_IRQ_CFG1')).toBe(e.msi ? MSI_VECTORS.EVTQ : 0);
      expect(r('GERROR') ^ r('GERRORN')).toBe(0);

      expect(h.log().slice(0, 3)).toEqual([
        `${DEV}ias 48-bit, oas 48-bit (features ${e.features})`,
        `${DEV}allocated ${1 << e.cmdqShift} entries for cmdq`,
        `${DEV}allocated ${1 << e.evtqShift} entries for evtq`,
      ]);
      expect(h.log().filter((l) => !l.startsWith(DEV))).toEqual([]);
      expect(h.platform.dmesg().filter((l) => l.level === 'err' || l.level === 'warn')).toEqual([]);

      // CFGI_ALL, TLBI_EL2_ALL (HYP only) and TLBI_NSNH_ALL, each followed by its own CMD_SYNC.
      expect(h.exec('CFGI_STE_RANGE')).toBe(1);
      expect(h.exec('TLBI_EL2_ALL')).toBe(e.hyp ? 1 : 0);
      expect(h.exec('TLBI_NSNH_ALL')).toBe(1);
      expect(h.exec('SYNC')).toBe(e.hyp ? 3 : 2);
      expect(h.execTotal()).toBe(e.hyp ? 6 : 4);
      const slot = (i: number) => Array.from({ length: 4 }, (_, k) => h.platform.mem.read32(s.cmdq.basePa + 16 * i + 4 * k));
      const ops = e.hyp ? [OP.CFGI_STE_RANGE, OP.TLBI_EL2_ALL, OP.TLBI_NSNH_ALL] : [OP.CFGI_STE_RANGE, OP.TLBI_NSNH_ALL];
      ops.forEach((op, k) => {
        expect(slot(2 * k)[0]! & 0xff).toBe(op);
        const sync = Uint32Array.from(slot(2 * k + 1));
        if (s.cmdq.msiPoll) {
          // MSI-poll: the SMMU wrote MSIData (0) over the SYNC's first word, at the address it carries.
          expect(sync[0]).toBe(0);
          expect(F.MSIADDR.read(sync) * 4).toBe(s.cmdq.basePa + 16 * (2 * k + 1));
        } else {
          expect(sync[0]! & 0xff).toBe(OP.SYNC);
          expect(F.CS.read(sync)).toBe(CS.SIG_SEV);
        }
      });
      expect(F.RANGE.read(Uint32Array.from(slot(0)))).toBe(31); // CFGI_ALL
    });
  }

  it('probing an SMMU that is already enabled sets GBPA.ABORT first, then resets it as usual', () => {
    const h = lockstep(DEFAULT_FEATURES);
    const first = ArmSmmuDevice.probe(h.platform);
    // A new kernel (kexec) finds the SMMU as the old one left it; the old one's handlers are gone.
    h.platform.freeIrq(first.shared.irqVectors.gerror);
    h.platform.freeIrq(first.shared.irqVectors.evtq);
    const writes = captureWrites(h);
    const dev = ArmSmmuDevice.probe(h.platform);
    expect(h.log()).toContain(`${DEV}SMMU currently enabled! Resetting...`);
    expect(h.platform.dmesg().find((l) => l.msg.endsWith('Resetting...'))!.level).toBe('warn');
    expect(writes.slice(0, 3)).toEqual([`GBPA=0x${((GBPA.ABORT.bits | GBPA.Update.bits) >>> 0).toString(16)}`, 'CR0=0x0', 'CR1=0xd75']);
    expect(h.io.read32(OFF.GBPA)).toBe(GBPA.ABORT.bits); // Update completed
    expect(h.io.read32(OFF.CR0ACK)).toBe(0x1d);
    expect(h.io.read64(OFF.CMDQ_BASE) & ~0x1fn & ~RA).toBe(BigInt(dev.shared.cmdq.basePa)); // the new queue
    expect(h.exec('CFGI_STE_RANGE')).toBe(2);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(2);
    expect(h.exec('SYNC')).toBe(6);
    expect(dev.issueCmdWithSync({ op: 'TLBI_NSNH_ALL' })).toBe(0);
    expect(h.exec('TLBI_NSNH_ALL')).toBe(3);
  });

  it('CR2 keeps PTM when the SMMU has broadcast TLB maintenance', () => {
    const h = lockstep({ ...DEFAULT_FEATURES, btm: true });
    ArmSmmuDevice.probe(h.platform);
    expect(h.io.read32(OFF.CR2)).toBe(0x6);
  });
});

describe('probe with real workers', () => {
  it('2 CPUs: CPU 0 probes, CPU 1 joins; log lines, executed commands and final registers', async () => {
    await withSystem({ cpus: 2 }, async (s) => {
      const shared = await s.sys.probe();
      expect(shared.features).toBe(0x897e7);
      const log = await s.messages(0);
      expect(log.slice(0, 3)).toEqual([
        `${DEV}ias 48-bit, oas 48-bit (features 0x000897e7)`,
        `${DEV}allocated 16384 entries for cmdq`,
        `${DEV}allocated 4096 entries for evtq`,
      ]);
      expect(await s.messages(1)).toEqual([]);
      expect(s.exec('CFGI_STE_RANGE')).toBe(1);
      expect(s.exec('TLBI_EL2_ALL')).toBe(1);
      expect(s.exec('TLBI_NSNH_ALL')).toBe(1);
      expect(s.exec('SYNC')).toBe(3);
      expect(s.stat(STAT.CERROR + 1)).toBe(0);
      expect(s.reg('CR0ACK')).toBe(0x1d);
      expect(s.reg('CR1')).toBe(0xd75);
      expect(s.reg('IRQ_CTRLACK')).toBe(0x5);
      expect(s.reg('STRTAB_BASE_CFG')).toBe(0x10210);
      expect(s.reg('CMDQ_PROD')).toBe(6);
      expect(s.reg('CMDQ_CONS')).toBe(6);
      // CPU 1 issues through the queue CPU 0 set up.
      const w = await s.workload(1, { batch: 3, iterations: 2 });
      expect(w.syncTimeouts).toBe(0);
      expect(s.exec('TLBI_NH_VA')).toBe(6);
      expect(s.reg('CMDQ_CONS')).toBe(6 + 8);
    });
  });
});
