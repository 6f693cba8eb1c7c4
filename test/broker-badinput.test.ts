import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { Client, credentials, status } from '@grpc/grpc-js';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import type { BrokerClient, BrokerServer } from '../broker/index.ts';
import { Lab } from './broker-harness.ts';

// Malformed and oversized messages, invalid ids and CIDRs, unknown kinds: the right
// gRPC status and a message saying what was wrong; nothing stored; the broker keeps serving.
let lab: Lab;
let broker: BrokerServer;
let admin: BrokerClient;

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1']);
  broker = await lab.startBroker();
  admin = lab.client(broker.port, await lab.tls('admin'), { retryForMs: 0 });
  await admin.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
});

test.after(async () => {
  await lab?.cleanup();
});

async function refused(p: Promise<unknown>): Promise<IsthmusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof IsthmusError) return err;
    throw err;
  }
  throw new Error('the broker accepted bad input');
}

async function expectInvalid(p: Promise<unknown>, message: RegExp): Promise<void> {
  const e = await refused(p);
  assert.is(e.context['grpcCode'], status.INVALID_ARGUMENT, `gRPC status for ${message}: ${e.message}`);
  assert.is(e.code, ErrorCodes.INVALID_ARGUMENT);
  assert.match(e.message, message);
}

const cluster = (over: Record<string, unknown>) => ({ cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: ['10.102.0.0/16'], ...over }) as never;
const exp = (over: Record<string, unknown>) => ({ cluster_id: 'c1', namespace: 'default', name: 'web', ...over }) as never;

test('invalid cluster ids and CIDRs', async () => {
  await expectInvalid(admin.registerCluster(cluster({ cluster_id: 'Bad_ID' })), /cluster_id "Bad_ID" is not an RFC-1123 label/);
  await expectInvalid(admin.registerCluster(cluster({ cluster_id: 'a'.repeat(64) })), /not an RFC-1123 label/);
  await expectInvalid(admin.registerCluster(cluster({ pod_cidrs: ['10.2.0.0/33'] })), /pod_cidrs\[0\]: .*invalid prefix length/);
  await expectInvalid(admin.registerCluster(cluster({ pod_cidrs: ['10.2.0.1/16'] })), /host bits set; did you mean 10\.2\.0\.0\/16/);
  await expectInvalid(admin.registerCluster(cluster({ service_cidrs: ['banana'] })), /service_cidrs\[0\]: "banana" is not a CIDR/);
  await expectInvalid(admin.registerCluster(cluster({ pod_cidrs: [] })), /pod_cidrs must hold at least one CIDR/);
  await expectInvalid(admin.registerCluster(cluster({ service_cidrs: ['10.2.128.0/17'] })), /its own CIDRs .* overlap/);
  await expectInvalid(admin.registerCluster(cluster({ labels: { 'bad key!': 'x' } })), /labels: key "bad key!" is not a valid name/);
  await expectInvalid(admin.unregisterCluster('-c1'), /not an RFC-1123 label/);
});

test('invalid exports and endpoints', async () => {
  await expectInvalid(admin.publishExport(exp({ type: 'LoadBalancer' })), /type must be one of ClusterSetIP, Headless/);
  await expectInvalid(admin.publishExport(exp({ ports: [{ port: 70000 }] })), /ports\[0\]\.port must be a whole number from 1 to 65535/);
  await expectInvalid(admin.publishExport(exp({ internal_traffic_policy: 'Nearby' })), /internal_traffic_policy must be one of Cluster, Local/);
  await expectInvalid(admin.publishExport(exp({ type: 'Headless', endpoints: [{ addresses: ['10.1.2.300'] }] })), /addresses\[0\] "10\.1\.2\.300" is not an IPv4 or IPv6/);
  await expectInvalid(admin.publishExport(exp({ creation_time: 'yesterday' })), /creation_time "yesterday" is not an RFC 3339 time/);
  await expectInvalid(admin.publishExport(exp({ namespace: 'Kube_System' })), /namespace "Kube_System" is not an RFC-1123 label/);
  await expectInvalid(admin.publishEndpoint({ cluster_id: 'c1', hostname: 'gw', private_ip: 'nope', cable_driver: 'wireguard' }), /private_ip "nope" is not an IPv4 or IPv6 address/);
  await expectInvalid(admin.publishEndpoint({ cluster_id: 'c1', hostname: 'GW_1', private_ip: '10.0.0.1', cable_driver: 'wireguard' }), /hostname "GW_1" is not an RFC-1123 host name/);
  await expectInvalid(admin.publishEndpoint({ cluster_id: 'c1', hostname: 'gw', private_ip: '10.0.0.1', cable_driver: 'wireguard' }, 1), /ttl_seconds must be a whole number from 5 to 3600/);
  await expectInvalid(admin.renewEndpoint('c1', 'gw', 'lease-1'), /lease_id must be the decimal lease id/);
  const notRegistered = await refused(admin.publishExport(exp({ cluster_id: 'c9' })));
  assert.is(notRegistered.code, ErrorCodes.FAILED_PRECONDITION);
  assert.match(notRegistered.message, /cluster c9 is not registered/);
});

