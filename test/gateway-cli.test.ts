// `isthmus gateway` and `isthmus leave` refusing bad input before they change anything: no
// root, no sandbox (the kubeconfig points nowhere; nothing gets that far).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isthmus } from './lib/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-gwcli-'));
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(kubeconfig, JSON.stringify({
  apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
  clusters: [{ name: 'x', cluster: { server: 'https://127.0.0.1:1' } }], users: [{ name: 'u', user: { token: 't' } }],
  contexts: [{ name: 'x', context: { cluster: 'x', user: 'u' } }],
}));
mkdirSync(join(dir, 'empty-path'));
const good = ['--cluster', 'c1', '--hostname', 'gw1', '--broker', '127.0.0.1:1', '--broker-tls-dir', join(dir, 'tls'), '--private-ip', '127.0.0.1',
  '--pod-cidrs', '10.1.0.0/16', '--service-cidrs', '10.101.0.0/16', '--kubeconfig', kubeconfig, '--state-dir', join(dir, 'state'), '--nat-probe-port', '0'];

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('wg not installed: the gateway stops at start with an error naming the Debian package', async () => {
  const r = await isthmus(['gateway', ...good], { PATH: join(dir, 'empty-path') });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, '"wg" (Debian package wireguard-tools) is not installed');
});

test('bad options: every problem named at once, nothing started', async () => {
  const r = await isthmus(['gateway', '--cluster', 'C_1', '--driver', 'gre', '--private-ip', 'gw', '--pod-cidrs', '10.1.0.0/33', '--service-cidrs', '10.101.0.0/16',
    '--broker', '127.0.0.1:1', '--broker-tls-dir', dir, '--lease-ms', '10']);
  assert.is(r.code, 1);
  for (const want of ['cluster: "C_1" is not an RFC-1123 label', 'driver: must be one of wireguard, ipsec, vxlan', 'privateIp: "gw" is not a valid IP address', 'podCidrs: item 1', 'leaseMs']) {
    assert.match(r.stderr, want);
  }
});

test('ipsec without credentials: says which option to give', async () => {
  const r = await isthmus(['gateway', ...good, '--driver', 'ipsec']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, 'ipsec needs --tls-dir (certificates) or --psk-file');
});

test('leave: missing options and a bad broker address are refused', async () => {
  const r = await isthmus(['leave', '--cluster', 'c1', '--broker', 'nowhere']);
  assert.is(r.code, 1);
  assert.match(r.stderr, 'broker: "nowhere" is not host:port');
  assert.match(r.stderr, 'brokerTlsDir: is required');
});

test.run();
