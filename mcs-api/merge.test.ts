import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Export } from '../core/broker-api/types.ts';
import { derivedServiceName, MAX_ENDPOINTS_PER_SLICE, mergeExports, mergePorts, sliceName, type ImportPort } from './merge.ts';

const base: Export = {
  cluster_id: 'c1', namespace: 'demo', name: 'echo', type: 'ClusterSetIP',
  ports: [{ name: 'http', protocol: 'TCP', port: 80, app_protocol: '' }],
  session_affinity: 'None', session_affinity_timeout_seconds: 0, ip_families: ['IPv4'], labels: {}, annotations: {},
  creation_time: '2026-01-01T00:00:00Z', endpoints: [], internal_traffic_policy: 'Cluster', traffic_distribution: '',
  endpoint_ports: [{ name: 'http', protocol: 'TCP', port: 8080, app_protocol: '' }],
};
const x = (over: Partial<Export>): Export => ({ ...base, ...over });
const c2 = (over: Partial<Export> = {}): Export => x({ cluster_id: 'c2', creation_time: '2026-01-02T00:00:00Z', ...over });
const p = (name: string, port: number, protocol = 'TCP'): { name: string; protocol: string; port: number; app_protocol: string } => ({ name, protocol, port, app_protocol: '' });
const ip = (name: string, port: number, protocol = 'TCP'): ImportPort => ({ name, protocol, port, appProtocol: '' });

test('no export: no ServiceImport, no conflict, no slices', () => {
  const r = mergeExports([]);
  assert.is(r.serviceImport, undefined);
  assert.equal(r.conflicts.reasons, []);
  assert.is(r.slicesByCluster.size, 0);
});

test('agreeing exports: no conflict; clusters listed; properties of the Service', () => {
  const r = mergeExports([c2(), x({})]);
  assert.equal(r.conflicts, { reasons: [], message: '' });
  assert.equal(r.serviceImport?.clusters, ['c1', 'c2']);
  assert.is(r.serviceImport?.type, 'ClusterSetIP');
  assert.equal(r.serviceImport?.ports, [ip('http', 80)]);
});

// Each row: what the newer export (c2) changes, the reasons expected on every export,
// and what the ServiceImport keeps (always the oldest's value).
const conflictRows: [string, Partial<Export>, string[], (r: ReturnType<typeof mergeExports>) => unknown, unknown][] = [
  ['type', { type: 'Headless' }, ['TypeConflict'], (r) => r.serviceImport?.type, 'ClusterSetIP'],
  ['extra port (union + conflict)', { ports: [p('http', 80), p('stcp', 142, 'SCTP')] }, ['PortConflict'], (r) => r.serviceImport?.ports, [ip('http', 80), ip('stcp', 142, 'SCTP')]],
  ['same name, other port', { ports: [p('http', 81)] }, ['PortConflict'], (r) => r.serviceImport?.ports, [ip('http', 80)]],
  ['other name, same protocol+port', { ports: [p('web', 80)] }, ['PortConflict'], (r) => r.serviceImport?.ports, [ip('http', 80)]],
  ['session affinity', { session_affinity: 'ClientIP', session_affinity_timeout_seconds: 10 }, ['SessionAffinityConflict'], (r) => r.serviceImport?.sessionAffinity, 'None'],
  ['ip families', { ip_families: ['IPv4', 'IPv6'] }, ['IPFamilyConflict'], (r) => r.serviceImport?.ipFamilies, ['IPv4']],
  ['internal traffic policy', { internal_traffic_policy: 'Local' }, ['InternalTrafficPolicyConflict'], (r) => r.serviceImport?.internalTrafficPolicy, 'Cluster'],
  ['traffic distribution', { traffic_distribution: 'PreferClose' }, ['TrafficDistributionConflict'], (r) => r.serviceImport?.trafficDistribution, ''],
  ['labels', { labels: { 'dummy-label2': 'true' } }, ['LabelsConflict'], (r) => r.serviceImport?.labels, { 'dummy-label': 'true' }],
  ['annotations', { annotations: { 'dummy-annotation2': 'true' } }, ['AnnotationsConflict'], (r) => r.serviceImport?.annotations, {}],
];