test('unknown kinds are refused by List and Watch', async () => {
  // the client refuses them before sending
  const local = await refused(admin.list(['SECRETS' as never]));
  assert.is(local.code, ErrorCodes.INVALID_ARGUMENT);
  assert.match(local.message, /unknown kind "SECRETS": use CLUSTER, ENDPOINT, EXPORT/);
  // and the broker refuses kinds it does not know (a newer client's, or KIND_UNSPECIFIED)
  const tls = await lab.tls('admin');
  const raw = new Client(`127.0.0.1:${broker.port}`, credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem)));
  try {
    for (const [method, body, re] of [
      ['List', Buffer.from([0x0a, 0x01, 0x07]), /unknown kind 7/],
      ['Watch', Buffer.from([0x0a, 0x01, 0x07]), /unknown kind 7/],
      ['List', Buffer.from([0x0a, 0x01, 0x00]), /unknown kind "KIND_UNSPECIFIED"/],
    ] as const) {
      const got = await new Promise<{ code: number; details: string }>((resolve) => {
        const s = raw.makeServerStreamRequest(`/isthmus.broker.v1.Broker/${method}`, (x: Buffer) => x, (x: Buffer) => x, body);
        s.on('error', (err: { code: number; details: string }) => resolve(err));
        s.on('data', () => resolve({ code: status.OK, details: '' }));
      });
      assert.is(got.code, status.INVALID_ARGUMENT, method);
      assert.match(got.details, re);
    }
  } finally {
    raw.close();
  }
});

test('a request over 1 MiB is RESOURCE_EXHAUSTED and stores nothing', async () => {
  const big = 'x'.repeat(60_000);
  const annotations: Record<string, string> = {};
  for (let i = 0; i < 20; i++) annotations[`a${i}`] = big;
  const e = await refused(admin.publishExport(exp({ name: 'huge', annotations })));
  assert.is(e.context['grpcCode'], status.RESOURCE_EXHAUSTED);
  assert.match(e.message, /larger than max/i);
});

test('malformed protobuf is INVALID_ARGUMENT', async () => {
  const tls = await lab.tls('admin');
  const raw = new Client(`127.0.0.1:${broker.port}`, credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem)));
  try {
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]); // field 1, length far beyond the message
    const got = await new Promise<{ code: number; details: string }>((resolve) => {
      raw.makeUnaryRequest('/isthmus.broker.v1.Broker/RegisterCluster', (x: Buffer) => x, (x: Buffer) => x, garbage, (err) => resolve({ code: err?.code ?? status.OK, details: err?.details ?? '' }));
    });
    assert.is(got.code, status.INVALID_ARGUMENT);
    assert.match(got.details, /malformed RegisterCluster request/);
    const wrongType = Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x08, 0x01, 0x02]); // cluster.cluster_id as a nested varint mess
    const got2 = await new Promise<number>((resolve) => {
      raw.makeUnaryRequest('/isthmus.broker.v1.Broker/RegisterCluster', (x: Buffer) => x, (x: Buffer) => x, wrongType, (err) => resolve(err?.code ?? status.OK));
    });
    assert.is(got2, status.INVALID_ARGUMENT);
  } finally {
    raw.close();
  }
});

test('after all of that nothing was stored and the broker still serves', async () => {
  const { events } = await admin.list(['CLUSTER', 'EXPORT', 'ENDPOINT']);
  assert.equal(events.map((e) => `${e.kind}:${e.key}`), ['CLUSTER:c1']);
  await admin.publishExport(exp({ name: 'fine' }));
  const after = await admin.list(['EXPORT']);
  assert.equal(after.events.map((e) => e.key), ['c1/default/fine']);
});

test.run();
