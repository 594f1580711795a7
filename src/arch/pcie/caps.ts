// PCI capabilities as data: each capability is a list of registers (offsets relative to the capability,
// fields with their access modes, reset values) plus which registers survive resets. The chain builder
// (config-space.ts) places them, adds the capability headers and links the chains.
//
// Access modes follow the PCIe Base r6.0 register tables: RO/HwInit read-only, RW, RW1C (W1C here),
// RW1CS/RWS sticky (kept across FLR and hot reset). ROS (sticky read-only) registers are listed in
// `sticky` so that resets keep them too.

import { fieldDef as fd, reg, type RegisterDef } from '../regmap.ts';
import { bits, range, type Field } from '../bits.ts';
import {
  ACS, ACS_BITS, AER, AER_CAP, AER_COR, AER_COR_MASK_DEFAULT, AER_ROOT_COMMAND, AER_ROOT_STATUS, AER_UNCOR, AER_UNCOR_SEVER_DEFAULT, AER_UNCOR_UIE,
  ATS, ATS_CAP, ATS_CTRL, CAP_ID, CXL_DVSEC_PORT, CXL_PORT_CTL, DEVCAP, DEVCTL, DEVCTL2, DEVSTA, DVSEC, DVSEC_HDR1, DVSEC_HDR2, EXP, EXP_FLAGS,
  EXP_TYPE, EXT_CAP_ID, LINK_SPEED, LNKCAP, LNKCAP2, LNKCTL, LNKCTL2, LNKSTA, MSI, MSI_ADDR_LO, MSI_CONTROL, PASID, PASID_CAP, PASID_CTRL,
  PCI_VENDOR_ID_CXL, PM, PMC, PMCSR, PRI, PRI_CTRL, PRI_STATUS, RTCAP, RTCTL,
  type AcsRegName, type AerRegName, type AtsRegName, type DvsecRegName, type ExpRegName, type HeaderRegName, type MsiRegName, type PasidRegName,
  type PmRegName, type PriRegName,
} from './regs.ts';

export type CapName = 'pm' | 'msi' | 'exp' | 'aer' | 'acs' | 'ats' | 'pasid' | 'pri' | 'cxl';

export const LEGACY_CAPS: readonly CapName[] = ['pm', 'msi', 'exp'];
const EXT_CAPS: readonly CapName[] = ['aer', 'acs', 'ats', 'pasid', 'pri', 'cxl'];
export const ALL_CAPS: readonly CapName[] = [...LEGACY_CAPS, ...EXT_CAPS];

/** The registers each capability declares after its header (named as in its offset table in regs.ts). */
export interface CapRegNames extends Record<CapName, string> {
  pm: PmRegName;
  msi: MsiRegName;
  exp: ExpRegName;
  aer: AerRegName;
  acs: AcsRegName;
  ats: AtsRegName;
  pasid: PasidRegName;
  pri: PriRegName;
  cxl: DvsecRegName;
}

/**
 * A capability register's name in a function's map: "EXP.DEVCTL" (HDR is the capability header the
 * chain builder adds). Without C, the name of any capability's register.
 */
export type CapRegName<C extends CapName = CapName> = { [K in C]: `${Uppercase<K>}.${CapRegNames[K] | 'HDR'}` }[C];

/** Every register a function's configuration space may have: its header's and its capabilities'. */
export type PcieRegName = HeaderRegName | CapRegName;

/** Per-function parameters the capabilities take their read-only values from. */
export interface CapParams {
  /** Root Port (Type 1) or Endpoint. */
  port: boolean;
  /** Device Capabilities FLR. */
  flr: boolean;
  /** PMCSR No_Soft_Reset: D3hot->D0 keeps the function's state (no PM reset). */
  pmNoSoftReset: boolean;
  /** ATS Invalidate Queue Depth, 1..32. */
  atsQueueDepth: number;
  atsPageAligned: boolean;
  /** PASID Max PASID Width (bits). */
  pasidWidth: number;
  /** PRI Outstanding Page Request Capacity. */
  priCapacity: number;
  /** ACS capability bits (ACS_BITS). */
  acsCap: number;
  /** Root Port: Configuration RRS Software Visibility supported (RTCAP.RRS_SV). */
  rrsSv: boolean;
  /** LNKCAP.PN. */
  portNumber: number;
}

