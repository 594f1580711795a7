// What the PCIe commands (lspci, dump-config, reset) share: their common options, booting the machine
// with the topology, probing the SMMU and enumerating PCI on CPU 0, and naming classes as lspci does.

import { UsageError, type OptSpec, type Parsed } from './args.ts';
import { TOPOLOGY_SPEC, topologyFromOption } from './topology-option.ts';
import { System } from '../system.ts';
import { parseFeatures } from '../smmu/features.ts';
import { formatLog } from '../cpu.ts';
import { parseBdf, formatBdf, ridOf } from '../topology.ts';
import type { PciDeviceInfo } from '../../drivers/ops/pci.ts';

export const PCIE_COMMON: Record<string, OptSpec> = {
  topology: TOPOLOGY_SPEC,
  features: { type: 'string', help: 'SMMU feature profile, optionally with +feature/-feature', default: 'default' },
  'time-scale': { type: 'number', help: 'platform time runs this many times faster than host time', default: 1 },
  'atc-timeout-ms': { type: 'number', help: 'platform ms the SMMU waits for an ATC invalidation completion' },
  'poll-timeout-ms': { type: 'number', help: "platform ms the driver waits for a CMD_SYNC (Linux's 1 s by default)" },
  dmesg: { type: 'boolean', help: 'print the kernel log on stderr' },
  help: { type: 'boolean', help: 'show this help' },
};

/** A "BB:DD.F" argument, normalised (lower case), or a UsageError. */
export function bdfArg(command: string, p: Parsed): string {
  if (p.positional.length !== 1) throw new UsageError(`${command}: needs exactly one BB:DD.F argument (got ${p.positional.length})`);
  const b = parseBdf(p.positional[0]!);
  if (!b) throw new UsageError(`${command}: '${p.positional[0]}' is not a BB:DD.F address`);
  return formatBdf(ridOf(b));
}

function positive(command: string, p: Parsed, name: string): number | undefined {
  const v = p.opts[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0)) throw new UsageError(`${command}: --${name} must be a number above 0 (got ${String(v)})`);
  return v;
}

export interface PcieSession {
  sys: System;
  devices: PciDeviceInfo[];
  /** The device at bdf, or a UsageError listing what exists. */
  device(bdf: string): PciDeviceInfo;
  close(): Promise<void>;
}

/** Boots one CPU with the options' topology, probes the SMMU and enumerates PCI. */
export async function pcieSession(command: string, p: Parsed): Promise<PcieSession> {
  const topology = topologyFromOption(command, p.opts.topology);
  let features;
  try {
    features = parseFeatures(String(p.opts.features)).features;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
  const timeScale = positive(command, p, 'time-scale') ?? 1;
  const atc = positive(command, p, 'atc-timeout-ms');
  const poll = positive(command, p, 'poll-timeout-ms');
  const sys = await System.boot({
    cpus: 1,
    features,
    timeScale,
    ...(topology ? { topology } : {}),
    ...(atc !== undefined ? { atcTimeoutNs: atc * 1e6 } : {}),
  });
  const dumpLog = async () => {
    if (p.opts.dmesg) for (const e of await sys.dmesg()) process.stderr.write(formatLog(e) + '\n');
  };
  try {
    await sys.probe(poll !== undefined ? { pollTimeoutNs: poll * 1e6 } : {});
    const devices = await sys.pciInit();
    return {
      sys,
      devices,
      device(bdf) {
        const d = devices.find((x) => x.bdf === bdf);
        if (!d) throw new UsageError(`${command}: no PCI function at ${bdf} (found: ${devices.map((x) => x.bdf).join(', ')})`);
        return d;
      },
      async close() {
        await dumpLog();
        await sys.shutdown();
      },
    };
  } catch (e) {
    await dumpLog();
    await sys.shutdown();
    throw e;
  }
}

const CLASS_NAMES: Record<number, string> = { 0x0604: 'PCI bridge', 0x0880: 'System peripheral', 0x0200: 'Ethernet controller', 0x0108: 'Non-Volatile memory controller' };

export function className(classCode: number): string {
  const c = classCode >>> 8;
  return CLASS_NAMES[c] ?? `Class ${c.toString(16).padStart(4, '0')}`;
}

export const hex = (v: number, w: number): string => v.toString(16).padStart(w, '0');
