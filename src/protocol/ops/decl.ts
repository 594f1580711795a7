// How an operation a worker serves is declared: its request checker (whose result type is the request
// type) and, as a type only, its result.

import type { Check } from '../check.ts';

export interface OpDecl<Req, Res> {
  readonly req: Check<Req>;
  /** Type only (never set): what the operation returns. */
  readonly result?: Res;
}

/** Declares an operation: `op(checker).returns<Result>()`. */
export function op<Req>(req: Check<Req>): { returns<Res>(): OpDecl<Req, Res> } {
  return { returns: () => ({ req }) };
}

export type OpTable = Record<string, OpDecl<unknown, unknown>>;
export type ReqOf<T extends OpTable, K extends keyof T> = T[K] extends OpDecl<infer Q, unknown> ? Q : never;
export type ResOf<T extends OpTable, K extends keyof T> = T[K] extends OpDecl<unknown, infer R> ? R : never;
/** The arguments of a call: the request (optional when the operation takes none), then a host timeout. */
export type OpArgs<T extends OpTable, K extends keyof T> = undefined extends ReqOf<T, K> ? [req?: ReqOf<T, K>, timeoutMs?: number] : [req: ReqOf<T, K>, timeoutMs?: number];
/** A worker's implementation of a table: every operation, with exactly its request and result types. */
export type OpImpls<T extends OpTable, Ctx> = { readonly [K in keyof T]: (ctx: Ctx, req: ReqOf<T, K>) => ResOf<T, K> | Promise<ResOf<T, K>> };
