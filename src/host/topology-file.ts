// Reading a topology file (`--topology FILE`): the host's side of src/protocol/topology.ts.

import { readFileSync } from 'node:fs';
import { TopologyError, parseTopology, type Topology } from '../protocol/topology.ts';

/** Reads and validates a topology file; errors name the file and the field. */
export function loadTopologyFile(path: string): Topology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TopologyError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TopologyError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseTopology(json, path);
}
