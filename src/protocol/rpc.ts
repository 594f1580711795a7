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

/** A worker that died: its name, the operations it was performing (none: it was idle), and why. */
export interface WorkerDeath {
  name: string;
  ops: string[];
  error: Error;
}

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; op: string }>();
  private dead: Error | null = null;
  /** Told once, when the worker dies (an uncaught error, or an exit) before stop() ended it. */
  onDeath: ((d: WorkerDeath) => void) | null = null;

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
      // The 'exit' that follows an 'error' adds nothing; nor does the end of a worker stop() ended.
      if (this.dead) return;
      const ops = [...this.pending.values()].map((p) => p.op);
      this.stop(e);
      this.onDeath?.({ name: this.name, ops, error: e });
    };
    worker.on('error', (e) => fail(e));
    worker.on('exit', (code) => fail(new Error(`worker exited with code ${code}`)));
  }

  /** Fails every call in flight, and every later one, with `reason` (the worker is gone or must be left alone). */
  stop(reason: Error): void {
    this.dead ??= reason;
    for (const p of this.pending.values()) p.reject(new Error(`${this.name} ${p.op}: ${reason.message}`));
    this.pending.clear();
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

/** What calls the operations of a table, in a worker (OpClient) or in this thread (DirectOps). */
export interface OpCaller<T extends OpTable> {
  op<K extends keyof T & string>(name: K, ...args: OpArgs<T, K>): Promise<ResOf<T, K>>;
}

/** Calls the operations of one table in one worker, typed by the table. */
export class OpClient<T extends OpTable> implements OpCaller<T> {
  constructor(
    readonly rpc: RpcClient,
    /**
     * Host ms an operation may take when its caller names no limit: enough for the longest platform
     * wait it can do at this system's time scale (src/host/rpc-limit.ts); without it, RpcClient's.
     */
    readonly limitMs?: (op: string) => number,
  ) {}

  /** Performs operation `name` with its request; the result has the operation's result type. */
  op<K extends keyof T & string>(name: K, ...[req, timeoutMs]: OpArgs<T, K>): Promise<ResOf<T, K>> {
    // The worker ran operation `name` (serveOps), whose result type is ResOf<T, K>.
    return this.rpc.call(name, req ?? null, timeoutMs ?? this.limitMs?.(name)) as Promise<ResOf<T, K>>;
  }
}

/** Checks a request by its operation's checker and runs the implementation (what a worker does per call). */
function perform<T extends OpTable, Ctx>(table: T, impls: OpImpls<T, Ctx>, ctx: Ctx, op: unknown, args: unknown): unknown {
  if (typeof op !== 'string' || !Object.hasOwn(table, op)) throw new Error(`unknown operation ${show(op)}`);
  const name: keyof T = op;
  const req = table[name]!.req(args ?? undefined, String(name));
  // The checker of `name` produced `req`, so it is the request type of `name`.
  const impl = impls[name] as (ctx: Ctx, req: unknown) => unknown;
  return impl(ctx, req);
}

/**
 * Calls the operations of a table in this thread (lockstep: the kernel and the hardware live here),
 * with the same request checks as a worker makes, so a caller cannot tell it from an OpClient.
 */
export class DirectOps<T extends OpTable, Ctx> implements OpCaller<T> {
  constructor(
    private readonly table: T,
    private readonly impls: OpImpls<T, Ctx>,
    private readonly ctx: Ctx,
  ) {}

  async op<K extends keyof T & string>(name: K, ...[req]: OpArgs<T, K>): Promise<ResOf<T, K>> {
    // perform() ran the implementation of `name`, whose result type is ResOf<T, K>.
    return (await perform(this.table, this.impls, this.ctx, name, req ?? null)) as ResOf<T, K>;
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
      reply = { type: 'reply', id: m.id, result: await perform(table, impls, ctx, m.op, m.args) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      reply = { type: 'reply', id: m.id, error: { message: err.message, stack: err instanceof InputError ? undefined : err.stack } };
    }
    port.postMessage(reply);
  });
}
