// Identity of the modelled functions: the vendor, device and class codes config space reports.

/** Vendor and device IDs of the modelled functions. */
export const IDS = {
  /** Root Port: the IDs of QEMU's generic PCIe Root Port, so lspci names it. */
  PORT_VENDOR: 0x1b36,
  PORT_DEVICE: 0x000c,
  EP_VENDOR: 0x1234,
  /** The DMA endpoint with no device-specific reset. */
  EP_PLAIN: 0x5a10,
  /** Device-specific reset: FLR, then wait for firmware to acknowledge (like Linux's reset_hinic_vf_dev). */
  EP_FW_ACK: 0x5a11,
  /** Device-specific reset: FLR whose result is ignored (like Linux's reset_intel_82599_sfp_virtfn). */
  EP_FLR_IGNORE: 0x5a12,
} as const;

export const CLASS = { BRIDGE_PCI: 0x060400, SYSTEM_OTHER: 0x088000 } as const;
