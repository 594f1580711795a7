// Request/reply over a worker's message port, for the control plane only (booting, running a
// workload, injecting a fault, collecting statistics). Register accesses, doorbells and interrupts never
// go through here: they use the shared buffer.

import type { MessagePort, Worker } from 'node:worker_threads';

export interface RpcRequest {
  type: 'call';
  id: number;
  op: string;
  args: unknown;
}

export interface RpcReply {
  type: 'reply';
  id: number;
  result?: unknown;
  error?: { message: string; stack?: string | undefined };
}

export class RpcTimeout extends Error {}

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; op: string }>();
  private dead: Error | null = null;

  constructor(
    private readonly worker: Worker,
    private readonly name: string,
  ) {
    worker.on('message', (m: RpcReply | { type: string }) => {
      if (m.type !== 'reply') return;
      const r = m as RpcReply;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error) {
        const e = new Error(`${this.name} ${p.op}: ${r.error.message}`);
        if (r.error.stack) e.stack = `${e.message}\n--- in ${this.name} ---\n${r.error.stack}`;
        p.reject(e);
      } else p.resolve(r.result);
    });
    const fail = (e: Error) => {
      this.dead = e;
      for (const p of this.pending.values()) p.reject(new Error(`${this.name} ${p.op}: ${e.message}`));
      this.pending.clear();
    };
    worker.on('error', (e) => fail(e));
    worker.on('exit', (code) => fail(new Error(`worker exited with code ${code}`)));
  }

  /** Calls `op` in the worker; rejects after timeoutMs (host time) naming what it waited for. */
  call<T = unknown>(op: string, args: unknown = null, timeoutMs = 30_000): Promise<T> {
    if (this.dead) return Promise.reject(new Error(`${this.name} ${op}: ${this.dead.message}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcTimeout(`${this.name} did not answer '${op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pending.set(id, {
        op,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.worker.postMessage({ type: 'call', id, op, args } satisfies RpcRequest);
    });
  }
}

export type RpcHandlers = Record<string, (args: any) => unknown>;

/** Serves calls on a worker's parent port; handlers may be synchronous or return a promise. */
export function serveRpc(port: MessagePort, handlers: RpcHandlers): void {
  port.on('message', async (m: RpcRequest) => {
    if (m?.type !== 'call') return;
    const h = handlers[m.op];
    let reply: RpcReply;
    try {
      if (!h) throw new Error(`unknown operation '${m.op}'`);
      reply = { type: 'reply', id: m.id, result: await h(m.args) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      reply = { type: 'reply', id: m.id, error: { message: err.message, stack: err.stack } };
    }
    port.postMessage(reply);
  });
}
