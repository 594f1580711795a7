#!/usr/bin/env node
// CLI entry: registers tsx so the TypeScript sources run as they are, with no build step.
import { register } from 'tsx/esm/api';

register();
// A reader that stops early (`smmulab faults | head`) closes the pipe: that ends the output, not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
const { main } = await import('../src/host/cli.ts');
process.exitCode = await main(process.argv.slice(2));
