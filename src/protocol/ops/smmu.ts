// Operations of the SMMUv3 driver core: probe, joining a probed SMMU, interrupts, command workloads,
// raw command submission, and what the driver has seen.

import { InputError, arr, bool, int, none, obj, oneOf, opt, type Check, type Infer } from '../check.ts';
import { op } from './decl.ts';

const u32 = int(0, 0xffff_ffff);
const u53 = int();

/**
 * What the driver does when an ATC invalidation times out (CERROR_ATC_INV_SYNC), after the designs
 * discussed upstream in 2026:
 * - none: mainline: skip_err logs it, the CMD_SYNC re-executes and the issuer sees success;
 * - reset: v1: skip_err reads the ATC_INV just before the SYNC and queues work that resets that
 *   StreamID's device (Bus Master off, pci_reset_function, Bus Master back on success);
 * - quarantine: v4: the issuer sees the failure and, before it returns, fences every ATS device of the
 *   failed batch (ATS off at the function, STE.EATS cleared, its invalidations skipped), reports it
 *   broken to the PCI core, whose reset (prepare/done) lifts the fence only when it succeeds;
 * - quarantine-bisect: as quarantine, after re-issuing the batch's ATC_INVs in halves, each with its
 *   own CMD_SYNC, to fence only the devices that still fail.
 */
export const ATC_RECOVERY = ['none', 'reset', 'quarantine', 'quarantine-bisect'] as const;
export type AtcRecovery = (typeof ATC_RECOVERY)[number];
/** The default: the safest policy that keeps innocent devices working (see the README). */
export const DEFAULT_ATC_RECOVERY: AtcRecovery = 'quarantine-bisect';

/**
 * Known-broken variants of the driver, for testing smmulab itself: a multi-CPU campaign must catch each
 * (test/broken-variants.test.ts). Never a default, never in a scenario of the catalogue.
 * - cmdq-no-shared-lock: a CPU waiting for its CMD_SYNC does not hold the command queue's shared lock
 *   (arm_smmu_cmdq_shared_lock), so other CPUs may refresh cons and wrap the queue twice meanwhile: its
 *   SYNC's slot is reused before it has seen the completion;
 * - prod-before-valid: the owner writes CMDQ_PROD without waiting for the gathered slots to be marked
 *   valid (__arm_smmu_cmdq_poll_set_valid_map), so the SMMU may read slots their CPU has not written;
 * - prepare-no-reentry: pci_dev_reset_iommu_prepare() refuses a nested call (-EBUSY) instead of
 *   counting it (the nesting bug fixed by 0d5fd7a9323c): a device-specific reset's inner FLR fails;
 * - done-lifts-fence: pci_dev_reset_iommu_done() unblocks whatever the reset's outcome, lifting the fence
 *   of a device whose reset failed and whose ATC may still hold stale translations.
 */
export const DRIVER_BUGS = ['cmdq-no-shared-lock', 'prod-before-valid', 'prepare-no-reentry', 'done-lifts-fence'] as const;
export type DriverBug = (typeof DRIVER_BUGS)[number];

/** Probe options (module parameters and firmware facts). */
export const smmuDriverOptions = obj({
  /** ATC invalidation timeout recovery (ATC_RECOVERY); default DEFAULT_ATC_RECOVERY. */
  atcRecovery: opt(oneOf(ATC_RECOVERY)),
  /** Platform ns for ACK polls and CMD_SYNC waits (Linux ARM_SMMU_POLL_TIMEOUT_US). */
  pollTimeoutNs: opt(int(1, 1e15)),
  /** Linux's disable_msipolling module parameter: complete CMD_SYNC by polling CONS even with MSIs. */
  disableMsiPolling: opt(bool),
  /** Firmware says the SMMU is DMA-coherent (DT dma-coherent / IORT COHACC); default: IDR0.COHACC. */
  coherent: opt(bool),
  /** CPU that takes the SMMU's GERROR and event queue interrupts. */
  irqCpu: opt(int(0, 15)),
  /** A known-broken variant of the driver (DRIVER_BUGS), for tests of smmulab. */
  bug: opt(oneOf(DRIVER_BUGS)),
});
export type SmmuDriverOptions = Infer<typeof smmuDriverOptions>;

/** Everything another CPU needs to join an already probed command queue. */
export const cmdqDesc = obj({
  /** PA of the queue (naturally aligned). */
  basePa: u53,
  /** log2 of the number of entries. */
  shift: int(0, 19),
  /** PA of the shared state page. */
  statePa: u53,
  /** Complete CMD_SYNCs by MSI write into their own slot (Linux ARM_SMMU_OPT_MSIPOLL). */
  msiPoll: bool,
  /** Wait with WFE while polling CONS (IDR0.SEV). */
  sev: bool,
});
export type CmdqDesc = Infer<typeof cmdqDesc>;

/**
 * What the probing CPU hands to the others so they can drive the same SMMU: the state a kernel keeps
 * in memory every CPU shares (struct arm_smmu_device), here carried through the host.
 */
