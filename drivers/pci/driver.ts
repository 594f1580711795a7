// The device-driver interface (Linux struct pci_driver and struct pci_error_handlers) and binding:
// a driver claims the devices its ID table matches; probe() returning an error leaves the device
// unbound.

import type { PciCore } from './core.ts';
import { type PciDev } from './pci.ts';
import { errName } from '../../src/protocol/errno.ts';

/** enum pci_ers_result. */
export const PCI_ERS = { NONE: 1, CAN_RECOVER: 2, NEED_RESET: 3, DISCONNECT: 4, RECOVERED: 5, NO_AER_DRIVER: 6 } as const;
export type PciErsResult = (typeof PCI_ERS)[keyof typeof PCI_ERS];
export const PCI_ERS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(PCI_ERS).map(([k, v]) => [v, k]));

/** pci_channel_state. */
export const PCI_CHANNEL = { NORMAL: 1, FROZEN: 2, PERM_FAILURE: 3 } as const;
export type PciChannelState = (typeof PCI_CHANNEL)[keyof typeof PCI_CHANNEL];

export interface PciErrorHandlers {
  /** An error was detected on the device's link; the driver says what it needs. */
  errorDetected?(dev: PciDev, state: PciChannelState): PciErsResult;
  /** MMIO works again (non-fatal errors): the driver may check the device. */
  mmioEnabled?(dev: PciDev): PciErsResult;
  /** The slot was reset: the driver re-initialises the device. */
  slotReset?(dev: PciDev): PciErsResult;
  /** Recovery is over: normal operation may resume. */
  resume?(dev: PciDev): void;
  /** pci_reset_function() is about to reset the device: quiesce it. */
  resetPrepare?(dev: PciDev): void;
  /** pci_reset_function() is done (whatever the outcome): bring the device back. */
  resetDone?(dev: PciDev): void;
}

export interface PciDeviceId {
  vendor: number;
  device: number;
}

export interface PciDriver {
  name: string;
  idTable: readonly PciDeviceId[];
  /** 0 when the driver now owns the device, -errno otherwise. */
  probe(dev: PciDev, id: PciDeviceId): number;
  remove(dev: PciDev): void;
  errHandler?: PciErrorHandlers;
}

function match(drv: PciDriver, dev: PciDev): PciDeviceId | undefined {
  return drv.idTable.find((id) => id.vendor === dev.vendor && id.device === dev.device);
}

/** Offers every unbound device to every driver whose ID table matches (driver core probing). */
export function pciBindDrivers(core: PciCore): void {
  for (const dev of core.devices) {
    if (dev.driver || dev.disconnected) continue;
    for (const drv of core.drivers) {
      const id = match(drv, dev);
      if (!id) continue;
      dev.driver = drv;
      const rc = drv.probe(dev, id);
      if (rc === 0) break;
      dev.driver = null;
      dev.driverData = null;
      dev.log('warn', `probe with driver ${drv.name} failed with error ${errName(rc)}`);
    }
  }
}

/** Unbinds the device's driver (device_release_driver). */
export function pciUnbindDriver(dev: PciDev): void {
  const drv = dev.driver;
  if (!drv) return;
  drv.remove(dev);
  dev.driver = null;
  dev.driverData = null;
}
