import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../errors.ts';
import { errorCode } from '../testing.ts';
import { validateIdentitySet, validatePolicyRecord } from './identity.ts';
import { validatePolicySpec } from './policy.ts';

const rule = (r: Record<string, unknown>): unknown => ({ appliedTo: {}, ingress: [{ name: 'r', priority: 1, action: 'Allow', ...r }] });

// each bad input, the field its error must name
const bad: [string, unknown, RegExp][] = [
  ['not an object', 'x', /^spec: must be an object/],
  ['unknown field', { appliedTo: {}, ingres: [] }, /unknown field "ingres"/],
  ['invalid label key in a selector', { appliedTo: { podSelector: { matchLabels: { 'bad key': 'x' } } } }, /spec\.appliedTo\.podSelector\.matchLabels: "bad key" is not a label name/],
  ['invalid label value', { appliedTo: { podSelector: { matchLabels: { app: 'no spaces' } } } }, /matchLabels\[app\]/],
  ['unknown operator', rule({ from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] } }] }), /operator: must be one of In, NotIn, Exists, DoesNotExist/],
  ['In without values', rule({ from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }] }), /needs at least one value/],
  ['Exists with values', rule({ from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }] }), /takes no values/],
  ['port 0', rule({ ports: [{ port: 0 }] }), /ports\[0\]\.port: port 0 is out of range: use 1-65535/],
  ['port 70000', rule({ ports: [{ port: 70000 }] }), /out of range/],
  ['endPort below port', rule({ ports: [{ port: 90, endPort: 80 }] }), /endPort: 80 is below port 90/],
  ['endPort alone', rule({ ports: [{ endPort: 80 }] }), /needs port/],
  ['unknown protocol', rule({ ports: [{ protocol: 'ICMP', port: 1 }] }), /protocol: must be one of TCP, UDP, SCTP/],
  ['unknown action', rule({ action: 'Permit' }), /action: must be Allow or Deny/],
  ['priority missing', { appliedTo: {}, ingress: [{ name: 'r', action: 'Allow' }] }, /priority: must be a whole number/],
  ['negative priority', rule({ priority: -1 }), /priority/],
  ['conflicting priorities', { appliedTo: {}, ingress: [{ name: 'a', priority: 5, action: 'Allow' }, { name: 'b', priority: 5, action: 'Deny' }] }, /ingress\[1\]\.priority: 5 is also the priority of rule "a"/],
  ['duplicate rule names', { appliedTo: {}, ingress: [{ name: 'a', priority: 5, action: 'Allow' }, { name: 'a', priority: 6, action: 'Deny' }] }, /also the name of ingress\[0\]/],
  ['bad cluster id', rule({ from: [{ clusters: { ids: ['C_2'] } }] }), /clusters\.ids\[0\]: "C_2" is not a cluster id/],
  ['empty clusters', rule({ from: [{ clusters: {} }] }), /names no cluster/],
  ['bad default', { appliedTo: {}, default: 'deny' }, /spec\.default: must be Allow or Deny/],
  ['too many rules', { appliedTo: {}, ingress: Array.from({ length: 65 }, (_, i) => ({ name: `r${i}`, priority: i, action: 'Allow' })) }, /at most 64/],
];

for (const [name, spec, message] of bad) {
  test(`policy spec refused: ${name}`, () => {
    assert.is(errorCode(() => validatePolicySpec(spec)), ErrorCodes.INVALID_ARGUMENT);
    try {
      validatePolicySpec(spec);
    } catch (err) {
      assert.match((err as Error).message, message);
    }
  });
}

test('policy record: spec must be JSON of a valid spec; the record carries the normalized spec', () => {
  const ok = validatePolicyRecord({ cluster_id: 'c1', namespace: 'backend', name: 'p', spec: JSON.stringify({ appliedTo: {}, ingress: [] }), generation: 3 });
  assert.is(ok.record.spec, JSON.stringify(ok.spec));
  assert.is(errorCode(() => validatePolicyRecord({ cluster_id: 'c1', namespace: 'backend', name: 'p', spec: '{' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => validatePolicyRecord({ cluster_id: 'c1', namespace: 'Backend', name: 'p', spec: '{"appliedTo":{}}' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => validatePolicyRecord({ cluster_id: 'c1', namespace: 'b', name: 'p', spec: 'x'.repeat(70_000) })), ErrorCodes.INVALID_ARGUMENT);
});

const set = (pods: unknown[], identities: unknown[] = [{ id: 1, labels: { app: 'web' } }]): unknown => ({ cluster_id: 'c2', namespace: 'web', namespace_labels: { team: 'web' }, identities, pods });

test('identity set: pods inside the pod CIDRs, each naming an identity of the record', () => {
  const s = validateIdentitySet(set([{ ip: '10.2.1.9', name: 'web-b', identity: 1 }, { ip: '10.2.0.5', name: 'web-a', identity: 1 }]), ['10.2.0.0/16']);
  assert.equal(s.pods.map((p) => p.ip), ['10.2.0.5', '10.2.1.9']);
});

const badSets: [string, unknown, RegExp][] = [
  ['an address outside the cluster\'s pod CIDRs (another cluster\'s)', set([{ ip: '10.3.0.5', name: 'x', identity: 1 }]), /outside the pod CIDRs of cluster c2/],
  ['an unknown identity', set([{ ip: '10.2.0.5', name: 'x', identity: 2 }]), /names no identity/],
  ['an IP twice', set([{ ip: '10.2.0.5', name: 'x', identity: 1 }, { ip: '10.2.0.5', name: 'y', identity: 1 }]), /listed twice/],
  ['an identity id twice', set([], [{ id: 1, labels: {} }, { id: 1, labels: {} }]), /used twice/],
  ['not an IP', set([{ ip: '10.2.0', name: 'x', identity: 1 }]), /is not an IP address/],
  ['a bad label', set([], [{ id: 1, labels: { 'a b': 'x' } }]), /not a label name/],
];
for (const [name, s, message] of badSets) {
  test(`identity set refused: ${name}`, () => {
    try {
      validateIdentitySet(s, ['10.2.0.0/16']);
      assert.unreachable('accepted');
    } catch (err) {
      assert.is((err as { code?: string }).code, ErrorCodes.INVALID_ARGUMENT);
      assert.match((err as Error).message, message);
    }
  });
}

test.run();
