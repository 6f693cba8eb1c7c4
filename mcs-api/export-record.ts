import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Export, ExportEndpoint, ServicePort } from '../core/broker-api/types.ts';
import type { Validity } from './conditions.ts';
import type { ServiceExport } from './types.ts';

/**
 * From a ServiceExport, its Service and the Service's EndpointSlices (as the local
 * informers hold them) to the Export record this cluster publishes, pure.
 *
 * - No Service → NoService; ExternalName → InvalidServiceType: no record.
 * - Headless when clusterIP is "None", else ClusterSetIP (LoadBalancer and NodePort
 *   Services export as their ClusterIP part).
 * - Endpoints are the pods' (never the ClusterIP): every endpoint of the Service's
 *   slices that is ready or serving or terminating, with its conditions and zone,
 *   deduplicated by address, sorted, so that unchanged endpoints give an identical
 *   record (the controller publishes only when the record changed).
 * - endpoint_ports: per service port, the pods' port the slices resolved it to.
 * - creation_time: the ServiceExport's creationTimestamp (the KEP's precedence).
 */
export type ExportBuild = { validity: Validity; record: Export | undefined };

function iso(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  return typeof v === 'string' ? v : '';
}

export function buildExport(clusterId: string, se: ServiceExport, svc: V1Service | undefined, slices: readonly V1EndpointSlice[]): ExportBuild {
  const namespace = se.metadata?.namespace ?? '';
  const name = se.metadata?.name ?? '';
  if (svc === undefined) {
    return { validity: { valid: false, reason: 'NoService', message: `Service ${namespace}/${name} does not exist: create it (the export waits for it)` }, record: undefined };
  }
  const spec = svc.spec ?? {};
  if (spec.type === 'ExternalName') {
    return { validity: { valid: false, reason: 'InvalidServiceType', message: 'an ExternalName Service cannot be exported: export a ClusterIP or headless Service' }, record: undefined };
  }
  const headless = spec.clusterIP === 'None';
  const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port, app_protocol: p.appProtocol ?? '' }));

  const byAddress = new Map<string, ExportEndpoint>();
  const targets = new Map<string, number>();
  for (const s of slices) {
    for (const p of s.ports ?? []) {
      const key = `${p.name ?? ''}|${p.protocol ?? 'TCP'}`;
      if (p.port !== undefined && !targets.has(key)) targets.set(key, p.port);
    }
    for (const e of s.endpoints ?? []) {
      const ready = e.conditions?.ready ?? true;
      const serving = e.conditions?.serving ?? ready;
      const terminating = e.conditions?.terminating ?? false;
      const addresses = [...(e.addresses ?? [])].sort();
      const first = addresses[0];
      if (first === undefined || byAddress.has(first)) continue;
      byAddress.set(first, { hostname: e.hostname ?? '', addresses, ready, serving, terminating, zone: e.zone ?? '' });
    }
  }
  const endpoints = [...byAddress.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
  const endpointPorts: ServicePort[] = [];
  for (const p of ports) {
    const t = targets.get(`${p.name}|${p.protocol}`);
    if (t !== undefined) endpointPorts.push({ ...p, port: t });
  }
  const sortMap = (m: Record<string, string> | undefined): Record<string, string> =>
    Object.fromEntries(Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const record: Export = {
    cluster_id: clusterId,
    namespace,
    name,
    type: headless ? 'Headless' : 'ClusterSetIP',
    ports,
    session_affinity: spec.sessionAffinity ?? 'None',
    session_affinity_timeout_seconds: spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800) : 0,
    ip_families: [...(spec.ipFamilies ?? ['IPv4'])],
    labels: sortMap(se.spec?.exportedLabels),
    annotations: sortMap(se.spec?.exportedAnnotations),
    creation_time: iso(se.metadata?.creationTimestamp),
    endpoints,
    internal_traffic_policy: spec.internalTrafficPolicy ?? '',
    traffic_distribution: spec.trafficDistribution ?? '',
    endpoint_ports: endpointPorts,
  };
  return { validity: { valid: true }, record };
}

/** True when publishing `b` over `a` would change nothing. */
export function sameExport(a: Export | undefined, b: Export | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
