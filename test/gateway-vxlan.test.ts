// e2e, needs root: the gateway engine with the vxlan driver (plain kernel VXLAN, for
// trusted networks) on the sandbox: 3 clusters on one wan without NAT, real etcd +
// broker, the Gateway status in each real apiserver. Covers: full mesh with traffic,
// a process restart that re-creates no device, and a remote endpoint with a bad VNI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, requireRootForTest } from './lib/cli.ts';
import { Clusterset, exited, kill, type GatewayProc } from './lib/clusterset.ts';
import { inNetns } from './lib/netns.ts';

requireRootForTest('test/gateway-vxlan.test.ts');
const cs = new Clusterset();
const gw = new Map<string, GatewayProc>();
const CLUSTERS = ['c1', 'c2', 'c3'];
const others = (c: string): string[] => CLUSTERS.filter((x) => x !== c);
const LONG_LEASE = ['--lease-ms', '15000', '--renew-deadline-ms', '10000'];

async function pingOk(from: string, to: string): Promise<void> {
  const r = await cs.ping([from, 0], [to, 0], 2);
  assert.is(r.code, 0, `ping ${from} → ${to}: ${r.stdout} ${r.stderr}`);
}

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
  kill(old.proc, 'SIGTERM');
  await exited(old.proc);
  await pingOk('c1', 'c2');
  gw.set('c1', await cs.startGateway('c1', 0, 'vxlan', LONG_LEASE));
  await eventually('c1-n1 active again', async () => (cs.log('gateway-c1-n1').split('\n').filter((l) => l.includes('became the active gateway')).length >= 2 ? true : undefined));
  await cs.connected('c1', 'c1-n1', others('c1'));
  assert.equal({ index: await ifindex(netns), fdb: (await inNetns(netns, 'bridge', ['fdb', 'show', 'dev', 'vx-isthmus'])).stdout }, before);
  await pingOk('c1', 'c3');
});

test('a remote endpoint with a bad VNI: that cable shows the error, the others are untouched', async () => {
  const fake = await cs.fakeRemote('c9', ['10.9.0.0/16', '10.109.0.0/16'], {
    hostname: 'c9-n1', private_ip: '172.29.0.99', ports: [{ name: 'cable', port: 4789, protocol: 'UDP' }],
    cable_driver: 'vxlan', backend_config: { vni: 'seven' },
  });
  try {
    const g = await eventually('c1-n1 reports c9 in error', async () => {
      const o = await cs.gateway('c1', 'c1-n1');
      return o?.status?.connections?.find((x) => x.cluster === 'c9')?.status === 'error' ? o : undefined;
    });
    assert.match(g.status?.connections?.find((x) => x.cluster === 'c9')?.statusMessage ?? '', /VNI/i);
    for (const c of ['c2', 'c3']) assert.is(g.status?.connections?.find((x) => x.cluster === c)?.status, 'connected', `${c} untouched`);
    await pingOk('c1', 'c3');
  } finally {
    await fake.leave();
  }
  await cs.connected('c1', 'c1-n1', others('c1'));
});

test.run();
