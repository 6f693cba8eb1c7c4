import { messageOf } from '../core/index.ts';
// policy.ts alone, not broker-api's index (which loads gRPC): the node agent reads labels through this file
import { isLabelName, isLabelValue, validateLabels } from '../core/broker-api/policy.ts';

/**
 * A cluster's labels, which `clusters: { selector: … }` in a rule's `from` and in
 * `appliedTo` match: what each member declares about itself in its ClusterProperty objects
 * (about.k8s.io, KEP-2149), published by its policy controller in its Cluster record at the
 * broker.
 *
 * Invariants:
 * - the label `cluster.clusterset.k8s.io` is always the cluster's own id, on the publishing
 *   side and again on every receiving side: no member can take another's id in a selector;
 * - what a member publishes and what a receiver accepts are bounded (CLUSTER_LABEL_LIMITS):
 *   a receiver refuses the whole label set of a record that breaks a bound or the label
 *   syntax (the cluster keeps only its id label), so a hostile member cannot grow every
 *   node's state or smuggle text into it;
 * - labels are self-declared: a selector says what a member claims to be. A rule that must
 *   hold against a hostile member names it by id.
 */
export const CLUSTER_ID_PROPERTY = 'cluster.clusterset.k8s.io';

/** At most this many labels per cluster, of at most this many bytes together (names and values). */
export const CLUSTER_LABEL_LIMITS = Object.freeze({ count: 32, bytes: 4096 });

export interface ClusterPropertyLike {
  readonly metadata?: { readonly name?: string };
  readonly spec?: { readonly value?: unknown };
}

export interface PublishedLabels {
  readonly labels: Readonly<Record<string, string>>;
  /** One line per ClusterProperty left out, saying why (for the controller's log). */
  readonly skipped: readonly string[];
}

const size = (labels: Readonly<Record<string, string>>): number => Object.entries(labels).reduce((n, [k, v]) => n + k.length + v.length, 0);

/**
 * The labels this cluster publishes: one per ClusterProperty whose name is a label name and
 * whose value a label value, the id property set to `own`; by name order until a bound is
 * reached. Pure: same properties, same labels.
 */
export function publishedClusterLabels(own: string, properties: readonly ClusterPropertyLike[]): PublishedLabels {
  const labels: Record<string, string> = { [CLUSTER_ID_PROPERTY]: own };
  const skipped: string[] = [];
  const sorted = [...properties].sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
  for (const p of sorted) {
    const name = p.metadata?.name ?? '';
    const value = p.spec?.value;
    if (name === CLUSTER_ID_PROPERTY) {
      if (value !== own) skipped.push(`ClusterProperty ${name}: its value ${JSON.stringify(value)} is not this cluster's id ${own}; the label says ${own}`);
      continue;
    }
    if (!isLabelName(name)) {
      skipped.push(`ClusterProperty ${name}: the name is not a label name (at most 63 characters: letters, digits, '-', '_', '.')`);
      continue;
    }
    if (typeof value !== 'string' || !isLabelValue(value)) {
      skipped.push(`ClusterProperty ${name}: its value is not a label value (at most 63 letters, digits, '-', '_', '.')`);
      continue;
    }
    if (Object.keys(labels).length >= CLUSTER_LABEL_LIMITS.count || size(labels) + name.length + value.length > CLUSTER_LABEL_LIMITS.bytes) {
      skipped.push(`ClusterProperty ${name}: over ${CLUSTER_LABEL_LIMITS.count} labels or ${CLUSTER_LABEL_LIMITS.bytes} bytes; a cluster publishes no more`);
      continue;
    }
    labels[name] = value;
  }
  return { labels, skipped };
}

/**
 * A member's labels as a receiver takes them from the broker (untrusted): validated and
 * bounded, the id label forced to `clusterId`. A set that fails is dropped whole (only the id
 * label stays), with the reason.
 */
export function receivedClusterLabels(clusterId: string, labels: unknown): { labels: Readonly<Record<string, string>>; problem?: string } {
  const id = { [CLUSTER_ID_PROPERTY]: clusterId };
  try {
    const valid = validateLabels(labels, `cluster ${clusterId} labels`, CLUSTER_LABEL_LIMITS.count);
    if (size(valid) > CLUSTER_LABEL_LIMITS.bytes) throw new Error(`cluster ${clusterId} labels: ${size(valid)} bytes; at most ${CLUSTER_LABEL_LIMITS.bytes} are allowed`);
    return { labels: { ...valid, ...id } };
  } catch (err) {
    return { labels: id, problem: messageOf(err) };
  }
}
