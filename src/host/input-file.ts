// Reading what a user hands smmulab as a file — replay command files, topology files, scenario files,
// `--inject FILE`, campaign shard files — through one reader, so every input is bounded the same way:
// only a regular file is read (a FIFO would block for ever, /dev/zero never ends), and never more than
// its kind's cap (the whole file is held in memory as text). Errors are InputErrors naming the file.
//
// JSON inputs are parsed here too: JSON.parse keeps the last of two equal keys in an object without a
// word, so every JSON text is scanned for them, and a duplicate is refused naming its path.

import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { InputError, clip } from '../protocol/check.ts';

const MiB = 1 << 20;

/**
 * The most bytes each kind of input file may have: far above what a real one holds, far below what
 * would exhaust memory (the text and its parse are both held at once).
 */
export const INPUT_LIMITS = {
  /** 8 Root Ports x 8 functions with every field written out is about 40 KB. */
  topology: MiB,
  /** A scenario with an inline topology, 256 steps and 64 faults is well under 200 KB. */
  scenario: MiB,
  /** `--inject FILE`: one fault or a list of them. */
  faults: MiB,
  /** JSON Lines of about 60 bytes a command: a million commands. */
  replay: 64 * MiB,
  /** JSON Lines of about 1 KB a seed (a few KB with a shrunk schedule): some 100 000 seeds a shard. */
  shard: 256 * MiB,
  /** A recorded schedule: a few bytes per run of one CPU's MMIO writes, interrupt and fault. */
  schedule: 64 * MiB,
} as const;

/** A size as the messages give it: whole MiB when it is one, else bytes. */
function size(n: number): string {
  return n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

/**
 * The text of an input file: a regular file of at most `maxBytes` bytes, in UTF-8. `what` names the
 * kind of file in messages ("topology file"). Throws an InputError naming the file otherwise.
 */
export function readInputFile(path: string, what: string, maxBytes: number): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before fstat could say
    // what it is. It changes nothing for a regular file.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new InputError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: ${kindOf(st)}, not a regular file (a ${what} must be a regular file)`);
    const tooBig = (n: string) => new InputError(`${path}: ${n}, more than a ${what} may have (${size(maxBytes)})`);
    if (st.size > maxBytes) throw tooBig(`${st.size} bytes`);
    // Read to the end rather than trust st.size: a file may grow meanwhile, and some (under /proc)
    // report 0. One byte past the cap is enough to know it is too big.
    const buf = Buffer.allocUnsafe(Math.min(maxBytes + 1, Math.max(st.size + 1, 64 * 1024)));
    let n = 0;
    let out = buf;
    for (;;) {
      if (n === out.length) {
        const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, out.length * 2));
        out.copy(bigger, 0, 0, n);
        out = bigger;
      }
      const got = readSync(fd, out, n, out.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > maxBytes) throw tooBig('over ' + size(maxBytes));
    }
    try {
      // ignoreBOM keeps a byte order mark in the text, as it is in the file (JSON.parse refuses it).
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(out.subarray(0, n));
    } catch {
      // Decoding would replace bad bytes with U+FFFD: a silent change of the input.
      throw new InputError(`${path}: not UTF-8 text`);
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Parses JSON text from `where` (a file, `file:line`, an option): an InputError names `where` when the
 * text is not JSON, and the key's path when an object has a key twice.
 */
export function parseJsonText(text: string, where: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // V8 quotes a piece of the input in its message, raw.
    throw new InputError(`${where}: not valid JSON (${clip((e as Error).message, 120)})`);
  }
  const dup = duplicateKey(text);
  if (dup) {
    const lines = dup.line === dup.firstLine ? '' : ` (lines ${dup.firstLine} and ${dup.line})`;
    throw new InputError(`${where}: ${dup.path}: key given twice in one object${lines}`);
  }
  return value;
}

/** Reads an input file (readInputFile) and parses it as JSON (parseJsonText). */
export function readJsonFile(path: string, what: string, maxBytes: number): unknown {
  return parseJsonText(readInputFile(path, what, maxBytes), path);
}

export interface DuplicateKey {
  /** The key's path as the checkers write field paths: `ports[0].functions[1].flr`. */
  path: string;
  /** Lines (1-based) of its first and second appearance. */
  firstLine: number;
  line: number;
}

interface Frame {
  /** Path of the object or array. */
  path: string;
  /** An object's keys so far and their lines; null for an array. */
  keys: Map<string, number> | null;
  /** The current member's key, or the array's current index. */
  at: string | number;
  /** An object waiting for a key (after '{' or ','). */
  wantKey: boolean;
}

/**
 * The first key that appears twice in one object of a JSON text, or null. The text must be valid JSON
 * (parse it first): this only tracks nesting, keys and array indexes, and skips every other token.
 */
export function duplicateKey(text: string): DuplicateKey | null {
  const stack: Frame[] = [];
  let line = 1;
  const memberPath = (f: Frame) => (f.keys ? `${f.path ? `${f.path}.` : ''}${clip(String(f.at))}` : `${f.path}[${f.at}]`);
  const childPath = () => (stack.length ? memberPath(stack[stack.length - 1]!) : '');
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (c === '\n') line++;
    else if (c === '{') stack.push({ path: childPath(), keys: new Map(), at: '', wantKey: true });
    else if (c === '[') stack.push({ path: childPath(), keys: null, at: 0, wantKey: false });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',' && top) {
      if (top.keys) top.wantKey = true;
      else top.at = (top.at as number) + 1;
    } else if (c === '"') {
      // A string: find its closing quote (a backslash escapes the next character).
      const start = i;
      let escaped = false;
      for (i++; text[i] !== '"'; i++) {
        if (text[i] === '\\') {
          escaped = true;
          i++;
        }
      }
      if (top?.keys && top.wantKey) {
        const raw = text.slice(start, i + 1);
        const key = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        top.at = key;
        top.wantKey = false;
        const first = top.keys.get(key);
        if (first !== undefined) return { path: memberPath(top), firstLine: first, line };
        top.keys.set(key, line);
      }
    }
  }
  return null;
}
