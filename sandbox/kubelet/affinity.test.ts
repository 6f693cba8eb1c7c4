import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Pod } from '@kubernetes/client-node';
import { antiAffinityBlocked } from './affinity.ts';

const gateway = (uid: string, ns = 'isthmus-system'): V1Pod => ({
  metadata: { uid, namespace: ns, labels: { 'app.kubernetes.io/name': 'isthmus-gateway' } },
  spec: { containers: [], affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'isthmus-gateway' } } }] } } },
});
const other = (uid: string): V1Pod => ({ metadata: { uid, namespace: 'isthmus-system', labels: { app: 'x' } }, spec: { containers: [] } });

test('required anti-affinity on hostname: nodes with a matching pod of the namespace are blocked; itself, other labels and namespaces are not', () => {
  const me = gateway('new');
  assert.equal([...antiAffinityBlocked(me, [{ pod: gateway('a'), node: 'c1-n1' }, { pod: other('b'), node: 'c1-n2' }, { pod: gateway('c', 'elsewhere'), node: 'c1-n3' }, { pod: me, node: 'c1-n4' }])], ['c1-n1']);
  assert.equal([...antiAffinityBlocked(other('z'), [{ pod: gateway('a'), node: 'c1-n1' }])], [], 'no terms, no block');
});

test.run();
