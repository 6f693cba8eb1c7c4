import { ErrorCodes, IsthmusError, cidrContains, messageOf, parseCidr } from '../core/index.ts';
// not via core/broker-api/index.ts, which loads gRPC: the node agent reads this state too
import { validateIdentitySet, validatePolicyRecord } from '../core/broker-api/identity.ts';
import type { Cluster, IdentitySet, Policy } from '../core/broker-api/types.ts';
import { receivedClusterLabels } from './cluster-labels.ts';
import type { PolicyInput } from './evaluate.ts';
import type { RemotePod } from './compile.ts';

/**
 * The clusterset's policy state as the controller hands it to the node agents through
 * its own apiserver (route agents and policy agents hold no broker credential): ConfigMaps
 * in the agents' namespace, labelled `isthmus.dev/policy-state`.
 *
 * - `isthmus-policy-clusterset` (label value "clusterset"): `clusters.json` (every member's
 *   id, pod CIDRs and labels) and `policies.json` (every POLICY record);
 * - `isthmus-policy-id-<cluster>-<namespace>` (label value "identities"): one remote
 *   IDENTITY record in `identities.json`.
 *
 * Each agent validates all of it again (`readState`): a record that fails is left out
 * and reported, everything else is used.
 */
export const STATE_LABEL = 'isthmus.dev/policy-state';
export const CLUSTERSET_CONFIGMAP = 'isthmus-policy-clusterset';

