import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ObjectSerializer } from '../node_modules/@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { plainYaml, redactSecret } from './gather.ts';

test('YAML of client-node\'s typed objects (which js-yaml refuses as they are)', () => {
  const pod = ObjectSerializer.deserialize({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x', creationTimestamp: '2026-01-01T00:00:00Z' }, status: { phase: 'Running' } }, 'V1Pod', '') as object;
  assert.match(plainYaml({ items: [pod] }), /name: x[\s\S]*phase: Running/);
});

test('a gathered Secret keeps its name, type and key names, never a value', () => {
  const s = redactSecret({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'isthmus-broker-client', namespace: 'isthmus-system' }, data: { 'tls.key': Buffer.from('PRIVATE').toString('base64') } });
  assert.equal(s.data, { 'tls.key': '(redacted)' });
  assert.not.match(JSON.stringify(s), /UFJJVkFURQ|PRIVATE/);
});

test.run();
