/**
 * Requests an apiserver served, from its /metrics (`apiserver_request_total`): read before and
 * after a run, the difference says which requests a controller spent the apiservers' time on.
 * Pure: the caller fetches the text (`kubectl get --raw /metrics`).
 */
export type RequestCounts = Map<string, number>;

/** "VERB resource[/subresource] code" → count, summed over the other labels (scope, group, …). */
export function parseRequestCounts(metrics: string): RequestCounts {
  const out: RequestCounts = new Map();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const value = Number(line.slice(close + 1).trim());
    if (close < 0 || !Number.isFinite(value)) continue;
    const labels = new Map<string, string>();
    for (const m of line.slice(line.indexOf('{') + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1] ?? '', m[2] ?? '');
    const sub = labels.get('subresource') ?? '';
    const key = `${labels.get('verb') ?? '?'} ${labels.get('resource') ?? '?'}${sub === '' ? '' : `/${sub}`} ${labels.get('code') ?? '?'}`;
    out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}

/** after − before, largest first; differences below `min` left out. */
export function requestDelta(before: RequestCounts, after: RequestCounts, min = 1): [string, number][] {
  return [...after].map(([k, v]): [string, number] => [k, v - (before.get(k) ?? 0)])
    .filter(([, d]) => d >= min)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}
