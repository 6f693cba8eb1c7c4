import type { BrokerCache, Change, Export } from '../core/broker-api/index.ts';

/**
 * The broker's Export records grouped by Service ("namespace/name" → cluster → record),
 * kept from the BrokerCache's changes so that a reconcile reads one Service's records
 * without scanning them all. Listeners hear the Service key of every change.
 */
export class ExportIndex {
  readonly #byService = new Map<string, Map<string, Export>>();
  readonly #listeners = new Set<(serviceKey: string) => void>();

  /** Follows `cache` from now on; call before cache.start() so the first list is seen. */
  follow(cache: Pick<BrokerCache, 'onChange'>): () => void {
    return cache.onChange((c) => this.apply(c));
  }

  apply(c: Pick<Change, 'type' | 'kind' | 'record'>): void {
    if (c.kind !== 'EXPORT') return;
    const x = c.record as Export;
    const key = `${x.namespace}/${x.name}`;
    let m = this.#byService.get(key);
    if (c.type === 'deleted') {
      m?.delete(x.cluster_id);
      if (m?.size === 0) this.#byService.delete(key);
    } else {
      if (m === undefined) this.#byService.set(key, (m = new Map()));
      m.set(x.cluster_id, x);
    }
    for (const l of this.#listeners) l(key);
  }

  onChange(listener: (serviceKey: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Every cluster's record for the Service, sorted by cluster. */
  records(serviceKey: string): Export[] {
    return [...(this.#byService.get(serviceKey)?.values() ?? [])].sort((a, b) => (a.cluster_id < b.cluster_id ? -1 : 1));
  }

  record(serviceKey: string, cluster: string): Export | undefined {
    return this.#byService.get(serviceKey)?.get(cluster);
  }

  serviceKeys(): string[] {
    return [...this.#byService.keys()];
  }
}
