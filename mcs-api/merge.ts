import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Export, ExportEndpoint, ServicePort } from '../core/broker-api/types.ts';

/**
 * KEP-1645's merge of one Service's exports (one Export record per exporting cluster,
 * all of the same namespace and name: namespace sameness) into what every importing
 * cluster holds. Pure and deterministic: the same records give the same result in
 * whatever order they come.
 *
 * Rules (KEP-1645 "Constraints and Conflict Resolution"):
 * - Precedence: oldest export first (creation_time, the ServiceExport's
 *   creationTimestamp), ties broken by cluster id.
 * - Global properties (type, session affinity and its timeout, IP families, internal
 *   traffic policy, traffic distribution, exported labels and annotations) come from
 *   the oldest export; any export that differs makes the Service conflicted with that
 *   property's reason.
 * - Ports: the union, merged by name first, then by protocol+port; on a clash the older
 *   port stays. Exports whose port sets are not all equal are a PortConflict.
 * - A conflict is the Service's, not one export's: every ServiceExport of it gets
 *   Conflict=True with the same reasons, comma-joined in a fixed order.
 * - Only ClusterSetIP and Headless are ever exported (ExternalName never reaches here).
 * - Endpoints: one set of slices per source cluster and address family, at most
 *   MAX_ENDPOINTS_PER_SLICE endpoints each, holding only the ports of the merged
 *   Service that this cluster exports (same name, protocol and port), at the pods' port. An
 *   endpoint is ready only when it is ready at its source and its cluster is healthy.
 *   Headless endpoints without a hostname get the address with '.'/':' replaced by '-'
 *   (the cluster-local DNS convention), so each has a per-pod name.
 */

export type ConflictReason =
  | 'TypeConflict'
  | 'PortConflict'
  | 'SessionAffinityConflict'
  | 'SessionAffinityConfigConflict'
  | 'LabelsConflict'
  | 'AnnotationsConflict'
  | 'InternalTrafficPolicyConflict'
  | 'TrafficDistributionConflict'
  | 'IPFamilyConflict';

/** The order reasons are listed in when several apply. */
export const CONFLICT_ORDER: readonly ConflictReason[] = [
  'TypeConflict', 'PortConflict', 'SessionAffinityConflict', 'SessionAffinityConfigConflict', 'IPFamilyConflict',
  'InternalTrafficPolicyConflict', 'TrafficDistributionConflict', 'LabelsConflict', 'AnnotationsConflict',
];

export const MAX_ENDPOINTS_PER_SLICE = 100;

export interface ImportPort {
  name: string;
  protocol: string;
  port: number;
  appProtocol: string;
}

export interface ImportSpec {
  namespace: string;
  name: string;
  type: 'ClusterSetIP' | 'Headless';
  ports: ImportPort[];
  sessionAffinity: string;
  /** 0 when unset. */
  sessionAffinityTimeoutSeconds: number;
  ipFamilies: string[];
  internalTrafficPolicy: string;
  trafficDistribution: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Exporting clusters, sorted. */
  clusters: string[];
}

export interface Conflicts {
  /** Empty when the exports agree. */
  reasons: ConflictReason[];
  /** Says which clusters disagree on what, for the Conflict condition's message. */
  message: string;
}

export interface SliceEndpoint {
  addresses: string[];
  hostname: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  zone: string;
}

export interface SliceSpec {
  cluster: string;
  addressType: 'IPv4' | 'IPv6';
  /** Index of this slice among the cluster's slices of this family. */
  index: number;
  ports: ImportPort[];
  endpoints: SliceEndpoint[];
}

export interface MergeResult {
  /** undefined when there is no export left: the ServiceImport must go. */
  serviceImport: ImportSpec | undefined;
  conflicts: Conflicts;
  /** Source cluster → its slices, clusters sorted. */
  slicesByCluster: Map<string, SliceSpec[]>;
}

export interface MergeOptions {
  /** Clusters whose endpoints are not ready now (cable down). Default none. */
  unhealthy?: ReadonlySet<string>;
}

