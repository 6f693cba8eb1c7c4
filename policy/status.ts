import { messageOf } from '../core/errors.ts';
import { MAX_POLICY_STATUS_MESSAGE_BYTES, validatePolicyStatus } from '../core/broker-api/identity.ts';
import type { PolicyStatusRecord } from '../core/broker-api/types.ts';
import type { PolicyStatus } from './evaluate.ts';
import { enforcementText, type Enforcement } from './node-status.ts';

/**
 * A policy's status, per receiving cluster (pure).
 *
 * Every cluster's controller works out how it receives each policy of the clusterset
 * (`receiverStatus`): its own policies' entries it writes into their status directly; for
 * another cluster's policy it publishes a POLICY_STATUS record to the broker, which the
 * author's controller folds into the status (`clusterEntries`). Invariants: one entry per
 * cluster, sorted by cluster id, the author's own first; a record is used only when it
 * validates again, comes from a member cluster and is about this policy of this author
 * (a hostile member can only misreport itself); a record about an older generation of the
 * policy says so (`observedGeneration` and its message).
 */
export interface ClusterEntry {
  readonly cluster: string;
  readonly state: PolicyStatusRecord['state'];
  readonly message: string;
  readonly observedGeneration: number;
  readonly enforcedNodes?: number;
  readonly nodes?: number;
}

/** How this cluster receives a policy at `generation`: its validation error, its resolution here, its enforcement on this cluster's nodes. */
export function receiverStatus(cluster: string, generation: number, error: string | undefined, st: PolicyStatus | undefined, on: Enforcement): ClusterEntry {
  const base = { cluster, observedGeneration: generation };
  if (error !== undefined) return { ...base, state: 'Error', message: error };
  if (st === undefined) return { ...base, state: 'Error', message: 'not resolved here: the policy is not in this cluster\'s state' };
  if (st.state !== 'Accepted') return { ...base, state: st.state, message: st.errors.length > 0 ? st.errors.join('; ') : 'not applied to this cluster' };
  return { ...base, state: 'Accepted', message: `governs ${st.namespaces.join(', ') || 'no namespace here'}; ${enforcementText(on)}`, enforcedNodes: on.enforced, nodes: on.nodes };
}

/** The text cut to at most `max` bytes of UTF-8 (on a character boundary), marked when cut. */
export function clip(text: string, max: number = MAX_POLICY_STATUS_MESSAGE_BYTES): string {
  if (Buffer.byteLength(text) <= max) return text;
  const room = max - Buffer.byteLength('…');
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > room) break;
    out += ch;
    bytes += n;
  }
  return `${out}…`;
}

/** The POLICY_STATUS record this cluster publishes for another cluster's policy. */
export function statusRecord(policy: { cluster: string; namespace: string; name: string }, e: ClusterEntry): PolicyStatusRecord {
  return {
    cluster_id: e.cluster, policy_cluster: policy.cluster, namespace: policy.namespace, name: policy.name, generation: e.observedGeneration,
    state: e.state, message: clip(e.message), enforced_nodes: e.enforcedNodes ?? 0, nodes: e.nodes ?? 0,
  };
}

/**
 * The status entries of an own policy at `generation`: this cluster's entry, then every
 * member's report about it (records from the broker, untrusted), sorted by cluster.
 * Returns the entries and the records left out, with why.
 */
export function clusterEntries(own: ClusterEntry, policy: { cluster: string; namespace: string; name: string; generation: number }, records: readonly unknown[], members: ReadonlySet<string>): { entries: ClusterEntry[]; refused: string[] } {
  const byCluster = new Map<string, ClusterEntry>();
  const refused: string[] = [];
  for (const raw of records) {
    let r: PolicyStatusRecord;
    try {
      r = validatePolicyStatus(raw);
    } catch (err) {
      refused.push(`a status of ${policy.namespace}/${policy.name}: ${messageOf(err)}`);
      continue;
    }
    if (r.policy_cluster !== policy.cluster || r.namespace !== policy.namespace || r.name !== policy.name) continue;
    if (r.cluster_id === own.cluster || !members.has(r.cluster_id)) {
      refused.push(`the status of ${policy.namespace}/${policy.name} from ${r.cluster_id}: not another member of the clusterset`);
      continue;
    }
    const stale = r.generation !== policy.generation ? `about generation ${r.generation}, not ${policy.generation} yet: ` : '';
    byCluster.set(r.cluster_id, {
      cluster: r.cluster_id, state: r.state, message: `${stale}${r.message}`, observedGeneration: r.generation,
      ...(r.state === 'Accepted' ? { enforcedNodes: r.enforced_nodes, nodes: r.nodes } : {}),
    });
  }
  const others = [...byCluster.values()].sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
  return { entries: [own, ...others], refused };
}
