import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fieldValue, imageKind, launchFor, mountScript, runsNothing, shQuote, type LaunchContext } from './containers.ts';

const onPath = new Set(['/usr/bin/sh', '/usr/bin/socat', '/usr/bin/sleep', '/usr/bin/busybox', '/usr/bin/etcd']);
const ctx: LaunchContext = {
  corednsBinary: '/x/coredns',
  html: '/pod/html',
  which: (n) => (n.startsWith('/') ? (onPath.has(n) ? n : undefined) : [...onPath].find((p) => p.endsWith(`/${n}`))),
  applets: new Set(['nc', 'wget', 'sh']),
};

test('image kinds', () => {
  assert.is(imageKind('isthmus/echo'), 'echo');
  assert.is(imageKind('isthmus/echo:1.2'), 'echo');
  assert.is(imageKind('ghcr.io/isthmus/echo:dev'), 'echo');
  assert.is(imageKind('isthmus:dev'), 'isthmus');
  assert.is(imageKind('isthmus-gateway:0.1'), 'isthmus');
  assert.is(imageKind('registry.k8s.io/coredns/coredns:v1.12.0'), 'coredns');
  assert.is(imageKind('coredns/coredns'), 'coredns');
  assert.is(imageKind('nginx:1.27'), 'other');
  assert.is(imageKind('busybox'), 'other');
});

test('launch: echo on its container ports, isthmus with its args, coredns binary', () => {
  const echo = launchFor({ name: 'e', image: 'isthmus/echo', ports: [{ containerPort: 9000 }, { containerPort: 9001 }] }, ctx);
  assert.equal(echo !== undefined && 'args' in echo ? echo.args.slice(-4) : [], ['sandbox', 'echo', '--ports', '9000,9001']);
  const dflt = launchFor({ name: 'e', image: 'isthmus/echo:dev' }, ctx);
  assert.equal(dflt !== undefined && 'args' in dflt ? dflt.args.slice(-1) : [], ['8080']);
  const gw = launchFor({ name: 'g', image: 'isthmus:dev', command: ['isthmus'], args: ['gateway', '--cluster', 'c1'] }, ctx);
  assert.equal(gw !== undefined && 'args' in gw ? gw.args.slice(-3) : [], ['gateway', '--cluster', 'c1']);
  const dns = launchFor({ name: 'd', image: 'coredns/coredns:1.12', args: ['-conf', '/etc/coredns/Corefile'] }, ctx);
  assert.equal(dns, { command: '/x/coredns', args: ['-conf', '/etc/coredns/Corefile'] });
});

test('launch: other images by the command/args rules, with the machine programs', () => {
  assert.equal(launchFor({ name: 's', image: 'alpine/socat', args: ['tcp-l:80,fork', 'exec:cat'] }, ctx), { command: '/usr/bin/socat', args: ['tcp-l:80,fork', 'exec:cat'] });
  assert.equal(launchFor({ name: 'b', image: 'busybox', command: ['nc', '-l', '-p', '80'] }, ctx), { command: '/usr/bin/busybox', args: ['nc', '-l', '-p', '80'] });
  assert.equal(launchFor({ name: 'p', image: 'registry.k8s.io/pause:3.10' }, ctx), { command: '/usr/bin/sleep', args: ['infinity'] });
  assert.equal(launchFor({ name: 'n', image: 'nginx:1.27' }, ctx), { command: '/usr/bin/busybox', args: ['httpd', '-f', '-p', '80', '-h', '/pod/html'] });
  assert.equal(launchFor({ name: 'e', image: 'registry.k8s.io/etcd:3.5.21-0', command: ['/usr/local/bin/etcd', '--name', 'x'] }, ctx), { command: '/usr/bin/etcd', args: ['--name', 'x'] });
  assert.equal(launchFor({ name: 'z', image: 'nicolaka/netshoot' }, ctx), { missing: 'zsh' });
  assert.equal(launchFor({ name: 'q', image: 'example.com/thing', command: ['frobnicate'] }, ctx), { missing: 'frobnicate' });
  assert.is(launchFor({ name: 'u', image: 'example.com/thing' }, ctx), undefined);
  assert.ok(runsNothing({ name: 'u', image: 'example.com/thing' }));
  assert.not.ok(runsNothing({ name: 'u', image: 'example.com/thing', command: ['sleep', '1'] }));
  assert.not.ok(runsNothing({ name: 'b', image: 'busybox' }));
});

test('fieldRef values', () => {
  const pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u', labels: { app: 'a' } }, spec: { nodeName: 'c1-n1', containers: [] } };
  assert.is(fieldValue(pod, 'metadata.name', '172.30.1.11', '10.1.0.2'), 'p');
  assert.is(fieldValue(pod, 'status.podIP', '172.30.1.11', '10.1.0.2'), '10.1.0.2');
  assert.is(fieldValue(pod, 'status.hostIP', '172.30.1.11', '10.1.0.2'), '172.30.1.11');
  // the plural fields (the MCS conformance suite's socat pods read status.podIPs)
  assert.is(fieldValue(pod, 'status.podIPs', '172.30.1.11', '10.1.0.2'), '10.1.0.2');
  assert.is(fieldValue(pod, 'status.hostIPs', '172.30.1.11', '10.1.0.2'), '172.30.1.11');
  assert.is(fieldValue(pod, "metadata.labels['app']", '', ''), 'a');
  assert.is(fieldValue(pod, 'spec.unknown', '', ''), undefined);
});

test('mount script sets the hostname, quotes paths, enters the working folder and ends by exec', () => {
  const s = mountScript([{ source: "/a/it's", target: '/etc/x', readOnly: true }], 'web-0', '/srv');
  assert.match(s, "hostname 'web-0'");
  assert.match(s, "mount --bind '/a/it'\\''s' '/etc/x'");
  assert.match(s, 'remount,bind,ro');
  assert.match(s, "cd '/srv'");
  assert.ok(s.endsWith('exec "$@"'));
  assert.not.match(mountScript([]), 'hostname');
  assert.is(shQuote('plain'), "'plain'");
});

test.run();
