// Units of platform time, and the timeouts the architecture and Linux define, in platform nanoseconds.

export const NS_PER_US = 1_000;
export const NS_PER_MS = 1_000_000;
export const NS_PER_S = 1_000_000_000;

/** Architectural and Linux timeouts, in platform nanoseconds. */
export const TIMEOUT = {
  /** ARM_SMMU_POLL_TIMEOUT_US (arm-smmu-v3.h): CMD_SYNC completion, CMDQ space, ACK registers, GBPA. */
  SMMU_POLL: 1 * NS_PER_S,
  /** Time a CR0/IRQ_CTRL/GBPA update takes to be acknowledged in this model (6.3.9: finite, not immediate). */
  SMMU_ACK_LATENCY: 2 * NS_PER_US,
  /** PCIe r6 6.6.2 / Linux pcie_flr(): a function must complete FLR within 100 ms. */
  FLR: 100 * NS_PER_MS,
  /** Linux PCIE_RESET_READY_POLL_MS: how long pci_dev_wait() waits for a function after reset. */
  RESET_READY_POLL: 60 * NS_PER_S,
} as const;
