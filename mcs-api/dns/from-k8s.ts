import type { V1EndpointSlice } from '@kubernetes/client-node';
import { LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, type ServiceImport } from '../types.ts';
import type { DnsService, DnsSlice } from './zone.ts';

/**
 * A ServiceImport and its MCS EndpointSlices (labelled with service-name and
 * source-cluster) as the zone index takes them, pure. No ServiceImport → undefined
 * (the names go). An endpoint counts as ready unless its slice says otherwise
 * (EndpointSlice semantics: a missing ready condition means ready).
 */
export function dnsService(imp: ServiceImport | undefined, slices: readonly V1EndpointSlice[]): DnsService | undefined {
  if (imp === undefined || imp.spec === undefined) return undefined;
  const out: DnsSlice[] = [];
  for (const s of slices) {
    const cluster = s.metadata?.labels?.[LABEL_SOURCE_CLUSTER];
    if (cluster === undefined || cluster === '') continue;
    out.push({
      cluster,
      portNames: (s.ports ?? []).map((p) => p.name ?? ''),
      endpoints: (s.endpoints ?? []).map((e) => ({ hostname: e.hostname ?? '', addresses: e.addresses ?? [], ready: e.conditions?.ready ?? true })),
    });
  }
  return {
    namespace: imp.metadata?.namespace ?? '',
    name: imp.metadata?.name ?? '',
    type: imp.spec.type === 'Headless' ? 'Headless' : 'ClusterSetIP',
    ips: imp.spec.ips ?? [],
    ports: (imp.spec.ports ?? []).map((p) => ({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port })),
    slices: out,
  };
}

/** "namespace/service" of an MCS EndpointSlice, or undefined for any other slice. */
export function mcsSliceServiceKey(s: V1EndpointSlice): string | undefined {
  const svc = s.metadata?.labels?.[LABEL_SERVICE_NAME];
  const ns = s.metadata?.namespace;
  return svc === undefined || ns === undefined ? undefined : `${ns}/${svc}`;
}
