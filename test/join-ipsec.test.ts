// e2e, needs root: `isthmus join` with the IPsec cable driver, on the sandbox, as a user
// runs it — `broker deploy --cable-driver ipsec` in c1, `join --wait` of c1 and c2. Each
// cluster's gateway nodes get an IPsec certificate `<node>.<cluster>` from the broker for a
// key made in the cluster (the cluster's own certificate authenticates the request), kept
// in one Secret; the gateway pods run charon (kernel-libipsec here: no kernel ESP) with
// them; a pod on a node that is not a gateway reaches a pod of the other cluster with its
// own source address; a re-run keeps the certificates; uninstall leaves no charon, device,
// rule or state behind.
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { certificateInfo } from '../core/index.ts';
import { clientPodManifest, echoManifest } from '../sandbox/index.ts';
import { eventually, isthmus, ok, requireRootForTest, sandboxSession } from './lib/cli.ts';

requireRootForTest('test/join-ipsec.test.ts');
const { env, f, k, cli, down } = sandboxSession('/tmp/isthmus-join-ipsec-');


test.after(down);

test('broker deploy --cable-driver ipsec; join c1 and c2 --wait: an IPsec certificate per gateway node, the cable connected', async () => {
  ok(await isthmus(['sandbox', 'up', '--clusters', '2', '--port-base', '27900'], env), 'sandbox up');
  ok(await cli(['broker', 'deploy', '--context', 'c1', '--service-type', 'NodePort', '--node-selector', 'isthmus.dev/gateway-capable=true',
    '--etcd-storage', 'emptyDir', '--cable-driver', 'ipsec', '--out', f('c1.json')]), 'broker deploy');
  ok(await cli(['broker', 'token', '--context', 'c1', '--out', f('c2.json')]), 'token c2');
  for (const c of ['c1', 'c2']) {
    const r = ok(await cli(['join', f(`${c}.json`), '--context', c, '--cluster-id', c, '--wait']), `join ${c}`);
    assert.match(r.stdout, new RegExp(`IPsec certificates for ${c}-n1\\.${c} from the broker`));
    assert.match(r.stdout, /gateway Deployment \(1 replica, ipsec\)/);
    const secret = JSON.parse(await k(c, ['-n', 'isthmus-system', 'get', 'secret', 'isthmus-gateway-ipsec', '-o', 'json'])) as { data: Record<string, string> };
    assert.equal(Object.keys(secret.data).sort(), [`${c}-n1.crt`, `${c}-n1.key`, 'ca.crt']);
    const cert = certificateInfo(Buffer.from(secret.data[`${c}-n1.crt`] ?? '', 'base64').toString());
    assert.is(cert.commonName, `${c}-n1.${c}`);
    assert.equal(cert.organizations, ['isthmus:gateway']);
  }
  const gw = JSON.parse(await k('c1', ['-n', 'isthmus-system', 'get', 'gateways.isthmus.dev', '-o', 'json'])) as { items: { status?: { localEndpoint?: { cableDriver?: string }; connections?: { cluster: string; status: string }[] } }[] };
  assert.is(gw.items[0]?.status?.localEndpoint?.cableDriver, 'ipsec');
  assert.equal(gw.items[0]?.status?.connections?.map((x) => `${x.cluster} ${x.status}`), ['c2 connected']);
});

test('a pod on c1\'s node without a gateway reaches a pod of c2 through the IPsec cable, with its own address', async () => {
  for (const c of ['c1', 'c2']) await k(c, ['apply', '-f', '-'], echoManifest(2));
  for (const c of ['c1', 'c2']) await k(c, ['-n', 'demo', 'rollout', 'status', 'deployment/echo', '--timeout=90s']);
  // a client pinned to c1-n2: the echo replicas may both land on the gateway node
  await k('c1', ['apply', '-f', '-'], clientPodManifest('c1-n2'));
  await k('c1', ['-n', 'demo', 'wait', '--for=condition=Ready', 'pod/client-c1-n2', '--timeout=90s']);
  const client = JSON.parse(await k('c1', ['-n', 'demo', 'get', 'pod', 'client-c1-n2', '-o', 'json'])) as { metadata: { name: string }; status: { podIP: string } };
  const remote = (await k('c2', ['-n', 'demo', 'get', 'pods', '-o', 'jsonpath={.items[0].status.podIP}'])).trim();
  const answer = await eventually(`curl ${remote}`, async () => {
    const r = await isthmus(['sandbox', 'exec', 'c1', client.metadata.name, '-n', 'demo', '--', 'curl', '-sS', '--max-time', '3', `http://${remote}:8080/ipsec`], env);
    return r.code === 0 ? JSON.parse(r.stdout) as { cluster: string; client: string } : undefined;
  }, 60_000);
  assert.is(answer.cluster, 'c2');
  assert.is(answer.client.split(':')[0], client.status.podIP);
});

test('join again keeps the IPsec certificates; uninstall c2 leaves no charon, cable device, rule or state on its nodes', async () => {
  const again = ok(await cli(['join', f('c2.json'), '--context', 'c2', '--cluster-id', 'c2']), 'join c2 again');
  assert.match(again.stdout, /IPsec certificates of c2-n1 kept/);
  ok(await cli(['uninstall', '--context', 'c2']), 'uninstall c2');
  for (const n of ['isb-c2-n1', 'isb-c2-n2']) {
    const node = (args: string[]): string => execFileSync('ip', ['netns', 'exec', n, ...args], { encoding: 'utf8' });
    assert.not.match(node(['ip', '-o', 'link']), /ipsec|isthmus/, `${n}: no device of ours`);
    assert.not.match(node(['ip', 'rule']), /lookup 2(19|20|30|31)/, `${n}: no rule of ours`);
  }
  // charon runs in the node's network namespace: none is left in c2's
  const pids = execFileSync('ip', ['netns', 'pids', 'isb-c2-n1'], { encoding: 'utf8' }).split('\n').filter((p) => p !== '');
  const names = pids.map((p) => { try { return execFileSync('cat', [`/proc/${p}/comm`], { encoding: 'utf8' }).trim(); } catch { return ''; } });
  assert.not.ok(names.includes('charon'), `charon left in isb-c2-n1: ${names.join(' ')}`);
  await eventually('c1 drops its cable to c2', async () => {
    const s = await k('c1', ['-n', 'isthmus-system', 'get', 'gateways.isthmus.dev', '-o', 'jsonpath={.items[0].status.summary}']);
    return s === '0/0' ? true : undefined;
  }, 60_000);
});

test.run();
