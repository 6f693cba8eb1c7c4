import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validatePolicySpec, type PolicySpec } from '../core/broker-api/index.ts';
import { evaluate, resolve, type Flow, type PolicyInput, type ReceiverView, type SourcePod } from './evaluate.ts';

const policy = (cluster: string, namespace: string, name: string, spec: unknown): PolicyInput => ({ key: `${cluster}/${namespace}/${name}`, cluster, namespace, name, spec: validatePolicySpec(spec) });

// the issue's scenario: c1 lets c2's frontend pods into backend:8080 only
const backendOnly = policy('c1', 'backend', 'frontend-in', {
  appliedTo: { podSelector: { matchLabels: { app: 'backend' } } },
  ingress: [{ name: 'frontend', priority: 10, action: 'Allow', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: { matchLabels: { team: 'web' } }, podSelector: { matchLabels: { app: 'frontend' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }],
  default: 'Deny',
});

const view = (policies: PolicyInput[], extra: Partial<ReceiverView> = {}): ReceiverView => ({
  cluster: 'c1',
  clusterLabels: new Map([['c1', { region: 'eu' }], ['c2', { region: 'eu', tier: 'prod' }], ['c3', { region: 'us' }]]),
  namespaces: [{ name: 'backend', labels: { team: 'api' } }, { name: 'other', labels: {} }],
  policies,
  ...extra,
});

const src = (cluster: string, namespace: string, app: string, nsLabels: Record<string, string> = { team: 'web' }): SourcePod => ({ cluster, namespace, namespaceLabels: nsLabels, pod: `${app}-1`, labels: { app } });
const flow = (source: SourcePod, port = 8080, dst: Flow['destination'] = { namespace: 'backend', pod: 'backend-1', labels: { app: 'backend' } }, protocol: Flow['protocol'] = 'TCP'): Flow => ({ source, destination: dst, protocol, port });

const table: [string, PolicyInput[], Flow, 'Allow' | 'Deny', string | undefined][] = [
  ['c2 frontend → backend:8080 allowed by the rule', [backendOnly], flow(src('c2', 'web', 'frontend')), 'Allow', 'frontend'],
  ['c3 frontend refused (default Deny)', [backendOnly], flow(src('c3', 'web', 'frontend')), 'Deny', undefined],
  ['another namespace of c2 refused', [backendOnly], flow(src('c2', 'shop', 'frontend', { team: 'shop' })), 'Deny', undefined],
  ['port 9090 refused', [backendOnly], flow(src('c2', 'web', 'frontend'), 9090), 'Deny', undefined],
  ['UDP 8080 refused (protocol differs)', [backendOnly], flow(src('c2', 'web', 'frontend'), 8080, undefined, 'UDP'), 'Deny', undefined],
  ['inside c1: never governed', [backendOnly], flow(src('c1', 'web', 'anything')), 'Allow', undefined],
  ['a namespace no policy governs: Allow (today\'s behaviour)', [backendOnly], flow(src('c3', 'x', 'y'), 80, { namespace: 'other', pod: 'o', labels: {} }), 'Allow', undefined],
  ['a pod of the namespace the policy does not select: still the namespace default', [backendOnly], flow(src('c2', 'web', 'frontend'), 8080, { namespace: 'backend', pod: 'db', labels: { app: 'db' } }), 'Deny', undefined],
  ['deny a whole cluster at a lower priority number wins over a later allow', [backendOnly, policy('c1', 'backend', 'no-c2', {
    appliedTo: {}, ingress: [{ name: 'c2-out', priority: 1, action: 'Deny', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: {} }] }],
  })], flow(src('c2', 'web', 'frontend')), 'Deny', 'c2-out'],
  ['cluster selector over cluster labels', [policy('c1', 'backend', 'prod', {
    appliedTo: {}, ingress: [{ name: 'prod', priority: 5, action: 'Allow', from: [{ clusters: { selector: { matchLabels: { tier: 'prod' } } }, namespaceSelector: {} }] }], default: 'Deny',
  })], flow(src('c2', 'web', 'frontend')), 'Allow', 'prod'],
  ['cluster selector does not match c3', [policy('c1', 'backend', 'prod', {
    appliedTo: {}, ingress: [{ name: 'prod', priority: 5, action: 'Allow', from: [{ clusters: { selector: { matchLabels: { tier: 'prod' } } }, namespaceSelector: {} }] }], default: 'Deny',
  })], flow(src('c3', 'web', 'frontend')), 'Deny', undefined],
  ['namespace sameness: no namespaceSelector means the same namespace name', [policy('c1', 'backend', 'same', {
    appliedTo: {}, ingress: [{ name: 'same-ns', priority: 5, action: 'Allow', from: [{}] }], default: 'Deny',
  })], flow(src('c3', 'backend', 'x')), 'Allow', 'same-ns'],
  ['namespace sameness refuses another name', [policy('c1', 'backend', 'same', {
    appliedTo: {}, ingress: [{ name: 'same-ns', priority: 5, action: 'Allow', from: [{}] }], default: 'Deny',
  })], flow(src('c3', 'web', 'x')), 'Deny', undefined],
  ['equal priority across policies: Deny first', [
    policy('c1', 'backend', 'a-allow', { appliedTo: {}, ingress: [{ name: 'all', priority: 7, action: 'Allow', from: [] }] }),
    policy('c1', 'backend', 'z-deny', { appliedTo: {}, ingress: [{ name: 'all', priority: 7, action: 'Deny', from: [] }] }),
  ], flow(src('c2', 'web', 'frontend')), 'Deny', 'all'],
  ['a port range', [policy('c1', 'backend', 'range', {
    appliedTo: {}, ingress: [{ name: 'r', priority: 1, action: 'Allow', ports: [{ port: 8000, endPort: 8100 }] }], default: 'Deny',
  })], flow(src('c2', 'web', 'frontend'), 8100), 'Allow', 'r'],
  ['matchExpressions NotIn', [policy('c1', 'backend', 'expr', {
    appliedTo: {}, ingress: [{ name: 'e', priority: 1, action: 'Deny', from: [{ namespaceSelector: {}, podSelector: { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['frontend'] }] } }] }],
  })], flow(src('c2', 'web', 'batch')), 'Deny', 'e'],
  ['a policy whose appliedTo.clusters excludes c1 does nothing here', [policy('c2', 'backend', 'elsewhere', {
    appliedTo: { clusters: { ids: ['c3'] } }, ingress: [], default: 'Deny',
  })], flow(src('c2', 'web', 'frontend')), 'Allow', undefined],
];