/** A capability as data; R names its registers (by default, those of any capability). */
export interface CapabilityDef<R extends string = CapRegNames[CapName]> {
  readonly name: CapName;
  readonly ext: boolean;
  readonly id: number;
  /** Extended capability version. */
  readonly version: number;
  /** Bytes the capability occupies (a multiple of 4). */
  size(p: CapParams): number;
  /** Registers after the header, offsets relative to the capability start (the builder adds the header). */
  registers(p: CapParams): RegisterDef<R>[];
  /** Sticky read-only (ROS) registers: kept across FLR and hot reset, like RWS/RW1CS bits. */
  readonly sticky?: readonly R[];
  /**
   * Registers an FLR leaves alone (r6.0 6.6.2: link-related controls are not function state); a hot
   * reset (SBR) or PM reset resets them.
   */
  readonly flrExempt?: readonly R[];
}

const all = (fields: Record<string, Field>, access: 'RO' | 'RW' | 'W1C' | 'W1CS' | 'RWS' | 'HwInit') => Object.values(fields).map((f) => fd(f, access));
const whole = (access: 'RO' | 'RW' | 'RWS' | 'HwInit') => [fd(range('Value', 31, 0), access)];
const half = (access: 'RO' | 'RW') => [fd(range('Value', 15, 0), access)];

/** Fields of a register whose bits are individually named, each with the same access. */
function bitsOf(mask: number, fields: Record<string, Field>, access: 'RW' | 'W1C' | 'W1CS' | 'RWS' | 'RO'): ReturnType<typeof fd>[] {
  return Object.values(fields)
    .filter((f) => (f.bits & mask) !== 0)
    .map((f) => fd(f, access));
}

const PM_CAP: CapabilityDef<PmRegName> = {
  name: 'pm',
  ext: false,
  id: CAP_ID.PM,
  version: 0,
  size: () => PM.SIZE,
  registers: (p) => [
    // Version 3 (PCI PM 1.2), no D1/D2, no PME generation.
    reg('PMC', PM.PMC, 16, all(PMC, 'RO'), { reset: PMC.VERSION.set(0, 3), spec: '7.5.2.1' }),
    reg('PMCSR', PM.PMCSR, 16, [fd(PMCSR.STATE, 'RW'), fd(PMCSR.NO_SOFT_RESET, 'RO'), fd(PMCSR.PME_ENABLE, 'RW'), fd(PMCSR.DATA_SELECT, 'RO'), fd(PMCSR.DATA_SCALE, 'RO'), fd(PMCSR.PME_STATUS, 'RO')], {
      reset: p.pmNoSoftReset ? PMCSR.NO_SOFT_RESET.bits : 0,
      spec: '7.5.2.2',
    }),
    reg('DATA', PM.DATA, 16, half('RO'), { spec: '7.5.2.3' }),
  ],
};

const MSI_CAP: CapabilityDef<MsiRegName> = {
  name: 'msi',
  ext: false,
  id: CAP_ID.MSI,
  version: 0,
  size: () => MSI.SIZE,
  registers: () => [
    // One vector (MMC = 0), 64-bit address, no per-vector masking.
    reg('CONTROL', MSI.CONTROL, 16, [fd(MSI_CONTROL.ENABLE, 'RW'), fd(MSI_CONTROL.MMC, 'RO'), fd(MSI_CONTROL.MME, 'RW'), fd(MSI_CONTROL.ADDR64, 'RO'), fd(MSI_CONTROL.PVM, 'RO')], {
      reset: MSI_CONTROL.ADDR64.bits,
      spec: '7.7.1.2',
    }),
    reg('ADDR_LO', MSI.ADDR_LO, 32, [fd(MSI_ADDR_LO.ADDR, 'RW')], { spec: '7.7.1.3' }),
    reg('ADDR_HI', MSI.ADDR_HI, 32, whole('RW'), { spec: '7.7.1.4' }),
    reg('DATA', MSI.DATA, 16, half('RW'), { spec: '7.7.1.5' }),
    reg('EXT_DATA', MSI.EXT_DATA, 16, half('RO'), { spec: '7.7.1.6' }),
  ],
};

