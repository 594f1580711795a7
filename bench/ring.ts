// The baselines' shared layouts (bench/baseline-worker.ts), as Int32 indexes, each word on its own
// cache line. The raw ring: control words, then its 16-byte entries from ENTRIES on.
export const RING = { PROD: 0, CONS: 16, STOP: 32, ENTRIES: 64 } as const;
/** The spin ping-pong: the word both sides bounce (odd: ping, even: pong), and the stop flag. */
export const SPIN = { WORD: 0, STOP: 16, WORDS: 32 } as const;
