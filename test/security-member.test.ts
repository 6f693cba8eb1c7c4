import { test, Lab, eventually } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { etcdKey, type BrokerClient, type BrokerServer, type EndpointInput } from '../broker/index.ts';
import { errorCodeAsync } from '../core/testing.ts';

// Issue 10: a hostile member (its own valid certificate, cluster "evil") against a real
// broker on real etcd. Every attempt is refused at the broker with a reason; the
// victim's records and watch are unaffected.
let lab: Lab;
let broker: BrokerServer;
let evil: BrokerClient;
let victim: BrokerClient;
const VICTIM_KEY = 'dmljdGltLXdpcmVndWFyZC1wdWJsaWMta2V5LTMyYiE=';

const cluster = (id: string, n: number, extra: { pod?: string } = {}) => ({ cluster_id: id, pod_cidrs: [extra.pod ?? `10.${n}.0.0/16`], service_cidrs: [`10.${100 + n}.0.0/16`] });
const endpoint = (id: string, extra: Partial<EndpointInput> = {}): EndpointInput => ({
  cluster_id: id, hostname: `gw.${id}`, private_ip: '192.168.1.10', cable_driver: 'wireguard', ports: [{ name: 'cable', port: 51820, protocol: 'UDP' }], ...extra,
});

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { code: (err as { code?: string }).code ?? 'none', message: String(err) };
  }
  return { code: 'OK', message: '' };
}

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['victim', 'evil']);
  broker = await lab.startBroker();
  victim = lab.client(broker.port, await lab.tls('victim'), { retryForMs: 0 });
  evil = lab.client(broker.port, await lab.tls('evil'), { retryForMs: 0 });
  await victim.registerCluster(cluster('victim', 1));
  await victim.publishEndpoint(endpoint('victim', { backend_config: { 'public-key': VICTIM_KEY } }), 30);
  await evil.registerCluster(cluster('evil', 2));
});

test.after(async () => {
  await lab?.cleanup();
});

test('findings 5 and 10: reserved, multicast, over-broad and non-private CIDRs are refused', async () => {
  for (const [pod, why] of [['127.0.0.0/8', /loopback/], ['169.254.0.0/16', /metadata/], ['224.0.0.0/4', /multicast/], ['32.0.0.0/4', /broader/], ['203.0.113.0/24', /allowed ranges/]] as const) {
    const r = await refusal(evil.registerCluster(cluster('evil', 2, { pod })));
    assert.is(r.code, ErrorCodes.INVALID_ARGUMENT, pod);
    assert.match(r.message, why, pod);
  }
});

test('finding 10: non-unicast gateway, health and exported addresses and privileged ports are refused', async () => {
  for (const [field, value] of [['private_ip', '0.0.0.0'], ['private_ip', '255.255.255.255'], ['public_ip', '224.0.0.1'], ['private_ip', '::'], ['health_check_ip', '127.0.0.1']] as const) {
    const r = await refusal(evil.publishEndpoint(endpoint('evil', { [field]: value }), 30));
    assert.is(r.code, ErrorCodes.INVALID_ARGUMENT, `${field}=${value}`);
    assert.match(r.message, /not a unicast address/);
  }
  const port = await refusal(evil.publishEndpoint(endpoint('evil', { ports: [{ name: 'nat-probe', port: 53, protocol: 'UDP' }] }), 30));
  assert.match(port.message, /privileged port/);
  const x = await refusal(evil.publishExport({ cluster_id: 'evil', namespace: 'default', name: 'db', type: 'Headless', endpoints: [{ hostname: '', addresses: ['224.0.0.1'], ready: true, serving: true, terminating: false, zone: '' }] }));
  assert.is(x.code, ErrorCodes.INVALID_ARGUMENT);
});

test('findings 4 and 8: another cluster\'s WireGuard key or IPsec identity is refused', async () => {
  const squat = await refusal(evil.publishEndpoint(endpoint('evil', { backend_config: { 'public-key': VICTIM_KEY } }), 30));
  assert.is(squat.code, ErrorCodes.ALREADY_EXISTS);
  assert.match(squat.message, /already published by cluster victim/);
  const cn = await refusal(evil.publishEndpoint(endpoint('evil', { backend_config: { 'cert-cn': 'gw.victim' } }), 30));
  assert.is(cn.code, ErrorCodes.INVALID_ARGUMENT);
  assert.match(cn.message, /not "<gateway>\.evil"/);
  // its own identity is fine, and the victim republishes its key as often as it likes
  assert.is((await refusal(evil.publishEndpoint(endpoint('evil', { backend_config: { 'cert-cn': 'gw.evil' } }), 30))).code, 'OK');
  assert.is((await refusal(victim.publishEndpoint(endpoint('victim', { backend_config: { 'public-key': VICTIM_KEY } }), 30))).code, 'OK');
  // and the identity cannot be taken either after the victim's cluster moved it to another gateway
  assert.is((await refusal(evil.publishEndpoint(endpoint('evil', { hostname: 'gw2.evil', backend_config: { 'cert-cn': 'gw.evil', 'public-key': VICTIM_KEY } }), 30))).code, ErrorCodes.ALREADY_EXISTS);
  await evil.withdrawEndpoint('evil', 'gw.evil');
});

test('finding 12: backend_config values with newlines or of 4 096 characters are refused', async () => {
  for (const v of ['a\nFAKE LOG LINE', 'x'.repeat(4096)]) {
    assert.is((await refusal(evil.publishEndpoint(endpoint('evil', { backend_config: { note: v } }), 30))).code, ErrorCodes.INVALID_ARGUMENT);
  }
});

test('a record in etcd that does not fit the API (written around the broker) is skipped: List and Watch go on', async () => {
  const seen: string[] = [];
  const cancel = await victim.watch(['EXPORT', 'ENDPOINT'], 0, { onEvents: (events) => seen.push(...events.map((e) => e.key)), onEnd: () => undefined });
  try {
    await lab.etcd().put(etcdKey('ENDPOINT', 'evil/forged')).value(JSON.stringify({ cluster_id: 'evil', hostname: 'forged', ports: 5, backend_config: 'x', private_ip: 7 }));
    await victim.publishExport({ cluster_id: 'victim', namespace: 'default', name: 'after-forgery' });
    await eventually('the victim\'s watch to go past the forged record', () => (seen.includes('victim/default/after-forgery') ? true : undefined), 5_000);
    assert.not.ok(seen.includes('evil/forged'));
    const { events } = await victim.list(['ENDPOINT']);
    assert.not.ok(events.some((e) => e.key === 'evil/forged'));
  } finally {
    cancel();
    await lab.etcd().delete().key(etcdKey('ENDPOINT', 'evil/forged'));
    await victim.withdrawExport('victim', 'default', 'after-forgery');
  }
});

test('the victim is unaffected: its records are intact and nothing of the attempts was stored', async () => {
  const { events } = await victim.list(['CLUSTER', 'ENDPOINT', 'EXPORT']);
  assert.equal(events.map((e) => `${e.kind}:${e.key}`).sort(), ['CLUSTER:evil', 'CLUSTER:victim', 'ENDPOINT:victim/gw.victim']);
  const evilCluster = events.find((e) => e.key === 'evil')?.record as { pod_cidrs: string[] };
  assert.equal(evilCluster.pod_cidrs, ['10.2.0.0/16']);
  assert.is(await errorCodeAsync(victim.publishExport({ cluster_id: 'victim', namespace: 'default', name: 'web' })), undefined);
});

test.run();