const EXP_CAP: CapabilityDef<ExpRegName> = {
  name: 'exp',
  ext: false,
  id: CAP_ID.EXP,
  version: 0,
  size: () => EXP.SIZE,
  registers: (p) => {
    const flags = EXP_FLAGS.TYPE.set(EXP_FLAGS.VERSION.set(0, 2), p.port ? EXP_TYPE.ROOT_PORT : EXP_TYPE.ENDPOINT);
    // 256-byte max payload, extended tags, role-based error reporting, FLR as configured.
    let devcap = DEVCAP.RBER.set(DEVCAP.EXT_TAG.set(DEVCAP.PAYLOAD.set(0, 1), 1), 1);
    if (p.flr && !p.port) devcap = DEVCAP.FLR.set(devcap, 1);
    // Defaults (7.5.3.4): relaxed ordering and no-snoop enabled, 128-byte payload, 512-byte reads.
    const devctl = DEVCTL.READRQ.set(DEVCTL.NOSNOOP_EN.set(DEVCTL.RELAX_EN.set(0, 1), 1), 2);
    // 5 GT/s x4; a Root Port reports Data Link Layer Link Active (Linux waits on it after SBR).
    let lnkcap = LNKCAP.PN.set(LNKCAP.MLW.set(LNKCAP.SLS.set(0, LINK_SPEED.GT5), 4), p.portNumber);
    if (p.port) lnkcap = LNKCAP.DLLLARC.set(lnkcap, 1);
    let lnksta = LNKSTA.NLW.set(LNKSTA.CLS.set(0, LINK_SPEED.GT5), 4);
    if (p.port) lnksta = LNKSTA.DLLLA.set(lnksta, 1);
    const devctlFields = [
      ...bitsOf(0x0fff & ~(DEVCTL.PHANTOM.bits | DEVCTL.AUX_PME.bits), DEVCTL, 'RW'),
      fd(DEVCTL.PHANTOM, 'RO'),
      fd(DEVCTL.AUX_PME, 'RO'),
      fd(DEVCTL.READRQ, 'RW'),
      // Initiate FLR: a 1 written starts the FLR, the bit always reads 0 (7.5.3.4).
      fd(DEVCTL.BCR_FLR, p.flr && !p.port ? 'W1T' : 'RO'),
    ];
    const regs: RegisterDef<ExpRegName>[] = [
      reg('FLAGS', EXP.FLAGS, 16, all(EXP_FLAGS, 'RO'), { reset: flags, spec: '7.5.3.2' }),
      reg('DEVCAP', EXP.DEVCAP, 32, all(DEVCAP, 'RO'), { reset: devcap, spec: '7.5.3.3' }),
      reg('DEVCTL', EXP.DEVCTL, 16, devctlFields, { reset: devctl, spec: '7.5.3.4' }),
      reg('DEVSTA', EXP.DEVSTA, 16, [...bitsOf(0xf, DEVSTA, 'W1C'), fd(DEVSTA.AUXPD, 'RO'), fd(DEVSTA.TRPND, 'RO')], { spec: '7.5.3.5' }),
      reg('LNKCAP', EXP.LNKCAP, 32, all(LNKCAP, 'RO'), { reset: lnkcap, spec: '7.5.3.6' }),
      // Link Disable and Retrain Link are not modelled (the links here cannot be taken down by software):
      // read-only zero rather than bits that would do nothing.
      reg('LNKCTL', EXP.LNKCTL, 16, [fd(LNKCTL.ASPMC, 'RW'), fd(LNKCTL.RCB, 'RW'), fd(LNKCTL.LD, 'RO'), fd(LNKCTL.RL, 'RO'), fd(LNKCTL.CCC, 'RW'), fd(LNKCTL.ES, 'RW')], { spec: '7.5.3.7' }),
      reg('LNKSTA', EXP.LNKSTA, 16, all(LNKSTA, 'RO'), { reset: lnksta, spec: '7.5.3.8' }),
      reg('SLTCAP', EXP.SLTCAP, 32, whole('RO'), { spec: '7.5.3.9' }),
      reg('SLTCTL', EXP.SLTCTL, 16, half('RO'), { spec: '7.5.3.10' }),
      reg('SLTSTA', EXP.SLTSTA, 16, half('RO'), { spec: '7.5.3.11' }),
      reg('RTCTL', EXP.RTCTL, 16, p.port ? [...bitsOf(0xf, RTCTL, 'RW'), fd(RTCTL.RRS_SVE, p.rrsSv ? 'RW' : 'RO')] : [], { spec: '7.5.3.12' }),
      reg('RTCAP', EXP.RTCAP, 16, p.port ? all(RTCAP, 'RO') : [], { reset: p.port && p.rrsSv ? RTCAP.RRS_SV.bits : 0, spec: '7.5.3.13' }),
      reg('RTSTA', EXP.RTSTA, 32, whole('RO'), { spec: '7.5.3.14' }),
      reg('DEVCAP2', EXP.DEVCAP2, 32, whole('RO'), { spec: '7.5.3.15' }),
      reg('DEVCTL2', EXP.DEVCTL2, 16, all(DEVCTL2, 'RW'), { spec: '7.5.3.16' }),
      reg('DEVSTA2', EXP.DEVSTA2, 16, half('RO'), { spec: '7.5.3.17' }),
      // Supported speeds 2.5 and 5 GT/s.
      reg('LNKCAP2', EXP.LNKCAP2, 32, all(LNKCAP2, 'RO'), { reset: LNKCAP2.SPEEDS.set(0, 0b11), spec: '7.5.3.18' }),
      reg('LNKCTL2', EXP.LNKCTL2, 16, all(LNKCTL2, 'RW'), { reset: LNKCTL2.TLS.set(0, LINK_SPEED.GT5), spec: '7.5.3.19' }),
      reg('LNKSTA2', EXP.LNKSTA2, 16, half('RO'), { spec: '7.5.3.20' }),
      reg('SLTCAP2', EXP.SLTCAP2, 32, whole('RO'), { spec: '7.5.3.21' }),
      reg('SLTCTL2', EXP.SLTCTL2, 16, half('RO'), { spec: '7.5.3.22' }),
      reg('SLTSTA2', EXP.SLTSTA2, 16, half('RO'), { spec: '7.5.3.23' }),
    ];
    return regs;
  },
  // 6.6.2: FLR does not reset link-related controls (ASPM, common clock, extended synch, target speed).
  flrExempt: ['LNKCTL', 'LNKCTL2'],
};

