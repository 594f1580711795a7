// What an emulated SMMUv3 implements: the feature set, its named profiles and their validation.
//
// The model is an SMMUv3.2 (AIDR.ArchMinorRev = 2) by default: v3.2 makes range invalidation
// (IDR3.RIL) mandatory and fixes the CONSTRAINED UNPREDICTABLE register-write choices to "ignored"
// (6.3: guarded writes, GBPA writes without Update). A profile without RIL reports SMMUv3.1, since
// a v3.2 implementation must have RIL.

import { OAS_BITS, QUEUE_LOG2_MAX } from './regs.ts';

export interface SmmuFeatures {
  /** Stage 1 (IDR0.S1P) and stage 2 (IDR0.S2P) translation; with both, nested STE configs are accepted. */
  stage1: boolean;
  stage2: boolean;
  /** IDR0.ATS: ATS Translation Requests, Translated transactions and CMD_ATC_INV. */
  ats: boolean;
  /** IDR0.MSI: MSIs for GERROR, event queue and CMD_SYNC completion. */
  msi: boolean;
  /** IDR0.SEV: the SMMU sends wake-up events (CMD_SYNC CS=SEV). */
  sev: boolean;
  /** IDR0.COHACC: coherent access to tables, queues and MSI targets. */
  cohacc: boolean;
  /** IDR0.HYP: EL2 stage-1 contexts and the TLBI_EL2_* commands (needs both stages). */
  hyp: boolean;
  /** IDR3.RIL: range invalidation and TTL hints in TLBI commands. */
  ril: boolean;
  /** IDR0.ST_LEVEL=1: 2-level stream tables. */
  twoLevelStrtab: boolean;
  /** IDR0.CD2L: 2-level context descriptor tables. */
  cd2l: boolean;
  /** IDR0.PRI (requires ATS). */
  pri: boolean;
  /** IDR0.BTM, IDR0.VMW, IDR0.DORMHINT: advertised only if set. */
  btm: boolean;
  vmw: boolean;
  dormhint: boolean;
  /** IDR0.ATSRECERR with CR2.REC_CFG_ATS (SMMUv3.3 ATSRECERR, 2.5). */
  atsRecErr: boolean;
  /** IDR0.ASID16 / VMID16. */
  asid16: boolean;
  vmid16: boolean;
  /** IDR1.SIDSIZE / SSIDSIZE: StreamID and SubstreamID bits. */
  sidBits: number;
  ssidBits: number;
  /** IDR1.CMDQS / EVENTQS / PRIQS: log2 of the largest queue. */
  cmdqLog2: number;
  eventqLog2: number;
  priqLog2: number;
  /** Output address size in bits (one of the IDR5.OAS encodings). */
  oasBits: (typeof OAS_BITS)[number];
  /** GBPA.ABORT reset value (implementation defined, 6.3.14). */
  gbpaAbortAtReset: boolean;
}

/**
 * The default profile: what Linux's arm-smmu-v3 probes happily (stage 1, RIL, 2-level table, SIDSIZE 16),
 * with SSIDSIZE 20: the endpoints' PASID width (PCIe Max PASID Width 20), and what Arm's BSA asks of an
 * SMMU behind PASID-capable devices (PCI_PAS_1: SubstreamIDs of 20 bits).
 */
export const DEFAULT_FEATURES: SmmuFeatures = {
  stage1: true,
  stage2: true,
  ats: true,
  msi: true,
  sev: true,
  cohacc: true,
  hyp: true,
  ril: true,
  twoLevelStrtab: true,
  cd2l: true,
  pri: false,
  btm: false,
  vmw: false,
  dormhint: false,
  atsRecErr: false,
  asid16: true,
  vmid16: true,
  sidBits: 16,
  ssidBits: 20,
  cmdqLog2: 19,
  eventqLog2: 19,
  priqLog2: 0,
  oasBits: 48,
  gbpaAbortAtReset: false,
};

