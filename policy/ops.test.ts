import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { errorCode } from '../core/testing.ts';
import { parsePodRef, policiesOfManifest } from './ops.ts';

test('pod references: CLUSTER/NS/POD, with :PORT for the destination', () => {
  assert.equal(parsePodRef('c2/web/frontend-1', false), { cluster: 'c2', namespace: 'web', pod: 'frontend-1' });
  assert.equal(parsePodRef('c1/backend/api-0:8080', true), { cluster: 'c1', namespace: 'backend', pod: 'api-0', port: 8080 });
  for (const [text, withPort] of [['c2/web', false], ['c1/backend/api:0', true], ['c1/backend/api:70000', true], ['c1/backend/api', true], ['c2/web/f:80', false], ['C2/web/f', false]] as const) {
    assert.is(errorCode(() => parsePodRef(text, withPort)), ErrorCodes.INVALID_ARGUMENT, text);
  }
});

const doc = (spec: string, extra = ''): string => `apiVersion: isthmus.dev/v1alpha1
kind: ClusterSetNetworkPolicy
metadata:
  name: frontend-in${extra}
spec:
${spec}`;
const good = doc(`  appliedTo: { podSelector: { matchLabels: { app: backend } } }
  ingress:
    - { name: frontend, priority: 10, action: Allow, from: [{ clusters: { ids: [c2] } }], ports: [{ port: 8080 }] }
  default: Deny
`);

test('a manifest: every policy validated, namespace defaulted', () => {
  const got = policiesOfManifest(`${good}---\n${good.replace('frontend-in', 'second')}`, 'backend');
  assert.equal(got.map((p) => `${p.namespace}/${p.name}`), ['backend/frontend-in', 'backend/second']);
});

test('a manifest with a bad policy names the document and the field; nothing is applied', () => {
  const bad = doc('  appliedTo: {}\n  ingress: [{ name: a, priority: 1, action: Allow, ports: [{ port: 99999 }] }]\n');
  try {
    policiesOfManifest(`${good}---\n${bad}`, 'default');
    assert.unreachable('accepted');
  } catch (err) {
    assert.is((err as { code?: string }).code, ErrorCodes.INVALID_ARGUMENT);
    assert.match((err as Error).message, /document 2 \(frontend-in\): spec\.ingress\[0\]\.ports\[0\]\.port: port 99999 is out of range/);
  }
  assert.is(errorCode(() => policiesOfManifest('kind: ConfigMap\napiVersion: v1\nmetadata: { name: x }\n', 'default')), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => policiesOfManifest('a: [', 'default')), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => policiesOfManifest('', 'default')), ErrorCodes.INVALID_ARGUMENT);
});

test.run();
