import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { enforcement, enforcementText, nodeReport, policyNodeStatus, type NodeReport } from './node-status.ts';

const report = (node: string, applied: Record<string, number>, error = ''): NodeReport => ({ node, applied: new Map(Object.entries(applied)), error });
const P = 'c1/backend/frontend-in';

test('enforcement: N counts the nodes of M whose report holds the policy at its generation, with no error', () => {
  const e = enforcement(P, 3, ['n1', 'n2', 'n3', 'n4', 'n5'], [
    report('n1', { [P]: 3 }),
    report('n2', { [P]: 2 }),
    report('n3', { [P]: 3 }, 'nft -f - exited 1: Error'),
    report('n4', { 'c2/x/other': 1 }),
    report('gone', { [P]: 3 }),
  ]);
  assert.is(e.enforced, 1);
  assert.is(e.nodes, 5);
  assert.equal(e.missing, [
    { node: 'n2', reason: 'applied generation 2, not 3 yet' },
    { node: 'n3', reason: 'apply failed: nft -f - exited 1: Error' },
    { node: 'n4', reason: 'not applied yet' },
    { node: 'n5', reason: 'no report from its policy agent' },
  ], 'a report of a node outside M is ignored');
  assert.is(enforcementText(e), 'enforced on 1 of 5 nodes (n2: applied generation 2, not 3 yet; n3: apply failed: nft -f - exited 1: Error; n4: not applied yet; 1 more)');
});

test('enforcement: every node current → M of M; no node → 0 of 0; a node listed twice counts once', () => {
  assert.is(enforcementText(enforcement(P, 1, ['n1', 'n2', 'n1'], [report('n1', { [P]: 1 }), report('n2', { [P]: 1 })])), 'enforced on 2 of 2 nodes');
  assert.is(enforcementText(enforcement(P, 1, [], [report('n1', { [P]: 1 })])), 'enforced on 0 of 0 nodes');
});

test('policyNodeStatus → nodeReport round trip; malformed or unreported objects give no report', () => {
  const st = policyNodeStatus({ filter: 'nftables', digest: 'abc', applied: [{ policy: 'c2/a/b', generation: 4 }, { policy: P, generation: 1 }] });
  assert.equal(st, { filter: 'nftables', digest: 'abc', applied: [{ policy: 'c1/backend/frontend-in', generation: 1 }, { policy: 'c2/a/b', generation: 4 }], error: '', summary: '2 policies applied' });
  const failed = policyNodeStatus({ filter: 'iptables', digest: '', applied: [], error: 'ipset restore exited 1' });
  assert.is(failed.summary, 'error: ipset restore exited 1');
  assert.equal(nodeReport({ metadata: { name: 'n1' }, status: st }), report('n1', { [P]: 1, 'c2/a/b': 4 }));
  assert.equal(nodeReport({ metadata: { name: 'n1' }, status: failed }), report('n1', {}, 'ipset restore exited 1'));
  assert.is(nodeReport({ metadata: { name: 'n1' }, spec: { nodeName: 'n1' } }), undefined, 'created, no status yet');
  assert.is(nodeReport({ status: st }), undefined, 'no name');
  assert.is(nodeReport(undefined), undefined);
  assert.equal(nodeReport({ metadata: { name: 'n1' }, status: { applied: [{ policy: P, generation: '1' }, 7, { policy: 'c2/a/b', generation: 2 }] } }), report('n1', { 'c2/a/b': 2 }), 'malformed entries skipped');
});

test.run();
