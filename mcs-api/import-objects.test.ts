import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Export } from '../core/broker-api/types.ts';
import { desiredDerivedService, desiredServiceImport, desiredSlices, projectService, projectServiceImport, projectSlice } from './import-objects.ts';
import { derivedServiceName, mergeExports } from './merge.ts';

const rec = (over: Partial<Export>): Export => ({
  cluster_id: 'c2', namespace: 'demo', name: 'echo', type: 'ClusterSetIP',
  ports: [{ name: 'tcp', protocol: 'TCP', port: 42, app_protocol: '' }, { name: 'udp', protocol: 'UDP', port: 42, app_protocol: '' }],
  session_affinity: 'ClientIP', session_affinity_timeout_seconds: 10, ip_families: ['IPv4'], labels: { l: 'v' }, annotations: { a: 'b' },
  creation_time: '2026-01-01T00:00:00Z', endpoints: [{ hostname: '', addresses: ['10.2.0.5'], ready: true, serving: true, terminating: false, zone: '' }],
  internal_traffic_policy: 'Cluster', traffic_distribution: '', endpoint_ports: [{ name: 'tcp', protocol: 'TCP', port: 8042, app_protocol: '' }, { name: 'udp', protocol: 'UDP', port: 8043, app_protocol: '' }], ...over,
});

test('ClusterSetIP: derived selectorless Service with affinity; ServiceImport with its IPs and the Service\'s properties', () => {
  const m = mergeExports([rec({})]);
  const spec = m.serviceImport;
  assert.ok(spec);
  const svc = desiredDerivedService(spec);
  assert.is(svc.metadata?.name, derivedServiceName('echo'));
  assert.is(svc.spec?.selector, undefined);
  assert.equal(svc.spec?.sessionAffinityConfig, { clientIP: { timeoutSeconds: 10 } });
  assert.equal(svc.spec?.ports?.map((p) => [p.name, p.protocol, p.port]), [['tcp', 'TCP', 42], ['udp', 'UDP', 42]]);
  const si = desiredServiceImport(spec, { ips: ['10.101.0.77'], ipFamilies: ['IPv4'] });
  assert.equal(si.spec, {
    type: 'ClusterSetIP', ports: [{ name: 'tcp', protocol: 'TCP', port: 42 }, { name: 'udp', protocol: 'UDP', port: 42 }], ips: ['10.101.0.77'], ipFamilies: ['IPv4'],
    sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } }, internalTrafficPolicy: 'Cluster',
  });
  assert.equal([si.metadata?.labels, si.metadata?.annotations], [{ l: 'v' }, { a: 'b' }]);
});

test('Headless: no IPs; None affinity has no config', () => {
  const spec = mergeExports([rec({ type: 'Headless', session_affinity: 'None', session_affinity_timeout_seconds: 0 })]).serviceImport;
  assert.ok(spec);
  const si = desiredServiceImport(spec, undefined);
  assert.is(si.spec?.ips, undefined);
  assert.is(si.spec?.sessionAffinityConfig, undefined);
});

test('slices: MCS labels, managed by us, kube-proxy\'s service name for ClusterSetIP only, pods\' ports, owner', () => {
  const m = mergeExports([rec({})]);
  const spec = m.serviceImport;
  assert.ok(spec);
  const [s] = desiredSlices(spec, m.slicesByCluster, { name: 'echo', uid: 'u1' });
  assert.equal(s?.metadata?.labels, {
    'multicluster.kubernetes.io/service-name': 'echo', 'multicluster.kubernetes.io/source-cluster': 'c2',
    'endpointslice.kubernetes.io/managed-by': 'mcs-controller.isthmus.dev', 'kubernetes.io/service-name': derivedServiceName('echo'),
  });
  assert.equal(s?.ports, [{ name: 'tcp', protocol: 'TCP', port: 8042 }, { name: 'udp', protocol: 'UDP', port: 8043 }]);
  assert.equal(s?.metadata?.ownerReferences?.map((o) => [o.kind, o.uid]), [['ServiceImport', 'u1']]);
  const h = mergeExports([rec({ type: 'Headless' })]);
  const [hs] = desiredSlices(h.serviceImport as NonNullable<typeof h.serviceImport>, h.slicesByCluster, undefined);
  assert.is(hs?.metadata?.labels?.['kubernetes.io/service-name'], undefined);
  assert.is(hs?.endpoints?.[0]?.hostname, '10-2-0-5');
});

test('projections: what the API adds is ignored; a hand edit of an owned field differs', () => {
  const m = mergeExports([rec({})]);
  const spec = m.serviceImport;
  assert.ok(spec);
  const svc = desiredDerivedService(spec);
  const fromApi = { ...svc, metadata: { ...svc.metadata, uid: 'x', resourceVersion: '5' }, spec: { ...svc.spec, clusterIP: '10.101.0.77', clusterIPs: ['10.101.0.77'] } };
  assert.is(projectService(fromApi), projectService(svc));
  assert.is.not(projectService({ ...fromApi, spec: { ...fromApi.spec, sessionAffinity: 'None' } }), projectService(svc));
  assert.is.not(projectService({ ...fromApi, spec: { ...fromApi.spec, selector: { app: 'x' } } }), projectService(svc));
  const si = desiredServiceImport(spec, { ips: ['10.101.0.77'], ipFamilies: ['IPv4'] });
  const siApi = { ...si, metadata: { ...si.metadata, annotations: { ...si.metadata?.annotations, 'kubectl.kubernetes.io/last-applied-configuration': '{}' } } };
  assert.is(projectServiceImport(siApi), projectServiceImport(si));
  // the API server returns a custom object's keys in its own order
  const reordered = { ...si, spec: Object.fromEntries(Object.entries(si.spec ?? {}).reverse()) as NonNullable<typeof si.spec> };
  assert.is(projectServiceImport(reordered), projectServiceImport(si));
  assert.is.not(projectServiceImport({ ...si, spec: { type: 'Headless', ports: [] } }), projectServiceImport(si));
  const [sl] = desiredSlices(spec, m.slicesByCluster, { name: 'echo', uid: 'u1' });
  assert.ok(sl);
  assert.is.not(projectSlice({ ...sl, endpoints: [] }), projectSlice(sl));
  assert.is(projectSlice({ ...sl, metadata: { ...sl.metadata, generation: 3 } }), projectSlice(sl));
});

test.run();
