// Baseline workers for bench/cmdq.ts: what moving commands between two threads costs with no SMMU
// semantics at all. Roles (workerData.role):
//   ring-producer / ring-consumer  a single-producer single-consumer ring of 16-byte entries in a
//       SharedArrayBuffer; the producer writes a batch, publishes PROD, then spins until the consumer's
//       CONS has caught up (the best a command queue with a completion wait can do: the ceiling)
//   pm-consumer   the naive emulator: every command arrives as its own postMessage; a 'sync' message
//       is answered once the commands before it are processed
//   spin-ping / spin-pong  an Atomics ping-pong on one word: the spin round trip between two workers

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { RING, SPIN } from './ring.ts';

interface Data {
  role: 'ring-producer' | 'ring-consumer' | 'pm-consumer' | 'spin-ping' | 'spin-pong';
  sab?: SharedArrayBuffer;
  /** Ring entries (a power of two). */
  entries?: number;
  batch?: number;
  ms?: number;
  /** spin-ping: round trips per timed chunk, and chunks. */
  chunk?: number;
  chunks?: number;
}

const d = workerData as Data;
const port = parentPort!;

switch (d.role) {
  case 'ring-producer':
    port.postMessage(ringProducer());
    break;
  case 'ring-consumer':
    port.postMessage(ringConsumer());
    break;
  case 'pm-consumer':
    pmConsumer();
    break;
  case 'spin-ping':
    port.postMessage(spinPing());
    break;
  case 'spin-pong':
    spinPong();
    port.postMessage('done');
    break;
}

function ringProducer(): { cmds: number; ms: number } {
  const a = new Int32Array(d.sab!);
  const size = d.entries!;
  const mask = size - 1;
  const batch = d.batch!;
  if (batch > size) throw new Error(`batch ${batch} exceeds ring of ${size}`);
  let prod = 0;
  let cmds = 0;
  const start = performance.now();
  const end = start + d.ms!;
  for (let round = 0; ; round++) {
    // A TLBI_NH_VA-like entry with a moving address, like the emulator's workload.
    for (let k = 0; k < batch; k++) {
      const e = RING.ENTRIES + ((prod + k) & mask) * 4;
      a[e] = 0x12;
      a[e + 1] = 1 << 16;
      a[e + 2] = (cmds + k) << 12;
      a[e + 3] = 0;
    }
    prod = (prod + batch) | 0;
    Atomics.store(a, RING.PROD, prod);
    while (Atomics.load(a, RING.CONS) !== prod);
    cmds += batch;
    // Looking at the clock costs more than a round trip at batch 1: only every 16 rounds.
    if ((round & 15) === 15 && performance.now() >= end) break;
  }
  const ms = performance.now() - start;
  Atomics.store(a, RING.STOP, 1);
  return { cmds, ms };
}

function ringConsumer(): { consumed: number; byOp: number } {
  const a = new Int32Array(d.sab!);
  const mask = d.entries! - 1;
  const counts = new Float64Array(256);
  let cons = 0;
  for (;;) {
    const prod = Atomics.load(a, RING.PROD);
    if (prod === cons) {
      if (Atomics.load(a, RING.STOP)) break;
      continue;
    }
    while (cons !== prod) {
      const e = RING.ENTRIES + (cons & mask) * 4;
      counts[a[e]! & 0xff]!++;
      cons = (cons + 1) | 0;
    }
    Atomics.store(a, RING.CONS, cons);
  }
  return { consumed: cons, byOp: counts[0x12]! };
}

function pmConsumer(): void {
  const counts = new Float64Array(256);
  port.on('message', (m: number[] | 'sync' | 'stop') => {
    if (m === 'sync') port.postMessage(counts[0x12]);
    else if (m === 'stop') port.close();
    else counts[m[0]! & 0xff]!++;
  });
}

function spinPing(): number[] {
  const a = new Int32Array(d.sab!);
  const per: number[] = [];
  let v = 0;
  for (let c = 0; c < d.chunks!; c++) {
    const t0 = performance.now();
    for (let i = 0; i < d.chunk!; i++) {
      Atomics.store(a, SPIN.WORD, ++v); // odd: ping
      ++v;
      while (Atomics.load(a, SPIN.WORD) !== v); // even: pong answered
    }
    per.push(((performance.now() - t0) * 1e6) / d.chunk!);
  }
  Atomics.store(a, SPIN.STOP, 1);
  return per;
}

function spinPong(): void {
  const a = new Int32Array(d.sab!);
  for (;;) {
    const v = Atomics.load(a, SPIN.WORD);
    if (v & 1) Atomics.store(a, SPIN.WORD, v + 1);
    else if (Atomics.load(a, SPIN.STOP)) return;
  }
}
