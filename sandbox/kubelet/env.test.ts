import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { envFor, type ContainerContext } from './runtime.ts';

test('env as a kubelet builds it: envFrom (ConfigMap, Secret, prefix), then env, which wins', async () => {
  const ctx = {
    pod: { metadata: { name: 'p', namespace: 'ns' }, spec: { nodeName: 'n1', containers: [] } },
    container: {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'cm' } }, { secretRef: { name: 's' }, prefix: 'S_' }, { configMapRef: { name: 'absent', optional: true } }],
      env: [{ name: 'A', value: 'from-env' }, { name: 'K', valueFrom: { configMapKeyRef: { name: 'cm', key: 'B' } } }],
    },
    netns: 'x', podDir: '/tmp', volumes: new Map(), podIp: '10.1.0.2', nodeIp: '172.30.1.11', cluster: 'c1', apiServiceIp: '10.101.0.1', corednsBinary: 'coredns', mountpointLog: '/tmp/m',
  } as unknown as ContainerContext;
  const objects: Record<string, Record<string, string>> = { 'configMap/cm': { A: 'from-cm', B: 'b' }, 'secret/s': { TOKEN: 't' } };
  const env = await envFor(ctx, async (_ns, name, key, kind) => objects[`${kind}/${name}`]?.[key], async (_ns, name, kind) => objects[`${kind}/${name}`]);
  assert.is(env['A'], 'from-env');
  assert.is(env['B'], 'b');
  assert.is(env['S_TOKEN'], 't');
  assert.is(env['K'], 'b');
  assert.is(env['NODE_NAME'], 'n1');
});

test.run();
