// One SMMUv3 implementation as data: for a feature set, which register fields exist and the ID register
// values that advertise them (6.3.1-6.3.8).
//
// A field whose feature is absent is RES0 in the register map (spec 6.3: "Reserved, RES0" when the ID
// bit is 0), so the generic write path drops it and it never reaches CR0ACK — the architected
// "unsupported bits are not acknowledged".

import { bits, range, type Field } from '../bits.ts';
import { fieldDef as fd, reg, type RegisterDef, type RegisterMap } from '../regmap.ts';
import type { SmmuFeatures } from './features.ts';
import { AIDR, CMDQ_CONS, CR0, CR1, CR2, GBPA, GERROR, IDR0, IDR1, IDR3, IDR5, IIDR, IRQ_CFG0, IRQ_CFG1, IRQ_CFG2, IRQ_CTRL, OAS_BITS, OFF, Q_BASE, Q_IDX, Q_OVFLG, SMMU_MMIO_SIZE, STALL_MODEL_NONE, STRTAB_BASE, STRTAB_BASE_CFG, TTENDIAN_LE, TTF_AARCH64, type SmmuRegName } from './regs.ts';

const f = (fields: Record<string, Field>, access: 'RO' | 'RW', pick?: (name: string) => boolean) =>
  Object.values(fields)
    .filter((x) => (pick ? pick(x.name) : true))
    .map((x) => fd(x, access));

/** Guard pair: writable only while the enable is 0 in both the request and its ACK register (6.3). */
const enGuard = (req: string, ack: string, field: string) => [`${req}.${field}`, `${ack}.${field}`];

/**
 * The SMMUv3 register map for one feature set. ID register values are filled in by the device from
 * the same feature set (smmuIdRegisters below).
 */
