// The subcommand table: one line per command module.

import { registerCommand } from '../cli.ts';

registerCommand('run', async () => (await import('./run.ts')).command);
registerCommand('replay', async () => (await import('./replay.ts')).command);
registerCommand('lspci', async () => (await import('./lspci.ts')).command);
registerCommand('dump-config', async () => (await import('./dump-config.ts')).command);
registerCommand('reset', async () => (await import('./reset.ts')).command);