for (const [name, policies, f, action, rule] of table) {
  test(`evaluate: ${name}`, () => {
    const v = evaluate(resolve(view(policies)), f);
    assert.is(v.action, action, v.reason);
    assert.is(v.rule, rule, v.reason);
  });
}

test('resolve: status per policy, and a namespace the author does not own is an error, nothing else affected', () => {
  const foreign = policy('c3', 'backend', 'takeover', { appliedTo: {}, ingress: [{ name: 'all', priority: 0, action: 'Allow' }] });
  const r = resolve(view([backendOnly, foreign, policy('c2', 'backend', 'elsewhere', { appliedTo: { clusters: { ids: ['c3'] } } })], {
    namespaces: [{ name: 'backend', labels: {}, authors: ['c1', 'c2'] }],
  }));
  assert.equal(r.status.get('c1/backend/frontend-in'), { state: 'Accepted', namespaces: ['backend'], errors: [] });
  assert.is(r.status.get('c3/backend/takeover')?.state, 'Error');
  assert.match(r.status.get('c3/backend/takeover')?.errors[0] ?? '', /not owned by cluster c3/);
  assert.is(r.status.get('c2/backend/elsewhere')?.state, 'NotApplicable');
  assert.ok(r.rules.every((x) => x.policy !== 'c3/backend/takeover'));
  assert.is(evaluate(r, flow(src('c3', 'web', 'frontend'))).action, 'Deny');
});

test('resolve: appliedTo.namespaceSelector governs every matching namespace; the order is deterministic', () => {
  const p = policy('c1', 'ops', 'all-api', { appliedTo: { namespaceSelector: { matchLabels: { team: 'api' } } }, ingress: [{ name: 'x', priority: 3, action: 'Deny' }] });
  const a = resolve(view([p, backendOnly]));
  const b = resolve(view([backendOnly, p]));
  assert.equal(a.rules, b.rules);
  assert.equal(a.status.get(p.key)?.namespaces, ['backend']);
  assert.equal(a.rules.map((r) => r.rule), ['x', 'frontend']);
});

test('the spec normalizes to the same value whatever the input order', () => {
  const one: PolicySpec = validatePolicySpec({ appliedTo: { podSelector: { matchLabels: { b: '2', a: '1' } } }, ingress: [{ name: 'r', priority: 1, action: 'Allow', from: [{ clusters: { ids: ['c3', 'c2'] } }] }] });
  const two: PolicySpec = validatePolicySpec(JSON.parse(JSON.stringify(one)));
  assert.is(JSON.stringify(one), JSON.stringify(two));
  assert.equal(Object.keys(one.appliedTo.podSelector.matchLabels), ['a', 'b']);
  assert.equal(one.ingress[0]?.from[0]?.clusters?.ids, ['c2', 'c3']);
  assert.is(one.default, 'Allow');
});

test.run();
