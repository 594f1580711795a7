// `smmulab lspci`: boot, probe the SMMU, enumerate PCI through ECAM and print the tree the PCI core
// found: each Root Port with the functions below it, their IDs, StreamIDs, drivers, ATS and IOMMU state;
// with --verbose their capabilities, BARs and reset methods; with --json the PCI core's records, IDs as
// hex strings ("0x1234", as lspci -n and the topology file write them) and null for what a function
// lacks (no StreamID, no MSI vector).

import { noArguments, parseCommandArgs } from './args.ts';
import { PCIE_COMMON, className, hex, withPcieSession } from './pcie-boot.ts';
import type { CliCommand } from './command.ts';
import type { PciDeviceInfo } from '../../protocol/ops/pci.ts';
import { BAR_BYTES } from '../../arch/platform.ts';

/** Why a BAR has no address: the PCI core ran out of BAR window (the kernel log says "no space"). */
const NO_SPACE = `not assigned: no space in the ${BAR_BYTES >>> 20} MiB BAR window`;

/** A PCI core record as `lspci --json` prints it. */
export type LspciJson = Omit<PciDeviceInfo, 'vendor' | 'device' | 'classCode' | 'revision' | 'caps' | 'sid' | 'irq'> & {
  vendor: string;
  device: string;
  classCode: string;
  revision: string;
  /** Capability IDs as hex strings too (offsets stay numbers). */
  caps: (Omit<PciDeviceInfo['caps'][number], 'id'> & { id: string })[];
  /** The function's StreamID (the firmware's iommu-map), or null when it has none. */
  sid: string | null;
  irq: number | null;
};

/** "0x" and the hex digits, zero-padded to w. */
const hexId = (v: number, w: number): string => `0x${hex(v, w)}`;

export function lspciJson(d: PciDeviceInfo): LspciJson {
  return {
    ...d,
    vendor: hexId(d.vendor, 4),
    device: hexId(d.device, 4),
    classCode: hexId(d.classCode, 6),
    revision: hexId(d.revision, 2),
    caps: d.caps.map((c) => ({ ...c, id: hexId(c.id, c.ext ? 4 : 2) })),
    sid: d.sid >= 0 ? hexId(d.sid, 4) : null,
    irq: d.irq >= 0 ? d.irq : null,
  };
}

const NAME = 'lspci';
const SPEC = {
  ...PCIE_COMMON,
  verbose: { type: 'boolean', help: 'also list capabilities, BARs, MSI vectors and reset methods' },
  json: { type: 'boolean', help: 'print the PCI core\'s device records as JSON' },
} as const;

function line(d: PciDeviceInfo): string {
  const parts = [`${d.bdf} ${className(d.classCode)} [${hex(d.vendor, 4)}:${hex(d.device, 4)}] rev ${hex(d.revision, 2)}`];
  if (d.pcieType) parts.push(d.pcieType);
  if (d.secondaryBus !== null) parts.push(`bus ${hex(d.secondaryBus, 2)} below`);
  if (d.sid >= 0) parts.push(`SID 0x${hex(d.sid, 4)}`);
  if (d.driver) parts.push(`driver ${d.driver}`);
  if (d.ats) parts.push(`ATS ${d.ats.enabled ? `enabled (STU ${2 ** d.ats.stu / 1024} KiB)` : 'disabled'}, invalidate queue depth ${d.ats.queueDepth}`);
  if (d.iommu) parts.push(`IOMMU ${d.iommu.domain}${d.iommu.blocked ? ' (blocked)' : ''}`);
  // A StreamID the SMMU cannot hold: its IOMMU probe failed (-ERANGE), it is not behind the IOMMU.
  else if (d.sid >= 0) parts.push('no IOMMU');
  // Said without --verbose: it is why such a function has no driver.
  for (const b of d.bars) if (!b.assigned) parts.push(`BAR ${b.index} ${NO_SPACE}`);
  return parts.join(', ');
}

function details(d: PciDeviceInfo, indent: string): string[] {
  const out = [`${indent}capabilities: ${d.caps.map((c) => `[${c.offset.toString(16)}] ${c.name}`).join(', ') || 'none'}${d.capsLooped ? ' <chain looped>' : ''}`];
  for (const b of d.bars) {
    const size = `[size ${b.size >= 1024 ? `${b.size / 1024}K` : b.size}]`;
    out.push(`${indent}BAR ${b.index}: ${b.assigned ? `memory at 0x${hex(b.start, 8)} ${size}` : `${size} ${NO_SPACE}`}`);
  }
  if (d.irq >= 0) out.push(`${indent}MSI vector ${d.irq}`);
  out.push(`${indent}reset methods: ${d.resetMethods.join(' ') || 'none'}`);
  return out;
}

/** The tree: bus 0, each bridge followed by the bus below it. */
function formatTree(devices: PciDeviceInfo[], verbose: boolean): string {
  const lines = ['0000:00 (PCI host bridge)'];
  const bus = (n: number) => devices.filter((d) => parseInt(d.bdf.slice(0, 2), 16) === n);
  const walk = (n: number, prefix: string) => {
    const list = bus(n);
    list.forEach((d, i) => {
      const last = i === list.length - 1;
      lines.push(`${prefix}${last ? '`-- ' : '|-- '}${line(d)}`);
      const inner = prefix + (last ? '    ' : '|   ');
      if (verbose) lines.push(...details(d, inner + (d.secondaryBus !== null ? '|   ' : '    ')));
      if (d.secondaryBus !== null) walk(d.secondaryBus, inner);
    });
  };
  walk(0, '');
  return lines.join('\n') + '\n';
}

export const command: CliCommand = {
  name: NAME,
  summary: 'enumerate PCI through ECAM and print the tree the PCI core found',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, '[options]');
    if (!p) return 0;
    noArguments(p, NAME);
    return withPcieSession(NAME, p, async (s) => {
      process.stdout.write(p.opts.json ? JSON.stringify(s.devices.map(lspciJson), null, 2) + '\n' : formatTree(s.devices, p.opts.verbose === true));
      return 0;
    });
  },
};