/** Named feature sets for --features. */
export const PROFILES: Record<string, SmmuFeatures> = {
  default: DEFAULT_FEATURES,
  /** Stage 1 only, no ATS, no MSI, no SEV: completion by polling CONS, like QEMU's virt SMMU. */
  'qemu-like': { ...DEFAULT_FEATURES, stage2: false, hyp: false, ats: false, msi: false, sev: false, cd2l: true },
  /** An SMMUv3.1 without range invalidation, HYP or stage 2. */
  'v3.1-minimal': {
    ...DEFAULT_FEATURES,
    stage2: false,
    hyp: false,
    ril: false,
    ats: false,
    msi: true,
    sev: false,
    cmdqLog2: 8,
    eventqLog2: 8,
  },
  /** MSI without coherent access: Linux cannot use the MSI-poll completion and polls CONS. */
  'no-cohacc': { ...DEFAULT_FEATURES, cohacc: false },
  /** No MSI and no SEV: CMD_SYNC completion by CONS polling with back-off. */
  'poll-only': { ...DEFAULT_FEATURES, msi: false, sev: false },
  /** Linear stream table only, small SID space. */
  linear: { ...DEFAULT_FEATURES, twoLevelStrtab: false, sidBits: 6 },
};

/** Checks a feature set for combinations the architecture forbids; throws naming the field. */
export function validateFeatures(f: SmmuFeatures, where = 'features'): void {
  const fail = (field: string, why: string) => {
    throw new Error(`${where}.${field}: ${why}`);
  };
  if (!f.stage1 && !f.stage2) fail('stage1', 'an SMMU must implement at least one translation stage');
  if (f.hyp && !(f.stage1 && f.stage2)) fail('hyp', 'IDR0.HYP requires both stages (6.3.1)');
  if (f.pri && !f.ats) fail('pri', 'IDR0.PRI requires ATS (6.3.1)');
  if (f.atsRecErr && !f.ats) fail('atsRecErr', 'IDR0.ATSRECERR requires ATS (6.3.1)');
  if (f.vmw && !f.stage2) fail('vmw', 'IDR0.VMW requires stage 2 (6.3.1)');
  if (!Number.isInteger(f.sidBits) || f.sidBits < 0 || f.sidBits > 32) fail('sidBits', 'must be 0..32 (IDR1.SIDSIZE)');
  if (f.sidBits >= 7 && !f.twoLevelStrtab) {
    // 6.3.1: ST_LEVEL must not be 0b00 when SIDSIZE >= 7.
    fail('twoLevelStrtab', `SIDSIZE ${f.sidBits} >= 7 requires the 2-level stream table (IDR0.ST_LEVEL)`);
  }
  if (!Number.isInteger(f.ssidBits) || f.ssidBits < 0 || f.ssidBits > 20) fail('ssidBits', 'must be 0..20 (IDR1.SSIDSIZE)');
  for (const q of ['cmdqLog2', 'eventqLog2', 'priqLog2'] as const) {
    if (!Number.isInteger(f[q]) || f[q] < 0 || f[q] > QUEUE_LOG2_MAX) fail(q, `must be 0..${QUEUE_LOG2_MAX} (IDR1)`);
  }
  if (!OAS_BITS.includes(f.oasBits)) fail('oasBits', `must be one of ${OAS_BITS.join(', ')} (IDR5.OAS)`);
}

/**
 * The numeric features a `--features` spec can set (`+ssidsize=16`), by their SmmuFeatures key, with the
 * ID register field each one sets (IDR1.SIDSIZE/SSIDSIZE/CMDQS/EVENTQS/PRIQS, IDR5.OAS): a spec may
 * name either, in any case. Every value is in bits, as the key says (oas=44, not the IDR5.OAS encoding).
 */
export const WIDTH_FEATURES = {
  sidBits: 'SIDSIZE',
  ssidBits: 'SSIDSIZE',
  cmdqLog2: 'CMDQS',
  eventqLog2: 'EVENTQS',
  priqLog2: 'PRIQS',
  oasBits: 'OAS',
} as const satisfies Partial<Record<keyof SmmuFeatures, string>>;
type WidthFeature = keyof typeof WIDTH_FEATURES;

/** The width feature a modifier names (its SmmuFeatures key or its ID register field, any case). */
function widthFeature(name: string): WidthFeature | undefined {
  const n = name.toLowerCase();
  return (Object.keys(WIDTH_FEATURES) as WidthFeature[]).find((k) => k.toLowerCase() === n || WIDTH_FEATURES[k].toLowerCase() === n);
}

