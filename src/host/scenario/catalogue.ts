// Scenario files: the built-in ones (examples/scenarios/NAME.json, listed by `smmulab scenarios`) and
// any file a user names. A file is read, parsed and checked here; every error is an InputError that
// names the file and the field (`my.json: faults[2].trigger.count: ...`).

import { readdirSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, clip } from '../../protocol/check.ts';
import { checkFault, type Fault } from '../../protocol/faults.ts';
import { checkScenario, type Scenario } from '../../protocol/scenario.ts';
import { INPUT_LIMITS, parseJsonText, readJsonFile } from '../input-file.ts';

/** Where the built-in scenarios live: data files of the package (examples/scenarios), not code. */
export const BUILTIN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'scenarios') + sep;

export interface LoadedScenario {
  scenario: Scenario;
  name: string;
  /** The file it came from, and the directory its relative paths start from. */
  file: string;
  baseDir: string;
}

/** Checks parsed JSON as a scenario; errors name `where` and the field path. */
export function parseScenario(json: unknown, where: string): Scenario {
  try {
    return checkScenario(json, 'scenario');
  } catch (e) {
    if (e instanceof InputError) throw new InputError(`${where}: ${e.message.replace(/^scenario\./, '')}`);
    throw e;
  }
}

/** The built-in scenario names, sorted. */
export function builtinNames(): string[] {
  return readdirSync(BUILTIN_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** A built-in scenario by name, or a scenario file by path (anything with a '/' or ending in .json). */
export function loadScenario(nameOrFile: string): LoadedScenario {
  const isFile = nameOrFile.includes('/') || nameOrFile.endsWith('.json');
  if (!isFile && !builtinNames().includes(nameOrFile)) {
    throw new InputError(`--scenario: '${clip(nameOrFile)}' is neither a built-in scenario (see smmulab scenarios) nor a .json file`);
  }
  const file = isFile ? nameOrFile : `${BUILTIN_DIR}${nameOrFile}.json`;
  const scenario = parseScenario(readJsonFile(file, 'scenario file', INPUT_LIMITS.scenario), isFile ? file : nameOrFile);
  return { scenario, name: scenario.name ?? basename(file, '.json'), file, baseDir: dirname(file) };
}

/** A fault from `--inject`: inline JSON (starting with '{') or a file holding one fault or an array of them. */
export function parseInjectOption(value: string, index: number): Fault[] {
  const inline = value.trimStart().startsWith('{') || value.trimStart().startsWith('[');
  // Errors in a file name the file, as the topology file's do (`f.json[1].bdf: ...`).
  const where = inline ? `--inject #${index + 1}` : value;
  const json = inline ? parseJsonText(value, where) : readJsonFile(value, 'fault file', INPUT_LIMITS.faults);
  const list = Array.isArray(json) ? json : [json];
  return list.map((f, i) => checkFault(f, Array.isArray(json) ? `${where}[${i}]` : where));
}
