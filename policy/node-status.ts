
/**
 * "Enforced on N of M nodes". Each node's policy agent reports in its `PolicyAgent` resource
 * (isthmus.dev/v1alpha1, in the state namespace, named after the node; CRD in crd.ts) the
 * policies its ruleset enforces — by record key and generation — and the ruleset's digest,
 * or the error of its last apply. The controller reads every report and counts, per policy
 * of its cluster, the nodes whose report holds that policy at its current generation with
 * no error (`enforcement`, pure).
 *
 * M is the cluster's schedulable nodes (not cordoned), not the nodes that happen to have an
 * agent: a node whose agent is missing, has not applied yet or failed counts in M and not
 * in N, and the message names it. Reports of nodes outside M are ignored.
 */
export interface PolicyNodeStatus {
  filter: string;
  digest: string;
  applied: { policy: string; generation: number }[];
  error: string;
  summary: string;
}

/** The node's report (pure): `applied` sorted by key; on error, what was applied before stays reported as not current. */
export function policyNodeStatus(o: { filter: string; digest: string; applied: readonly { policy: string; generation: number }[]; error?: string }): PolicyNodeStatus {
  const applied = [...o.applied].sort((a, b) => (a.policy < b.policy ? -1 : a.policy > b.policy ? 1 : 0)).map((a) => ({ policy: a.policy, generation: a.generation }));
  const error = o.error ?? '';
  return { filter: o.filter, digest: o.digest, applied, error, summary: error !== '' ? `error: ${error.slice(0, 200)}` : `${applied.length} policies applied` };
}

export interface NodeReport {
  readonly node: string;
  /** Policy key → generation. */
  readonly applied: ReadonlyMap<string, number>;
  readonly error: string;
}

/** A PolicyAgent object as the controller reads it → its report, or undefined when it has none yet or is malformed (pure). */
export function nodeReport(o: unknown): NodeReport | undefined {
  const obj = o as { metadata?: { name?: unknown }; status?: { applied?: unknown; error?: unknown } } | undefined;
  const node = obj?.metadata?.name;
  const st = obj?.status;
  if (typeof node !== 'string' || st === undefined || !Array.isArray(st.applied)) return undefined;
  const applied = new Map<string, number>();
  for (const a of st.applied as unknown[]) {
    const x = a as { policy?: unknown; generation?: unknown };
    if (typeof x.policy === 'string' && typeof x.generation === 'number') applied.set(x.policy, x.generation);
  }
  return { node, applied, error: typeof st.error === 'string' ? st.error : '' };
}

export interface Enforcement {
  readonly enforced: number;
  readonly nodes: number;
  /** Nodes in M that do not enforce the policy, each with why (sorted by node). */
  readonly missing: readonly { node: string; reason: string }[];
}

/** On how many of `nodes` the policy `key` at `generation` is enforced, and why not on the others (pure). */
export function enforcement(key: string, generation: number, nodes: readonly string[], reports: readonly NodeReport[]): Enforcement {
  const byNode = new Map(reports.map((r) => [r.node, r]));
  const missing: { node: string; reason: string }[] = [];
  for (const node of [...new Set(nodes)].sort()) {
    const r = byNode.get(node);
    const g = r?.applied.get(key);
    const reason = r === undefined ? 'no report from its policy agent'
      : r.error !== '' ? `apply failed: ${r.error}`
      : g === undefined ? 'not applied yet'
      : g !== generation ? `applied generation ${g}, not ${generation} yet`
      : undefined;
    if (reason !== undefined) missing.push({ node, reason });
  }
  const total = new Set(nodes).size;
  return { enforced: total - missing.length, nodes: total, missing };
}

/** "enforced on 2 of 3 nodes (c1-w2: no report from its policy agent)" — at most 3 nodes named. */
export function enforcementText(e: Enforcement): string {
  const named = e.missing.slice(0, 3).map((m) => `${m.node}: ${m.reason}`);
  const more = e.missing.length > 3 ? `; ${e.missing.length - 3} more` : '';
  return `enforced on ${e.enforced} of ${e.nodes} nodes${named.length > 0 ? ` (${named.join('; ')}${more})` : ''}`;
}