export interface ClusterInfo {
  readonly cluster_id: string;
  readonly pod_cidrs: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

export interface ConfigMapLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

export function identityConfigMapName(cluster: string, namespace: string): string {
  return `isthmus-policy-id-${cluster}-${namespace}`.slice(0, 253);
}

/** The ConfigMaps the controller wants (pure): name → data. Own identities are not mirrored. */
export function stateConfigMaps(own: string, clusters: readonly Cluster[], policies: readonly Policy[], identities: readonly IdentitySet[]): Map<string, { kind: 'clusterset' | 'identities'; data: Record<string, string> }> {
  const out = new Map<string, { kind: 'clusterset' | 'identities'; data: Record<string, string> }>();
  const byId = (a: { cluster_id: string }, b: { cluster_id: string }): number => (a.cluster_id < b.cluster_id ? -1 : a.cluster_id > b.cluster_id ? 1 : 0);
  out.set(CLUSTERSET_CONFIGMAP, {
    kind: 'clusterset',
    data: {
      'clusters.json': JSON.stringify([...clusters].sort(byId).map((c) => ({ cluster_id: c.cluster_id, pod_cidrs: c.pod_cidrs, labels: c.labels }))),
      'policies.json': JSON.stringify([...policies].sort((a, b) => byId(a, b) || (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1))),
    },
  });
  for (const s of identities) {
    if (s.cluster_id === own) continue;
    out.set(identityConfigMapName(s.cluster_id, s.namespace), { kind: 'identities', data: { 'identities.json': JSON.stringify(s) } });
  }
  return out;
}

export interface State {
  readonly clusters: readonly ClusterInfo[];
  readonly policies: readonly PolicyInput[];
  readonly remotePods: readonly RemotePod[];
  /** Records left out, with why. */
  readonly problems: readonly string[];
}

function parse(text: string | undefined, what: string): unknown {
  if (text === undefined) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${what} is missing`);
  return JSON.parse(text) as unknown;
}

/**
 * Validated identity sets by ConfigMap name and text, so a change validates only the
 * ConfigMaps that changed (an agent keeps one; results are pure functions of the text
 * and the cluster's pod CIDRs).
 */
export type IdentityMemo = Map<string, { text: string; cidrs: string; set: IdentitySet }>;

/** The state from the ConfigMaps, every record validated again (pure but for `memo`, a cache of its own results). */
export function readState(own: string, configMaps: readonly ConfigMapLike[], memo: IdentityMemo = new Map()): State {
  const problems: string[] = [];
  const main = configMaps.find((c) => c.metadata?.name === CLUSTERSET_CONFIGMAP);
  let clusters: ClusterInfo[] = [];
  const policies: PolicyInput[] = [];
  try {
    const raw = parse(main?.data?.['clusters.json'], `${CLUSTERSET_CONFIGMAP} clusters.json`);
    clusters = (Array.isArray(raw) ? raw : []).flatMap((c: unknown) => {
      const o = c as { cluster_id?: unknown; pod_cidrs?: unknown; labels?: unknown };
      try {
        const cidrs = Array.isArray(o.pod_cidrs) ? o.pod_cidrs.map((x) => String(x)) : [];
        cidrs.forEach((x) => parseCidr(x));
        if (typeof o.cluster_id !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.cluster_id)) throw new Error('bad cluster id');
        const labels = receivedClusterLabels(o.cluster_id, o.labels);
        if (labels.problem !== undefined) problems.push(labels.problem);
        return [{ cluster_id: o.cluster_id, pod_cidrs: cidrs, labels: labels.labels }];
      } catch (err) {
        problems.push(`cluster ${String(o.cluster_id)}: ${messageOf(err)}`);
        return [];
      }
    });
    const rawPolicies = parse(main?.data?.['policies.json'], `${CLUSTERSET_CONFIGMAP} policies.json`);
    for (const p of Array.isArray(rawPolicies) ? rawPolicies : []) {
      try {
        const { record, spec } = validatePolicyRecord(p);
        policies.push({ key: `${record.cluster_id}/${record.namespace}/${record.name}`, cluster: record.cluster_id, namespace: record.namespace, name: record.name, spec, generation: record.generation });
      } catch (err) {
        const o = p as { cluster_id?: unknown; namespace?: unknown; name?: unknown };
        problems.push(`policy ${String(o.cluster_id)}/${String(o.namespace)}/${String(o.name)}: ${messageOf(err)}`);
      }
    }
  } catch (err) {
    problems.push(`${CLUSTERSET_CONFIGMAP}: ${messageOf(err)}`);
  }
  const remotePods: RemotePod[] = [];
  const claimed = new Set<string>();
  const seen = new Set<string>();
  for (const cm of configMaps) {
    if (cm.metadata?.labels?.[STATE_LABEL] !== 'identities') continue;
    try {
      const text = cm.data?.['identities.json'] ?? '';
      const name = cm.metadata.name ?? '';
      seen.add(name);
      const hit = memo.get(name);
      const clusterId = hit !== undefined && hit.text === text ? hit.set.cluster_id : (parse(text, `${name} identities.json`) as { cluster_id?: unknown }).cluster_id;
      const cluster = clusters.find((c) => c.cluster_id === clusterId);
      if (cluster === undefined || cluster.cluster_id === own) throw new Error(`cluster ${String(clusterId)} is not a remote member`);
      const cidrs = cluster.pod_cidrs.join(',');
      const set = hit !== undefined && hit.text === text && hit.cidrs === cidrs ? hit.set : validateIdentitySet(JSON.parse(text), cluster.pod_cidrs);
      memo.set(name, { text, cidrs, set });
      if (name !== identityConfigMapName(set.cluster_id, set.namespace)) throw new Error('its name does not match its record');
      const labelsOf = new Map(set.identities.map((i) => [i.id, i.labels]));
      for (const p of set.pods) {
        if (claimed.has(p.ip)) continue; // CIDRs of members do not overlap; a duplicate is ignored
        claimed.add(p.ip);
        remotePods.push({ ip: p.ip, source: { cluster: set.cluster_id, namespace: set.namespace, namespaceLabels: set.namespace_labels, pod: p.name, labels: labelsOf.get(p.identity) ?? {} } });
      }
    } catch (err) {
      problems.push(`${cm.metadata.name ?? '?'}: ${messageOf(err)}`);
    }
  }
  for (const name of memo.keys()) if (!seen.has(name)) memo.delete(name);
  return { clusters, policies, remotePods, problems };
}

/** Remote pod CIDRs (every member's but this one's). */
export function remoteCidrs(own: string, clusters: readonly ClusterInfo[]): string[] {
  const mine = clusters.find((c) => c.cluster_id === own)?.pod_cidrs.map((c) => parseCidr(c)) ?? [];
  return clusters.filter((c) => c.cluster_id !== own).flatMap((c) => c.pod_cidrs)
    .filter((c) => !c.includes(':') && !mine.some((m) => cidrContains(m, c.split('/')[0] as string)));
}

/** JSON with every object's keys sorted: records decoded from the wire list their fields in another order. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : x));
}
