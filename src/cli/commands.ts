// The subcommand table: one line per command module.

import { registerCommand } from '../cli.ts';

registerCommand('run', async () => (await import('./run.ts')).command);
registerCommand('replay', async () => (await import('./replay.ts')).command);
