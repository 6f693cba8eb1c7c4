import { isIP } from 'node:net';
import { cidrContains, parseCidr, type Cidr } from '../cidr.ts';
import { ErrorCodes, IsthmusError } from '../errors.ts';
import { isDnsLabel, validateLabels, validatePolicySpec, type PolicySpec } from './policy.ts';
import type { IdentitySet, Policy, PolicyStatusRecord } from './types.ts';

/**
 * Validation of the two policy record kinds, shared by the broker (before it stores a
 * record) and every receiver (before it uses one: a broker record is untrusted input).
 *
 * IDENTITY (key "<cluster>/<namespace>"): one namespace's pods of one cluster, compactly —
 * each distinct pod label set is one identity (a small number local to the record), each
 * pod names its IP and its identity. Invariants: identity ids are unique; every pod refers
 * to one of them; pod IPs are unique and lie inside the publishing cluster's pod CIDRs
 * (a cluster cannot claim another's addresses).
 *
 * POLICY (key "<cluster>/<namespace>/<name>"): a ClusterSetNetworkPolicy authored in that
 * cluster; `spec` is its spec as JSON, valid per validatePolicySpec.
 *
 * POLICY_STATUS (key "<cluster>/<policy cluster>/<namespace>/<name>"): how `cluster`
 * receives another cluster's policy. Invariants: the two clusters differ (an author writes
 * its own status directly); state is one of the three; the message is at most 1 KiB;
 * enforced_nodes ≤ nodes ≤ 100,000.
 */
export const IDENTITY_LIMITS = Object.freeze({ pods: 4_000, identities: 1_000 });
/** The largest spec (JSON) a POLICY record may carry. */
export const MAX_POLICY_SPEC_BYTES = 64 * 1024;

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function invalid(message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, message);
}

const record = (v: unknown, what: string): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what} is required (an object)`);
  return v as Record<string, unknown>;
};

function dnsLabel(v: unknown, field: string): string {
  if (typeof v !== 'string' || !isDnsLabel(v)) throw invalid(`${field} ${JSON.stringify(v)} is not an RFC-1123 label`);
  return v;
}

function items(v: unknown, field: string, max: number): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(`${field} must be a list`);
  if (v.length > max) throw invalid(`${field} has ${v.length} items; at most ${max} fit in one record: split the namespace's pods`);
  return v;
}

function whole(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * An IDENTITY record, normalized (identities by id, pods by IP). `podCidrs` are the
 * publishing cluster's pod CIDRs as its Cluster record says: a pod IP outside them is refused.
 */
export function validateIdentitySet(v: unknown, podCidrs: readonly string[]): IdentitySet {
  const o = record(v, 'identity set');
  const cluster = dnsLabel(o['cluster_id'], 'cluster_id');
  const namespace = dnsLabel(o['namespace'], 'namespace');
  const cidrs: Cidr[] = podCidrs.map((c) => parseCidr(c));
  const ids = new Set<number>();
  const identities = items(o['identities'], 'identities', IDENTITY_LIMITS.identities).map((x, i) => {
    const e = record(x, `identities[${i}]`);
    const id = whole(e['id'], `identities[${i}].id`, 1, 1_000_000);
    if (ids.has(id)) throw invalid(`identities[${i}].id ${id} is used twice`);
    ids.add(id);
    return { id, labels: validateLabels(e['labels'], `identities[${i}].labels`) };
  });
  const ips = new Set<string>();
  const pods = items(o['pods'], 'pods', IDENTITY_LIMITS.pods).map((x, i) => {
    const p = record(x, `pods[${i}]`);
    const ip = p['ip'];
    if (typeof ip !== 'string' || isIP(ip) === 0) throw invalid(`pods[${i}].ip ${JSON.stringify(ip)} is not an IP address`);
    if (!cidrs.some((c) => c.family === isIP(ip) && cidrContains(c, ip))) {
      throw invalid(`pods[${i}].ip ${ip} is outside the pod CIDRs of cluster ${cluster} (${podCidrs.join(', ') || 'none registered'}): a cluster publishes identities only for its own pods`);
    }
    if (ips.has(ip)) throw invalid(`pods[${i}].ip ${ip} is listed twice`);
    ips.add(ip);
    const name = p['name'];
    if (typeof name !== 'string' || name.length > 253 || !SUBDOMAIN.test(name)) throw invalid(`pods[${i}].name ${JSON.stringify(name)} is not a pod name`);
    const identity = whole(p['identity'], `pods[${i}].identity`, 1, 1_000_000);
    if (!ids.has(identity)) throw invalid(`pods[${i}].identity ${identity} names no identity of this record`);
    return { ip, name, identity };
  });
  return {
    cluster_id: cluster,
    namespace,
    namespace_labels: validateLabels(o['namespace_labels'], 'namespace_labels'),
    identities: identities.sort((a, b) => a.id - b.id),
    pods: pods.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0)),
  };
}

