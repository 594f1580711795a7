// `smmulab reset BDF --method flr|pm|bus|specific|cxl [--json]`: pci_reset_function on the function
// with its reset methods restricted to one (as writing sysfs reset_method does), bracketed by
// pci_dev_reset_iommu_prepare/done. Reports {ok, method, ms, depth, blocked}: the outcome, the
// platform time it took, and the IOMMU reset depth and blocking state afterwards. Faults of the
// catalogue (src/protocol/faults.ts) can be injected first, by name, to see resets fail.

import { UsageError, parseCommandArgs } from './args.ts';
import { PCIE_COMMON, bdfArg, withPcieSession } from './pcie-boot.ts';
import type { CliCommand } from './command.ts';
import type { ResetMethod } from '../../protocol/ops/pci.ts';
import type { Fault } from '../../protocol/faults.ts';
import { errName } from '../../protocol/errno.ts';

const NAME = 'reset';
/** The command's method names and the sysfs names they stand for. */
const METHODS: ReadonlyMap<string, ResetMethod> = new Map([
  ['flr', 'flr'],
  ['pm', 'pm'],
  ['bus', 'bus'],
  ['specific', 'device_specific'],
  ['cxl', 'cxl_bus'],
]);
/** Faults `--fault` takes, by their catalogue names, as they apply to the function being reset. */
const FAULTS: ReadonlyMap<string, (bdf: string) => Fault> = new Map([
  ['flr-never-ready', (bdf: string): Fault => ({ kind: 'flr-never-ready', bdf, trigger: { count: 'forever' } })],
  ['surprise-removal', (bdf: string): Fault => ({ kind: 'surprise-removal', bdf })],
  ['atc-inv-no-answer', (bdf: string): Fault => ({ kind: 'atc-inv-no-answer', bdf, trigger: { count: 'forever' } })],
  ['fail-blocking-attach', (): Fault => ({ kind: 'fail-blocking-attach' })],
]);
const SPEC = {
  ...PCIE_COMMON,
  method: { type: 'string', help: `reset method: ${[...METHODS.keys()].join('|')} (default: Linux's order, first that works)` },
  fault: { type: 'string', help: `inject before the reset: ${[...FAULTS.keys()].join('|')} (comma-separated)` },
  json: { type: 'boolean', help: 'print {ok, method, ms, depth, blocked} as JSON' },
} as const;

export const command: CliCommand = {
  name: NAME,
  summary: 'reset a function as pci_reset_function does and report the IOMMU blocking state',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, 'BB:DD.F [options]');
    if (!p) return 0;
    const bdf = bdfArg(NAME, p);
    const methodName = p.opts.method === undefined ? undefined : String(p.opts.method);
    const method = methodName === undefined ? undefined : METHODS.get(methodName);
    if (methodName !== undefined && method === undefined) throw new UsageError(`${NAME}: --method '${methodName}' is not one of ${[...METHODS.keys()].join(', ')}`);
    const faults = (p.opts.fault === undefined ? [] : String(p.opts.fault).split(',')).map((f) => {
      const make = FAULTS.get(f);
      if (!make) throw new UsageError(`${NAME}: --fault '${f}' is not one of ${[...FAULTS.keys()].join(', ')}`);
      return make(bdf);
    });
    return withPcieSession(NAME, p, async (s) => {
      const d = s.device(bdf);
      if (d.headerType !== 0) throw new UsageError(`${NAME}: ${bdf} is a bridge; reset its endpoints`);
      for (const f of faults) await s.sys.inject(f);
      const report = await s.sys.cpu(0).op('pciReset', { bdf, ...(method ? { method } : {}) }, 600_000);
      const shown = methodName ?? 'auto';
      const out = { ok: report.ok, method: shown, ms: report.ms, depth: report.depth, blocked: report.blocked };
      if (p.opts.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        process.stdout.write(`${bdf}: reset via ${shown} ${report.ok ? 'succeeded' : `failed (${errName(report.rc)})`} in ${report.ms} ms; IOMMU reset depth ${report.depth}, ${report.blocked ? 'device still blocked (ATS fenced)' : 'device unblocked'}\n`);
      }
      // A reset that fails is the device's behaviour, reported in `ok`: a result, not a failure of the command.
      return 0;
    });
  },
};
