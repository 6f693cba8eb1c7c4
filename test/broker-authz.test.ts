import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { Client, credentials, status } from '@grpc/grpc-js';
import { ErrorCodes } from '../core/index.ts';
import { issueFor } from '../certs/index.ts';
import type { BrokerClient, BrokerServer } from '../broker/index.ts';
import { Lab } from './broker-harness.ts';
import { errorCodeAsync } from '../core/testing.ts';

// The authorization matrix over real mTLS against a broker on real etcd.
let lab: Lab;
let broker: BrokerServer;
const clients: Record<string, BrokerClient> = {};

const cluster = (id: string, n: number) => ({ cluster_id: id, pod_cidrs: [`10.${n}.0.0/16`], service_cidrs: [`10.${100 + n}.0.0/16`] });
const exp = (id: string, name = 'web') => ({ cluster_id: id, namespace: 'default', name, type: 'ClusterSetIP', ports: [{ name: 'http', protocol: 'TCP', port: 80, app_protocol: '' }] });
const ep = (id: string) => ({ cluster_id: id, hostname: `gw.${id}`, private_ip: '192.168.1.10', cable_driver: 'wireguard', backend_config: { 'public-key': 'x' } });

const code = async (p: Promise<unknown>): Promise<string> => (await errorCodeAsync(p)) ?? 'OK';

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1', 'c2', 'c3']);
  broker = await lab.startBroker();
  for (const name of ['c1', 'c2', 'admin']) clients[name] = lab.client(broker.port, await lab.tls(name), { retryForMs: 0 });
});

test.after(async () => {
  await lab?.cleanup();
});

const c = (name: string): BrokerClient => clients[name] as BrokerClient;

test('a cluster registers itself, and only itself; the admin registers anyone', async () => {
  assert.is(await code(c('c1').registerCluster(cluster('c1', 1))), 'OK');
  assert.is(await code(c('c1').registerCluster(cluster('c2', 2))), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('admin').registerCluster(cluster('c3', 3))), 'OK');
  assert.is(await code(c('c2').registerCluster(cluster('c2', 2))), 'OK');
});

test('a cluster writes only its own exports and endpoints', async () => {
  assert.is(await code(c('c1').publishExport(exp('c1'))), 'OK');
  assert.is(await code(c('c1').publishExport(exp('c2'))), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('c2').publishExport(exp('c2'))), 'OK');
  assert.is(await code(c('c1').withdrawExport('c2', 'default', 'web')), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('c1').publishEndpoint(ep('c1'), 30)), 'OK');
  assert.is(await code(c('c1').publishEndpoint(ep('c2'), 30)), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('c1').withdrawEndpoint('c2', 'gw.c2')), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('c1').renewEndpoint('c2', 'gw.c2', '1')), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('c1').unregisterCluster('c2')), ErrorCodes.PERMISSION_DENIED);
  assert.is(await code(c('admin').publishExport(exp('c3', 'db'))), 'OK');
  assert.is(await code(c('admin').withdrawExport('c2', 'default', 'web')), 'OK');
});

test('every identity reads everything; refused writes stored nothing', async () => {
  const { events } = await c('c2').list(['CLUSTER', 'EXPORT', 'ENDPOINT']);
  const keys = events.map((e) => `${e.kind}:${e.key}`).sort();
  assert.equal(keys, ['CLUSTER:c1', 'CLUSTER:c2', 'CLUSTER:c3', 'ENDPOINT:c1/gw.c1', 'EXPORT:c1/default/web', 'EXPORT:c3/default/db']);
  const endpoint = events.find((e) => e.kind === 'ENDPOINT')?.record as { observed_source_ip: string };
  assert.is(endpoint.observed_source_ip, '127.0.0.1', 'the broker reports the address it saw');
});

/** Refused at the TLS handshake: the call never reaches the broker, so grpc-js reports UNAVAILABLE. */
async function expectRefusedAtHandshake(material: { caPem: string; certPem: string; keyPem: string } | 'none', what: string): Promise<void> {
  if (material === 'none') {
    // TLS without a client certificate, straight through grpc-js
    const raw = new Client(`127.0.0.1:${broker.port}`, credentials.createSsl(Buffer.from(lab.ca.certPem)));
    try {
      const got = await new Promise<number>((resolve) => {
        raw.makeUnaryRequest('/isthmus.broker.v1.Broker/UnregisterCluster', (x: Buffer) => x, (x: Buffer) => x, Buffer.from([0x0a, 0x02, 0x63, 0x31]), (err) => resolve(err?.code ?? status.OK));
      });
      assert.is(got, status.UNAVAILABLE, `${what}: unary`);
      const streamCode = await new Promise<number>((resolve) => {
        const s = raw.makeServerStreamRequest('/isthmus.broker.v1.Broker/Watch', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0));
        s.on('error', (err: { code: number }) => resolve(err.code));
        s.on('data', () => resolve(status.OK));
      });
      assert.is(streamCode, status.UNAVAILABLE, `${what}: watch`);
    } finally {
      raw.close();
    }
    return;
  }
  const client = lab.client(broker.port, material, { retryForMs: 0 });
  try {
    assert.is(await code(client.unregisterCluster('c1')), ErrorCodes.UNAVAILABLE, `${what}: unary`);
    assert.is(await code(client.list(['CLUSTER'])), ErrorCodes.UNAVAILABLE, `${what}: list`);
  } finally {
    client.close();
  }
}

test('no certificate, a foreign CA and an expired certificate fail the TLS handshake', async () => {
  await expectRefusedAtHandshake('none', 'no certificate');
  await expectRefusedAtHandshake(lab.tlsOf(lab.foreignCert('c1')), 'foreign CA');
  await expectRefusedAtHandshake(lab.tlsOf(lab.expiredCert('c1')), 'expired');
  // c1 is still registered: none of the above got through
  const { events } = await c('admin').list(['CLUSTER']);
  assert.ok(events.some((e) => e.key === 'c1'));
});

test('a clusterset certificate of another role may not use the broker', async () => {
  const gw = lab.client(broker.port, lab.tlsOf(issueFor(lab.ca, { role: 'gateway', clusterId: 'c1', gateway: 'gw1' })), { retryForMs: 0 });
  try {
    assert.is(await code(gw.publishExport(exp('c1', 'gwx'))), ErrorCodes.PERMISSION_DENIED);
  } finally {
    gw.close();
  }
});

test('removing a cluster takes its records; only its owner or the admin may', async () => {
  assert.is(await code(c('c1').unregisterCluster('c1')), 'OK');
  assert.is(await code(c('admin').unregisterCluster('c3')), 'OK');
  const { events } = await c('c2').list(['CLUSTER', 'EXPORT', 'ENDPOINT']);
  assert.equal(events.map((e) => `${e.kind}:${e.key}`).sort(), ['CLUSTER:c2']);
});

test.run();