const AER_CAP_DEF: CapabilityDef<AerRegName> = {
  name: 'aer',
  ext: true,
  id: EXT_CAP_ID.AER,
  version: 2,
  size: (p) => (p.port ? AER.SIZE_ROOT : AER.SIZE_ENDPOINT),
  registers: (p) => {
    const regs: RegisterDef<AerRegName>[] = [
      // Error status bits are RW1CS, masks and severity RWS: sticky across FLR and hot reset (7.8.4).
      reg('UNCOR_STATUS', AER.UNCOR_STATUS, 32, all(AER_UNCOR, 'W1CS'), { spec: '7.8.4.2' }),
      reg('UNCOR_MASK', AER.UNCOR_MASK, 32, all(AER_UNCOR, 'RWS'), { spec: '7.8.4.3' }),
      reg('UNCOR_SEVER', AER.UNCOR_SEVER, 32, [...all(AER_UNCOR, 'RWS'), fd(AER_UNCOR_UIE, 'RO')], { reset: AER_UNCOR_SEVER_DEFAULT, spec: '7.8.4.4' }),
      reg('COR_STATUS', AER.COR_STATUS, 32, all(AER_COR, 'W1CS'), { spec: '7.8.4.5' }),
      reg('COR_MASK', AER.COR_MASK, 32, all(AER_COR, 'RWS'), { reset: AER_COR_MASK_DEFAULT, spec: '7.8.4.6' }),
      reg('CAP', AER.CAP, 32, [fd(AER_CAP.FEP, 'RO'), fd(AER_CAP.ECRC_GENC, 'RO'), fd(AER_CAP.ECRC_GENE, 'RO'), fd(AER_CAP.ECRC_CHKC, 'RO'), fd(AER_CAP.ECRC_CHKE, 'RO')], { spec: '7.8.4.7' }),
      ...([0, 1, 2, 3] as const).map((i) => reg(`HEADER_LOG${i}`, AER.HEADER_LOG + 4 * i, 32, whole('RO'), { spec: '7.8.4.8' })),
    ];
    if (p.port) {
      regs.push(
        reg('ROOT_COMMAND', AER.ROOT_COMMAND, 32, all(AER_ROOT_COMMAND, 'RW'), { spec: '7.8.4.9' }),
        reg('ROOT_STATUS', AER.ROOT_STATUS, 32, all(AER_ROOT_STATUS, 'W1CS'), { spec: '7.8.4.10' }),
        reg('ERR_SRC', AER.ERR_SRC, 32, whole('RO'), { spec: '7.8.4.11' }),
      );
    }
    return regs;
  },
  // First Error Pointer and the Header Log are ROS (sticky, hardware-written).
  sticky: ['CAP', 'HEADER_LOG0', 'HEADER_LOG1', 'HEADER_LOG2', 'HEADER_LOG3', 'ERR_SRC'],
};

const ACS_CAP: CapabilityDef<AcsRegName> = {
  name: 'acs',
  ext: true,
  id: EXT_CAP_ID.ACS,
  version: 1,
  size: () => ACS.SIZE,
  registers: (p) => [
    reg('CAP', ACS.CAP, 16, all(ACS_BITS, 'RO'), { reset: p.acsCap, spec: '7.7.8.2' }),
    // Control bits exist only for the features the capability reports (7.7.8.3).
    reg('CTRL', ACS.CTRL, 16, bitsOf(p.acsCap, ACS_BITS, 'RW'), { spec: '7.7.8.3' }),
  ],
};

