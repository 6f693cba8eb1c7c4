import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { BrokerCache, EndpointKeeper, type Change, type Endpoint } from '../broker/index.ts';
import { Lab, eventually, sleepMs } from './broker-harness.ts';

// Endpoints live under etcd leases: kept alive by their gateway, gone within the TTL
// when it stops, and other clusters are told.
let lab: Lab;
const TTL = 5;

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1', 'c2']);
});

test.after(async () => {
  await lab?.cleanup();
});

const endpoint = (host: string) => ({
  cluster_id: 'c1', hostname: host, private_ip: '192.168.10.5', public_ip: '', cable_driver: 'wireguard',
  ports: [{ name: 'wireguard', port: 51871, protocol: 'UDP' }], backend_config: { 'public-key': 'b64key' }, health_check_ip: '10.1.0.1',
});

test('a kept endpoint outlives its TTL; a stopped one disappears within the TTL and watchers are told', async () => {
  const broker = await lab.startBroker();
  const c1 = lab.client(broker.port, await lab.tls('c1'));
  const c2 = lab.client(broker.port, await lab.tls('c2'));
  await c1.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  const watcher = new BrokerCache(c2, { kinds: ['ENDPOINT'], backoff: { baseMs: 50, maxMs: 500 } });
  const changes: Change[] = [];
  watcher.onChange((c) => changes.push(c));
  watcher.start();
  const keeper = new EndpointKeeper(c1, endpoint('gw-a'), { ttlSeconds: TTL });
  try {
    await watcher.synced;
    keeper.start();
    const published = await keeper.published;
    assert.is(published.observedSourceIp, '127.0.0.1');
    await eventually('watchers to see the endpoint', () => watcher.get('ENDPOINT', 'c1/gw-a'));
    const seen = watcher.get('ENDPOINT', 'c1/gw-a') as Endpoint;
    assert.is(seen.backend_config['public-key'], 'b64key');
    assert.is(seen.observed_source_ip, '127.0.0.1');

    await sleepMs((TTL + 2) * 1000);
    assert.ok(watcher.get('ENDPOINT', 'c1/gw-a'), 'still there after more than one TTL: the keeper renews it');
    assert.equal(changes.map((c) => c.type), ['added'], 'renewals are not changes');

    // the gateway dies: no withdraw, no more renewals
    await keeper.stop(false);
    const stoppedAt = Date.now();
    await eventually('the endpoint to expire', () => (watcher.get('ENDPOINT', 'c1/gw-a') === undefined ? true : undefined), (TTL + 5) * 1000);
    const after = Date.now() - stoppedAt;
    // correctness bound, not speed: the last renewal was before stoppedAt, so the lease ends
    // at most TTL later; etcd's expiry sweep (every 500 ms), the revoke through raft and the
    // trip to the watcher add a little, more on this busy 2-core machine
    assert.ok(after <= (TTL + 2.5) * 1000, `endpoint gone ${after} ms after the last possible renewal (TTL ${TTL}s)`);
    assert.equal(changes.map((c) => c.type), ['added', 'deleted']);
    // renewing the dead lease says NOT_FOUND
    try {
      await c1.renewEndpoint('c1', 'gw-a', published.leaseId);
      assert.unreachable('renewed an expired lease');
    } catch (err) {
      assert.is((err as IsthmusError).code, ErrorCodes.NOT_FOUND);
      assert.match((err as Error).message, /publish it again/);
    }
  } finally {
    await watcher.stop();
    await keeper.stop(false);
    await lab.stopBroker(broker);
  }
});

test('a keeper publishes again after an outage longer than the TTL; withdraw removes at once', async () => {
  let broker = await lab.startBroker();
  const port = broker.port;
  const c1 = lab.client(port, await lab.tls('c1'));
  const c2 = lab.client(port, await lab.tls('c2'));
  const watcher = new BrokerCache(c2, { kinds: ['ENDPOINT'], backoff: { baseMs: 50, maxMs: 500 } });
  watcher.start();
  const keeper = new EndpointKeeper(c1, endpoint('gw-b'), { ttlSeconds: TTL });
  try {
    keeper.start();
    await keeper.published;
    await eventually('endpoint seen', () => watcher.get('ENDPOINT', 'c1/gw-b'));
    const firstLease = keeper.leaseId;
    await lab.stopBroker(broker);
    // the broker is down for longer than the TTL: the lease expires in etcd
    const etcd = lab.etcd();
    await eventually('lease to expire in etcd', async () => ((await etcd.get('/isthmus/v1/endpoints/c1/gw-b').string()) === null ? true : undefined), (TTL + 5) * 1000, 200);
    assert.ok(watcher.get('ENDPOINT', 'c1/gw-b'), 'while the broker is down the watcher keeps its last state');
    broker = await lab.startBroker({ listen: `127.0.0.1:${port}` });
    await eventually('keeper to publish again', async () => ((await etcd.get('/isthmus/v1/endpoints/c1/gw-b').string()) !== null ? true : undefined), 15_000, 100);
    assert.is.not(keeper.leaseId, firstLease, 'a new lease');
    await keeper.stop(true);
    await eventually('withdrawn endpoint to disappear', () => (watcher.get('ENDPOINT', 'c1/gw-b') === undefined ? true : undefined));
  } finally {
    await watcher.stop();
    await keeper.stop(false);
    await lab.stopBroker(broker);
  }
});

test.run();
