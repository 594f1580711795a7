// What the SMMU offers the devices behind it (IHI 0070 3.9.1): untranslated DMA, ATS Translation
// Requests, Translated transactions, and delivery of ATC invalidations to endpoints. PCIe endpoint
// models (hw/pcie) use only this interface.

/** An access from a device, identified by StreamID (and SubstreamID when SSV). */
export interface DmaAccess {
  sid: number;
  ssv?: boolean;
  ssid?: number;
  /** Input address (IOVA for untranslated, PA for translated transactions). */
  addr: number;
  bytes: number;
  /** True for a write. */
  write: boolean;
  /** Privileged / instruction attributes of the incoming transaction. */
  priv?: boolean;
  instr?: boolean;
  /** Who sends it (a PCI function's BB:DD.F, a platform device's name), for the sanitizer's reports. */
  requester?: string;
  /**
   * For a Translated transaction, the untranslated address the requester's ATC turned into `addr`:
   * not on the wire, only for the sanitizer's reports.
   */
  iova?: number;
}

/** Outcome of a DMA access: done, or terminated (with the event recorded, if any). */
export type DmaResult = { ok: true } | { ok: false; reason: string; event?: string };

/** PCIe completion status of an ATS Translation Request (3.9.1.2). */
export type AtsStatus = 'SUCCESS' | 'UR' | 'CA';

export interface AtsTranslation {
  status: AtsStatus;
  /** With SUCCESS: translated (physical) address of the start of the returned range. */
  addr: number;
  /** With SUCCESS: bytes the translation covers (a power of two, at least the STU). */
  size: number;
  read: boolean;
  write: boolean;
  exec: boolean;
  priv: boolean;
  /** Why a UR/CA or R=W=0 was returned (for traces and tests). */
  reason?: string;
}

/** An ATS Invalidate Request the SMMU sends an endpoint for CMD_ATC_INV (4.5.1). */
export interface AtcInvalidation {
  sid: number;
  ssv: boolean;
  ssid: number;
  global: boolean;
  /** Start of the invalidated span (aligned to its size). */
  addr: number;
  /** log2 of the span in 4 KiB units; 52 = everything. */
  size: number;
}

/** An endpoint that receives ATC invalidations for its StreamIDs. */
export interface AtsEndpoint {
  /**
   * Delivers an invalidation. The endpoint drops matching ATC entries and calls `complete` when it
   * sends its Invalidate Completion (after its latency), or never (it is in reset, removed, broken).
   * The SMMU gives up waiting after smmuTimeoutNs.
   */
  atcInvalidate(req: AtcInvalidation, complete: () => void, smmuTimeoutNs: number): void;
  /** ATS Capability Invalidate Queue Depth: outstanding invalidations it accepts (0 means 32). */
  invalidateQueueDepth(): number;
}

export interface SmmuDeviceServices {
  /** Untranslated DMA read into `into` (length = access.bytes). */
  dmaRead(access: DmaAccess, into: Uint8Array): DmaResult;
  /** Untranslated DMA write of `data` (length = access.bytes). */
  dmaWrite(access: DmaAccess, data: Uint8Array): DmaResult;
  /** ATS Translation Request for one page at access.addr (access.write = the request has NW=0). */
  atsTranslate(access: DmaAccess): AtsTranslation;
  /** A Translated transaction (address is a PA from an earlier ATS translation). */
  translatedRead(access: DmaAccess, into: Uint8Array): DmaResult;
  translatedWrite(access: DmaAccess, data: Uint8Array): DmaResult;
  /** Registers the endpoint that answers ATC invalidations for a StreamID. */
  attachAtsEndpoint(sid: number, ep: AtsEndpoint): void;
  detachAtsEndpoint(sid: number): void;
}
