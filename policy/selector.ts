import type { ClusterPeer, LabelSelector } from '../core/broker-api/index.ts';

/**
 * Label selectors as Kubernetes evaluates them (pure): every matchLabels pair and every
 * matchExpressions requirement must hold; the empty selector matches everything.
 * `In` needs the key with one of the values; `NotIn` holds when the key is absent or has
 * none of them; `Exists` / `DoesNotExist` look at the key only.
 */
const pairsOf = new WeakMap<LabelSelector, readonly (readonly [string, string])[]>();

export function matches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  let pairs = pairsOf.get(selector);
  if (pairs === undefined) {
    pairs = Object.entries(selector.matchLabels);
    pairsOf.set(selector, pairs);
  }
  for (const [k, v] of pairs) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || value === undefined || !e.values.includes(value)) return false;
        break;
      case 'NotIn':
        if (has && value !== undefined && e.values.includes(value)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** A cluster peer (ids or a selector over the cluster's labels); undefined matches every cluster. */
export function clusterMatches(peer: ClusterPeer | undefined, id: string, labels: Readonly<Record<string, string>>): boolean {
  if (peer === undefined) return true;
  return peer.ids.includes(id) || (peer.selector !== undefined && matches(peer.selector, labels));
}

/** A selector as one short line for logs and `policy test` (e.g. "app=frontend,tier in (a,b)"). */
export function describeSelector(s: LabelSelector | undefined): string {
  if (s === undefined) return '(same namespace)';
  const parts = [
    ...Object.entries(s.matchLabels).map(([k, v]) => `${k}=${v}`),
    ...s.matchExpressions.map((e) => (e.operator === 'Exists' ? e.key : e.operator === 'DoesNotExist' ? `!${e.key}` : `${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${e.values.join(',')})`)),
  ];
  return parts.length === 0 ? '(all)' : parts.join(',');
}
