import type { CableSpec } from './cable/driver.ts';

/**
 * Holds on to a cable whose remote endpoint vanished while the remote cluster is still
 * registered, for `graceMs`. After a broker outage longer than the endpoint TTL the
 * broker lists the clusters at once but the endpoints only when their gateways have
 * published again, a few seconds later; without this, every cable would be torn down
 * and rebuilt in that gap. A pure function:
 * - a cluster that left (no Cluster record) loses its cable at once;
 * - a cable in `next` (including one that followed a failover) is taken from `next`;
 * - a held cable goes once it has been missing from `next` for `graceMs`.
 * `vanishedSince` maps a held cluster to when its endpoint was first missed.
 */
export interface Held {
  readonly cables: CableSpec[];
  readonly vanishedSince: Map<string, number>;
}

export function holdVanished(
  previous: readonly CableSpec[],
  next: readonly CableSpec[],
  registered: ReadonlySet<string>,
  vanishedSince: ReadonlyMap<string, number>,
  now: number,
  graceMs: number,
): Held {
  const cables = [...next];
  const since = new Map<string, number>();
  const present = new Set(next.map((c) => c.remoteCluster));
  for (const p of previous) {
    if (present.has(p.remoteCluster) || !registered.has(p.remoteCluster)) continue;
    const at = vanishedSince.get(p.remoteCluster) ?? now;
    if (now - at >= graceMs) continue;
    since.set(p.remoteCluster, at);
    cables.push(p);
  }
  cables.sort((a, b) => (a.remoteCluster < b.remoteCluster ? -1 : a.remoteCluster > b.remoteCluster ? 1 : 0));
  return { cables, vanishedSince: since };
}
