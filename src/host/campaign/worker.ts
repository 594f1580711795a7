// A campaign pool worker: runs the seeds the host hands it, one at a time, in lockstep, and posts each
// result back. Each worker is one more core's worth of schedules.

import { parentPort } from 'node:worker_threads';
import { runSeed, type SeedJob } from './run-one.ts';

parentPort!.on('message', async (job: SeedJob | { stop: true }) => {
  if ('stop' in job) {
    parentPort!.close();
    return;
  }
  parentPort!.postMessage({ seed: job.seed, result: await runSeed(job) });
});
parentPort!.postMessage({ ready: true });