const ATS_CAP_DEF: CapabilityDef<AtsRegName> = {
  name: 'ats',
  ext: true,
  id: EXT_CAP_ID.ATS,
  version: 1,
  size: () => ATS.SIZE,
  registers: (p) => [
    reg('CAP', ATS.CAP, 16, all(ATS_CAP, 'RO'), {
      reset: ATS_CAP.PAGE_ALIGNED.set(ATS_CAP.QDEP.set(0, p.atsQueueDepth & 0x1f), p.atsPageAligned ? 1 : 0),
      spec: '10.5.1.2',
    }),
    // STU is 5 bits (10.5.1.3); Enable resets to 0.
    reg('CTRL', ATS.CTRL, 16, [fd(ATS_CTRL.STU, 'RW'), fd(ATS_CTRL.ENABLE, 'RW')], { spec: '10.5.1.3' }),
  ],
};

const PASID_CAP_DEF: CapabilityDef<PasidRegName> = {
  name: 'pasid',
  ext: true,
  id: EXT_CAP_ID.PASID,
  version: 1,
  size: () => PASID.SIZE,
  registers: (p) => [
    reg('CAP', PASID.CAP, 16, all(PASID_CAP, 'RO'), { reset: PASID_CAP.WIDTH.set(PASID_CAP.PRIV.set(PASID_CAP.EXEC.set(0, 1), 1), p.pasidWidth), spec: '7.8.8.2' }),
    reg('CTRL', PASID.CTRL, 16, all(PASID_CTRL, 'RW'), { spec: '7.8.8.3' }),
  ],
};

const PRI_CAP_DEF: CapabilityDef<PriRegName> = {
  name: 'pri',
  ext: true,
  id: EXT_CAP_ID.PRI,
  version: 1,
  size: () => PRI.SIZE,
  registers: (p) => [
    // Reset clears the interface's state and reads 0; no page requests are modelled, so it has nothing to clear.
    reg('CTRL', PRI.CTRL, 16, [fd(PRI_CTRL.ENABLE, 'RW'), fd(PRI_CTRL.RESET, 'W1T')], { spec: '10.5.2.2' }),
    // Stopped reads 1 while PRI is disabled and idle (10.5.2.3).
    reg('STATUS', PRI.STATUS, 16, [fd(PRI_STATUS.RF, 'W1C'), fd(PRI_STATUS.UPRGI, 'W1C'), fd(PRI_STATUS.STOPPED, 'RO'), fd(PRI_STATUS.PASID_REQUIRED, 'RO')], {
      reset: PRI_STATUS.STOPPED.bits,
      spec: '10.5.2.3',
    }),
    reg('MAX_REQ', PRI.MAX_REQ, 32, whole('RO'), { reset: p.priCapacity, spec: '10.5.2.4' }),
    reg('ALLOC_REQ', PRI.ALLOC_REQ, 32, whole('RW'), { spec: '10.5.2.5' }),
  ],
};

const CXL_CAP_DEF: CapabilityDef<DvsecRegName> = {
  name: 'cxl',
  ext: true,
  id: EXT_CAP_ID.DVSEC,
  version: 1,
  size: () => DVSEC.SIZE,
  registers: () => [
    reg('HDR1', DVSEC.HDR1, 32, all(DVSEC_HDR1, 'RO'), {
      reset: DVSEC_HDR1.LEN.set(DVSEC_HDR1.REV.set(DVSEC_HDR1.VENDOR.set(0, PCI_VENDOR_ID_CXL), 0), DVSEC.SIZE),
      spec: 'r6.0 7.9.6.2',
    }),
    reg('HDR2', DVSEC.HDR2, 16, all(DVSEC_HDR2, 'RO'), { reset: CXL_DVSEC_PORT, spec: 'r6.0 7.9.6.3' }),
    reg('PORT_CTL', DVSEC.PORT_CTL, 16, [fd(CXL_PORT_CTL.UNMASK_SBR, 'RW'), fd(bits('AltMemIdSpaceEnable', 1), 'RW')], { spec: 'CXL 2.0 8.1.5.2' }),
  ],
};

export const CAPABILITIES: { readonly [C in CapName]: CapabilityDef<CapRegNames[C]> } = {
  pm: PM_CAP,
  msi: MSI_CAP,
  exp: EXP_CAP,
  aer: AER_CAP_DEF,
  acs: ACS_CAP,
  ats: ATS_CAP_DEF,
  pasid: PASID_CAP_DEF,
  pri: PRI_CAP_DEF,
  cxl: CXL_CAP_DEF,
};
