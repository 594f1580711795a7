// The raw-ring baseline's shared layout (bench/baseline-worker.ts): control words as Int32 indexes,
// each on its own cache line, then the ring's 16-byte entries from ENTRIES on.
export const RING = { PROD: 0, CONS: 16, STOP: 32, ENTRIES: 64 } as const;
