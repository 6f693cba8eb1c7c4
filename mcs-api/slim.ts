import type { V1EndpointSlice, V1ObjectMeta, V1Service } from '@kubernetes/client-node';
import type { GatewayView } from './health.ts';
import type { ServiceExport, ServiceImport } from './types.ts';

/**
 * What the mcs controller's caches keep of each object, pure: the fields its reconciles
 * and its `project*` comparisons read, nothing else (no managedFields, no last-applied
 * annotation, no status it does not own). With 10,000 imported Services the caches hold
 * tens of thousands of objects, and the API's full objects are several times these.
 *
 * Invariant: for every function here, what import-objects.ts's project* and
 * export-record.ts's buildExport compute from the slim object equals what they compute
 * from the full one (tested in slim.test.ts).
 */
function meta(m: V1ObjectMeta | undefined, extra: (keyof V1ObjectMeta)[] = []): V1ObjectMeta {
  const out: Record<string, unknown> = { name: m?.name ?? '', namespace: m?.namespace ?? '' };
  if (m?.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  for (const k of extra) if (m?.[k] !== undefined) out[k] = m[k];
  return out as V1ObjectMeta;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

function annotations(a: Record<string, string> | undefined): Record<string, string> | undefined {
  if (a === undefined || a[LAST_APPLIED] === undefined) return a;
  const { [LAST_APPLIED]: _dropped, ...rest } = a;
  return rest;
}

/** A Service: metadata name, namespace, labels, resourceVersion; the spec. */
export function slimService(s: V1Service): V1Service {
  return { metadata: meta(s.metadata, ['labels']), ...(s.spec === undefined ? {} : { spec: s.spec }) };
}

/** An EndpointSlice: labels and owners, address type, ports and endpoints (addresses, hostname, conditions, zone). */
export function slimSlice(s: V1EndpointSlice): V1EndpointSlice {
  return {
    metadata: meta(s.metadata, ['labels', 'ownerReferences']),
    addressType: s.addressType,
    ...(s.ports === undefined ? {} : { ports: s.ports }),
    endpoints: (s.endpoints ?? []).map((e) => ({
      addresses: e.addresses,
      ...(e.hostname === undefined ? {} : { hostname: e.hostname }),
      ...(e.conditions === undefined ? {} : { conditions: e.conditions }),
      ...(e.zone === undefined ? {} : { zone: e.zone }),
    })),
  };
}

/** A ServiceExport: generation and creationTimestamp (the KEP's precedence), spec, status conditions. */
export function slimServiceExport(se: ServiceExport): ServiceExport {
  const conditions = se.status?.conditions;
  return {
    metadata: meta(se.metadata, ['generation', 'creationTimestamp']),
    ...(se.spec === undefined ? {} : { spec: se.spec }),
    ...(conditions === undefined ? {} : { status: { conditions } }),
  };
}

/** A ServiceImport: uid (the slices' owner), labels, annotations but kubectl's last-applied, spec, status clusters. */
export function slimServiceImport(si: ServiceImport): ServiceImport {
  const m = meta(si.metadata, ['uid', 'labels']);
  const ann = annotations(si.metadata?.annotations);
  if (ann !== undefined) m.annotations = ann;
  const clusters = si.status?.clusters;
  return { metadata: m, ...(si.spec === undefined ? {} : { spec: si.spec }), ...(clusters === undefined ? {} : { status: { clusters } }) };
}

/** A Namespace: its name. */
export function slimNamespace(n: { metadata?: V1ObjectMeta }): { metadata: V1ObjectMeta } {
  return { metadata: meta(n.metadata, ['deletionTimestamp']) };
}

/** A Gateway: its name, HA status and connections' cluster and status. */
export function slimGateway(g: GatewayView & { metadata?: V1ObjectMeta }): GatewayView & { metadata: V1ObjectMeta } {
  const st = g.status;
  return {
    metadata: meta(g.metadata),
    ...(st === undefined ? {} : {
      status: {
        ...(st.haStatus === undefined ? {} : { haStatus: st.haStatus }),
        ...(st.connections === undefined ? {} : {
          connections: st.connections.map((c) => ({ ...(c.cluster === undefined ? {} : { cluster: c.cluster }), ...(c.status === undefined ? {} : { status: c.status }) })),
        }),
      },
    }),
  };
}
