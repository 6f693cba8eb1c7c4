import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from './errors.ts';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeRest, kubeTargetFrom, loadKubeTarget } from './kube-lite.ts';

const cfg = (o: { current?: string; clusters?: unknown[]; users?: unknown[]; contexts?: unknown[] }): unknown => ({
  apiVersion: 'v1', kind: 'Config', ...(o.current === undefined ? {} : { 'current-context': o.current }),
  clusters: o.clusters ?? [{ name: 'c1', cluster: { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': Buffer.from('CA1').toString('base64') } }],
  users: o.users ?? [{ name: 'u1', user: { token: 'T1' } }],
  contexts: o.contexts ?? [{ name: 'ctx1', context: { cluster: 'c1', user: 'u1' } }],
});

const fails = (fn: () => unknown, code: string, re: RegExp): void => {
  try {
    fn();
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, code);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable('did not throw');
};

test('a token kubeconfig: server without its trailing slash, CA bytes, the token', () => {
  const t = kubeTargetFrom([{ doc: cfg({ current: 'ctx1' }), file: '/x/config' }], undefined, '/x/config');
  assert.is(t.server, 'https://10.0.0.1:6443');
  assert.is(t.ca?.toString(), 'CA1');
  assert.is(t.token, 'T1');
  assert.is(t.insecure, false);
});

test('files named by the config are read relative to it; --context picks another context; the first definition of a name wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kl-'));
  try {
    writeFileSync(join(dir, 'crt.pem'), 'CERT');
    writeFileSync(join(dir, 'key.pem'), 'KEY');
    const second = cfg({
      current: 'ctx2',
      clusters: [{ name: 'c1', cluster: { server: 'https://shadowed' } }, { name: 'c2', cluster: { server: 'http://127.0.0.1:8080', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u2', user: { 'client-certificate': 'crt.pem', 'client-key': join(dir, 'key.pem') } }],
      contexts: [{ name: 'ctx2', context: { cluster: 'c2', user: 'u2' } }],
    });
    const docs = [{ doc: cfg({}), file: '/elsewhere/a' }, { doc: second, file: join(dir, 'b') }];
    const t = kubeTargetFrom(docs, undefined, 'a:b');
    assert.is(t.server, 'http://127.0.0.1:8080', 'current-context of the first file that sets one');
    assert.is(t.cert?.toString(), 'CERT');
    assert.is(t.key?.toString(), 'KEY');
    assert.is(t.insecure, true);
    assert.is(kubeTargetFrom(docs, 'ctx1', 'a:b').server, 'https://10.0.0.1:6443', 'cluster c1 from the first file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad kubeconfigs: each error names the problem and what to do', () => {
  const one = (doc: unknown, context?: string) => () => kubeTargetFrom([{ doc, file: '/k' }], context, '/k');
  fails(one({ apiVersion: 'v1' }), ErrorCodes.INVALID_CONFIG, /defines no contexts; check that it is a kubeconfig file/);
  fails(one(cfg({})), ErrorCodes.INVALID_CONFIG, /sets no current-context \(available: ctx1\); pass --context/);
  fails(one(cfg({}), 'nope'), ErrorCodes.NOT_FOUND, /context "nope" is not in kubeconfig \/k \(available: ctx1\)/);
  fails(one(cfg({ current: 'gone' })), ErrorCodes.INVALID_CONFIG, /current-context "gone" is not defined/);
  fails(one(cfg({ current: 'ctx1', clusters: [] })), ErrorCodes.INVALID_CONFIG, /names cluster "c1", which is not defined there/);
  fails(one(cfg({ current: 'ctx1', users: [] })), ErrorCodes.INVALID_CONFIG, /names user "u1", which is not defined there/);
  fails(one(cfg({ current: 'ctx1', clusters: [{ name: 'c1', cluster: {} }] })), ErrorCodes.INVALID_CONFIG, /cluster "c1" has no server/);
  fails(one(cfg({ current: 'ctx1', users: [{ name: 'u1', user: { exec: { command: 'aws' } } }] })), ErrorCodes.INVALID_CONFIG, /exec or auth-provider plugin.*ServiceAccount token/);
  fails(one(cfg({ current: 'ctx1', users: [{ name: 'u1', user: { 'client-certificate': 'missing.pem' } }] })), ErrorCodes.INVALID_CONFIG, /client-certificate file \/missing.pem cannot be read/);
  fails(one('just a string'), ErrorCodes.INVALID_CONFIG, /defines no contexts/);
});

test('loadKubeTarget: a missing file and a file that is not YAML', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kl-'));
  try {
    fails(() => loadKubeTarget({ kubeconfig: join(dir, 'none') }), ErrorCodes.NOT_FOUND, /does not exist: check the --kubeconfig path/);
    writeFileSync(join(dir, 'bad'), 'a: [unclosed\n');
    fails(() => loadKubeTarget({ kubeconfig: join(dir, 'bad') }), ErrorCodes.INVALID_CONFIG, /cannot be read: .*valid kubeconfig YAML/);
    writeFileSync(join(dir, 'good'), JSON.stringify(cfg({ current: 'ctx1' })));
    assert.is(loadKubeTarget({ kubeconfig: join(dir, 'good') }).token, 'T1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a watch that goes silent ends after idleMs (the caller resumes it); one that keeps talking does not; a broken one rejects', async () => {
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    open.add(res);
    res.writeHead(200, { 'content-type': 'application/json' });
    const added = (n: string): string => `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: n } } })}\n`;
    if (req.url?.startsWith('/silent')) res.write(added('a')); // then nothing, never ended
    if (req.url?.startsWith('/chatty')) {
      let n = 0;
      const t = setInterval(() => {
        n += 1;
        if (n <= 5) res.write(added(`b${n}`));
        else { clearInterval(t); res.end(); }
      }, 60);
    }
    if (req.url?.startsWith('/broken')) { res.write('{"type":"ADDED","obj'); setTimeout(() => res.socket?.destroy(), 20); }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const rest = new KubeRest({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, insecure: false, source: 'test' });
  try {
    const seen: string[] = [];
    const on = (e: { type: string; object: unknown }): void => void seen.push(`${e.type} ${String((e.object as { metadata: { name: string } }).metadata.name)}`);
    const t0 = Date.now();
    await rest.watch('/silent', on, new AbortController().signal, 200);
    assert.ok(Date.now() - t0 >= 190, 'ended by the idle timer');
    assert.equal(seen, ['ADDED a']);
    seen.length = 0;
    await rest.watch('/chatty', on, new AbortController().signal, 200); // 300 ms in all, never 200 ms quiet
    assert.equal(seen, ['ADDED b1', 'ADDED b2', 'ADDED b3', 'ADDED b4', 'ADDED b5']);
    let failed = false;
    await rest.watch('/broken', on, new AbortController().signal, 5_000).catch(() => (failed = true));
    assert.ok(failed, 'a connection that breaks mid-line rejects');
  } finally {
    for (const r of open) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test.run();
