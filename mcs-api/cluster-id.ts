import { ErrorCodes, IsthmusError } from '../core/index.ts';

/**
 * The cluster's identity under KEP-2149: the ClusterProperty `cluster.clusterset.k8s.io`
 * names the cluster, `clusterset.k8s.io` the clusterset. Pure: given the properties
 * (name → value) and the id the operator configured, say which id to use.
 */
export const CLUSTER_ID_PROPERTY = 'cluster.clusterset.k8s.io';
export const CLUSTERSET_PROPERTY = 'clusterset.k8s.io';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isClusterId(s: string): boolean {
  return s.length > 0 && s.length <= 63 && LABEL.test(s);
}

/**
 * The property wins when present (it is the clusterset's source of truth); else the
 * configured id. INVALID_CONFIG when neither is there, when the one chosen is not an
 * RFC-1123 label, or when both are set and disagree (a cluster must not publish under
 * two names).
 */
export function resolveClusterId(properties: ReadonlyMap<string, string>, configured: string | undefined): string {
  const prop = properties.get(CLUSTER_ID_PROPERTY);
  if (prop !== undefined) {
    if (!isClusterId(prop)) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `ClusterProperty ${CLUSTER_ID_PROPERTY} is ${JSON.stringify(prop)}, not an RFC-1123 label: set it to 1-63 lower-case letters, digits and '-'`);
    }
    if (configured !== undefined && configured !== prop) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `--cluster ${configured} disagrees with ClusterProperty ${CLUSTER_ID_PROPERTY}=${prop}: drop --cluster or fix the property`);
    }
    return prop;
  }
  if (configured === undefined) {
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `no cluster id: create the ClusterProperty ${CLUSTER_ID_PROPERTY} (kubectl apply) or pass --cluster`);
  }
  if (!isClusterId(configured)) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `--cluster ${JSON.stringify(configured)} is not an RFC-1123 label`);
  return configured;
}