function byAge(a: Export, b: Export): number {
  const ta = Date.parse(a.creation_time);
  const tb = Date.parse(b.creation_time);
  if (ta !== tb) return (Number.isNaN(ta) ? Infinity : ta) < (Number.isNaN(tb) ? Infinity : tb) ? -1 : 1;
  return a.cluster_id < b.cluster_id ? -1 : a.cluster_id > b.cluster_id ? 1 : 0;
}

function importPort(p: ServicePort): ImportPort {
  return { name: p.name, protocol: p.protocol || 'TCP', port: p.port, appProtocol: p.app_protocol };
}

const portKey = (p: ImportPort): string => `${p.name}|${p.protocol}|${p.port}|${p.appProtocol}`;

function samePortSet(a: ImportPort[], b: ImportPort[]): boolean {
  const ka = a.map(portKey).sort();
  const kb = b.map(portKey).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** Union of ports, oldest first: by name, then protocol+port; the older port stays on a clash. */
export function mergePorts(sets: readonly ImportPort[][]): { ports: ImportPort[]; clash: boolean } {
  const out: ImportPort[] = [];
  let clash = false;
  for (const set of sets) {
    for (const p of set) {
      const byName = out.find((q) => q.name === p.name);
      if (byName !== undefined) {
        if (portKey(byName) !== portKey(p)) clash = true;
        continue;
      }
      if (out.some((q) => q.protocol === p.protocol && q.port === p.port)) {
        clash = true;
        continue;
      }
      out.push(p);
    }
  }
  return { ports: out, clash };
}

export function mergeExports(records: readonly Export[], options: MergeOptions = {}): MergeResult {
  const exports = records.filter((r) => r.type === 'ClusterSetIP' || r.type === 'Headless').sort(byAge);
  const oldest = exports[0];
  if (oldest === undefined) return { serviceImport: undefined, conflicts: { reasons: [], message: '' }, slicesByCluster: new Map() };

  const found = new Map<ConflictReason, string[]>();
  const differ = (reason: ConflictReason, x: Export): void => {
    const list = found.get(reason) ?? [];
    list.push(x.cluster_id);
    found.set(reason, list);
  };
  const portSets = exports.map((x) => x.ports.map(importPort));
  const merged = mergePorts(portSets);
  const oldestPorts = portSets[0] ?? [];
  for (const [i, x] of exports.entries()) {
    if (i === 0) continue;
    if (x.type !== oldest.type) differ('TypeConflict', x);
    if (merged.clash || !samePortSet(portSets[i] ?? [], oldestPorts)) differ('PortConflict', x);
    if (x.session_affinity !== oldest.session_affinity) differ('SessionAffinityConflict', x);
    else if (x.session_affinity_timeout_seconds !== oldest.session_affinity_timeout_seconds) differ('SessionAffinityConfigConflict', x);
    if (x.ip_families.join(',') !== oldest.ip_families.join(',')) differ('IPFamilyConflict', x);
    if (x.internal_traffic_policy !== oldest.internal_traffic_policy) differ('InternalTrafficPolicyConflict', x);
    if (x.traffic_distribution !== oldest.traffic_distribution) differ('TrafficDistributionConflict', x);
    if (!sameMap(x.labels, oldest.labels)) differ('LabelsConflict', x);
    if (!sameMap(x.annotations, oldest.annotations)) differ('AnnotationsConflict', x);
  }
  const reasons = CONFLICT_ORDER.filter((r) => found.has(r));
  const message = reasons
    .map((r) => `${r}: cluster(s) ${(found.get(r) ?? []).join(', ')} differ from the oldest export (cluster ${oldest.cluster_id}), whose value is used`)
    .join('; ');

  const type = oldest.type === 'Headless' ? 'Headless' : 'ClusterSetIP';
  const serviceImport: ImportSpec = {
    namespace: oldest.namespace,
    name: oldest.name,
    type,
    ports: merged.ports,
    sessionAffinity: oldest.session_affinity || 'None',
    sessionAffinityTimeoutSeconds: oldest.session_affinity_timeout_seconds,
    ipFamilies: [...oldest.ip_families],
    internalTrafficPolicy: oldest.internal_traffic_policy,
    trafficDistribution: oldest.traffic_distribution,
    labels: { ...oldest.labels },
    annotations: { ...oldest.annotations },
    clusters: exports.map((x) => x.cluster_id).sort(),
  };

  const unhealthy = options.unhealthy ?? new Set<string>();
  const slicesByCluster = new Map<string, SliceSpec[]>();
  for (const x of [...exports].sort((a, b) => (a.cluster_id < b.cluster_id ? -1 : 1))) {
    slicesByCluster.set(x.cluster_id, clusterSlices(x, merged.ports, type === 'Headless', !unhealthy.has(x.cluster_id)));
  }
  return { serviceImport, conflicts: { reasons, message }, slicesByCluster };
}

/**
 * The merged ports this cluster serves, at its pods' port: those it exports itself with
 * the same name, protocol and number. A cluster whose port of that name lost a conflict
 * (another number) does not serve the merged port, so traffic to it never reaches that
 * cluster (the conformance suite's StrictPortConflict specs).
 */
function clusterPorts(x: Export, ports: readonly ImportPort[]): ImportPort[] {
  const out: ImportPort[] = [];
  for (const p of ports) {
    const own = x.ports.find((q) => q.name === p.name && (q.protocol || 'TCP') === p.protocol && q.port === p.port);
    if (own === undefined) continue;
    const target = x.endpoint_ports.find((q) => q.name === p.name && (q.protocol || 'TCP') === p.protocol);
    out.push({ ...p, port: target?.port ?? own.port });
  }
  return out;
}

function familyOf(address: string): 'IPv4' | 'IPv6' | undefined {
  const v = isIP(address);
  return v === 4 ? 'IPv4' : v === 6 ? 'IPv6' : undefined;
}

function clusterSlices(x: Export, ports: readonly ImportPort[], headless: boolean, healthy: boolean): SliceSpec[] {
  const sp = clusterPorts(x, ports);
  const out: SliceSpec[] = [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const eps: SliceEndpoint[] = [];
    for (const e of x.endpoints) {
      const addresses = e.addresses.filter((a) => familyOf(a) === family);
      if (addresses.length === 0) continue;
      eps.push(sliceEndpoint(e, addresses, headless, healthy));
    }
    eps.sort((a, b) => (a.addresses[0] ?? '').localeCompare(b.addresses[0] ?? ''));
    for (let i = 0; i * MAX_ENDPOINTS_PER_SLICE < eps.length; i++) {
      out.push({ cluster: x.cluster_id, addressType: family, index: i, ports: sp, endpoints: eps.slice(i * MAX_ENDPOINTS_PER_SLICE, (i + 1) * MAX_ENDPOINTS_PER_SLICE) });
    }
  }
  return out;
}

function sliceEndpoint(e: ExportEndpoint, addresses: string[], headless: boolean, healthy: boolean): SliceEndpoint {
  const first = addresses[0] ?? '';
  const hostname = e.hostname !== '' ? e.hostname : headless ? first.replace(/[.:]/g, '-') : '';
  return {
    addresses,
    hostname,
    ready: e.ready && healthy,
    serving: e.serving && healthy,
    terminating: e.terminating,
    zone: e.zone,
  };
}

/**
 * Name of the derived ClusterIP Service that carries a ServiceImport's clusterset IPs in
 * an importing cluster: a DNS-1035 label of at most 63 characters that cannot be the
 * user's own Service name, stable for a given import name.
 */
export function derivedServiceName(importName: string): string {
  const hash = createHash('sha256').update(importName).digest('hex').slice(0, 8);
  const stem = importName.slice(0, 46).replace(/-+$/, '');
  return `mcs-${stem}-${hash}`;
}

/** Name of an imported EndpointSlice: deterministic, so a reconcile finds its own. */
export function sliceName(importName: string, s: Pick<SliceSpec, 'cluster' | 'addressType' | 'index'>): string {
  const hash = createHash('sha256').update(`${importName}/${s.cluster}/${s.addressType}/${s.index}`).digest('hex').slice(0, 10);
  return `${importName.slice(0, 40).replace(/-+$/, '')}-${s.cluster.slice(0, 20).replace(/-+$/, '')}-${s.addressType === 'IPv4' ? 'v4' : 'v6'}-${s.index}-${hash}`;
}
