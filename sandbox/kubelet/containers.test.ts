import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fieldValue, imageKind, launchFor, mountScript, shQuote } from './containers.ts';

test('image kinds', () => {
  assert.is(imageKind('isthmus/echo'), 'echo');
  assert.is(imageKind('isthmus/echo:1.2'), 'echo');
  assert.is(imageKind('ghcr.io/isthmus/echo:dev'), 'echo');
  assert.is(imageKind('isthmus:dev'), 'isthmus');
  assert.is(imageKind('isthmus-gateway:0.1'), 'isthmus');
  assert.is(imageKind('registry.k8s.io/coredns/coredns:v1.12.0'), 'coredns');
  assert.is(imageKind('coredns/coredns'), 'coredns');
  assert.is(imageKind('nginx:1.27'), 'none');
  assert.is(imageKind('busybox'), 'none');
});

test('launch: echo on its container ports, isthmus with its args, none for others', () => {
  const echo = launchFor({ name: 'e', image: 'isthmus/echo', ports: [{ containerPort: 9000 }, { containerPort: 9001 }] }, '/x/coredns');
  assert.equal(echo?.args.slice(-4), ['sandbox', 'echo', '--ports', '9000,9001']);
  const dflt = launchFor({ name: 'e', image: 'isthmus/echo:dev' }, '/x/coredns');
  assert.equal(dflt?.args.slice(-1), ['8080']);
  const gw = launchFor({ name: 'g', image: 'isthmus:dev', command: ['isthmus'], args: ['gateway', '--cluster', 'c1'] }, '/x/coredns');
  assert.equal(gw?.args.slice(-3), ['gateway', '--cluster', 'c1']);
  const dns = launchFor({ name: 'd', image: 'coredns/coredns:1.12', args: ['-conf', '/etc/coredns/Corefile'] }, '/x/coredns');
  assert.equal(dns, { command: '/x/coredns', args: ['-conf', '/etc/coredns/Corefile'] });
  assert.is(launchFor({ name: 'n', image: 'nginx' }, '/x/coredns'), undefined);
});

test('fieldRef values', () => {
  const pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u', labels: { app: 'a' } }, spec: { nodeName: 'c1-n1', containers: [] } };
  assert.is(fieldValue(pod, 'metadata.name', '172.30.1.11', '10.1.0.2'), 'p');
  assert.is(fieldValue(pod, 'status.podIP', '172.30.1.11', '10.1.0.2'), '10.1.0.2');
  assert.is(fieldValue(pod, 'status.hostIP', '172.30.1.11', '10.1.0.2'), '172.30.1.11');
  assert.is(fieldValue(pod, "metadata.labels['app']", '', ''), 'a');
  assert.is(fieldValue(pod, 'spec.unknown', '', ''), undefined);
});

test('mount script quotes paths and ends by exec', () => {
  const s = mountScript([{ source: "/a/it's", target: '/etc/x', readOnly: true }]);
  assert.match(s, "mount --bind '/a/it'\\''s' '/etc/x'");
  assert.match(s, 'remount,bind,ro');
  assert.ok(s.endsWith('exec "$@"'));
  assert.is(shQuote('plain'), "'plain'");
});

test.run();
