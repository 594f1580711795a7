// The subcommand table: one line per command module, loaded on demand so `smmulab --help` stays fast.
// A Map, so a command name is never looked up among an object's inherited properties.

import type { CliCommand } from './command.ts';

export const COMMANDS: ReadonlyMap<string, () => Promise<CliCommand>> = new Map([
  ['run', async () => (await import('./run.ts')).command],
  ['replay', async () => (await import('./replay.ts')).command],
  ['lspci', async () => (await import('./lspci.ts')).command],
  ['dump-config', async () => (await import('./dump-config.ts')).command],
  ['reset', async () => (await import('./reset.ts')).command],
  ['trace-points', async () => (await import('./trace-points.ts')).command],
  ['faults', async () => (await import('./faults.ts')).command],
  ['scenarios', async () => (await import('./scenarios.ts')).command],
  ['schema', async () => (await import('./schema.ts')).command],
  ['campaign', async () => (await import('./campaign.ts')).command],
  ['compare', async () => (await import('./compare.ts')).command],
]);
