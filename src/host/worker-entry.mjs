// Worker bootstrap: Node 20 cannot load TypeScript in a worker by itself, and vitest does not
// transform worker code, so every worker starts here, registers tsx's ESM loader for this thread and
// then imports the TypeScript module named in workerData.module (a file URL).
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