for (const [what, change, reasons, pick, kept] of conflictRows) {
  test(`conflict on ${what}: ${reasons.join(',')}, the oldest export's value wins`, () => {
    const oldest = what === 'labels' ? x({ labels: { 'dummy-label': 'true' } }) : x({});
    for (const order of [[oldest, c2(change)], [c2(change), oldest]]) {
      const r = mergeExports(order);
      assert.equal(r.conflicts.reasons, reasons);
      assert.match(r.conflicts.message, /cluster\(s\) c2 differ from the oldest export \(cluster c1\)/);
      assert.equal(pick(r), kept);
    }
  });
}

test('session affinity timeout alone: SessionAffinityConfigConflict', () => {
  const r = mergeExports([x({ session_affinity: 'ClientIP', session_affinity_timeout_seconds: 10 }), c2({ session_affinity: 'ClientIP', session_affinity_timeout_seconds: 20 })]);
  assert.equal(r.conflicts.reasons, ['SessionAffinityConfigConflict']);
  assert.is(r.serviceImport?.sessionAffinityTimeoutSeconds, 10);
});

test('several conflicts: comma-joinable reasons in a fixed order', () => {
  const r = mergeExports([x({}), c2({ type: 'Headless', labels: { a: 'b' }, ports: [p('http', 81)], internal_traffic_policy: 'Local' })]);
  assert.equal(r.conflicts.reasons, ['TypeConflict', 'PortConflict', 'InternalTrafficPolicyConflict', 'LabelsConflict']);
});

test('precedence: creation time first, then cluster id; the newest can be the one listed first', () => {
  const a = x({ cluster_id: 'c9', creation_time: '2025-12-31T00:00:00Z', type: 'Headless' });
  const b = x({ cluster_id: 'c1', creation_time: '2026-01-01T00:00:00Z' });
  assert.is(mergeExports([b, a]).serviceImport?.type, 'Headless');
  const tieA = x({ cluster_id: 'c3', type: 'Headless' });
  assert.is(mergeExports([tieA, x({})]).serviceImport?.type, 'ClusterSetIP');
});

test('ports: union merged by name then protocol+port, older stays', () => {
  assert.equal(mergePorts([[ip('tcp', 42), ip('udp', 42, 'UDP')], [ip('tcp', 42), ip('sctp', 142, 'SCTP')]]), { ports: [ip('tcp', 42), ip('udp', 42, 'UDP'), ip('sctp', 142, 'SCTP')], clash: false });
  assert.equal(mergePorts([[ip('a', 1)], [ip('a', 2)], [ip('b', 1)], [ip('c', 3)]]), { ports: [ip('a', 1), ip('c', 3)], clash: true });
});

test('slices: one set per source cluster and family, pods\' ports, only ports the cluster exports', () => {
  const r = mergeExports([
    x({ endpoints: [{ hostname: '', addresses: ['10.1.0.5'], ready: true, serving: true, terminating: false, zone: 'z1' }, { hostname: '', addresses: ['fd00::5'], ready: true, serving: true, terminating: false, zone: '' }] }),
    c2({ ports: [p('http', 80), p('metrics', 9090)], endpoint_ports: [p('http', 8081), p('metrics', 9091)], endpoints: [{ hostname: '', addresses: ['10.2.0.7'], ready: false, serving: false, terminating: true, zone: '' }] }),
  ]);
  const s1 = r.slicesByCluster.get('c1') ?? [];
  assert.equal(s1.map((s) => [s.addressType, s.ports, s.endpoints.map((e) => e.addresses[0])]), [['IPv4', [ip('http', 8080)], ['10.1.0.5']], ['IPv6', [ip('http', 8080)], ['fd00::5']]]);
  const s2 = r.slicesByCluster.get('c2') ?? [];
  assert.equal(s2.map((s) => s.ports), [[ip('http', 8081), ip('metrics', 9091)]]);
  assert.equal(s2[0]?.endpoints[0], { addresses: ['10.2.0.7'], hostname: '', ready: false, serving: false, terminating: true, zone: '' });
});

