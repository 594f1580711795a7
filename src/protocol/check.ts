// Checking what crosses a boundary (an operation's request, a fault, a scenario file): small checkers
// that either return the value with its static type or throw an InputError naming the field by path
// (`faults[2].trigger.count: must be an integer from 1 to 1000 (got -1)`). A type is declared once, as
// its checker: `Infer<typeof check>` is the type.
//
// Every checker also carries the JSON Schema of what it accepts (`schemaOf`), so the schema editors
// use to complete a scenario file is generated from the same declaration that checks it.
//
// Keys are own properties only (Object.hasOwn), so `__proto__`, `constructor` or `toString` in input
// are unknown fields like any other, never inherited values; unknown fields are refused, naming them.

import { formatBdf, parseBdf, ridOf } from '../arch/pcie/bdf.ts';

/** Input that does not have the shape a checker wants; the message starts with the path of the field. */
export class InputError extends Error {}

/** A JSON Schema (draft 2020-12) fragment. */
export type JsonSchema = { readonly [k: string]: unknown };

/**
 * Checks `v` (found at `path`) and returns it typed, or throws InputError naming the path; `schema`
 * describes what it accepts (absent: anything, for a checker written by hand without one), and `defs`
 * the named schemas it refers to (`#/$defs/NAME`).
 */
export type Check<T> = ((v: unknown, path: string) => T) & { schema?: JsonSchema; defs?: Record<string, JsonSchema> };
export type Infer<C> = C extends Check<infer T> ? T : never;

/** Gives a checker its schema (and the named schemas it refers to). */
export function withSchema<T>(c: (v: unknown, path: string) => T, schema: JsonSchema, defs: Record<string, JsonSchema> = {}): Check<T> {
  return Object.assign(c, { schema, defs });
}

/** A checker written around another (extra rules between fields) that accepts what it describes. */
export function sameSchema<T>(c: (v: unknown, path: string) => T, like: Check<unknown>): Check<T> {
  return withSchema(c, schemaOf(like), defsOf(like));
}

/** The JSON Schema of what a checker accepts. */
export function schemaOf(c: Check<unknown>): JsonSchema {
  return c.schema ?? {};
}

/** The named schemas a checker's schema refers to. */
export function defsOf(...cs: Check<unknown>[]): Record<string, JsonSchema> {
  return Object.assign({}, ...cs.map((c) => c.defs ?? {}));
}

/** The same checker, documented: its schema gets a description (editors show it). */
export function doc<T>(c: Check<T>, description: string): Check<T> {
  return withSchema((v, path) => c(v, path), { ...schemaOf(c), description }, defsOf(c));
}

/** The same checker, its schema named: written once under $defs and referred to wherever it is used. */
export function named<T>(name: string, c: Check<T>): Check<T> {
  return withSchema((v, path) => c(v, path), { $ref: `#/$defs/${name}` }, { ...defsOf(c), [name]: schemaOf(c) });
}

/** Longest echo of input in an error message, "… (N bytes)" included. */
const SHOW_MAX = 60;

/**
 * What must not reach a terminal raw from input: C0/C1 controls and DEL (ESC starts escape sequences),
 * format characters (bidi overrides and zero-width characters make text read differently from what it
 * is), line and paragraph separators, and lone surrogates.
 */
const UNSAFE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]$/u;
/** JSON's own short escapes for the controls that have one. */
const SHORT_ESCAPES: Record<string, string> = { '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string, quoted: boolean): string {
  if (quoted && (c === '"' || c === '\\')) return `\\${c}`;
  if (!UNSAFE.test(c)) return c;
  if (Object.hasOwn(SHORT_ESCAPES, c)) return SHORT_ESCAPES[c]!;
  const code = c.codePointAt(0)!;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Bytes of a string in UTF-8, counted without encoding it (it may be megabytes). */
function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Text for an error message: unsafe characters escaped (\u001b, \n...), and when the result would be
 * longer than `max`, a prefix followed by "… (N bytes)", N the input's size in UTF-8. Only the prefix is
 * ever walked, so a 20 MB value costs what a short one does (but the byte count).
 */
function cut(s: string, max: number, quoted: boolean): string {
  const q = quoted ? '"' : '';
  const parts: string[] = [];
  let len = 2 * q.length;
  let whole = true;
  for (const c of s) {
    const e = escapeChar(c, quoted);
    if (len + e.length > max) {
      whole = false;
      break;
    }
    parts.push(e);
    len += e.length;
  }
  if (whole) return q + parts.join('') + q;
  const tail = `… (${utf8Bytes(s)} bytes)`;
  while (parts.length && len + tail.length > max) len -= parts.pop()!.length;
  return q + parts.join('') + q + tail;
}

/** Input echoed unquoted (a key in a path, a name, a message quoting input): escaped and cut short. */
export function clip(s: string, max = SHOW_MAX): string {
  return cut(s, max, false);
}

/**
 * A value as an error message quotes it: a string in double quotes, anything else as JSON; escaped and
 * cut short as by clip().
 */
export function show(v: unknown): string {
  if (typeof v === 'string') return cut(v, SHOW_MAX, true);
  let s: string;
  if (typeof v === 'bigint') s = `${v}n`;
  else if (v === undefined) s = 'undefined';
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = Object.prototype.toString.call(v);
    }
  }
  return cut(s, SHOW_MAX, false);
}

function fail(path: string, why: string, v: unknown): never {
  throw new InputError(`${path}: ${why} (got ${show(v)})`);
}

/** An integer in [min, max] (safe integers only). */
export function int(min = 0, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return withSchema(
    (v, path) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(path, `must be an integer from ${min} to ${max}`, v);
      return v;
    },
    { type: 'integer', minimum: min, maximum: max },
  );
}

