// Request/reply over a worker's message port, for the control plane only (booting, running a
// workload, injecting a fault, collecting statistics). Register accesses, doorbells and interrupts never
// go through here: they use the shared buffer.

import type { MessagePort, Worker } from 'node:worker_threads';
import { InputError, show } from './check.ts';
import type { OpArgs, OpImpls, OpTable, ResOf } from './ops/decl.ts';

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
  call(op: string, args: unknown = null, timeoutMs = 30_000): Promise<unknown> {
    if (this.dead) return Promise.reject(new Error(`${this.name} ${op}: ${this.dead.message}`));
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcTimeout(`${this.name} did not answer '${op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pending.set(id, {
        op,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
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

/** Calls the operations of one table in one worker, typed by the table. */
export class OpClient<T extends OpTable> {
  constructor(readonly rpc: RpcClient) {}

  /** Performs operation `name` with its request; the result has the operation's result type. */
  op<K extends keyof T & string>(name: K, ...[req, timeoutMs]: OpArgs<T, K>): Promise<ResOf<T, K>> {
    // The worker ran operation `name` (serveOps), whose result type is ResOf<T, K>.
    return this.rpc.call(name, req ?? null, timeoutMs) as Promise<ResOf<T, K>>;
  }
}

/**
 * Serves an operation table on a worker's parent port: each request is checked by its operation's
 * checker (an InputError names the field) before the implementation runs; implementations may be
 * synchronous or return a promise.
 */
export function serveOps<T extends OpTable, Ctx>(port: MessagePort, table: T, impls: OpImpls<T, Ctx>, ctx: Ctx): void {
  port.on('message', async (m: RpcRequest) => {
    if (m?.type !== 'call') return;
    let reply: RpcReply;
    try {
      if (typeof m.op !== 'string' || !Object.hasOwn(table, m.op)) throw new Error(`unknown operation ${show(m.op)}`);
      const name: keyof T = m.op;
      const req = table[name]!.req(m.args ?? undefined, String(name));
      // The checker of `name` produced `req`, so it is the request type of `name`.
      const impl = impls[name] as (ctx: Ctx, req: unknown) => unknown;
      reply = { type: 'reply', id: m.id, result: await impl(ctx, req) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      reply = { type: 'reply', id: m.id, error: { message: err.message, stack: err instanceof InputError ? undefined : err.stack } };
    }
    port.postMessage(reply);
  });
}
