// What the PCIe commands (lspci, dump-config, reset) share: their common options, booting the machine
// with the topology, probing the SMMU and enumerating PCI on CPU 0, and naming classes as lspci does.

import { UsageError, type OptSpec, type Parsed } from './args.ts';
import { FEATURES_SPEC, TRACE_SPEC, featuresFromOption, traceFromOption, withProbedSystem } from './boot.ts';
import { TOPOLOGY_SPEC, topologyFromOption } from './topology-option.ts';
import { TIME_SCALE_SPEC, atcTimeoutOption, pollTimeoutOption, timeoutNs } from './timeout-options.ts';
import type { System } from '../system.ts';
import { DMESG_SPEC, printDmesg } from './dmesg.ts';
import { parseBdf, formatBdf, ridOf } from '../../arch/pcie/bdf.ts';
import type { PciDeviceInfo } from '../../protocol/ops/pci.ts';
import { clip } from '../../protocol/check.ts';

export const PCIE_COMMON: Record<string, OptSpec> = {
  topology: TOPOLOGY_SPEC,
  features: FEATURES_SPEC,
  'time-scale': TIME_SCALE_SPEC,
  trace: TRACE_SPEC,
  'atc-timeout-ms': atcTimeoutOption.spec,
  'poll-timeout-ms': pollTimeoutOption.spec,
  dmesg: DMESG_SPEC,
};

/** A "BB:DD.F" argument, normalised (lower case), or a UsageError. */
export function bdfArg(command: string, p: Parsed): string {
  if (p.positional.length !== 1) throw new UsageError(`${command}: needs exactly one BB:DD.F argument (got ${p.positional.length})`);
  const b = parseBdf(p.positional[0]!);
  if (!b) throw new UsageError(`${command}: '${clip(p.positional[0]!)}' is not a BB:DD.F address`);
  return formatBdf(ridOf(b));
}

export interface PcieSession {
  sys: System;
  devices: PciDeviceInfo[];
  /** The device at bdf, or a UsageError listing what exists. */
  device(bdf: string): PciDeviceInfo;
}

/**
 * Boots one CPU with the options' topology, probes the SMMU, enumerates PCI and runs `body`; with
 * --dmesg the kernel log goes to stderr at the end. Resolves to the body's exit code.
 */
export async function withPcieSession(command: string, p: Parsed, body: (s: PcieSession) => Promise<number>): Promise<number> {
  const topology = topologyFromOption(command, p.opts.topology);
  const { features } = featuresFromOption(command, p.opts.features);
  // The three are bounded by their specs (src/host/cli/timeout-options.ts), checked when parsed.
  const timeScale = Number(p.opts['time-scale'] ?? 1);
  const atcTimeoutNs = timeoutNs(p.opts['atc-timeout-ms']);
  const pollTimeoutNs = timeoutNs(p.opts['poll-timeout-ms']);
  const trace = traceFromOption(command, p.opts.trace);
  const boot = { cpus: 1, features, timeScale, ...(topology ? { topology } : {}), ...(atcTimeoutNs !== undefined ? { atcTimeoutNs } : {}), ...(trace ? { trace } : {}) };
  return withProbedSystem(command, boot, pollTimeoutNs !== undefined ? { pollTimeoutNs } : {}, async (sys) => {
    try {
      const devices = await sys.pciInit();
      return await body({
        sys,
        devices,
        device(bdf) {
          const d = devices.find((x) => x.bdf === bdf);
          if (!d) throw new UsageError(`${command}: no PCI function at ${bdf} (found: ${devices.map((x) => x.bdf).join(', ')})`);
          return d;
        },
      });
    } finally {
      if (p.opts.dmesg) printDmesg(await sys.dmesg());
    }
  });
}

const CLASS_NAMES: Record<number, string> = { 0x0604: 'PCI bridge', 0x0880: 'System peripheral', 0x0200: 'Ethernet controller', 0x0108: 'Non-Volatile memory controller' };

export function className(classCode: number): string {
  const c = classCode >>> 8;
  return CLASS_NAMES[c] ?? `Class ${hex(c, 4)}`;
}

/** Hex digits without a prefix, zero-padded to w (lspci's IDs and revisions). */
export const hex = (v: number, w: number): string => v.toString(16).padStart(w, '0');
