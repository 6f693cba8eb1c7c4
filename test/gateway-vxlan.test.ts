// e2e, needs root: the gateway engine with the vxlan driver (plain kernel VXLAN, for
// trusted networks) on the sandbox: 3 clusters on one wan without NAT, real etcd +
// broker, the Gateway status in each real apiserver. Covers: full mesh with traffic,
// a process restart that re-creates no device, and a remote endpoint with a bad VNI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireRootForTest } from './lib/cli.ts';
import { CLUSTERS, Clusterset, LONG_LEASE, others, type GatewayProc } from './lib/clusterset.ts';
import { inNetns } from './lib/netns.ts';

requireRootForTest('test/gateway-vxlan.test.ts');
const cs = new Clusterset();
const gw = new Map<string, GatewayProc>();

const pingOk = (from: string, to: string): Promise<void> => cs.pingOk([from, 0], [to, 0]);

async function ifindex(netns: string): Promise<string> {
  const r = await inNetns(netns, 'cat', ['/sys/class/net/vx-isthmus/ifindex']);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test.after(async () => {
  await cs.close();
});

test('3 clusters connect in full mesh through VXLAN cables', async () => {
  await cs.up({ clusters: 3, gateways: 1, nat: [], portBase: 26900 });
  for (const c of CLUSTERS) gw.set(c, await cs.startGateway(c, 0, 'vxlan', LONG_LEASE));
  for (const c of CLUSTERS) {
    const g = await cs.connected(c, `${c}-n1`, others(c));
    assert.ok(g.status?.connections?.every((x) => x.natTraversal === false));
  }
  for (const [a, b] of [['c1', 'c2'], ['c2', 'c3'], ['c3', 'c1']] as const) await pingOk(a, b);
});

test('a gateway process restart re-creates no device and changes nothing', async () => {
  const netns = cs.node('c1', 0).netns;
  const before = { index: await ifindex(netns), fdb: (await inNetns(netns, 'bridge', ['fdb', 'show', 'dev', 'vx-isthmus'])).stdout };
  const old = gw.get('c1');
  assert.ok(old);
  gw.set('c1', await cs.restartGateway(old, 'vxlan', LONG_LEASE, () => pingOk('c1', 'c2')));
  await cs.connected('c1', 'c1-n1', others('c1'));
  assert.equal({ index: await ifindex(netns), fdb: (await inNetns(netns, 'bridge', ['fdb', 'show', 'dev', 'vx-isthmus'])).stdout }, before);
  await pingOk('c1', 'c3');
});

test('a remote endpoint with a bad VNI: that cable shows the error, the others are untouched', async () => {
  const bad = await cs.badRemote('c1', 'c1-n1', {
    hostname: 'c9-n1', private_ip: '172.29.0.99', ports: [{ name: 'cable', port: 4789, protocol: 'UDP' }],
    cable_driver: 'vxlan', backend_config: { vni: 'seven' },
  });
  assert.match(bad.message, /VNI/);
  assert.equal(bad.others, { c2: 'connected', c3: 'connected' });
  await pingOk('c1', 'c3');
  await cs.connected('c1', 'c1-n1', others('c1'));
});

test.run();
