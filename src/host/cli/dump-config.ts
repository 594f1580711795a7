// `smmulab dump-config BDF [--after-flr]`: the function's configuration space, read by the PCI core
// through ECAM, in the format `lspci -xxxx` prints — a "BB:DD.F " line then "OFF: " lines of 16 bytes
// up to 0xff0 — so `lspci -F FILE -vvv` decodes it. With --after-flr the function is reset first by
// writing Initiate FLR directly (as `setpci` would: no pci_reset_function save/restore, no IOMMU
// hooks), so the dump shows what the FLR left: ATS, Bus Master and Memory Space off.

import { UsageError, parseCommandArgs } from './args.ts';
import { PCIE_COMMON, bdfArg, className, hex, withPcieSession } from './pcie-boot.ts';
import { dwordsToBytes, formatConfigDump } from '../pcie-dump.ts';
import type { CliCommand } from './command.ts';
import { errName } from '../../protocol/errno.ts';

const NAME = 'dump-config';
const SPEC = {
  ...PCIE_COMMON,
  'after-flr': { type: 'boolean', help: 'issue an FLR first and dump the state it leaves' },
} as const;

export const command: CliCommand = {
  name: NAME,
  summary: 'print a function\'s config space as lspci -xxxx does (decode with lspci -F FILE -vvv)',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, 'BB:DD.F [options]');
    if (!p) return 0;
    const bdf = bdfArg(NAME, p);
    return withPcieSession(NAME, p, async (s) => {
      const d = s.device(bdf);
      if (p.opts['after-flr']) {
        if (!d.resetMethods.includes('flr')) throw new UsageError(`${NAME}: ${bdf} cannot do FLR (Device Capabilities FLR is 0)`);
        const rc = await s.sys.cpu(0).op('pciRawFlr', { bdf });
        if (rc !== 0) process.stderr.write(`${NAME}: ${bdf} not ready after FLR (${errName(rc)}); dumping what it returns\n`);
      }
      const dwords = await s.sys.cpu(0).op('pciConfigRead', { bdf });
      const title = `${className(d.classCode)}: Device ${hex(d.vendor, 4)}:${hex(d.device, 4)} (rev ${hex(d.revision, 2)})`;
      process.stdout.write(formatConfigDump(bdf, dwordsToBytes(dwords), title));
      return 0;
    });
  },
};
