// Driver binding: a driver (struct pci_driver, pci.ts) claims the devices its ID table matches;
// probe() returning an error leaves the device unbound.

import type { PciCore } from './core.ts';
import type { PciDeviceId, PciDev, PciDriver } from './pci.ts';
import { errName } from '../../src/protocol/errno.ts';

function match(drv: PciDriver, dev: PciDev): PciDeviceId | undefined {
  return drv.idTable.find((id) => id.vendor === dev.vendor && id.device === dev.device);
}

/** pci_register_driver: adds a driver and, once the bus is scanned, offers it the unbound devices. */
export function pciRegisterDriver(core: PciCore, drv: PciDriver): void {
  if (core.drivers.some((d) => d.name === drv.name)) throw new Error(`PCI driver ${drv.name} registered twice`);
  core.drivers.push(drv);
  if (core.root) pciBindDrivers(core);
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
