import { ErrorCodes, IsthmusError } from '../errors.ts';

/**
 * ClusterSetNetworkPolicy: the spec as users write it (CRD isthmus.dev/v1alpha1) and as
 * it travels in a broker POLICY record, with the one validator that the CRD controller,
 * the broker and every receiver run (a record from the broker is untrusted input).
 *
 * Meaning (evaluated by policy/evaluate.ts):
 * - `appliedTo` selects the destination pods in a receiving cluster: pods matching
 *   `podSelector` in the policy's namespace, or in every namespace matching
 *   `namespaceSelector` when given; `clusters` limits the receiving clusters (absent: all).
 * - `ingress` rules are tried by ascending `priority` (across every policy that selects
 *   the pod; at equal priority Deny before Allow, then by policy key and rule order); the
 *   first rule whose `from` and `ports` match the flow decides.
 * - A `from` peer matches a source pod when its cluster matches `clusters` (absent: any
 *   remote cluster), its namespace matches `namespaceSelector` (absent: the destination's
 *   own namespace name — namespace sameness) and its labels match `podSelector` (absent:
 *   every pod). An empty `from` matches every remote pod; empty `ports` every port.
 * - No rule matched: `default` decides. A namespace's default is Deny when any policy
 *   applied to it there says Deny, else Allow (today's behaviour, nothing filtered).
 * Only traffic that arrived through a cable is concerned; traffic inside a cluster never is.
 *
 * Invariant of `validatePolicySpec`: it returns a normalized copy (every field present,
 * selectors as objects, lists sorted where order has no meaning) or throws
 * INVALID_ARGUMENT naming the field and what to write instead; the same input always
 * gives the same output (so the same policies always compile to the same ruleset).
 */
export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly LabelSelectorRequirement[];
}

/** Clusters by id, or by a selector over their labels (both given: either matches). */
export interface ClusterPeer {
  readonly ids: readonly string[];
  readonly selector: LabelSelector | undefined;
}

export interface PolicyPeer {
  readonly clusters: ClusterPeer | undefined;
  /** undefined: the destination pod's own namespace name. */
  readonly namespaceSelector: LabelSelector | undefined;
  readonly podSelector: LabelSelector;
}

export type PolicyProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface PolicyPort {
  readonly protocol: PolicyProtocol;
  /** undefined: every port of the protocol. */
  readonly port: number | undefined;
  /** Last port of a range starting at `port` (≥ port). */
  readonly endPort: number | undefined;
}

export type PolicyAction = 'Allow' | 'Deny';

export interface IngressRule {
  readonly name: string;
  readonly priority: number;
  readonly action: PolicyAction;
  readonly from: readonly PolicyPeer[];
  readonly ports: readonly PolicyPort[];
}

export interface PolicySpec {
  readonly appliedTo: {
    readonly podSelector: LabelSelector;
    /** undefined: the policy's own namespace. */
    readonly namespaceSelector: LabelSelector | undefined;
    readonly clusters: ClusterPeer | undefined;
  };
  readonly ingress: readonly IngressRule[];
  readonly default: PolicyAction;
}

export const POLICY_LIMITS = Object.freeze({ rules: 64, peers: 16, ports: 32, ids: 64, expressions: 32, values: 64, labels: 64 });

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

