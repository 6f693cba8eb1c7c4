import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { buildExport } from './export-record.ts';
import { unhealthyClusters } from './health.ts';
import { projectService, projectServiceImport, projectSlice } from './import-objects.ts';
import { slimGateway, slimNamespace, slimService, slimServiceExport, slimServiceImport, slimSlice } from './slim.ts';
import type { ServiceExport, ServiceImport } from './types.ts';

// Objects as the API server returns them, with the fields the caches drop.
const managedFields = [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } }];
const lastApplied = { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"blob"}' };

const svc: V1Service = {
  apiVersion: 'v1', kind: 'Service',
  metadata: { name: 'echo', namespace: 'demo', uid: 'u1', resourceVersion: '7', labels: { 'isthmus.dev/serviceimport': 'echo' }, annotations: lastApplied, managedFields, creationTimestamp: new Date(0) },
  spec: { clusterIP: '10.0.0.9', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } }, ipFamilies: ['IPv4'] },
  status: { loadBalancer: {} },
};
const slice: V1EndpointSlice = {
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
  metadata: { name: 'echo-abc', namespace: 'demo', resourceVersion: '8', labels: { 'kubernetes.io/service-name': 'echo' }, ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'echo', uid: 'u1' }], managedFields },
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  endpoints: [
    { addresses: ['10.2.0.5'], hostname: 'p0', conditions: { ready: true, serving: true, terminating: false }, zone: 'z1', nodeName: 'n1', targetRef: { kind: 'Pod', name: 'p0', uid: 'pu' } },
    { addresses: ['10.2.0.6'], conditions: { ready: false } },
  ],
};
const se: ServiceExport = {
  apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceExport',
  metadata: { name: 'echo', namespace: 'demo', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z' as unknown as Date, resourceVersion: '9', managedFields, annotations: lastApplied },
  spec: { exportedLabels: { team: 'a' } },
  status: { conditions: [{ type: 'Valid', status: 'True', reason: 'Valid', message: '', lastTransitionTime: new Date(0) }] },
};
const si: ServiceImport = {
  apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceImport',
  metadata: { name: 'echo', namespace: 'demo', uid: 'si1', resourceVersion: '10', labels: { team: 'a' }, annotations: { ...lastApplied, note: 'x' }, managedFields },
  spec: { type: 'ClusterSetIP', ports: [{ name: 'http', protocol: 'TCP', port: 80 }], ips: ['10.0.0.99'] },
  status: { clusters: [{ cluster: 'c2' }], conditions: [] },
};

test('the projections and the export record are the same from slim objects as from full ones', () => {
  assert.is(projectService(slimService(svc)), projectService(svc));
  assert.is(projectSlice(slimSlice(slice)), projectSlice(slice));
  assert.is(projectServiceImport(slimServiceImport(si)), projectServiceImport(si));
  assert.equal(buildExport('c1', slimServiceExport(se), slimService(svc), [slimSlice(slice)]), buildExport('c1', se, svc, [slice]));
});

test('slim objects keep name, namespace, resourceVersion and what reconcile reads; not managedFields or last-applied', () => {
  const s = slimService(svc);
  assert.equal(s.metadata, { name: 'echo', namespace: 'demo', resourceVersion: '7', labels: { 'isthmus.dev/serviceimport': 'echo' } });
  assert.is(s.status, undefined);
  const i = slimServiceImport(si);
  assert.equal(i.metadata, { name: 'echo', namespace: 'demo', resourceVersion: '10', uid: 'si1', labels: { team: 'a' }, annotations: { note: 'x' } });
  assert.equal(i.status, { clusters: [{ cluster: 'c2' }] });
  assert.equal(slimSlice(slice).endpoints?.[0], { addresses: ['10.2.0.5'], hostname: 'p0', conditions: { ready: true, serving: true, terminating: false }, zone: 'z1' });
  assert.equal(slimServiceExport(se).metadata, { name: 'echo', namespace: 'demo', resourceVersion: '9', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z' as unknown as Date });
  assert.equal(slimNamespace({ metadata: { name: 'demo', resourceVersion: '1', labels: { a: 'b' } } }).metadata, { name: 'demo', namespace: '', resourceVersion: '1' });
  const dying = new Date('2026-01-01T00:00:00Z');
  assert.equal(slimNamespace({ metadata: { name: 'demo', resourceVersion: '2', deletionTimestamp: dying } }).metadata, { name: 'demo', namespace: '', resourceVersion: '2', deletionTimestamp: dying });
});

test('a slim Gateway says the same health as the full one', () => {
  const gw = { metadata: { name: 'gw', namespace: 'isthmus-system' }, status: { haStatus: 'active', connections: [{ cluster: 'c2', status: 'connected', rttMs: 1 }, { cluster: 'c3', status: 'error' }], publicIP: '1.2.3.4' } };
  assert.equal([...unhealthyClusters([slimGateway(gw)], ['c2', 'c3'], 'c1')], [...unhealthyClusters([gw], ['c2', 'c3'], 'c1')]);
  assert.equal(slimGateway(gw).status, { haStatus: 'active', connections: [{ cluster: 'c2', status: 'connected' }, { cluster: 'c3', status: 'error' }] });
});

test.run();
