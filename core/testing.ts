import { IsthmusError } from './errors.ts';

/**
 * Helpers for tests (not exported from core/index.ts). The code of the IsthmusError that
 * `f` throws, or undefined when it does not throw; any other error comes back as
 * "not an IsthmusError: …", which never equals a code, so an assertion on the code fails.
 */
export function errorCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return describe(err);
  }
  return undefined;
}

/** errorCode for a promise (or a function returning one): the code it rejects with. */
export async function errorCodeAsync(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return describe(err);
  }
  return undefined;
}

function describe(err: unknown): string {
  return err instanceof IsthmusError ? err.code : `not an IsthmusError: ${String(err)}`;
}

/** mulberry32: a small seeded PRNG returning numbers in [0, 1), so a failing fuzz run can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
