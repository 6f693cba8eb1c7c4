import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Cluster, Policy } from '../core/broker-api/index.ts';
import { identitySets, type PodLike } from './identities.ts';
import { CLUSTERSET_CONFIGMAP, STATE_LABEL, canonicalJson, readState, remoteCidrs, stateConfigMaps, type ConfigMapLike, type IdentityMemo } from './state.ts';

const pod = (ns: string, name: string, ip: string, labels: Record<string, string>, extra: Partial<PodLike> = {}): PodLike => ({ metadata: { namespace: ns, name, labels }, status: { podIP: ip, phase: 'Running' }, ...extra });

test('identities: label sets deduplicated per namespace, deterministic whatever the pod order; no IP, host network, finished pods left out', () => {
  const pods = [
    pod('web', 'f-2', '10.2.0.7', { app: 'frontend', v: '1' }),
    pod('web', 'f-1', '10.2.0.5', { v: '1', app: 'frontend' }),
    pod('web', 'b-1', '10.2.0.9', { app: 'batch' }),
    pod('web', 'h', '10.2.9.9', {}, { spec: { hostNetwork: true } }),
    pod('web', 'done', '10.2.0.11', {}, { status: { podIP: '10.2.0.11', phase: 'Succeeded' } }),
    pod('web', 'pending', '', {}),
    pod('shop', 's', '10.2.1.5', { app: 'shop' }),
  ];
  const sets = identitySets('c2', pods, [{ metadata: { name: 'web', labels: { team: 'web' } } }]);
  assert.equal(sets.map((s) => s.namespace), ['shop', 'web']);
  const web = sets[1];
  assert.equal(web?.identities, [{ id: 1, labels: { app: 'batch' } }, { id: 2, labels: { app: 'frontend', v: '1' } }]);
  assert.equal(web?.pods, [{ ip: '10.2.0.5', name: 'f-1', identity: 2 }, { ip: '10.2.0.7', name: 'f-2', identity: 2 }, { ip: '10.2.0.9', name: 'b-1', identity: 1 }]);
  assert.equal(web?.namespace_labels, { team: 'web' });
  assert.equal(JSON.stringify(identitySets('c2', [...pods].reverse(), [{ metadata: { name: 'web', labels: { team: 'web' } } }])), JSON.stringify(sets));
});

const clusters: Cluster[] = [
  { cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: [], labels: {}, global_cidr: '' },
  { cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: [], labels: { tier: 'prod' }, global_cidr: '' },
];
const policy: Policy = { cluster_id: 'c1', namespace: 'backend', name: 'p', spec: JSON.stringify({ appliedTo: {}, ingress: [] }), generation: 1 };

function configMaps(extra: ConfigMapLike[] = []): ConfigMapLike[] {
  const sets = identitySets('c2', [pod('web', 'f-1', '10.2.0.5', { app: 'frontend' })], []);
  const own = identitySets('c1', [pod('backend', 'b', '10.1.0.5', { app: 'backend' })], []);
  const maps: ConfigMapLike[] = [...stateConfigMaps('c1', clusters, [policy], [...sets, ...own])].map(([name, v]) => ({ metadata: { name, labels: { [STATE_LABEL]: v.kind } }, data: v.data }));
  return [...maps, ...extra];
}

test('state: the controller\'s ConfigMaps read back by an agent; own identities are not mirrored', () => {
  const cms = configMaps();
  assert.equal(cms.map((c) => c.metadata?.name), [CLUSTERSET_CONFIGMAP, 'isthmus-policy-id-c2-web']);
  const s = readState('c1', cms);
  assert.equal(s.problems, []);
  assert.equal(s.policies.map((p) => p.key), ['c1/backend/p']);
  assert.equal(s.remotePods, [{ ip: '10.2.0.5', source: { cluster: 'c2', namespace: 'web', namespaceLabels: {}, pod: 'f-1', labels: { app: 'frontend' } } }]);
  assert.equal(remoteCidrs('c1', s.clusters), ['10.2.0.0/16']);
});

