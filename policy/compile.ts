import { createHash } from 'node:crypto';
import type { PolicyAction, PolicyPort } from '../core/broker-api/index.ts';
import { DIGEST_SET, digestElement } from './delta.ts';
import { peerMatches, type Resolved, type SourcePod } from './evaluate.ts';
import { matches } from './selector.ts';

/**
 * compile(resolved, pods) → the node's nftables ruleset for ClusterSetNetworkPolicy (pure
 * and deterministic: the same input gives the same text, so a reconcile with no change
 * sends nothing to the kernel — the digest in the table's set `digest` tells; a change of
 * set elements only is applied in place, see delta.ts).
 *
 * The table `ip isthmus-policy` holds one base chain on the forward hook. Only packets
 * whose source lies in a remote cluster's pod CIDRs (set `remote`) are looked at:
 * traffic inside the cluster passes untouched. Replies and the rest of an admitted flow
 * pass by conntrack (established,related). A new flow then meets the applied rules in
 * evaluation order (evaluate.ts): each rule is one nft rule per protocol matching
 * destination pods (a set of local pod IPs), sources (a set of remote pod IPs, keyed by
 * identity) and ports; last, the pods of namespaces whose default is Deny are dropped.
 * A source pod with no published identity matches only rules whose `from` is empty.
 *
 * Audit: every verdict rule adds the flow (source, destination, protocol, port) to a
 * dynamic set of its own with a timeout (`auditSeconds`), so a flow appears there once
 * per timeout however many packets it has; the agent reads the sets and logs each new
 * element once (audit.ts). Counters on every verdict rule feed the Prometheus metrics.
 */
export const POLICY_TABLE = 'isthmus-policy';