/** A POLICY record, normalized, with its spec parsed and validated. */
export function validatePolicyRecord(v: unknown): { record: Policy; spec: PolicySpec } {
  const o = record(v, 'policy');
  const text = o['spec'];
  if (typeof text !== 'string') throw invalid('spec must be the policy spec as JSON text');
  if (Buffer.byteLength(text) > MAX_POLICY_SPEC_BYTES) throw invalid(`spec is ${Buffer.byteLength(text)} bytes; at most ${MAX_POLICY_SPEC_BYTES} are allowed`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid('spec is not JSON');
  }
  const spec = validatePolicySpec(parsed);
  const generation = o['generation'] ?? 0;
  const record_: Policy = {
    cluster_id: dnsLabel(o['cluster_id'], 'cluster_id'),
    namespace: dnsLabel(o['namespace'], 'namespace'),
    name: policyName(o['name']),
    spec: JSON.stringify(spec),
    generation: whole(generation, 'generation', 0, 0xffff_ffff),
  };
  return { record: record_, spec };
}

/** The longest message a POLICY_STATUS record may carry (bytes). */
export const MAX_POLICY_STATUS_MESSAGE_BYTES = 1024;
const POLICY_STATES: readonly PolicyStatusRecord['state'][] = ['Accepted', 'NotApplicable', 'Error'];

function policyName(v: unknown): string {
  if (typeof v !== 'string' || v.length > 253 || !SUBDOMAIN.test(v)) throw invalid(`name ${JSON.stringify(v)} is not an object name`);
  return v;
}

/** A POLICY_STATUS record, normalized (every field present). */
export function validatePolicyStatus(v: unknown): PolicyStatusRecord {
  const o = record(v, 'policy status');
  const cluster = dnsLabel(o['cluster_id'], 'cluster_id');
  const author = dnsLabel(o['policy_cluster'], 'policy_cluster');
  if (cluster === author) throw invalid(`policy_cluster ${author} is the reporting cluster itself: an author writes its own policies' status, not through the broker`);
  const state = o['state'];
  if (typeof state !== 'string' || !(POLICY_STATES as readonly string[]).includes(state)) throw invalid(`state ${JSON.stringify(state)} must be one of ${POLICY_STATES.join(', ')}`);
  const message = o['message'] ?? '';
  if (typeof message !== 'string') throw invalid('message must be text');
  if (Buffer.byteLength(message) > MAX_POLICY_STATUS_MESSAGE_BYTES) throw invalid(`message is ${Buffer.byteLength(message)} bytes; at most ${MAX_POLICY_STATUS_MESSAGE_BYTES} are allowed`);
  const nodes = whole(o['nodes'] ?? 0, 'nodes', 0, 100_000);
  const enforced = whole(o['enforced_nodes'] ?? 0, 'enforced_nodes', 0, nodes);
  return {
    cluster_id: cluster, policy_cluster: author,
    namespace: dnsLabel(o['namespace'], 'namespace'), name: policyName(o['name']),
    generation: whole(o['generation'] ?? 0, 'generation', 0, 0xffff_ffff),
    state: state as PolicyStatusRecord['state'], message, enforced_nodes: enforced, nodes,
  };
}
