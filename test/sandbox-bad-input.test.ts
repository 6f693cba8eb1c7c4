// e2e, needs root: every bad input to `isthmus sandbox` gets a clear error that says
// what to do, and leaves nothing behind.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isthmus, requireRootForTest, run } from './lib/cli.ts';
import { projectRoot } from '../sandbox/index.ts';

requireRootForTest('test/sandbox-bad-input.test.ts');
const dir = mkdtempSync('/tmp/isthmus-bad-');
chmodSync(dir, 0o755);
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const PORT_BASE = 27400;

test.after(async () => {
  await isthmus(['sandbox', 'down'], env);
  execFileSync('rm', ['-rf', dir]);
});

function nothingLeft(): void {
  assert.not.ok(existsSync(join(sbx, 'state.json')), 'state.json was written');
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  assert.not.match(links, /isb-c\d/);
}

test('not root: says why root is needed', async () => {
  const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--no-warnings', join(projectRoot(), 'cli', 'main.ts'), 'sandbox', 'up', '--dir', sbx]);
  assert.is(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, 'needs root');
  assert.match(r.stderr, 'CAP_NET_ADMIN');
  nothingLeft();
});

test('missing binaries: names them and the set-up command', async () => {
  const r = await isthmus(['sandbox', 'up', '--port-base', String(PORT_BASE)], { ...env, ISTHMUS_KUBE_BIN_DIR: join(dir, 'nowhere') });
  assert.is(r.code, 1);
  assert.match(r.stderr, join(dir, 'nowhere', 'kube-apiserver'));
  assert.match(r.stderr, './setup');
  nothingLeft();
});

test('--proxy-mode: an unknown mode is named; ipvs on a kernel without ip_vs (this one) says so', async () => {
  const bad = await isthmus(['sandbox', 'up', '--proxy-mode', 'userspace', '--port-base', String(PORT_BASE)], env);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /proxyMode: must be one of iptables, nftables, ipvs/);
  if (existsSync('/proc/net/ip_vs')) return; // a kernel with IPVS runs it
  const r = await isthmus(['sandbox', 'up', '--proxy-mode', 'ipvs', '--port-base', String(PORT_BASE)], env);
  assert.is(r.code, 1);
  assert.match(r.stderr, /ip_vs/);
  nothingLeft();
});

test('port in use: names the port and its owner', async () => {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(PORT_BASE + 11, '127.0.0.1', resolve));
  try {
    const r = await isthmus(['sandbox', 'up', '--clusters', '2', '--port-base', String(PORT_BASE)], env);
    assert.is(r.code, 1);
    assert.match(r.stderr, `port 0.0.0.0:${PORT_BASE + 11} (c2 etcdClient) is already in use`);
    nothingLeft();
  } finally {
    server.close();
  }
});

test('CIDR in use: names the CIDR and the route', async () => {
  execFileSync('ip', ['link', 'add', 'isbt-dummy0', 'type', 'bridge']);
  try {
    execFileSync('ip', ['addr', 'add', '10.2.7.1/24', 'dev', 'isbt-dummy0']);
    execFileSync('ip', ['link', 'set', 'isbt-dummy0', 'up']);
    const r = await isthmus(['sandbox', 'up', '--clusters', '2', '--port-base', String(PORT_BASE)], env);
    assert.is(r.code, 1);
    assert.match(r.stderr, "c2's CIDR 10.2.0.0/16 overlaps the host route 10.2.7.0/24");
    nothingLeft();
  } finally {
    execFileSync('ip', ['link', 'delete', 'isbt-dummy0']);
  }
});

test('bad option values and unknown options are refused before anything starts', async () => {
  const bad = await isthmus(['sandbox', 'up', '--clusters', '40', '--port-base', 'x'], env);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, 'clusters: must be between 1 and 16, got 40');
  assert.match(bad.stderr, 'portBase: must be a whole number');
  const typo = await isthmus(['sandbox', 'up', '--clustres', '2'], env);
  assert.match(typo.stderr, 'clustres: unknown option');
  const sub = await isthmus(['sandbox', 'upp'], env);
  assert.is(sub.code, 1);
  assert.match(sub.stderr, 'unknown sandbox command "upp"');
  nothingLeft();
});

test('status and down with no sandbox say so', async () => {
  const s = await isthmus(['sandbox', 'status'], env);
  assert.is(s.code, 3);
  assert.match(s.stdout, 'no sandbox');
  const d = await isthmus(['sandbox', 'down'], env);
  assert.is(d.code, 0);
  assert.match(d.stdout, 'nothing to do');
});

test('a component that cannot start: the error shows its log, and nothing is left', async () => {
  // an etcd that exits at once stands in for any component failing during up
  const fakeEtcd = join(dir, 'etcd-that-fails');
  execFileSync('sh', ['-c', `printf '#!/bin/sh\\necho "etcd: cannot open data dir" >&2\\nexit 1\\n' > ${fakeEtcd}; chmod +x ${fakeEtcd}`]);
  const r = await isthmus(['sandbox', 'up', '--clusters', '1', '--port-base', String(PORT_BASE)], { ...env, ISTHMUS_ETCD: fakeEtcd });
  assert.is(r.code, 1);
  assert.match(r.stderr, 'c1 etcd exited during start');
  assert.match(r.stderr, 'cannot open data dir');
  nothingLeft();
  assert.not.ok(existsSync(sbx));
});

test.run();
