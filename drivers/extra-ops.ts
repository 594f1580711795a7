// Operations a user adds to the kernel without editing the project (System.boot's `extraOps`): a
// JavaScript module exporting `ops`, a table of functions `(kernel, request) => result` (or a promise
// of one), loaded into every CPU worker and served next to the built-in kernel operations. The host
// calls one with `sys.extraOp(cpu, name, request)`. A request reaches the function as the host sent it
// (structured-cloned, unchecked); the function's result or error goes back the same way.

import { parentPort } from 'node:worker_threads';
import type { OpDecl, OpImpls, OpTable } from '../src/protocol/ops/decl.ts';
import { KERNEL_OPS } from '../src/protocol/ops/index.ts';
import type { Kernel } from './kernel.ts';
import { KERNEL_IMPLS } from './ops/index.ts';

/** One operation of an extra-operations module. */
export type ExtraOp = (kernel: Kernel, request: unknown) => unknown;

/** The operations of an extra-operations module (what its `ops` export holds). */
export type ExtraOps = Readonly<Record<string, ExtraOp>>;

const passThrough = (v: unknown): unknown => v;

/** What a CPU worker serves: the kernel operations, with those of the extraOps module at `url` if any. */
export async function servedOps(url: string | undefined): Promise<{ table: OpTable; impls: OpImpls<OpTable, Kernel> }> {
  if (url === undefined) return { table: KERNEL_OPS, impls: KERNEL_IMPLS as unknown as OpImpls<OpTable, Kernel> };
  return withExtraOps(url, KERNEL_OPS, KERNEL_IMPLS);
}

/**
 * Every CPU worker's life around its idle loop (threaded and lockstep alike): says it is ready, idles
 * until the stop operation, then says it stopped. An idle loop that fails ends the worker with the
 * error, which the host reports as this CPU's death (System: which worker died, doing what).
 */
export function serveUntilStopped(cpu: number, idle: () => Promise<void>): void {
  parentPort!.postMessage({ type: 'ready', cpu });
  idle().then(
    () => parentPort!.postMessage({ type: 'stopped', cpu }),
    (e: unknown) => {
      throw new Error(`cpu${cpu}: idle loop failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    },
  );
}

/**
 * Imports the module at `url` and returns `table`/`impls` with its operations added; refuses a module
 * without an `ops` object, an entry that is not a function, and a name the built-in table has.
 */
async function withExtraOps<T extends OpTable>(url: string, table: T, impls: OpImpls<T, Kernel>): Promise<{ table: OpTable; impls: OpImpls<OpTable, Kernel> }> {
  const mod = (await import(url)) as { ops?: unknown };
  const ops = mod.ops;
  if (typeof ops !== 'object' || ops === null) throw new Error(`extraOps ${url}: the module exports no 'ops' object (export const ops = { name(kernel, request) { ... } })`);
  const extraTable: Record<string, OpDecl<unknown, unknown>> = {};
  const extraImpls: Record<string, ExtraOp> = {};
  for (const [name, fn] of Object.entries(ops)) {
    if (typeof fn !== 'function') throw new Error(`extraOps ${url}: ops.${name} is not a function`);
    if (Object.hasOwn(table, name)) throw new Error(`extraOps ${url}: ops.${name}: a built-in operation has that name`);
    extraTable[name] = { req: passThrough };
    extraImpls[name] = fn as ExtraOp;
  }
  // Every built-in implementation takes the request its own checker produced (serveOps checks it
  // first), and every extra one takes the request as sent, so the merged table serves both.
  return { table: { ...table, ...extraTable }, impls: { ...impls, ...extraImpls } as OpImpls<OpTable, Kernel> };
}
