// Linux errno values, as the driver returns them (negated) and as reports name them.

/** errno values the driver returns (negated, as Linux does). */
export const E = { EIO: 5, ENOMEM: 12, EBUSY: 16, ENODEV: 19, EINVAL: 22, ENOTTY: 25, ERANGE: 34, ETIMEDOUT: 110 } as const;
const ERRNO_NAMES: Record<number, string> = Object.fromEntries(Object.entries(E).map(([k, v]) => [-v, k]));

/** "-ENOTTY" for -25, "0" for success. */
export function errName(rc: number): string {
  return rc === 0 ? '0' : (ERRNO_NAMES[rc] ? `-${ERRNO_NAMES[rc]}` : String(rc));
}
