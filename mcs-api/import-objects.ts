import type { V1EndpointSlice, V1OwnerReference, V1Service } from '@kubernetes/client-node';
import { derivedServiceName, sliceName, type ImportPort, type ImportSpec, type SliceSpec } from './merge.ts';
import {
  LABEL_DERIVED_FROM, LABEL_K8S_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY, MCS_GROUP, MCS_VERSION,
  type ServiceImport, type ServiceImportSpec,
} from './types.ts';

/**
 * The objects an importing cluster holds for one merged Service, pure:
 * - ClusterSetIP: a derived selectorless ClusterIP Service (name derivedServiceName)
 *   whose clusterIPs are the ServiceImport's ips, one per family; kube-proxy balances it
 *   over our EndpointSlices (session affinity passes to it).
 * - the ServiceImport: the merged spec, exported labels and annotations.
 * - EndpointSlices, one set per source cluster and family, labelled so that the MCS
 *   tooling (service-name, source-cluster), the default EndpointSlice controller
 *   (managed-by: ours, so it leaves them alone) and kube-proxy (kubernetes.io/service-name
 *   = the derived Service, ClusterSetIP only) each find what they need; owned by the
 *   ServiceImport so they go with it.
 * `project*` give the fields we own, to compare with what the API holds: a hand edit of
 * any of them differs and is put back; fields set by the API server are ignored.
 */
const mcsPort = (p: ImportPort): { name?: string; protocol: string; port: number; appProtocol?: string } => ({
  ...(p.name === '' ? {} : { name: p.name }), protocol: p.protocol, port: p.port, ...(p.appProtocol === '' ? {} : { appProtocol: p.appProtocol }),
});

export function desiredDerivedService(spec: ImportSpec): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: derivedServiceName(spec.name), namespace: spec.namespace, labels: { [LABEL_DERIVED_FROM]: spec.name } },
    spec: {
      type: 'ClusterIP',
      ports: spec.ports.map((p) => ({ ...mcsPort(p), targetPort: p.port })),
      sessionAffinity: spec.sessionAffinity,
      ...(spec.sessionAffinity === 'ClientIP' && spec.sessionAffinityTimeoutSeconds > 0 ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: spec.sessionAffinityTimeoutSeconds } } } : {}),
      ipFamilies: spec.ipFamilies.length === 0 ? ['IPv4'] : spec.ipFamilies,
      ipFamilyPolicy: spec.ipFamilies.length > 1 ? 'PreferDualStack' : 'SingleStack',
      ...(spec.internalTrafficPolicy === '' ? {} : { internalTrafficPolicy: spec.internalTrafficPolicy }),
      ...(spec.trafficDistribution === '' ? {} : { trafficDistribution: spec.trafficDistribution }),
    },
  };
}

export function projectService(s: V1Service | undefined): string {
  if (s === undefined) return '';
  const sp = s.spec ?? {};
  return JSON.stringify([
    s.metadata?.labels?.[LABEL_DERIVED_FROM] ?? '',
    sp.type ?? 'ClusterIP',
    (sp.ports ?? []).map((p) => [p.name ?? '', p.protocol ?? 'TCP', p.port, p.appProtocol ?? '', String(p.targetPort ?? p.port)]),
    sp.sessionAffinity ?? 'None',
    sp.sessionAffinity === 'ClientIP' ? (sp.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800) : 0,
    sp.internalTrafficPolicy ?? 'Cluster',
    sp.trafficDistribution ?? '',
    sp.selector ?? {},
  ]);
}

/** The ServiceImport; `ips` and `ipFamilies` come from the derived Service for ClusterSetIP. */
export function desiredServiceImport(spec: ImportSpec, derived: { ips: string[]; ipFamilies: string[] } | undefined): ServiceImport {
  const s: ServiceImportSpec = {
    type: spec.type,
    ports: spec.ports.map(mcsPort),
    ...(spec.type === 'ClusterSetIP' && derived !== undefined && derived.ips.length > 0 ? { ips: derived.ips } : {}),
    ipFamilies: derived?.ipFamilies ?? spec.ipFamilies,
    sessionAffinity: spec.sessionAffinity,
    ...(spec.sessionAffinity === 'ClientIP' && spec.sessionAffinityTimeoutSeconds > 0 ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: spec.sessionAffinityTimeoutSeconds } } } : {}),
    ...(spec.internalTrafficPolicy === '' ? {} : { internalTrafficPolicy: spec.internalTrafficPolicy }),
    ...(spec.trafficDistribution === '' ? {} : { trafficDistribution: spec.trafficDistribution }),
  };
  return {
    apiVersion: `${MCS_GROUP}/${MCS_VERSION}`,
    kind: 'ServiceImport',
    metadata: { name: spec.name, namespace: spec.namespace, labels: { ...spec.labels }, annotations: { ...spec.annotations } },
    spec: s,
  };
}

function sorted<T>(m: Record<string, T> | undefined): [string, T][] {
  return Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** JSON with every object's keys sorted: the API server returns custom objects' maps in its own key order. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

export function projectServiceImport(si: ServiceImport | undefined): string {
  if (si === undefined) return '';
  // Annotations the API or kubectl add (last-applied) are not ours to police.
  const ann = sorted(si.metadata?.annotations).filter(([k]) => !k.startsWith('kubectl.kubernetes.io/'));
  return JSON.stringify(canonical([sorted(si.metadata?.labels), ann, si.spec ?? {}]));
}

export interface SliceOwner {
  name: string;
  uid: string;
}

export function desiredSlices(spec: ImportSpec, slicesByCluster: ReadonlyMap<string, SliceSpec[]>, owner: SliceOwner | undefined): V1EndpointSlice[] {
  const out: V1EndpointSlice[] = [];
  const ownerReferences: V1OwnerReference[] = owner === undefined ? [] : [{ apiVersion: `${MCS_GROUP}/${MCS_VERSION}`, kind: 'ServiceImport', name: owner.name, uid: owner.uid, controller: false }];
  for (const slices of slicesByCluster.values()) {
    for (const s of slices) {
      out.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: sliceName(spec.name, s),
          namespace: spec.namespace,
          labels: {
            [LABEL_SERVICE_NAME]: spec.name,
            [LABEL_SOURCE_CLUSTER]: s.cluster,
            [LABEL_MANAGED_BY]: MANAGED_BY,
            ...(spec.type === 'ClusterSetIP' ? { [LABEL_K8S_SERVICE_NAME]: derivedServiceName(spec.name) } : {}),
          },
          ...(ownerReferences.length === 0 ? {} : { ownerReferences }),
        },
        addressType: s.addressType,
        ports: s.ports.map(mcsPort),
        endpoints: s.endpoints.map((e) => ({
          addresses: e.addresses,
          ...(e.hostname === '' ? {} : { hostname: e.hostname }),
          conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
          ...(e.zone === '' ? {} : { zone: e.zone }),
        })),
      });
    }
  }
  return out;
}

export function projectSlice(s: V1EndpointSlice | undefined): string {
  if (s === undefined) return '';
  return JSON.stringify([
    sorted(s.metadata?.labels),
    (s.metadata?.ownerReferences ?? []).map((o) => o.uid),
    s.addressType,
    (s.ports ?? []).map((p) => [p.name ?? '', p.protocol ?? 'TCP', p.port ?? 0, p.appProtocol ?? '']),
    (s.endpoints ?? []).map((e) => [e.addresses, e.hostname ?? '', e.conditions?.ready ?? true, e.conditions?.serving ?? true, e.conditions?.terminating ?? false, e.zone ?? '']),
  ]);
}
