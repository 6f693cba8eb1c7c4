import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from './errors.ts';
import { loadKubeConfig } from './kube.ts';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-kube-'));
const savedEnv = { KUBECONFIG: process.env['KUBECONFIG'], HOME: process.env['HOME'] };

function kubeconfig(name: string, opts: { current?: string; contexts?: string } = {}): string {
  const file = join(dir, name);
  const contexts =
    opts.contexts ??
    `- name: c1
  context: { cluster: c1, user: admin1 }
- name: c2
  context: { cluster: c2, user: admin2, namespace: tools }`;
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: { server: "https://127.0.0.1:6441", insecure-skip-tls-verify: true }
- name: c2
  cluster: { server: "https://127.0.0.1:6442", insecure-skip-tls-verify: true }
users:
- name: admin1
  user: { token: t1 }
- name: admin2
  user: { token: t2 }
contexts:
${contexts}
${opts.current === undefined ? '' : `current-context: ${opts.current}`}
`,
  );
  return file;
}

function fails(fn: () => unknown, code: string, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, code);
    assert.match((err as IsthmusError).message, re);
    return;
  }
  assert.unreachable('expected a throw');
}

test.before.each(() => {
  delete process.env['KUBECONFIG'];
});

test.after(() => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('loads a file and uses its current-context', () => {
  const kc = loadKubeConfig({ kubeconfig: kubeconfig('a.yaml', { current: 'c1' }) });
  assert.is(kc.getCurrentContext(), 'c1');
  assert.is(kc.getCurrentCluster()?.server, 'https://127.0.0.1:6441');
  assert.is(kc.getCurrentUser()?.token, 't1');
});

test('context option selects another context', () => {
  const kc = loadKubeConfig({ kubeconfig: kubeconfig('b.yaml', { current: 'c1' }), context: 'c2' });
  assert.is(kc.getCurrentContext(), 'c2');
  assert.is(kc.getCurrentCluster()?.server, 'https://127.0.0.1:6442');
  // A file with no current-context is fine when a context is given.
  const kc2 = loadKubeConfig({ kubeconfig: kubeconfig('c.yaml'), context: 'c2' });
  assert.is(kc2.getCurrentUser()?.token, 't2');
});

test('missing file: NOT_FOUND naming the path', () => {
  const missing = join(dir, 'nope.yaml');
  fails(() => loadKubeConfig({ kubeconfig: missing }), ErrorCodes.NOT_FOUND, new RegExp(`${missing}.*does not exist.*--kubeconfig`));
});

test('missing context: NOT_FOUND listing the available ones', () => {
  const file = kubeconfig('d.yaml', { current: 'c1' });
  fails(() => loadKubeConfig({ kubeconfig: file, context: 'c9' }), ErrorCodes.NOT_FOUND, /context "c9" is not in kubeconfig .*d\.yaml \(available: c1, c2\)/);
});

test('no usable current-context: INVALID_CONFIG asking for --context', () => {
  fails(() => loadKubeConfig({ kubeconfig: kubeconfig('e.yaml') }), ErrorCodes.INVALID_CONFIG, /sets no current-context \(available: c1, c2\); pass --context/);
  fails(() => loadKubeConfig({ kubeconfig: kubeconfig('f.yaml', { current: 'gone' }) }), ErrorCodes.INVALID_CONFIG, /current-context "gone" is not defined/);
});

test('context naming an undefined cluster or user: INVALID_CONFIG', () => {
  const file = kubeconfig('g.yaml', {
    current: 'bad',
    contexts: `- name: bad
  context: { cluster: c7, user: admin1 }
- name: baduser
  context: { cluster: c1, user: nobody }`,
  });
  fails(() => loadKubeConfig({ kubeconfig: file }), ErrorCodes.INVALID_CONFIG, /names cluster "c7", which is not defined/);
  fails(() => loadKubeConfig({ kubeconfig: file, context: 'baduser' }), ErrorCodes.INVALID_CONFIG, /names user "nobody"/);
});

test('unparseable file: INVALID_CONFIG with the cause', () => {
  const file = join(dir, 'garbage.yaml');
  writeFileSync(file, 'clusters: [unclosed\n');
  fails(() => loadKubeConfig({ kubeconfig: file }), ErrorCodes.INVALID_CONFIG, /garbage\.yaml cannot be read: .*valid kubeconfig/);
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '');
  fails(() => loadKubeConfig({ kubeconfig: empty }), ErrorCodes.INVALID_CONFIG, /empty\.yaml/);
  fails(() => loadKubeConfig({ kubeconfig: dir }), ErrorCodes.INVALID_CONFIG, /cannot be read/);
  const notKube = join(dir, 'hostname');
  writeFileSync(notKube, 'my-laptop\n');
  fails(() => loadKubeConfig({ kubeconfig: notKube }), ErrorCodes.INVALID_CONFIG, /defines no contexts; check that it is a kubeconfig file/);
});

test('KUBECONFIG: used when no path is given; a missing file is NOT_FOUND', () => {
  process.env['KUBECONFIG'] = kubeconfig('h.yaml', { current: 'c2' });
  assert.is(loadKubeConfig().getCurrentContext(), 'c2');
  process.env['KUBECONFIG'] = join(dir, 'missing.yaml');
  fails(() => loadKubeConfig(), ErrorCodes.NOT_FOUND, /missing\.yaml does not exist: fix the KUBECONFIG/);
  // An explicit path wins over KUBECONFIG.
  assert.is(loadKubeConfig({ kubeconfig: kubeconfig('i.yaml', { current: 'c1' }) }).getCurrentContext(), 'c1');
});

test('~/.kube/config is the fallback; nothing at all is NOT_FOUND, not localhost:8080', () => {
  const home = mkdtempSync(join(dir, 'home-'));
  process.env['HOME'] = home;
  if (!existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) {
    fails(() => loadKubeConfig(), ErrorCodes.NOT_FOUND, /no kubeconfig found: pass --kubeconfig, set KUBECONFIG/);
  }
  const kubeDir = join(home, '.kube');
  mkdirSync(kubeDir);
  writeFileSync(join(kubeDir, 'config'), `apiVersion: v1
kind: Config
clusters: [{ name: h, cluster: { server: "https://10.1.2.3:6443" } }]
users: [{ name: u, user: { token: x } }]
contexts: [{ name: h, context: { cluster: h, user: u } }]
current-context: h
`);
  assert.is(loadKubeConfig().getCurrentCluster()?.server, 'https://10.1.2.3:6443');
});

test.run();
