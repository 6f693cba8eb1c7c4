import type { Kind } from '../core/broker-api/types.ts';

/**
 * The etcd key layout (a stable API, documented in KEYS.md). Every key lives under
 * PREFIX; the part after "<kind dir>/" is the record's key as the API names it.
 */
export const PREFIX = '/isthmus/v1/';

const DIR: Readonly<Record<Kind, string>> = { CLUSTER: 'clusters/', ENDPOINT: 'endpoints/', EXPORT: 'exports/', POLICY: 'policies/', IDENTITY: 'identities/', POLICY_STATUS: 'policystatuses/' };

/** Where global CIDR allocations are recorded: value = owning cluster id. */
export const GLOBAL_CIDR_DIR = `${PREFIX}globalcidrs/`;
/** "<pool> /<prefix>" when the clusterset uses global addressing, "none" when not; written by the first broker. */
export const GLOBAL_POOL_KEY = `${PREFIX}config/global-cidr-pool`;

/** Join tokens by id: `{sha256, expiresAt, …}` (broker/tokens.ts); the secret itself is never stored. */
export const JOIN_TOKEN_DIR = `${PREFIX}jointokens/`;

/** Written by each broker replica as it starts (its watch knows it is caught up when it sees it). */
export const START_MARKER_KEY = `${PREFIX}config/broker-start`;

export function kindPrefix(kind: Kind): string {
  return PREFIX + DIR[kind];
}

export function etcdKey(kind: Kind, key: string): string {
  return kindPrefix(kind) + key;
}

export function clusterKey(clusterId: string): string {
  return etcdKey('CLUSTER', clusterId);
}

export function endpointKey(clusterId: string, hostname: string): string {
  return etcdKey('ENDPOINT', `${clusterId}/${hostname}`);
}

export function exportKey(clusterId: string, namespace: string, name: string): string {
  return etcdKey('EXPORT', `${clusterId}/${namespace}/${name}`);
}

export function policyKey(clusterId: string, namespace: string, name: string): string {
  return etcdKey('POLICY', `${clusterId}/${namespace}/${name}`);
}

export function identityKey(clusterId: string, namespace: string): string {
  return etcdKey('IDENTITY', `${clusterId}/${namespace}`);
}

export function policyStatusKey(clusterId: string, policyCluster: string, namespace: string, name: string): string {
  return etcdKey('POLICY_STATUS', `${clusterId}/${policyCluster}/${namespace}/${name}`);
}

/** CIDRs contain '/', so the allocation key writes it as '_': 242.1.0.0_16. */
export function globalCidrKey(cidr: string): string {
  return GLOBAL_CIDR_DIR + cidr.replace('/', '_');
}

/** Splits an etcd key into kind and record key, or undefined for keys that are not records. */
export function parseEtcdKey(etcd: string): { kind: Kind; key: string } | undefined {
  if (!etcd.startsWith(PREFIX)) return undefined;
  const rest = etcd.slice(PREFIX.length);
  for (const kind of Object.keys(DIR) as Kind[]) {
    if (rest.startsWith(DIR[kind])) return { kind, key: rest.slice(DIR[kind].length) };
  }
  return undefined;
}

/** The cluster a record key belongs to (its first segment). */
export function clusterOfKey(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash);
}

/** The etcd key range that holds all of a cluster's records of a kind. */
export function clusterRecordsPrefix(kind: Kind, clusterId: string): string {
  return kind === 'CLUSTER' ? clusterKey(clusterId) : `${kindPrefix(kind)}${clusterId}/`;
}

/** End of the etcd range for a prefix (the prefix with its last byte incremented). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    const v = b[i] as number;
    if (v < 0xff) {
      b[i] = v + 1;
      return b.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
