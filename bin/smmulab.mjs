#!/usr/bin/env node
// CLI entry: registers tsx so the TypeScript sources run as they are, with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/host/cli.ts');
process.exitCode = await main(process.argv.slice(2));
