import type { IngressRule, PolicyAction, PolicyPeer, PolicyPort, PolicyProtocol, PolicySpec } from '../core/broker-api/index.ts';
import { clusterMatches, matches } from './selector.ts';

/**
 * What the ClusterSetNetworkPolicies mean in one receiving cluster (pure, deterministic).
 *
 * `resolve(view)` turns every policy of the clusterset into the rules that apply here,
 * each bound to one target namespace, in the one order evaluation uses: priority
 * ascending, at equal priority Deny before Allow, then policy key, then the rule's place
 * in its policy. A policy that does not select this cluster is NotApplicable; one for a
 * namespace whose `isthmus.dev/policy-authors` annotation does not list its author
 * cluster is an Error for that namespace (it still applies to the namespaces it may
 * govern); one that names no namespace existing here is Accepted with none.
 *
 * `evaluate(resolved, flow)` is the verdict for one cross-cluster flow: the first rule
 * whose target pods, sources and ports match decides; else the namespace's default
 * (Deny when any policy applied to the namespace says so, else Allow).
 */
export const AUTHORS_ANNOTATION = 'isthmus.dev/policy-authors';

export interface PolicyInput {
  /** "<author cluster>/<namespace>/<name>" (the broker record key). */
  readonly key: string;
  readonly cluster: string;
  readonly namespace: string;
  readonly name: string;
  readonly spec: PolicySpec;
  /** metadata.generation of the source object (the record's), for "enforced on N of M nodes". */
  readonly generation?: number;
}

export interface NamespaceInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The clusters whose policies may govern it (annotation isthmus.dev/policy-authors); undefined: any member. */
  readonly authors?: readonly string[] | undefined;
}

export interface ReceiverView {
  readonly cluster: string;
  /** Labels of every member cluster by id (this one included), for cluster selectors. */
  readonly clusterLabels: ReadonlyMap<string, Readonly<Record<string, string>>>;
  readonly namespaces: readonly NamespaceInfo[];
  readonly policies: readonly PolicyInput[];
}

export interface AppliedRule {
  readonly policy: string;
  readonly rule: string;
  readonly priority: number;
  readonly action: PolicyAction;
  /** The target namespace in this cluster. */
  readonly namespace: string;
  readonly appliedTo: PolicySpec['appliedTo']['podSelector'];
  readonly from: readonly PolicyPeer[];
  readonly ports: readonly PolicyPort[];
}

export type PolicyState = 'Accepted' | 'NotApplicable' | 'Error';

export interface PolicyStatus {
  readonly state: PolicyState;
  /** Namespaces it governs here. */
  readonly namespaces: readonly string[];
  readonly errors: readonly string[];
}

