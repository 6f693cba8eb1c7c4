/**
 * What the controller last wrote to an object's status, kept until its informer's cache has
 * caught up. A reconcile that runs between our write and the watch event reporting it would
 * otherwise compare against the older cached status and write again (under load, a tenth to
 * most of the ServiceExport status patches of 1,000 exports at once were such repeats;
 * BENCHMARKS.md). Not a cache of objects: one status value per key, for the window of a watch
 * event's delay.
 *
 * Invariants: a value is returned only while the cache's resourceVersion is older than our
 * write's (both decimal, as etcd-backed apiservers give them; anything else counts as caught up,
 * so the cache decides, as before); an entry is forgotten as soon as the cache has caught up,
 * or with `forget` when the object goes. Pure bookkeeping, no I/O.
 */
export class OwnWrites<T> {
  readonly #m = new Map<string, { rv: string; value: T }>();

  /** After a write of ours answered with `rv`. */
  remember(key: string, rv: string | undefined, value: T): void {
    if (rv === undefined || !isDecimal(rv)) this.#m.delete(key);
    else this.#m.set(key, { rv, value });
  }

  /** Our last written value when the cache's copy (`cachedRv`) predates it; otherwise undefined. */
  newer(key: string, cachedRv: string | undefined): T | undefined {
    const w = this.#m.get(key);
    if (w === undefined) return undefined;
    if (cachedRv !== undefined && isDecimal(cachedRv) && olderRv(cachedRv, w.rv)) return w.value;
    this.#m.delete(key);
    return undefined;
  }

  forget(key: string): void {
    this.#m.delete(key);
  }

  get size(): number {
    return this.#m.size;
  }
}

const isDecimal = (rv: string): boolean => /^[0-9]{1,30}$/.test(rv);

/** a < b for decimal resourceVersions (no leading zeros from etcd; compared as integers). */
export function olderRv(a: string, b: string): boolean {
  return BigInt(a) < BigInt(b);
}