test('state: with a memo an unchanged identity ConfigMap is not validated again, a changed or removed one is', () => {
  const memo: IdentityMemo = new Map();
  const cms = configMaps();
  const first = readState('c1', cms, memo);
  assert.is(memo.size, 1);
  const cached = memo.get('isthmus-policy-id-c2-web')?.set;
  assert.equal(readState('c1', cms, memo).remotePods, first.remotePods);
  assert.is(memo.get('isthmus-policy-id-c2-web')?.set, cached, 'the same validated set: not validated again');
  assert.is(readState('c1', cms.slice(0, 1), memo).remotePods.length, 0);
  assert.is(memo.size, 0, 'a removed ConfigMap leaves the memo');
});

test('state: each record validated again at the agent; a bad one is left out and reported, the rest used', () => {
  const forged = { cluster_id: 'c2', namespace: 'evil', namespace_labels: {}, identities: [{ id: 1, labels: {} }], pods: [{ ip: '10.1.0.5', name: 'x', identity: 1 }] };
  const s = readState('c1', configMaps([
    { metadata: { name: 'isthmus-policy-id-c2-evil', labels: { [STATE_LABEL]: 'identities' } }, data: { 'identities.json': JSON.stringify(forged) } },
    { metadata: { name: 'isthmus-policy-id-c9-web', labels: { [STATE_LABEL]: 'identities' } }, data: { 'identities.json': JSON.stringify({ ...forged, cluster_id: 'c9' }) } },
    { metadata: { name: 'isthmus-policy-id-c2-x', labels: { [STATE_LABEL]: 'identities' } }, data: { 'identities.json': '{' } },
  ]));
  assert.is(s.remotePods.length, 1);
  assert.is(s.problems.length, 3);
  assert.match(s.problems[0] ?? '', /10\.1\.0\.5 is outside the pod CIDRs of cluster c2/);
  assert.match(s.problems[1] ?? '', /c9 is not a remote member/);
  const badPolicy = readState('c1', [{ metadata: { name: CLUSTERSET_CONFIGMAP }, data: { 'clusters.json': JSON.stringify(clusters), 'policies.json': JSON.stringify([{ ...policy, spec: '{"appliedTo":{},"default":"maybe"}' }, policy]) } }]);
  assert.is(badPolicy.policies.length, 1);
  assert.match(badPolicy.problems[0] ?? '', /policy c1\/backend\/p: spec\.default/);
  assert.match(readState('c1', []).problems[0] ?? '', /clusters\.json is missing/);
});

test('state: cluster labels validated again at the agent, the id label always the record\'s; a bad set leaves only the id', () => {
  const hostile = [
    { cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], labels: { 'cluster.clusterset.k8s.io': 'c1', tier: 'prod' } },
    { cluster_id: 'c3', pod_cidrs: ['10.3.0.0/16'], labels: { tier: 'x'.repeat(64) } },
  ];
  const s = readState('c1', [{ metadata: { name: CLUSTERSET_CONFIGMAP }, data: { 'clusters.json': JSON.stringify(hostile), 'policies.json': '[]' } }]);
  assert.equal(s.clusters.map((c) => c.labels), [{ 'cluster.clusterset.k8s.io': 'c2', tier: 'prod' }, { 'cluster.clusterset.k8s.io': 'c3' }]);
  assert.match(s.problems.join('\n'), /cluster c3 labels\[tier\]: .* is not a label value/);
});

test('canonical JSON: the same record whatever order its fields were decoded in', () => {
  const a = { cluster_id: 'c2', namespace: 'web', identities: [{ id: 1, labels: { b: '2', a: '1' } }], pods: [{ ip: '10.2.0.5', name: 'x', identity: 1 }] };
  const b = { pods: [{ identity: 1, name: 'x', ip: '10.2.0.5' }], identities: [{ labels: { a: '1', b: '2' }, id: 1 }], namespace: 'web', cluster_id: 'c2' };
  assert.is(canonicalJson(a), canonicalJson(b));
  assert.is.not(canonicalJson(a), canonicalJson({ ...b, pods: [] }));
});

test.run();
