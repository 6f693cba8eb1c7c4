import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PolicyStatusRecord } from '../core/broker-api/types.ts';
import { enforcement } from './node-status.ts';
import { clip, clusterEntries, receiverStatus, statusRecord } from './status.ts';

const policy = { cluster: 'c1', namespace: 'backend', name: 'frontend-in', generation: 3 };
const accepted = { state: 'Accepted' as const, namespaces: ['backend'], errors: [] };
const on = enforcement('c1/backend/frontend-in', 3, ['n1', 'n2'], [{ node: 'n1', applied: new Map([['c1/backend/frontend-in', 3]]), error: '' }]);
const rec = (over: Partial<PolicyStatusRecord> = {}): PolicyStatusRecord => ({
  cluster_id: 'c2', policy_cluster: 'c1', namespace: 'backend', name: 'frontend-in', generation: 3,
  state: 'Accepted', message: 'governs backend; enforced on 3 of 3 nodes', enforced_nodes: 3, nodes: 3, ...over,
});

test('receiverStatus: error, not applicable, accepted with the node counts', () => {
  assert.equal(receiverStatus('c1', 3, 'ingress[0]: bad', accepted, on), { cluster: 'c1', observedGeneration: 3, state: 'Error', message: 'ingress[0]: bad' });
  assert.equal(receiverStatus('c2', 3, undefined, { state: 'NotApplicable', namespaces: [], errors: [] }, on), { cluster: 'c2', observedGeneration: 3, state: 'NotApplicable', message: 'not applied to this cluster' });
  assert.equal(receiverStatus('c2', 3, undefined, { state: 'Error', namespaces: [], errors: ['namespace backend: authors are c2'] }, on).message, 'namespace backend: authors are c2');
  const a = receiverStatus('c1', 3, undefined, accepted, on);
  assert.is(a.state, 'Accepted');
  assert.is(a.enforcedNodes, 1);
  assert.is(a.nodes, 2);
  assert.match(a.message, /^governs backend; enforced on 1 of 2 nodes \(n2: no report from its policy agent\)$/);
});

test('clusterEntries: own first, members sorted, stale generations said, hostile or malformed records left out with why', () => {
  const own = receiverStatus('c1', 3, undefined, accepted, on);
  const { entries, refused } = clusterEntries(own, policy, [
    rec({ cluster_id: 'c3', state: 'NotApplicable', message: 'not applied to this cluster', enforced_nodes: 0, nodes: 0 }),
    rec({ generation: 2 }),
    rec({ cluster_id: 'c9' }), // not a member
    rec({ cluster_id: 'c1', policy_cluster: 'c2' }), // about another policy: not this one's
    rec({ name: 'other' }), // another policy
    { ...rec(), state: 'Fine' }, // malformed
  ], new Set(['c1', 'c2', 'c3']));
  assert.equal(entries.map((e) => e.cluster), ['c1', 'c2', 'c3']);
  assert.equal(entries[1], { cluster: 'c2', state: 'Accepted', message: 'about generation 2, not 3 yet: governs backend; enforced on 3 of 3 nodes', observedGeneration: 2, enforcedNodes: 3, nodes: 3 });
  assert.equal(entries[2], { cluster: 'c3', state: 'NotApplicable', message: 'not applied to this cluster', observedGeneration: 3 });
  assert.is(refused.length, 2);
  assert.match(refused[0] ?? '', /from c9: not another member/);
  assert.match(refused[1] ?? '', /state "Fine" must be one of/);
});

test('clusterEntries: a member cannot report as the author', () => {
  const own = receiverStatus('c1', 3, undefined, accepted, on);
  const { entries, refused } = clusterEntries(own, policy, [rec({ cluster_id: 'c1', policy_cluster: 'c1' })], new Set(['c1', 'c2']));
  assert.equal(entries, [own]);
  assert.match(refused[0] ?? '', /reporting cluster itself/);
});

test('statusRecord and clip: the record a receiver publishes fits the broker\'s 1 KiB message limit, cut on a character boundary', () => {
  const e = receiverStatus('c2', 3, undefined, { state: 'Error', namespaces: [], errors: ['ü'.repeat(900)] }, on);
  const r = statusRecord(policy, e);
  assert.is(r.cluster_id, 'c2');
  assert.is(r.policy_cluster, 'c1');
  assert.is(r.state, 'Error');
  assert.ok(Buffer.byteLength(r.message) <= 1024, `${Buffer.byteLength(r.message)} bytes`);
  assert.ok(r.message.endsWith('ü…'));
  assert.is(clip('short'), 'short');
  assert.is(clip('abcdef', 6), 'abcdef');
  assert.is(clip('abcdefg', 6), 'abc…');
});

test.run();