export const smmuShared = obj({
  /** Linux's ARM_SMMU_FEAT_* bits. */
  features: u32,
  cmdq: cmdqDesc,
  evtq: obj({ basePa: u53, shift: int(0, 19) }),
  strtab: obj({ basePa: u53, twoLevel: bool, sidBits: int(0, 32), l1Entries: u53 }),
  ias: int(0, 64),
  oas: int(0, 64),
  sidBits: int(0, 32),
  ssidBits: int(0, 20),
  asidBits: int(0, 16),
  vmidBits: int(0, 16),
  irqVectors: obj({ gerror: int(0, 255), evtq: int(0, 255) }),
  pollTimeoutNs: int(1, 1e15),
  atcRecovery: oneOf(ATC_RECOVERY),
  /** The known-broken variant every CPU runs (DRIVER_BUGS), if any. */
  bug: opt(oneOf(DRIVER_BUGS)),
  /** PA of the IOMMU layer's shared ASID/VMID bitmaps. */
  idStatePa: u53,
});
export type SmmuShared = Infer<typeof smmuShared>;

/** The tlbi workload: batches of TLBI_NH_VA, each ending with a CMD_SYNC. */
export const tlbiWorkload = obj({
  /** Commands per batch (before its CMD_SYNC); batches over 64 are issued in chunks of 64. */
  batch: int(1, 1 << 16),
  /** Stop after this much platform time... */
  durationNs: opt(int()),
  /** ...or after this many batches (whichever comes first when both are given). */
  iterations: opt(int()),
  /** Record every CMD_SYNC's round trip (platform ns) — for latency benchmarks. */
  recordLatency: opt(bool),
});
export type TlbiWorkload = Infer<typeof tlbiWorkload>;

export interface TlbiResult {
  batches: number;
  /** Commands this CPU issued, by opcode name (the CMD_SYNCs it added counted under SYNC). */
  issuedByOpcode: Record<string, number>;
  syncTimeouts: number;
  elapsedNs: number;
  latenciesNs: number[];
}

/** Commands as four 32-bit words each, little-endian order (w0 low, w0 high, w1 low, w1 high). */
const commandWords: Check<number[]> = (v, path) => {
  const words = arr(u32)(v, path);
  if (words.length % 4 !== 0) throw new InputError(`${path}: ${words.length} words is not a whole number of 16-byte commands`);
  return words;
};

export interface ReplayResult {
  /** Queue position (index with wrap bit) each command was written to. */
  slots: number[];
  /**
   * Result of the CMD_SYNC the driver adds after the last command to know it has all been consumed; or
   * -ETIMEDOUT without it, when the SMMU stopped consuming the commands (no progress for a poll timeout).
   */
  ret: number;
}

/** A command error the driver's GERROR handler (skip_err) handled: CONS.RD at the error and the CERROR code. */
export interface CmdqErrorRecord {
  cons: number;
  code: number;
}

/** What ATC invalidation timeout recovery did on a CPU (drivers/arm-smmu-v3/atc-recovery.ts). */
export interface RecoveryStats {
  /** Batches of ATC_INVs whose CMD_SYNC failed. */
  failedBatches: number;
  /** Invalidations that returned to their caller with a failed ATC batch and nobody fenced. */
  staleReturns: number;
  /** CMD_SYNCs recovery issued: bisection, and the fences' STE updates. */
  extraSyncs: number;
  fences: number;
  /** Platform ns from issuing a failed ATC batch to fencing (or blocking, under `reset`) its device. */
  fenceLatencyNs: number[];
}

export interface DriverStats {
  cmdqErrors: CmdqErrorRecord[];
  /** ATC invalidation timeout recovery (zeroes without the IOMMU layer). */
  recovery: RecoveryStats;
  /**
   * What the IOMMU layer issued, by spec name (CMD_SYNCs as SYNC), and of that what was reported as
   * not known to have completed (batches whose CMD_SYNC failed); empty without the IOMMU layer.
   */
  issuedByOpcode: Record<string, number>;
  unconfirmedByOpcode: Record<string, number>;
  /** Commands the IOMMU layer issued without a CMD_SYNC that none has covered yet (not known to have run). */
  pendingByOpcode: Record<string, number>;
  /** Global errors handled, by GERROR bit name. */
  gerrors: Record<string, number>;
  issued: number;
  syncs: number;
  syncTimeouts: number;
}

export const SMMU_OPS = {
  /** Probes the SMMU on this CPU (and sets up the page allocator first when asked). */
  probe: op(obj({ opts: smmuDriverOptions, initPages: bool })).returns<SmmuShared>(),
  /** Joins an SMMU another CPU probed. */
  attach: op(smmuShared).returns<true>(),
  /** Takes the SMMU's GERROR and event queue interrupts on this CPU. */
  requestIrqs: op(none).returns<true>(),
  workload: op(tlbiWorkload).returns<TlbiResult>(),
  /** Submits commands verbatim, in batches of 64 without adding CMD_SYNCs, then one CMD_SYNC. */
  replay: op(obj({ words: commandWords })).returns<ReplayResult>(),
  /**
   * Issues raw commands as Linux issues a batch: in chunks of 64, the last one with its CMD_SYNC in the
   * same submission when `sync`; returns 0 or -ETIMEDOUT.
   */
  issueBatch: op(obj({ words: commandWords, sync: bool })).returns<number>(),
  /** What this CPU's driver has seen: command errors it handled, global errors, what it issued. */
  driverStats: op(none).returns<DriverStats>(),
};
