// `smmulab reset BDF --method flr|pm|bus|specific|cxl [--json]`: pci_reset_function on the function
// with its reset methods restricted to one (as writing sysfs reset_method does), bracketed by
// pci_dev_reset_iommu_prepare/done. Reports {ok, method, ms, depth, blocked}: the outcome, the
// platform time it took, and the IOMMU reset depth and blocking state afterwards. Faults can be
// injected first to see resets fail.

import { UsageError, parseCommandArgs } from './args.ts';
import { PCIE_COMMON, bdfArg, withPcieSession } from './pcie-boot.ts';
import type { CliCommand } from '../cli.ts';
import type { ResetReport } from '../../../drivers/ops/pci.ts';
import type { Fault } from '../../protocol/faults.ts';

const NAME = 'reset';
const METHODS = ['flr', 'pm', 'bus', 'specific', 'cxl'];
const FAULTS = ['flr-hang', 'unplug', 'atc-inv-ignore', 'fail-prepare'];
const SPEC = {
  ...PCIE_COMMON,
  method: { type: 'string', help: `reset method: ${METHODS.join('|')} (default: Linux's order, first that works)` },
  fault: { type: 'string', help: `inject before the reset: ${FAULTS.join('|')} (comma-separated)` },
  json: { type: 'boolean', help: 'print {ok, method, ms, depth, blocked} as JSON' },
} as const;

export const command: CliCommand = {
  name: NAME,
  summary: 'reset a function as pci_reset_function does and report the IOMMU blocking state',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, 'BB:DD.F [options]');
    if (!p) return 0;
    const bdf = bdfArg(NAME, p);
    const method = p.opts.method === undefined ? undefined : String(p.opts.method);
    if (method !== undefined && !METHODS.includes(method)) throw new UsageError(`${NAME}: --method '${method}' is not one of ${METHODS.join(', ')}`);
    const faults = p.opts.fault === undefined ? [] : String(p.opts.fault).split(',');
    for (const f of faults) if (!FAULTS.includes(f)) throw new UsageError(`${NAME}: --fault '${f}' is not one of ${FAULTS.join(', ')}`);
    return withPcieSession(NAME, p, async (s) => {
      const d = s.device(bdf);
      if (d.headerType !== 0) throw new UsageError(`${NAME}: ${bdf} is a bridge; reset its endpoints`);
      for (const f of faults) {
        if (f === 'fail-prepare') await s.sys.cpus[0]!.call('pciFailBlockingAttach', { count: 1 });
        else {
          const fault: Fault = f === 'unplug' ? { kind: 'pcie-unplug', bdf } : { kind: f === 'flr-hang' ? 'pcie-flr-hang' : 'pcie-atc-inv-ignore', bdf, on: true };
          await s.sys.inject(fault);
        }
      }
      const report = await s.sys.cpus[0]!.call<ResetReport>('pciReset', { bdf, ...(method ? { method } : {}) }, 600_000);
      const out = { ok: report.ok, method: report.method, ms: report.ms, depth: report.depth, blocked: report.blocked };
      if (p.opts.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        process.stdout.write(`${bdf}: reset via ${report.method} ${report.ok ? 'succeeded' : `failed (${report.rc})`} in ${report.ms} ms; IOMMU reset depth ${report.depth}, ${report.blocked ? 'device still blocked (ATS fenced)' : 'device unblocked'}\n`);
      }
      // A reset that fails is the device's behaviour, reported in `ok`: a result, not a failure of the command.
      return 0;
    });
  },
};
