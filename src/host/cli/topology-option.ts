// `--topology FILE` for `smmulab run` (through the run-option registry) and the PCIe commands: the
// PCIe topology the machine is built with (src/protocol/topology.ts). A bad file is a usage error naming the
// file and the field.

import { UsageError, type OptSpec } from './args.ts';
import type { RunOption } from './workload-api.ts';
import { TopologyError, type Topology } from '../../protocol/topology.ts';
import { loadTopologyFile } from '../topology-file.ts';

export const TOPOLOGY_SPEC: OptSpec = { type: 'string', help: 'PCIe topology JSON file (default: two Root Ports, one ATS endpoint each)' };

/** The topology a --topology value names (undefined: the default), or a UsageError. */
export function topologyFromOption(command: string, value: unknown): Topology | undefined {
  if (value === undefined) return undefined;
  try {
    return loadTopologyFile(String(value));
  } catch (e) {
    if (e instanceof TopologyError) throw new UsageError(`${command}: --topology ${e.message}`);
    throw e;
  }
}

export const option: RunOption = {
  spec: TOPOLOGY_SPEC,
  apply(value, setup) {
    const t = topologyFromOption('run', value);
    if (t) setup.boot.topology = t;
  },
};
