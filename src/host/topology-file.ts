// Reading a topology file (`--topology FILE`): the host's side of src/protocol/topology.ts.

import { InputError } from '../protocol/check.ts';
import { TopologyError, parseTopology, type Topology } from '../protocol/topology.ts';
import { INPUT_LIMITS, readJsonFile } from './input-file.ts';

/** Reads and validates a topology file; errors (TopologyErrors) name the file and the field. */
export function loadTopologyFile(path: string): Topology {
  let json: unknown;
  try {
    json = readJsonFile(path, 'topology file', INPUT_LIMITS.topology);
  } catch (e) {
    // Callers tell a topology problem from others by its class (to put "--topology" or "topology:" first).
    if (e instanceof InputError) throw new TopologyError(e.message);
    throw e;
  }
  return parseTopology(json, path);
}