export interface Resolved {
  readonly cluster: string;
  readonly clusterLabels: ReadonlyMap<string, Readonly<Record<string, string>>>;
  readonly rules: readonly AppliedRule[];
  /** Namespace → the policy that made its default Deny (absent: Allow). */
  readonly denyByDefault: ReadonlyMap<string, string>;
  readonly status: ReadonlyMap<string, PolicyStatus>;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function resolve(view: ReceiverView): Resolved {
  const own = view.clusterLabels.get(view.cluster) ?? {};
  const rules: (AppliedRule & { index: number })[] = [];
  const denyByDefault = new Map<string, string>();
  const status = new Map<string, PolicyStatus>();
  const namespaces = [...view.namespaces].sort((a, b) => cmp(a.name, b.name));
  for (const p of [...view.policies].sort((a, b) => cmp(a.key, b.key))) {
    if (!clusterMatches(p.spec.appliedTo.clusters, view.cluster, own)) {
      status.set(p.key, { state: 'NotApplicable', namespaces: [], errors: [] });
      continue;
    }
    const selector = p.spec.appliedTo.namespaceSelector;
    const targets = namespaces.filter((n) => (selector === undefined ? n.name === p.namespace : matches(selector, n.labels)));
    const errors: string[] = [];
    const governed: string[] = [];
    for (const ns of targets) {
      if (ns.authors !== undefined && !ns.authors.includes(p.cluster)) {
        errors.push(`namespace ${ns.name} is not owned by cluster ${p.cluster} here (its ${AUTHORS_ANNOTATION} annotation lists ${ns.authors.join(', ') || 'no cluster'})`);
        continue;
      }
      governed.push(ns.name);
      p.spec.ingress.forEach((r: IngressRule, index) => {
        rules.push({ policy: p.key, rule: r.name, priority: r.priority, action: r.action, namespace: ns.name, appliedTo: p.spec.appliedTo.podSelector, from: r.from, ports: r.ports, index });
      });
      if (p.spec.default === 'Deny' && !denyByDefault.has(ns.name)) denyByDefault.set(ns.name, p.key);
    }
    status.set(p.key, { state: errors.length > 0 ? 'Error' : 'Accepted', namespaces: governed, errors });
  }
  rules.sort((a, b) => a.priority - b.priority || (a.action === b.action ? 0 : a.action === 'Deny' ? -1 : 1) || cmp(a.policy, b.policy) || a.index - b.index || cmp(a.namespace, b.namespace));
  return { cluster: view.cluster, clusterLabels: view.clusterLabels, rules: rules.map(({ index: _, ...r }) => r), denyByDefault, status };
}

export interface SourcePod {
  readonly cluster: string;
  readonly namespace: string;
  readonly namespaceLabels: Readonly<Record<string, string>>;
  readonly pod: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface DestinationPod {
  readonly namespace: string;
  readonly pod: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface Flow {
  readonly source: SourcePod;
  readonly destination: DestinationPod;
  readonly protocol: PolicyProtocol;
  readonly port: number;
}

export interface Verdict {
  readonly action: PolicyAction;
  /** The policy and rule that decided; both absent when the namespace default did. */
  readonly policy?: string;
  readonly rule?: string;
  readonly reason: string;
}

/** Does a rule's `from` list admit this source, for a destination in `namespace`? */
export function peerMatches(from: readonly PolicyPeer[], source: SourcePod, namespace: string, clusterLabels: Resolved['clusterLabels']): boolean {
  if (from.length === 0) return true;
  const labels = clusterLabels.get(source.cluster) ?? {};
  return from.some((p) =>
    clusterMatches(p.clusters, source.cluster, labels)
    && (p.namespaceSelector === undefined ? source.namespace === namespace : matches(p.namespaceSelector, source.namespaceLabels))
    && matches(p.podSelector, source.labels));
}

export function portMatches(ports: readonly PolicyPort[], protocol: PolicyProtocol, port: number): boolean {
  if (ports.length === 0) return true;
  return ports.some((p) => p.protocol === protocol && (p.port === undefined || (port >= p.port && port <= (p.endPort ?? p.port))));
}

export function evaluate(resolved: Resolved, flow: Flow): Verdict {
  const { source, destination } = flow;
  if (source.cluster === resolved.cluster) return { action: 'Allow', reason: 'traffic inside the cluster is not governed by ClusterSetNetworkPolicy' };
  for (const r of resolved.rules) {
    if (r.namespace !== destination.namespace || !matches(r.appliedTo, destination.labels)) continue;
    if (!portMatches(r.ports, flow.protocol, flow.port)) continue;
    if (!peerMatches(r.from, source, r.namespace, resolved.clusterLabels)) continue;
    return { action: r.action, policy: r.policy, rule: r.rule, reason: `rule ${r.rule} (priority ${r.priority}) of ${r.policy} matches` };
  }
  const denier = resolved.denyByDefault.get(destination.namespace);
  if (denier !== undefined) return { action: 'Deny', reason: `no rule matches and ${denier} makes namespace ${destination.namespace}'s default Deny` };
  return { action: 'Allow', reason: `no rule matches and namespace ${destination.namespace}'s default is Allow` };
}
