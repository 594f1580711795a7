// The SMMU's configuration structures as the model holds them once fetched and decoded: STEs (5.2),
// L1STDs (5.1), CDs (5.4) and L1CDs (5.3). The stream table (strtab.ts) and the CD tables (cd.ts)
// decode them; the configuration cache (config-cache.ts) keeps them; translation (translate.ts) uses them.

/** A decoded STE: the fields translation uses, and whether it is ILLEGAL (behaves as V=0). */
export interface Ste {
  /** PA the STE was fetched from. */
  readonly addr: number;
  /** Why the STE is ILLEGAL (C_BAD_STE), or null. */
  readonly illegal: string | null;
  readonly config: number;
  /** Config 0b0xx: traffic is aborted without an event. */
  readonly abort: boolean;
  /** Config 0b100. */
  readonly bypass: boolean;
  /** Stage 1 / stage 2 translate (Config bit 0 / bit 1). */
  readonly s1: boolean;
  readonly s2: boolean;
  readonly s1fmt: number;
  readonly s1ctxptr: number;
  readonly s1cdmax: number;
  readonly s1dss: number;
  readonly s1stalld: boolean;
  /** EATS as written; effectiveEats() applies the configuration and CR0.ATSCHK. */
  readonly eats: number;
  /** StreamWorld is EL2 (STRW=0b10 when used); CR2.E2H then selects EL2 or EL2-E2H. */
  readonly el2: boolean;
  readonly mev: boolean;
  readonly privcfg: number;
  readonly instcfg: number;
  /** S2VMID: tags stage 1 entries too when stage 2 is implemented (5.2). */
  readonly vmid: number;
  readonly s2cfg: S2Config | null;
  /** Stage 2 fault recording (S2R) and stall (S2S). */
  readonly s2r: boolean;
  readonly s2s: boolean;
}

/** Stage 2 translation configuration from an STE (VMSAv8-64, 4 KiB granule). */
export interface S2Config {
  readonly vmid: number;
  /** Base PA of the start-level table (aligned). */
  readonly ttb: number;
  /** Input (IPA) size in bits: 64 - S2T0SZ. */
  readonly iaBits: number;
  readonly startLevel: number;
  /** Effective output size in bits: MIN(S2PS, OAS). */
  readonly psBits: number;
  readonly affd: boolean;
  /** S2PTW: stage 1 walks and CD fetches to Device memory fault at stage 2 (5.2). */
  readonly ptw: boolean;
}

/** A cached, valid L1STD: the STE array for StreamIDs [first, first + count). */
export interface L1Std {
  readonly first: number;
  readonly count: number;
  readonly l2: number;
}

/** A decoded CD: what a stage 1 walk needs, and whether it is ILLEGAL (C_BAD_CD). */
export interface Cd {
  readonly addr: number;
  readonly illegal: string | null;
  readonly asid: number;
  readonly t0sz: number;
  readonly epd0: boolean;
  /** TTB0 aligned to its start-level table, as the walk uses it. */
  readonly ttb0: number;
  readonly iaBits: number;
  readonly startLevel: number;
  /** Effective output size: MIN(IPS, OAS). */
  readonly ipsBits: number;
  readonly affd: boolean;
  readonly had0: boolean;
  readonly wxn: boolean;
  readonly pan: boolean;
  /** Fault behaviour (5.5): R records, A aborts (must be 1 with TERM_MODEL=1), S stalls (no stalls here). */
  readonly r: boolean;
  readonly a: boolean;
}

/** A fetched L1CD (5.3): valid or not, and the leaf table it points at. */
export interface L1Cd {
  readonly v: boolean;
  /** Leaf table address as the SMMU uses it (an IPA with stage 2). */
  readonly l2: number;
  readonly fetchAddr: number;
}
