// npm run bench [-- --quick]: every throughput suite in one run, one after the other so they do not
// compete for the cores, each in its own process and writing its own JSON under bench/results/:
//   cmdq      command queue throughput and CMD_SYNC round trip against the baselines (bench/cmdq.ts)
//   recovery  ATC timeout recovery: success-path cost of the default policy, fencing 1 of N (bench/recovery.ts)
//   faults    the sanitizer's cost and campaign schedules/s (bench/faults.ts)
// Each suite alone, with its own options: npm run bench:cmdq|bench:recovery|bench:faults -- --help.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SUITES = ['cmdq', 'recovery', 'faults'] as const;
const args = process.argv.slice(2);
const HELP = `usage: npm run bench [-- --quick]

Runs the benchmark suites ${SUITES.join(', ')} one after the other (see bench/all.ts).
  --quick    fewer cases and trials in every suite
  -h, --help show this help
Each suite alone, with its own options: npm run bench:<suite> -- --help`;

if (args.includes('--help') || args.includes('-h')) {
  console.log(HELP);
} else {
  const bad = args.find((a) => a !== '--quick');
  if (bad !== undefined) {
    console.error(`bench: unknown option ${bad} (only --quick; each suite's own options: npm run bench:<suite> -- --help)`);
    process.exit(2);
  }
  const runner = fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url));
  for (const suite of SUITES) {
    console.log(`\n== ${suite} ==`);
    const r = spawnSync(process.execPath, [runner, fileURLToPath(new URL(`./${suite}.ts`, import.meta.url)), ...args], { stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`bench: suite ${suite} failed (exit ${r.status ?? r.signal})`);
      process.exit(1);
    }
  }
}
