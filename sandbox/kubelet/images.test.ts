import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { containerArgv, expandVars, imageConfig, imageRepo, resolveProgram, substitute } from './images.ts';

test('image repositories without registry defaults, tags and digests', () => {
  assert.is(imageRepo('nginx'), 'nginx');
  assert.is(imageRepo('docker.io/library/nginx:1.27'), 'nginx');
  assert.is(imageRepo('alpine/socat:1.8.0.3'), 'alpine/socat');
  assert.is(imageRepo('localhost:5000/tools/x@sha256:abc'), 'localhost:5000/tools/x');
  assert.is(imageRepo('registry.k8s.io/e2e-test-images/agnhost:2.53'), 'registry.k8s.io/e2e-test-images/agnhost');
});

test('the table knows the images of the upstream suites', () => {
  assert.equal(imageConfig('busybox:1.36')?.cmd, ['sh']);
  assert.equal(imageConfig('alpine/socat')?.entrypoint, ['socat']);
  assert.equal(imageConfig('registry.k8s.io/pause:3.10')?.entrypoint, ['/pause']);
  assert.equal(imageConfig('registry.k8s.io/e2e-test-images/agnhost:2.53')?.cmd, ['pause']);
  assert.equal(imageConfig('registry.k8s.io/etcd:3.5.21-0')?.cmd, ['/usr/local/bin/etcd']);
  assert.equal(imageConfig('quay.io/coreos/etcd:v3.5')?.cmd, ['/usr/local/bin/etcd']);
  assert.ok(imageConfig('nginxinc/nginx-unprivileged'));
  assert.is(imageConfig('example.com/unknown'), undefined);
});

test("Kubernetes' command/args rules", () => {
  const img = { entrypoint: ['/ep'], cmd: ['default'], busybox: false };
  assert.equal(containerArgv({}, img), ['/ep', 'default']);
  assert.equal(containerArgv({ args: ['a'] }, img), ['/ep', 'a']);
  assert.equal(containerArgv({ args: [] }, img), ['/ep']);
  assert.equal(containerArgv({ command: ['c'] }, img), ['c']);
  assert.equal(containerArgv({ command: ['c'], args: ['a'] }, img), ['c', 'a']);
  assert.equal(containerArgv({ args: ['x'] }, undefined), ['x']);
  assert.is(containerArgv({}, undefined), undefined);
});

test('$(VAR) expansion: defined variables, $$ escapes, unknown references stay', () => {
  const env = { MY_POD_IP: '10.1.0.5', A: 'x' };
  assert.is(expandVars('SYSTEM:echo pod ip $(MY_POD_IP)', env), 'SYSTEM:echo pod ip 10.1.0.5');
  assert.is(expandVars('$$(A) $(A) $(B) $ $(', env), '$(A) x $(B) $ $(');
  assert.is(expandVars('cost: $$5', env), 'cost: $5');
});

test('stand-ins for image binaries', () => {
  const ctx = { html: '/h', agnhost: ['node', 'cli', 'sandbox', 'agnhost'] };
  assert.equal(substitute(['/pause'], ctx), ['sleep', 'infinity']);
  assert.equal(substitute(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'], ctx), ['busybox', 'httpd', '-f', '-p', '80', '-h', '/h']);
  assert.equal(substitute(['/agnhost', 'netexec', '--http-port=8080'], ctx), ['node', 'cli', 'sandbox', 'agnhost', 'netexec', '--http-port=8080']);
  assert.equal(substitute(['sh', '-c', 'x'], ctx), ['sh', '-c', 'x']);
});

test('programs: absolute paths fall back to the base name; busybox applets only for busybox images', () => {
  const which = (n: string): string | undefined => ({ sh: '/bin/sh', busybox: '/bin/busybox', etcd: '/usr/bin/etcd' } as Record<string, string>)[n];
  const applets = new Set(['wget']);
  assert.equal(resolveProgram(['/usr/local/bin/etcd', '-x'], false, which, applets), { argv: ['/usr/bin/etcd', '-x'] });
  assert.equal(resolveProgram(['wget', 'u'], true, which, applets), { argv: ['/bin/busybox', 'wget', 'u'] });
  assert.equal(resolveProgram(['wget', 'u'], false, which, applets), { missing: 'wget' });
  assert.equal(resolveProgram([], false, which, applets), { missing: '(empty command)' });
});

test.run();