export function smmuRegisterMap(feat: SmmuFeatures): RegisterMap<SmmuRegName> {
  const cr0Present = (n: string) =>
    n === 'SMMUEN' || n === 'CMDQEN' || n === 'EVENTQEN' || (n === 'ATSCHK' && feat.ats) || (n === 'PRIQEN' && feat.pri) ||
    (n === 'VMW' && feat.vmw && feat.stage2);
  const irqPresent = (n: string) => n !== 'PRIQ_IRQEN' || feat.pri;
  const cr2Present = (n: string) =>
    n === 'RECINVSID' || (n === 'E2H' && feat.hyp) || (n === 'PTM' && feat.btm) || (n === 'REC_CFG_ATS' && feat.atsRecErr);
  const gerrorPresent = (n: string) => {
    if (n.startsWith('MSI_')) return feat.msi && (n !== 'MSI_PRIQ_ABT_ERR' || feat.pri);
    if (n === 'PRIQ_ABT_ERR') return feat.pri;
    return true;
  };
  const id = (name: SmmuRegName): RegisterDef<SmmuRegName> => reg(name, OFF[name], 32, [fd(range('VALUE', 31, 0), 'RO')], { spec: '6.3.1-8' });
  const msiCfg = (prefix: 'GERROR' | 'EVENTQ' | 'PRIQ', irqen: string, spec: string): RegisterDef<SmmuRegName>[] => {
    const guards = enGuard('IRQ_CTRL', 'IRQ_CTRLACK', irqen);
    const cfg2 = prefix === 'PRIQ' ? [fd(IRQ_CFG2.LO, 'RW')] : [];
    if (!feat.msi) {
      // Without MSI support the MSI fields are RES0 (6.3.1 MSI); PRIQ_IRQ_CFG2.LO remains.
      return prefix === 'PRIQ' ? [reg(`${prefix}_IRQ_CFG2`, OFF[`${prefix}_IRQ_CFG2`], 32, cfg2, { guards, spec })] : [];
    }
    return [
      reg(`${prefix}_IRQ_CFG0`, OFF[`${prefix}_IRQ_CFG0`], 64, [fd(IRQ_CFG0.ADDR, 'RW')], { guards, spec }),
      reg(`${prefix}_IRQ_CFG1`, OFF[`${prefix}_IRQ_CFG1`], 32, [fd(IRQ_CFG1.DATA, 'RW')], { guards, spec }),
      reg(`${prefix}_IRQ_CFG2`, OFF[`${prefix}_IRQ_CFG2`], 32, [fd(IRQ_CFG2.MemAttr, 'RW'), fd(IRQ_CFG2.SH, 'RW'), ...cfg2], { guards, spec }),
    ];
  };
  const queueBase = (name: 'CMDQ_BASE' | 'EVENTQ_BASE' | 'PRIQ_BASE', en: string, spec: string) =>
    reg(name, OFF[name], 64, f(Q_BASE, 'RW'), { guards: enGuard('CR0', 'CR0ACK', en), spec });

  const registers: RegisterDef<SmmuRegName>[] = [
    id('IDR0'),
    id('IDR1'),
    id('IDR2'),
    id('IDR3'),
    id('IDR4'),
    id('IDR5'),
    id('IIDR'),
    id('AIDR'),
    reg('CR0', OFF.CR0, 32, f(CR0, 'RW', cr0Present), { role: { kind: 'request', ack: 'CR0ACK' }, spec: '6.3.9' }),
    reg('CR0ACK', OFF.CR0ACK, 32, f(CR0, 'RO', cr0Present), { role: { kind: 'ack', of: 'CR0' }, spec: '6.3.10' }),
    // CR1 has two guards in the spec (TABLE_* on SMMUEN, QUEUE_* on the queue enables); the register map
    // guards per register, so CR1 is guarded by the union: Linux writes CR1 once, with everything off.
    reg('CR1', OFF.CR1, 32, f(CR1, 'RW'), {
      guards: [
        ...enGuard('CR0', 'CR0ACK', 'SMMUEN'),
        ...enGuard('CR0', 'CR0ACK', 'CMDQEN'),
        ...enGuard('CR0', 'CR0ACK', 'EVENTQEN'),
        ...(feat.pri ? enGuard('CR0', 'CR0ACK', 'PRIQEN') : []),
      ],
      spec: '6.3.11',
    }),
    reg('CR2', OFF.CR2, 32, f(CR2, 'RW', cr2Present), { guards: enGuard('CR0', 'CR0ACK', 'SMMUEN'), spec: '6.3.12' }),
    reg('STATUSR', OFF.STATUSR, 32, feat.dormhint ? [fd(bits('DORMANT', 0), 'RO')] : [], { spec: '6.3.13' }),
    reg('GBPA', OFF.GBPA, 32, f(GBPA, 'RW'), {
      guards: ['GBPA.Update'],
      role: { kind: 'update', bit: 'Update' },
      reset: feat.gbpaAbortAtReset ? GBPA.ABORT.bits : 0,
      spec: '6.3.14',
    }),
    reg('AGBPA', OFF.AGBPA, 32, [], { spec: '6.3.15' }),
    reg('IRQ_CTRL', OFF.IRQ_CTRL, 32, f(IRQ_CTRL, 'RW', irqPresent), { role: { kind: 'request', ack: 'IRQ_CTRLACK' }, spec: '6.3.16' }),
    reg('IRQ_CTRLACK', OFF.IRQ_CTRLACK, 32, f(IRQ_CTRL, 'RO', irqPresent), { role: { kind: 'ack', of: 'IRQ_CTRL' }, spec: '6.3.18' }),
    reg('GERROR', OFF.GERROR, 32, f(GERROR, 'RO', gerrorPresent), { spec: '6.3.19' }),
    reg('GERRORN', OFF.GERRORN, 32, f(GERROR, 'RW', gerrorPresent), { role: { kind: 'toggle-ack', of: 'GERROR' }, spec: '6.3.20' }),
    ...msiCfg('GERROR', 'GERROR_IRQEN', '6.3.21-23'),
    reg('STRTAB_BASE', OFF.STRTAB_BASE, 64, f(STRTAB_BASE, 'RW'), { guards: enGuard('CR0', 'CR0ACK', 'SMMUEN'), spec: '6.3.24' }),
    reg('STRTAB_BASE_CFG', OFF.STRTAB_BASE_CFG, 32, f(STRTAB_BASE_CFG, 'RW', (n) => n === 'LOG2SIZE' || feat.twoLevelStrtab), {
      guards: enGuard('CR0', 'CR0ACK', 'SMMUEN'),
      spec: '6.3.25',
    }),
    queueBase('CMDQ_BASE', 'CMDQEN', '6.3.26'),
    // CMDQ_PROD is always writable; a write is the doorbell (6.3.27).
    reg('CMDQ_PROD', OFF.CMDQ_PROD, 32, [fd(Q_IDX.WR, 'RW')], { role: { kind: 'doorbell' }, spec: '6.3.27' }),
    // CMDQ_CONS: RD writable only with the queue off; ERR is written by the SMMU only (this model
    // takes the permitted choice of ignoring software writes to ERR, 6.3.28).
    reg('CMDQ_CONS', OFF.CMDQ_CONS, 32, [fd(CMDQ_CONS.RD, 'RW'), fd(CMDQ_CONS.ERR, 'RO')], {
      guards: enGuard('CR0', 'CR0ACK', 'CMDQEN'),
      spec: '6.3.28',
    }),
    queueBase('EVENTQ_BASE', 'EVENTQEN', '6.3.29'),
    ...msiCfg('EVENTQ', 'EVENTQ_IRQEN', '6.3.30-32'),
    reg('EVENTQ_PROD', OFF.EVENTQ_PROD, 32, [fd(Q_IDX.WR, 'RW'), fd(Q_OVFLG, 'RW')], {
      guards: enGuard('CR0', 'CR0ACK', 'EVENTQEN'),
      spec: '6.3.95',
    }),
    reg('EVENTQ_CONS', OFF.EVENTQ_CONS, 32, [fd(Q_IDX.WR, 'RW'), fd(Q_OVFLG, 'RW')], { role: { kind: 'doorbell' }, spec: '6.3.96' }),
  ];
  if (feat.pri) {
    registers.push(
      queueBase('PRIQ_BASE', 'PRIQEN', '6.3.33'),
      reg('PRIQ_PROD', OFF.PRIQ_PROD, 32, [fd(Q_IDX.WR, 'RW'), fd(Q_OVFLG, 'RW')], { guards: enGuard('CR0', 'CR0ACK', 'PRIQEN'), spec: '6.3.97' }),
      reg('PRIQ_CONS', OFF.PRIQ_CONS, 32, [fd(Q_IDX.WR, 'RW'), fd(Q_OVFLG, 'RW')], { role: { kind: 'doorbell' }, spec: '6.3.98' }),
    );
  }
  registers.push(...msiCfg('PRIQ', 'PRIQ_IRQEN', '6.3.34-36').filter(() => feat.pri));
  return { name: 'smmuv3', size: SMMU_MMIO_SIZE, registers };
}