function invalid(field: string, message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${field}: ${message}`, { context: { field } });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function obj(v: unknown, field: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw invalid(field, 'must be an object');
  return v;
}

function list(v: unknown, field: string, max: number): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(field, 'must be a list');
  if (v.length > max) throw invalid(field, `has ${v.length} items; at most ${max} are allowed`);
  return v;
}

function unknownKeys(o: Record<string, unknown>, known: readonly string[], field: string): void {
  const extra = Object.keys(o).find((k) => !known.includes(k));
  if (extra !== undefined) throw invalid(field, `unknown field ${JSON.stringify(extra)} (known: ${known.join(', ')})`);
}

export function isLabelName(s: string): boolean {
  return s.length <= 253 && QUALIFIED_NAME.test(s) && (s.split('/').pop() ?? '').length <= 63;
}

export function isLabelValue(s: string): boolean {
  return s.length <= 63 && LABEL_VALUE.test(s);
}

/** An RFC-1123 label (cluster ids, namespaces, pod names up to 63). */
export function isDnsLabel(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && LABEL.test(s);
}

/** A map of label names to label values, keys sorted. */
export function validateLabels(v: unknown, field: string, max: number = POLICY_LIMITS.labels): Record<string, string> {
  const o = obj(v, field);
  const entries = Object.entries(o);
  if (entries.length > max) throw invalid(field, `has ${entries.length} labels; at most ${max} are allowed`);
  const out: Record<string, string> = {};
  for (const [k, val] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!isLabelName(k)) throw invalid(field, `${JSON.stringify(k)} is not a label name such as app or example.com/tier`);
    if (typeof val !== 'string' || !isLabelValue(val)) throw invalid(`${field}[${k}]`, `${JSON.stringify(val)} is not a label value (at most 63 letters, digits, '-', '_', '.')`);
    out[k] = val;
  }
  return out;
}

export function validateSelector(v: unknown, field: string): LabelSelector {
  const o = obj(v, field);
  unknownKeys(o, ['matchLabels', 'matchExpressions'], field);
  const matchExpressions = list(o['matchExpressions'], `${field}.matchExpressions`, POLICY_LIMITS.expressions).map((e, i): LabelSelectorRequirement => {
    const f = `${field}.matchExpressions[${i}]`;
    const x = obj(e, f);
    unknownKeys(x, ['key', 'operator', 'values'], f);
    const key = x['key'];
    if (typeof key !== 'string' || !isLabelName(key)) throw invalid(`${f}.key`, `${JSON.stringify(key)} is not a label name`);
    const operator = x['operator'];
    if (typeof operator !== 'string' || !(OPERATORS as readonly string[]).includes(operator)) throw invalid(`${f}.operator`, `must be one of ${OPERATORS.join(', ')}, got ${JSON.stringify(operator)}`);
    const values = list(x['values'], `${f}.values`, POLICY_LIMITS.values).map((s, j) => {
      if (typeof s !== 'string' || !isLabelValue(s)) throw invalid(`${f}.values[${j}]`, `${JSON.stringify(s)} is not a label value`);
      return s;
    });
    const needsValues = operator === 'In' || operator === 'NotIn';
    if (needsValues && values.length === 0) throw invalid(`${f}.values`, `operator ${operator} needs at least one value`);
    if (!needsValues && values.length > 0) throw invalid(`${f}.values`, `operator ${operator} takes no values`);
    return { key, operator: operator as LabelSelectorRequirement['operator'], values: [...new Set(values)].sort() };
  });
  return { matchLabels: validateLabels(o['matchLabels'], `${field}.matchLabels`), matchExpressions };
}

function optionalSelector(v: unknown, field: string): LabelSelector | undefined {
  return v === undefined || v === null ? undefined : validateSelector(v, field);
}

function clusterPeer(v: unknown, field: string): ClusterPeer | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, field);
  unknownKeys(o, ['ids', 'selector'], field);
  const ids = list(o['ids'], `${field}.ids`, POLICY_LIMITS.ids).map((id, i) => {
    if (typeof id !== 'string' || !isDnsLabel(id)) throw invalid(`${field}.ids[${i}]`, `${JSON.stringify(id)} is not a cluster id (an RFC-1123 label)`);
    return id;
  });
  const selector = optionalSelector(o['selector'], `${field}.selector`);
  if (ids.length === 0 && selector === undefined) throw invalid(field, 'names no cluster: give ids, a selector, or leave clusters out for every cluster');
  return { ids: [...new Set(ids)].sort(), selector };
}

function peer(v: unknown, field: string): PolicyPeer {
  const o = obj(v, field);
  unknownKeys(o, ['clusters', 'namespaceSelector', 'podSelector'], field);
  return {
    clusters: clusterPeer(o['clusters'], `${field}.clusters`),
    namespaceSelector: optionalSelector(o['namespaceSelector'], `${field}.namespaceSelector`),
    podSelector: validateSelector(o['podSelector'], `${field}.podSelector`),
  };
}

function portNumber(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw invalid(field, `port ${JSON.stringify(v)} is out of range: use 1-65535`);
  return v;
}

function port(v: unknown, field: string): PolicyPort {
  const o = obj(v, field);
  unknownKeys(o, ['protocol', 'port', 'endPort'], field);
  const p = o['protocol'] ?? 'TCP';
  if (typeof p !== 'string' || !(PROTOCOLS as readonly string[]).includes(p)) throw invalid(`${field}.protocol`, `must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(p)}`);
  const n = portNumber(o['port'], `${field}.port`);
  const end = portNumber(o['endPort'], `${field}.endPort`);
  if (end !== undefined && n === undefined) throw invalid(`${field}.endPort`, 'needs port (the first port of the range)');
  if (end !== undefined && n !== undefined && end < n) throw invalid(`${field}.endPort`, `${end} is below port ${n}`);
  return { protocol: p as PolicyProtocol, port: n, endPort: end === n ? undefined : end };
}

function action(v: unknown, field: string, def?: PolicyAction): PolicyAction {
  if ((v === undefined || v === null) && def !== undefined) return def;
  if (v !== 'Allow' && v !== 'Deny') throw invalid(field, `must be Allow or Deny, got ${JSON.stringify(v)}`);
  return v;
}

function rule(v: unknown, i: number): IngressRule {
  const field = `spec.ingress[${i}]`;
  const o = obj(v, field);
  unknownKeys(o, ['name', 'priority', 'action', 'from', 'ports'], field);
  const name = o['name'] ?? `rule-${i}`;
  if (typeof name !== 'string' || !isDnsLabel(name)) throw invalid(`${field}.name`, `${JSON.stringify(name)} is not an RFC-1123 label`);
  const priority = o['priority'];
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 65535) {
    throw invalid(`${field}.priority`, `must be a whole number from 0 (first) to 65535, got ${JSON.stringify(priority)}`);
  }
  return {
    name,
    priority,
    action: action(o['action'], `${field}.action`),
    from: list(o['from'], `${field}.from`, POLICY_LIMITS.peers).map((p, j) => peer(p, `${field}.from[${j}]`)),
    ports: list(o['ports'], `${field}.ports`, POLICY_LIMITS.ports).map((p, j) => port(p, `${field}.ports[${j}]`)),
  };
}

/** The spec of a ClusterSetNetworkPolicy, normalized; INVALID_ARGUMENT naming the field otherwise. */
export function validatePolicySpec(v: unknown): PolicySpec {
  if (!isObject(v)) throw invalid('spec', 'must be an object with appliedTo and ingress');
  unknownKeys(v, ['appliedTo', 'ingress', 'default'], 'spec');
  const a = obj(v['appliedTo'], 'spec.appliedTo');
  unknownKeys(a, ['podSelector', 'namespaceSelector', 'clusters'], 'spec.appliedTo');
  const ingress = list(v['ingress'], 'spec.ingress', POLICY_LIMITS.rules).map(rule);
  const names = new Map<string, number>();
  const priorities = new Map<number, IngressRule>();
  ingress.forEach((r, i) => {
    const seen = names.get(r.name);
    if (seen !== undefined) throw invalid(`spec.ingress[${i}].name`, `${JSON.stringify(r.name)} is also the name of ingress[${seen}]: give each rule its own name`);
    names.set(r.name, i);
    const other = priorities.get(r.priority);
    if (other !== undefined) {
      throw invalid(`spec.ingress[${i}].priority`, `${r.priority} is also the priority of rule ${JSON.stringify(other.name)}: rules of one policy need distinct priorities, so their order is what you wrote`);
    }
    priorities.set(r.priority, r);
  });
  return {
    appliedTo: {
      podSelector: validateSelector(a['podSelector'], 'spec.appliedTo.podSelector'),
      namespaceSelector: optionalSelector(a['namespaceSelector'], 'spec.appliedTo.namespaceSelector'),
      clusters: clusterPeer(a['clusters'], 'spec.appliedTo.clusters'),
    },
    ingress,
    default: action(v['default'], 'spec.default', 'Allow'),
  };
}
