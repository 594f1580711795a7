// `smmulab reset BDF [--method device_specific|flr|pm|bus|cxl_bus] [--json]`: pci_reset_function on
// the function, with its reset methods restricted to one (as writing that sysfs reset_method name
// does) or in Linux's order, each bracketed by pci_dev_reset_iommu_prepare/done. Reports {ok, method,
// requested, rc, errno, ms, depth, blocked}: the outcome, the method that did the reset (or whose
// error ended it), what was asked for, pci_reset_function's return value and its errno name, the
// platform time it took, and the IOMMU reset depth and blocking state afterwards. Faults of the
// catalogue (src/protocol/faults.ts) can be injected first, by name, to see resets fail.

import { UsageError, parseCommandArgs } from './args.ts';
import { PCIE_COMMON, bdfArg, withPcieSession } from './pcie-boot.ts';
import type { CliCommand } from './command.ts';
import { RESET_METHODS, type ResetMethod } from '../../protocol/ops/pci.ts';
import type { Fault } from '../../protocol/faults.ts';
import { errName } from '../../protocol/errno.ts';
import { clip } from '../../protocol/check.ts';

const NAME = 'reset';
/** Faults `--fault` takes, by their catalogue names, as they apply to the function being reset. */
const FAULTS: ReadonlyMap<string, (bdf: string) => Fault> = new Map([
  ['flr-never-ready', (bdf: string): Fault => ({ kind: 'flr-never-ready', bdf, trigger: { count: 'forever' } })],
  ['surprise-removal', (bdf: string): Fault => ({ kind: 'surprise-removal', bdf })],
  ['atc-inv-no-answer', (bdf: string): Fault => ({ kind: 'atc-inv-no-answer', bdf, trigger: { count: 'forever' } })],
  ['fail-blocking-attach', (): Fault => ({ kind: 'fail-blocking-attach' })],
]);
const SPEC = {
  ...PCIE_COMMON,
  method: { type: 'string', help: `reset method, by its sysfs reset_method name: ${RESET_METHODS.join('|')} (default: Linux's order, first that works)` },
  fault: { type: 'string', help: `inject before the reset: ${[...FAULTS.keys()].join('|')} (comma-separated)` },
  json: { type: 'boolean', help: 'print {ok, method, requested, rc, errno, ms, depth, blocked} as JSON' },
} as const;

/** What `reset --json` prints. */
export interface ResetJson {
  ok: boolean;
  /** The method that did the reset, or whose error ended it; null when none was tried. */
  method: ResetMethod | null;
  /** --method, or null for Linux's order. */
  requested: ResetMethod | null;
  /** pci_reset_function's return value: 0 or a negative errno. */
  rc: number;
  /** rc's name ("-ETIMEDOUT"), or null for 0. */
  errno: string | null;
  ms: number;
  depth: number;
  blocked: boolean;
}

export const command: CliCommand = {
  name: NAME,
  summary: 'reset a function as pci_reset_function does and report the IOMMU blocking state',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, 'BB:DD.F [options]');
    if (!p) return 0;
    const bdf = bdfArg(NAME, p);
    const methodName = p.opts.method === undefined ? undefined : String(p.opts.method);
    const method = RESET_METHODS.find((m) => m === methodName);
    if (methodName !== undefined && method === undefined) {
      throw new UsageError(`${NAME}: --method '${clip(methodName)}' is not one of ${RESET_METHODS.join(', ')} (the sysfs reset_method names)`);
    }
    const faults = (p.opts.fault === undefined ? [] : String(p.opts.fault).split(',')).map((f) => {
      const make = FAULTS.get(f);
      if (!make) throw new UsageError(`${NAME}: --fault '${clip(f)}' is not one of ${[...FAULTS.keys()].join(', ')}`);
      return make(bdf);
    });
    return withPcieSession(NAME, p, async (s) => {
      const d = s.device(bdf);
      if (d.headerType !== 0) throw new UsageError(`${NAME}: ${bdf} is a bridge; reset its endpoints`);
      for (const f of faults) await s.sys.inject(f);
      const report = await s.sys.cpu(0).op('pciReset', { bdf, ...(method ? { method } : {}) }, 600_000);
      const out: ResetJson = {
        ok: report.ok,
        method: report.method,
        requested: method ?? null,
        rc: report.rc,
        errno: report.rc === 0 ? null : errName(report.rc),
        ms: report.ms,
        depth: report.depth,
        blocked: report.blocked,
      };
      if (p.opts.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        const how = report.method ? `via ${report.method}` : `(no method tried${method ? `: the function does not support ${method}` : ''})`;
        process.stdout.write(`${bdf}: reset ${how} ${report.ok ? 'succeeded' : `failed (${errName(report.rc)})`} in ${report.ms} ms; IOMMU reset depth ${report.depth}, ${report.blocked ? 'device still blocked (ATS fenced)' : 'device unblocked'}\n`);
      }
      // A reset that fails is the device's behaviour, reported in `ok`: a result, not a failure of the command.
      return 0;
    });
  },
};