test('a port whose name lost a conflict (another number) is not served by that cluster; other names are', () => {
  // c1: tcp/42; c2: tcp/4242 → 42 (loses: the import keeps tcp/42) and tcp2/4343 → 42
  const pod = (a: string): Export['endpoints'][number] => ({ hostname: '', addresses: [a], ready: true, serving: true, terminating: false, zone: '' });
  const r = mergeExports([
    x({ ports: [p('tcp', 42)], endpoint_ports: [p('tcp', 42)], endpoints: [pod('10.1.0.5')] }),
    c2({ ports: [p('tcp', 4242), p('tcp2', 4343)], endpoint_ports: [p('tcp', 42), p('tcp2', 42)], endpoints: [pod('10.2.0.7')] }),
  ]);
  assert.equal(r.serviceImport?.ports, [ip('tcp', 42), ip('tcp2', 4343)]);
  assert.equal(r.conflicts.reasons, ['PortConflict']);
  assert.equal(r.slicesByCluster.get('c1')?.map((s) => s.ports), [[ip('tcp', 42)]]);
  assert.equal(r.slicesByCluster.get('c2')?.map((s) => s.ports), [[ip('tcp2', 42)]]);
});

test('an unhealthy cluster has its endpoints not ready; the others keep theirs', () => {
  const ep = { hostname: 'db-0', addresses: ['10.2.0.7'], ready: true, serving: true, terminating: false, zone: '' };
  const r = mergeExports([x({ endpoints: [ep] }), c2({ endpoints: [{ ...ep, addresses: ['10.3.0.1'] }] })], { unhealthy: new Set(['c2']) });
  assert.equal(r.slicesByCluster.get('c2')?.[0]?.endpoints[0]?.ready, false);
  assert.equal(r.slicesByCluster.get('c2')?.[0]?.endpoints[0]?.serving, false);
  assert.equal(r.slicesByCluster.get('c1')?.[0]?.endpoints[0]?.ready, true);
});

test('headless endpoints without a hostname get the dashed address; with one keep it', () => {
  const r = mergeExports([x({ type: 'Headless', endpoints: [
    { hostname: '', addresses: ['10.1.0.5'], ready: true, serving: true, terminating: false, zone: '' },
    { hostname: 'web-0', addresses: ['10.1.0.6'], ready: true, serving: true, terminating: false, zone: '' },
    { hostname: '', addresses: ['fd00::5'], ready: true, serving: true, terminating: false, zone: '' },
  ] })]);
  const names = (r.slicesByCluster.get('c1') ?? []).flatMap((s) => s.endpoints.map((e) => e.hostname));
  assert.equal(names, ['10-1-0-5', 'web-0', 'fd00--5']);
});

test('large clusters are cut into slices of at most 100 endpoints', () => {
  const endpoints = Array.from({ length: 250 }, (_, i) => ({ hostname: '', addresses: [`10.1.${i >> 8}.${i & 255}`], ready: true, serving: true, terminating: false, zone: '' }));
  const slices = mergeExports([x({ endpoints })]).slicesByCluster.get('c1') ?? [];
  assert.equal(slices.map((s) => [s.index, s.endpoints.length]), [[0, MAX_ENDPOINTS_PER_SLICE], [1, MAX_ENDPOINTS_PER_SLICE], [2, 50]]);
});

test('derived names: DNS-1035, at most 63, never the user\'s name, stable', () => {
  for (const n of ['echo', 'a'.repeat(63), 'x-'.repeat(30) + 'y']) {
    const d = derivedServiceName(n);
    assert.ok(d.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(d), d);
    assert.is.not(d, n);
    assert.is(derivedServiceName(n), d);
    const s = sliceName(n, { cluster: 'c'.repeat(63), addressType: 'IPv6', index: 3 });
    assert.ok(s.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s), s);
  }
});

test('input order does not matter', () => {
  const recs = [x({}), c2({ ports: [p('b', 2)] }), x({ cluster_id: 'c3', creation_time: '2026-01-03T00:00:00Z', ports: [p('a', 1)] })];
  const a = mergeExports(recs);
  const b = mergeExports([...recs].reverse());
  assert.equal(a.serviceImport, b.serviceImport);
  assert.equal(a.conflicts, b.conflicts);
  assert.equal([...a.slicesByCluster], [...b.slicesByCluster]);
});

test.run();