/** A finite number in [min, max]. */
export function num(min: number, max: number): Check<number> {
  return withSchema(
    (v, path) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(path, `must be a number from ${min} to ${max}`, v);
      return v;
    },
    { type: 'number', minimum: min, maximum: max },
  );
}

export const bool: Check<boolean> = withSchema(
  (v, path) => {
    if (typeof v !== 'boolean') fail(path, 'must be true or false', v);
    return v;
  },
  { type: 'boolean' },
);

/** A string of 1..max characters. */
export function str(max = 256): Check<string> {
  return withSchema(
    (v, path) => {
      if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(path, `must be a non-empty string of at most ${max} characters`, v);
      return v;
    },
    { type: 'string', minLength: 1, maxLength: max },
  );
}

/** One of a fixed set of strings. */
export function oneOf<const T extends readonly string[]>(values: T): Check<T[number]> {
  return withSchema(
    (v, path) => {
      if (typeof v !== 'string' || !values.includes(v)) fail(path, `must be one of ${values.join(', ')}`, v);
      return v;
    },
    values.length === 1 ? { const: values[0] } : { enum: [...values] },
  );
}

/** A PCI address "BB:DD.F" (hex bus, device up to 1f, function 0-7), returned in lower case. */
export const bdf: Check<string> = withSchema(
  (v, path) => {
    const b = typeof v === 'string' ? parseBdf(v) : null;
    if (!b) fail(path, 'must be a "BB:DD.F" address (hex bus and device up to 1f, function 0-7)', v);
    return formatBdf(ridOf(b));
  },
  { type: 'string', pattern: '^[0-9a-fA-F]{1,2}:[01]?[0-9a-fA-F]\\.[0-7]$' },
);

/** An array of up to `max` elements, each checked (paths `path[i]`). */
export function arr<T>(each: Check<T>, max = 1 << 20): Check<T[]> {
  return withSchema(
    (v, path) => {
      if (!Array.isArray(v)) fail(path, 'must be an array', v);
      if (v.length > max) fail(path, `must have at most ${max} elements`, `${v.length} elements`);
      return v.map((x, i) => each(x, `${path}[${i}]`));
    },
    { type: 'array', items: schemaOf(each), maxItems: max },
    defsOf(each),
  );
}

/** Nothing: an operation without a request (null or absent). */
export const none: Check<undefined> = withSchema(
  (v, path) => {
    if (v !== undefined && v !== null) fail(path, 'takes no arguments', v);
    return undefined;
  },
  { type: 'null' },
);

/** A field that may be absent (or undefined); the object type gets an optional key. */
export interface Optional<T> {
  readonly optional: Check<T>;
}

export function opt<T>(c: Check<T>): Optional<T> {
  return { optional: c };
}

type Shape = Record<string, Check<unknown> | Optional<unknown>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type Required_<S extends Shape> = { [K in keyof S as S[K] extends Optional<unknown> ? never : K]: S[K] extends Check<infer T> ? T : never };
type Optional_<S extends Shape> = { [K in keyof S as S[K] extends Optional<unknown> ? K : never]?: S[K] extends Optional<infer T> ? T : never };
export type ObjOf<S extends Shape> = Simplify<Required_<S> & Optional_<S>>;

/** A plain object with exactly these fields (unknown ones are refused); optional ones may be absent. */
export function obj<S extends Shape>(shape: S): Check<ObjOf<S>> {
  const known = Object.keys(shape);
  const properties: Record<string, JsonSchema> = {};
  for (const k of known) {
    const c = shape[k]!;
    properties[k] = schemaOf(typeof c === 'function' ? c : c.optional);
  }
  const required = known.filter((k) => typeof shape[k] === 'function');
  return withSchema((v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object', v);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!Object.hasOwn(shape, k)) throw new InputError(`${path}.${clip(k)}: unknown field (known: ${known.join(', ') || 'none'})`);
    }
    const out: Record<string, unknown> = {};
    for (const k of known) {
      const c = shape[k]!;
      const present = Object.hasOwn(o, k) && o[k] !== undefined;
      if (typeof c === 'function') {
        if (!present) throw new InputError(`${path}.${k}: missing`);
        out[k] = c(o[k], `${path}.${k}`);
      } else if (present) out[k] = c.optional(o[k], `${path}.${k}`);
    }
    // The checkers above produced every field of ObjOf<S>: required ones always, optional ones when present.
    return out as ObjOf<S>;
  }, { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false }, defsOf(...Object.values(shape).map((c) => (typeof c === 'function' ? c : c.optional))));
}

/** One of several object shapes, chosen by the string in field `tag`. */
export function tagged<const K extends string, const M extends Record<string, Check<object>>>(tag: K, variants: M): Check<{ [V in keyof M]: Infer<M[V]> }[keyof M]> {
  const names = Object.keys(variants);
  return withSchema((v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object', v);
    const t = (v as Record<string, unknown>)[tag];
    if (typeof t !== 'string' || !Object.hasOwn(variants, t)) {
      if (!Object.hasOwn(v, tag)) throw new InputError(`${path}.${tag}: missing (one of ${names.join(', ')})`);
      fail(`${path}.${tag}`, `must be one of ${names.join(', ')}`, t);
    }
    return variants[t]!(v, path) as Infer<M[keyof M]>;
  }, { oneOf: names.map((n) => schemaOf(variants[n]!)) }, defsOf(...Object.values(variants)));
}

/** Exactly this string (a variant's tag). */
export function literal<const T extends string>(value: T): Check<T> {
  return oneOf([value]);
}