/** The architecture revision a feature set is reported as (AIDR.ArchMinorRev). */
export function archMinorRev(f: SmmuFeatures): number {
  return f.ril ? 2 : 1;
}

/** ID register values advertising a feature set (6.3.1-6.3.8). */
export const ID_REGISTERS = ['IDR0', 'IDR1', 'IDR2', 'IDR3', 'IDR4', 'IDR5', 'IIDR', 'AIDR'] as const;

export function smmuIdRegisters(f: SmmuFeatures): Record<(typeof ID_REGISTERS)[number], number> {
  const b = (x: boolean) => (x ? 1 : 0);
  let idr0 = 0;
  idr0 = IDR0.S2P.set(idr0, b(f.stage2));
  idr0 = IDR0.S1P.set(idr0, b(f.stage1));
  idr0 = IDR0.TTF.set(idr0, TTF_AARCH64);
  idr0 = IDR0.COHACC.set(idr0, b(f.cohacc));
  idr0 = IDR0.BTM.set(idr0, b(f.btm));
  idr0 = IDR0.DORMHINT.set(idr0, b(f.dormhint));
  idr0 = IDR0.HYP.set(idr0, b(f.hyp));
  idr0 = IDR0.ATS.set(idr0, b(f.ats));
  idr0 = IDR0.ASID16.set(idr0, b(f.asid16));
  idr0 = IDR0.MSI.set(idr0, b(f.msi));
  idr0 = IDR0.SEV.set(idr0, b(f.sev));
  idr0 = IDR0.PRI.set(idr0, b(f.pri));
  idr0 = IDR0.VMW.set(idr0, b(f.vmw));
  idr0 = IDR0.VMID16.set(idr0, b(f.vmid16 && f.stage2));
  idr0 = IDR0.CD2L.set(idr0, b(f.cd2l && f.stage1));
  idr0 = IDR0.TTENDIAN.set(idr0, TTENDIAN_LE);
  idr0 = IDR0.ATSRECERR.set(idr0, b(f.atsRecErr));
  // No stall model: STE.S2S and CD.S must be 0, and CMD_RESUME / CMD_STALL_TERM are unavailable.
  idr0 = IDR0.STALL_MODEL.set(idr0, STALL_MODEL_NONE);
  // TERM_MODEL=1: terminated transactions always abort (CD.A must be 1), as Linux expects.
  idr0 = IDR0.TERM_MODEL.set(idr0, 1);
  idr0 = IDR0.ST_LEVEL.set(idr0, b(f.twoLevelStrtab));

  let idr1 = 0;
  idr1 = IDR1.SIDSIZE.set(idr1, f.sidBits);
  idr1 = IDR1.SSIDSIZE.set(idr1, f.stage1 ? f.ssidBits : 0);
  idr1 = IDR1.PRIQS.set(idr1, f.pri ? f.priqLog2 : 0);
  idr1 = IDR1.EVENTQS.set(idr1, f.eventqLog2);
  idr1 = IDR1.CMDQS.set(idr1, f.cmdqLog2);

  let idr3 = 0;
  idr3 = IDR3.HAD.set(idr3, b(f.stage1)); // mandatory from v3.1 with stage 1 (6.3.4)
  idr3 = IDR3.RIL.set(idr3, b(f.ril));
  idr3 = IDR3.BBML.set(idr3, 1); // v3.2 requires level 1 or 2 break-before-make support

  let idr5 = 0;
  idr5 = IDR5.OAS.set(idr5, OAS_BITS.indexOf(f.oasBits));
  // Only the 4 KiB granule is implemented by the table walker, so only it is advertised (6.3.6).
  idr5 = IDR5.GRAN4K.set(idr5, 1);

  let iidr = 0;
  iidr = IIDR.Implementer.set(iidr, 0x43b); // JEP106 code for Arm (6.3.7)
  iidr = IIDR.ProductID.set(iidr, 0x5ab); // "smmulab": an invented product number

  const aidr = AIDR.ArchMinorRev.set(0, archMinorRev(f));
  return { IDR0: idr0, IDR1: idr1, IDR2: 0, IDR3: idr3, IDR4: 0, IDR5: idr5, IIDR: iidr, AIDR: aidr };
}