/** What a `--features` spec may hold (a profile name, modifiers, widths in decimal or hex), and how much. */
const SPEC_CHARS = /^[A-Za-z0-9.+,=-]*$/;
const SPEC_MAX = 200;

/** Separators that start a modifier: '+' (on, or set a width), '-' (off), ',' (as '+'). */
const MODIFIER = /(?=[+,-])/;

/**
 * Parses `--features`: a profile name, optionally followed by modifiers: `+feature` / `-feature` turn a
 * boolean feature on or off, `+name=N` sets a width (`default+ssidsize=16`, N decimal or 0x hex); a `,`
 * may stand for `+` (`default,ssidsize=16`). The result is validated as a whole.
 */
export function parseFeatures(spec: string): { name: string; features: SmmuFeatures } {
  // Checked first, so the messages below can quote the spec's pieces as they are (no terminal escape,
  // no megabytes of them can be among them).
  if (spec.length > SPEC_MAX || !SPEC_CHARS.test(spec)) {
    throw new Error(`--features: must be a profile name and +/-/, modifiers: letters, digits and . + - , = only, at most ${SPEC_MAX} characters`);
  }
  // Profile names contain '-' (qemu-like), so take the longest profile name the spec starts with.
  const name = Object.keys(PROFILES)
    .filter((n) => spec === n || [...'+-,'].some((sep) => spec.startsWith(n + sep)))
    .sort((a, b) => b.length - a.length)[0];
  if (name === undefined) throw new Error(`--features: unknown profile '${spec.split(/[+,]/)[0]}' (known: ${Object.keys(PROFILES).join(', ')})`);
  const base = PROFILES[name]!;
  const mods = spec.slice(name.length).split(MODIFIER).filter((m) => m !== '');
  const features: SmmuFeatures = { ...base };
  // Each feature once: `+ats-ats` says two things, and the last silently winning would hide one.
  const seen = new Map<string, string>();
  const once = (key: string, m: string) => {
    const before = seen.get(key);
    if (before !== undefined) throw new Error(`--features: '${m}' sets ${key} again (after '${before}')`);
    seen.set(key, m);
  };
  for (const m of mods) {
    const eq = m.indexOf('=');
    if (eq >= 0) {
      const key = widthFeature(m.slice(1, eq));
      const known = Object.entries(WIDTH_FEATURES).map(([k, f]) => `${f.toLowerCase()} (${k})`).join(', ');
      if (key === undefined) throw new Error(`--features: '${m}' names no width (known: ${known})`);
      if (m[0] === '-') throw new Error(`--features: '${m}': a width is set with +${m.slice(1)}`);
      const raw = m.slice(eq + 1);
      if (!/^(?:\d+|0[xX][0-9a-fA-F]+)$/.test(raw)) throw new Error(`--features: '${m}': '${raw}' is not a non-negative integer`);
      once(key, m);
      (features as unknown as Record<string, number>)[key] = Number(raw);
      continue;
    }
    const key = m.slice(1) as keyof SmmuFeatures;
    // Own keys only: `+constructor` or `+__proto__` name no feature.
    if (!Object.hasOwn(features, key) || typeof features[key] !== 'boolean') {
      throw new Error(`--features: '${m}' names no boolean feature (known: ${booleanFeatureNames().join(', ')}; widths are set with +name=N)`);
    }
    once(key, m);
    (features as unknown as Record<string, boolean>)[key] = m[0] !== '-';
  }
  validateFeatures(features, `--features ${spec}`);
  return { name: spec, features };
}

function booleanFeatureNames(): string[] {
  return Object.entries(DEFAULT_FEATURES)
    .filter(([, v]) => typeof v === 'boolean')
    .map(([k]) => k);
}

/**
 * An address the SMMU originates for a queue access or an MSI write, reduced to the OAS: such addresses
 * beyond the OAS are truncated, not faulted (3.4.3).
 */
export function truncateToOas(f: SmmuFeatures, pa: bigint): number {
  return Number(BigInt.asUintN(f.oasBits, pa));
}
