// The one seeded generator of the project (mulberry32): fault probabilities, campaign schedules and
// randomized tests all draw from it, so every run repeats from its seed. Its state is one 32-bit word
// that moves by a constant per draw, so it can live in a shared-buffer word as well as in a closure.

/** What one draw adds to the state. */
export const RNG_STEP = 0x6d2b79f5;

/** The number in [0, 1) a state yields (the state after its step). */
export function rngValue(state: number): number {
  let t = state >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** A generator of uniform numbers in [0, 1) from a 32-bit seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + RNG_STEP) >>> 0;
    return rngValue(a);
  };
}

/** A 32-bit seed derived from a base seed and an index (for the i-th fault of a run, say). */
export function deriveSeed(base: number, index: number): number {
  return (Math.floor(rngValue((base >>> 0) ^ Math.imul(index + 1, 0x9e3779b1)) * 4294967296) >>> 0);
}
