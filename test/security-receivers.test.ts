// e2e, needs root (the sandbox): issue 10 at the receivers. Two real clusters with real
// wireguard gateways; a hostile cluster c9 is written straight into the broker's etcd
// (what a compromised or broken broker would relay: the broker itself refuses all of
// it, see security-member.test.ts). Each time c1's gateway must refuse c9's cable with
// the reason in its Gateway status, and c1 ↔ c2 keeps carrying traffic.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, requireRootForTest } from './lib/cli.ts';
import { Clusterset } from './lib/clusterset.ts';
import type { Cluster, EndpointInput } from '../core/broker-api/index.ts';

requireRootForTest('test/security-receivers.test.ts');
const cs = new Clusterset();

test.after(async () => {
  await cs.close();
});

const endpoint = (extra: Partial<EndpointInput> = {}): Omit<EndpointInput, 'cluster_id'> => ({
  hostname: 'c9-n1', private_ip: '172.29.0.99', ports: [{ name: 'cable', port: 51820, protocol: 'UDP' }], cable_driver: 'wireguard',
  backend_config: { 'public-key': 'q0lmBuvbMXQ9Q2dNPZ9wFHGsxiN8qp9ifa1UTnjXNQA=' }, ...extra,
});

/**
 * Forges c9, waits until c1 reports c9 refused with a message matching `expect`, checks
 * the other connections' states (and c1 → c2 traffic while c2 is connected), removes c9
 * and waits until c1 no longer lists it.
 */
async function refusedAtC1(cluster: Partial<Cluster>, ep: Omit<EndpointInput, 'cluster_id'>, expect: RegExp, others: Record<string, string> = { c2: 'connected' }): Promise<void> {
  const forged = await cs.forgeRemote({ cluster_id: 'c9', pod_cidrs: ['10.9.0.0/16'], service_cidrs: ['10.109.0.0/16'], ...cluster }, ep);
  try {
    const g = await eventually(`c1 to report c9 refused (${String(expect)}) and the others ${JSON.stringify(others)}`, async () => {
      const o = await cs.gateway('c1', 'c1-n1');
      const conns = o?.status?.connections ?? [];
      const c9 = conns.find((x) => x.cluster === 'c9');
      const rest = Object.fromEntries(conns.filter((x) => x.cluster !== 'c9').map((x) => [x.cluster, x.status]));
      return c9?.status === 'error' && expect.test(c9.statusMessage ?? '') && JSON.stringify(rest) === JSON.stringify(others) ? o : undefined;
    }, 30_000);
    assert.ok(g);
    if (others['c2'] === 'connected') await cs.pingOk(['c1', 0], ['c2', 0]);
  } finally {
    await forged.leave();
    await eventually('c1 to forget c9', async () => ((await cs.gateway('c1', 'c1-n1'))?.status?.connections?.some((x) => x.cluster === 'c9') === true ? undefined : true), 30_000);
  }
}

test('two clusters connect', async () => {
  await cs.up({ clusters: 2, gateways: 1, nat: [], portBase: 27000 });
  for (const c of ['c1', 'c2']) await cs.startGateway(c, 0, 'wireguard');
  await cs.connected('c1', 'c1-n1', ['c2']);
  await cs.connected('c2', 'c2-n1', ['c1']);
  await cs.pingOk(['c1', 0], ['c2', 0]);
});

test('finding 5: a remote CIDR holding this gateway, the broker or a peer\'s cable address is refused', async () => {
  const own = cs.node('c1', 0).wan?.ip ?? '';
  await refusedAtC1({ pod_cidrs: [`${own}/32`] }, endpoint(), /contains this gateway's own address/);
  const broker = cs.broker.replace(/:\d+$/, '');
  await refusedAtC1({ pod_cidrs: [`${broker}/32`] }, endpoint(), new RegExp(`contains the broker's address ${broker.replace(/\./g, '\\.')}`));
  const peer = cs.node('c2', 0).wan?.ip ?? '';
  await refusedAtC1({ pod_cidrs: [`${peer}/32`] }, endpoint(), /contains the cable address .* of cluster c2/);
  await refusedAtC1({ pod_cidrs: ['169.254.0.0/16'] }, endpoint(), /169\.254\.0\.0\/16/);
});

test('finding 10: a non-unicast gateway address is refused', async () => {
  await refusedAtC1({}, endpoint({ private_ip: '224.0.0.1' }), /multicast, not a unicast address/);
});

test('finding 4: a cluster publishing c2\'s key: every cable with that key is refused, and c2 comes back once it is gone', async () => {
  const c2 = await cs.storedRecord('ENDPOINT', 'c2/c2-n1');
  const key = (c2?.['backend_config'] as Record<string, string> | undefined)?.['public-key'] ?? '';
  assert.ok(key !== '', 'c2 published its key');
  await refusedAtC1({}, endpoint({ backend_config: { 'public-key': key } }), /public-key is also published by cluster c2/, { c2: 'error' });
  await cs.connected('c1', 'c1-n1', ['c2']);
  await cs.pingOk(['c1', 0], ['c2', 0]);
});

test.run();
