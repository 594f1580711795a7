#!/usr/bin/env node
// CLI entry: registers tsx so the TypeScript sources run as they are, with no build step.
import { register } from 'tsx/esm/api';

register();
// A reader that stops early (`smmulab faults | head`) closes the pipe: that ends the output, not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
// The last resort for an error nothing caught (a timer, an event): one line and exit 1, as for every
// error from inside; the stack trace only with --debug.
const debug = process.argv.slice(2).includes('--debug');
const fatal = (e) => {
  process.stderr.write(`smmulab: internal error: ${e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e)}\n`);
  process.exit(1);
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
const { main } = await import('../src/host/cli.ts');
process.exitCode = await main(process.argv.slice(2));