export interface LocalPod {
  readonly ip: string;
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface RemotePod {
  readonly ip: string;
  readonly source: SourcePod;
}

export interface CompileInput {
  readonly resolved: Resolved;
  /** Pod CIDRs of every remote cluster (what arrives through a cable). */
  readonly remoteCidrs: readonly string[];
  /** This cluster's pods (destinations). */
  readonly localPods: readonly LocalPod[];
  /** Remote pods from the published identities (validated). */
  readonly remotePods: readonly RemotePod[];
  /** How long one flow stays in its audit set (default 60 s): it is logged once per this. */
  readonly auditSeconds?: number;
}

/** What an audit set's elements mean. */
export interface AuditTag {
  readonly policy: string;
  readonly rule: string;
  readonly action: PolicyAction;
}

export interface Ruleset {
  readonly text: string;
  readonly digest: string;
  /** Audit set name → the rule (or namespace default) it records. */
  readonly audit: ReadonlyMap<string, AuditTag>;
  readonly rules: number;
  readonly elements: number;
  /** The same rules for another backend (iptables + ipset). */
  readonly plan: Plan;
}

const ipNumber = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/** IPv4 addresses in numeric order, each once. */
function sortIps(ips: readonly string[]): string[] {
  return [...new Set(ips)].map((ip) => [ipNumber(ip), ip] as const).sort((a, b) => a[0] - b[0]).map(([, ip]) => ip);
}

interface SourceGroup {
  readonly index: number;
  readonly source: SourcePod;
  readonly ips: string[];
}

/** Remote pods grouped by what a peer can match on (cluster, namespace and its labels, pod labels): each group is matched once. */
function groupSources(pods: readonly RemotePod[]): SourceGroup[] {
  const groups = new Map<string, SourceGroup>();
  for (const p of pods) {
    const s = p.source;
    const key = `${s.cluster}\0${s.namespace}\0${JSON.stringify(s.namespaceLabels)}\0${JSON.stringify(s.labels)}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { index: groups.size, source: s, ips: [p.ip] });
    else g.ips.push(p.ip);
  }
  return [...groups.values()];
}

/** One verdict rule of the plan: destinations, sources, protocol and ports, action, audit set. */
export interface PlanRule {
  readonly dst: string;
  /** A source set name, or 'remote' (every remote address). */
  readonly src: string;
  readonly protocol: 'tcp' | 'udp' | 'sctp' | undefined;
  /** "8080" or "8000-8100"; empty: every port. */
  readonly ports: readonly string[];
  readonly action: PolicyAction;
  readonly audit: string;
  readonly comment: string;
}

/** What both backends render: the sets (IPs in numeric order) and the rules in evaluation order. */
export interface Plan {
  readonly remoteCidrs: readonly string[];
  readonly sets: readonly { readonly name: string; readonly ips: readonly string[] }[];
  readonly audits: readonly string[];
  readonly rules: readonly PlanRule[];
  readonly auditSeconds: number;
}

const PROTO: Readonly<Record<string, 'tcp' | 'udp' | 'sctp'>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

/** The nftables body of a plan (pure). */
function nftBody(plan: Plan): string {
  const record = (set: string): string => `add @${set} { ip saddr . ip daddr . meta l4proto . th dport }`;
  const lines = plan.rules.map((r) => {
    const src = r.src === '' ? '' : ` ip saddr @${r.src}`;
    const proto = r.protocol === undefined ? '' : ` meta l4proto ${r.protocol}${r.ports.length === 0 ? '' : ` th dport { ${r.ports.join(', ')} }`}`;
    return `    ip daddr @${r.dst}${src}${proto} ${record(r.audit)} counter ${r.action === 'Allow' ? 'accept' : 'drop'} comment "${r.comment}"`;
  });
  return [
    `  set remote { type ipv4_addr; flags interval;${plan.remoteCidrs.length === 0 ? '' : ` elements = { ${plan.remoteCidrs.join(', ')} }`} }`,
    ...plan.sets.map((x) => `  set ${x.name} { type ipv4_addr;${x.ips.length === 0 ? '' : ` elements = { ${x.ips.join(', ')} }`} }`),
    ...plan.audits.map((a) => `  set ${a} { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; timeout ${plan.auditSeconds}s; size 65535; }`),
    // after conntrack and before the default filter priority (kube-proxy's forward chain)
    '  chain forward { type filter hook forward priority filter - 5; policy accept;',
    // a packet of a running flow (most of them) costs one conntrack state compare, no set lookup
    '    ct state established,related accept',
    '    ip saddr != @remote return',
    ...lines,
    '  }',
  ].join('\n');
}

export function compile(input: CompileInput): Ruleset {
  const sets = new Map<string, string>(); // content → name
  const setList: { name: string; ips: string[] }[] = [];
  let elements = 0;
  const setOf = (prefix: string, ips: readonly string[]): string => {
    const sorted = sortIps(ips);
    const content = sorted.join(',');
    const known = sets.get(content);
    if (known !== undefined) return known;
    const name = `${prefix}${sets.size}`;
    sets.set(content, name);
    elements += sorted.length;
    setList.push({ name, ips: sorted });
    return name;
  };
  const audit = new Map<string, AuditTag>();
  const auditSet = (tag: AuditTag): string => {
    const name = `audit${audit.size}`;
    audit.set(name, tag);
    return name;
  };
  const rules: PlanRule[] = [];
  const { resolved } = input;
  const sources = groupSources(input.remotePods);
  const bySources = new Map<string, string>();
  for (const r of resolved.rules) {
    const dst = input.localPods.filter((p) => p.namespace === r.namespace && matches(r.appliedTo, p.labels)).map((p) => p.ip);
    if (dst.length === 0) continue;
    const matched = r.from.length === 0 ? undefined : sources.filter((g) => peerMatches(r.from, g.source, r.namespace, resolved.clusterLabels));
    if (matched !== undefined && matched.length === 0) continue;
    const d = setOf('dst', dst);
    let s = 'remote';
    if (matched !== undefined) {
      // rules that match the same groups share one set, built once
      const key = matched.map((g) => g.index).join(',');
      s = bySources.get(key) ?? setOf('src', matched.flatMap((g) => g.ips));
      bySources.set(key, s);
    }
    const tag = auditSet({ policy: r.policy, rule: r.rule, action: r.action });
    const byProto = new Map<string, PolicyPort[]>();
    for (const p of r.ports) byProto.set(p.protocol, [...(byProto.get(p.protocol) ?? []), p]);
    const base = { dst: d, src: s, action: r.action, audit: tag, comment: `${r.policy} ${r.rule}` };
    if (r.ports.length === 0) rules.push({ ...base, protocol: undefined, ports: [] });
    for (const [proto, ports] of [...byProto.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const all = ports.some((p) => p.port === undefined);
      rules.push({ ...base, protocol: PROTO[proto] ?? 'tcp', ports: all ? [] : [...new Set(ports.map((p) => (p.endPort === undefined ? String(p.port) : `${p.port}-${p.endPort}`)))] });
    }
  }
  const denied = input.localPods.filter((p) => resolved.denyByDefault.has(p.namespace));
  for (const ns of [...new Set(denied.map((p) => p.namespace))].sort()) {
    const d = setOf('dst', denied.filter((p) => p.namespace === ns).map((p) => p.ip));
    const tag = auditSet({ policy: resolved.denyByDefault.get(ns) ?? '', rule: 'default', action: 'Deny' });
    rules.push({ dst: d, src: '', protocol: undefined, ports: [], action: 'Deny', audit: tag, comment: `${ns} default Deny` });
  }
  const plan: Plan = { remoteCidrs: [...new Set(input.remoteCidrs)].sort(), sets: setList, audits: [...audit.keys()], rules, auditSeconds: input.auditSeconds ?? 60 };
  const body = nftBody(plan);
  const digest = createHash('sha256').update(body).digest('hex').slice(0, 16);
  return { text: `table ip ${POLICY_TABLE} {\n  set ${DIGEST_SET} { type ipv4_addr; elements = { ${digestElement(digest)} } }\n${body}\n}\n`, digest, audit, rules: rules.length, elements, plan };
}
