import type { IdentitySet } from '../core/broker-api/index.ts';

/**
 * The identities a cluster publishes (pure, deterministic): per namespace, its pods that
 * have an IP, each distinct label set one identity — numbered 1.. in the order of the
 * label sets' canonical JSON, so the same pods always give the same record (no new
 * revision at the broker when nothing changed). Pods without an IP, on the host network,
 * or finished are left out (no traffic can come from them through a cable).
 */
export interface PodLike {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { hostNetwork?: boolean; nodeName?: string };
  status?: { podIP?: string; podIPs?: { ip?: string }[]; phase?: string };
}

export interface NamespaceLike {
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

const canonical = (labels: Record<string, string>): string => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export function podIps(p: PodLike): string[] {
  const ips = (p.status?.podIPs ?? []).map((x) => x.ip ?? '').filter((ip) => ip !== '');
  if (ips.length === 0 && p.status?.podIP !== undefined && p.status.podIP !== '') ips.push(p.status.podIP);
  return ips.filter((ip) => !ip.includes(':')); // IPv4 only, as the data path
}

export function live(p: PodLike): boolean {
  return p.spec?.hostNetwork !== true && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed' && podIps(p).length > 0;
}

export function identitySets(cluster: string, pods: readonly PodLike[], namespaces: readonly NamespaceLike[]): IdentitySet[] {
  const byNs = new Map<string, PodLike[]>();
  for (const p of pods) {
    const ns = p.metadata?.namespace;
    if (ns === undefined || !live(p)) continue;
    byNs.set(ns, [...(byNs.get(ns) ?? []), p]);
  }
  const out: IdentitySet[] = [];
  for (const ns of [...byNs.keys()].sort()) {
    const list = byNs.get(ns) ?? [];
    const sets = [...new Set(list.map((p) => canonical(p.metadata?.labels ?? {})))].sort();
    const idOf = new Map(sets.map((s, i) => [s, i + 1]));
    const nsLabels = namespaces.find((n) => n.metadata?.name === ns)?.metadata?.labels ?? {};
    const podsOut = list.flatMap((p) => podIps(p).map((ip) => ({ ip, name: p.metadata?.name ?? '', identity: idOf.get(canonical(p.metadata?.labels ?? {})) ?? 0 })))
      .sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    out.push({
      cluster_id: cluster,
      namespace: ns,
      namespace_labels: Object.fromEntries(JSON.parse(canonical(nsLabels)) as [string, string][]),
      identities: sets.map((s, i) => ({ id: i + 1, labels: Object.fromEntries(JSON.parse(s) as [string, string][]) })),
      pods: podsOut,
    });
  }
  return out;
}
