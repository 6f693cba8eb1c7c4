import { test } from './broker-harness.ts';
import { createServer, type Server, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import type { BrokerCache, BrokerClient, ExportInput } from '../broker/index.ts';
import { Lab, eventually, freePort, watchingExports } from './broker-harness.ts';

// A member is given every address of the broker (each node of its NodePort; only those
// running a replica answer): its clients use whichever answers and move to another when
// the one they use fails. Real etcd, real brokers on loopback, real mTLS.
let lab: Lab;

const exp = (name: string): ExportInput => ({ cluster_id: 'c1', namespace: 'default', name, type: 'ClusterSetIP', ports: [{ name: 'http', protocol: 'TCP', port: 80, app_protocol: '' }] });

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1']);
});

test.after(async () => {
  await lab?.cleanup();
});

/** A cache watching EXPORT records through `client`, and the names it has seen added or updated so far (in order). */
function watching(client: BrokerClient): { cache: BrokerCache; seen: () => string[] } {
  const w = watchingExports(client);
  return { cache: w.cache, seen: () => w.seen.filter((c) => c.type !== 'deleted').map((c) => c.key.split('/')[2] ?? c.key) };
}

/** A TCP listener that accepts connections and never says a word (a TLS handshake through it hangs). */
async function silentListener(): Promise<{ server: Server; port: number; sockets: Set<Socket>; accepted: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  return { server, sockets, accepted: () => accepted, port: typeof a === 'object' && a !== null ? a.port : 0 };
}

async function closeListener(l: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const s of l.sockets) s.destroy();
  await new Promise<void>((resolve) => l.server.close(() => resolve()));
}

/** Publishes through `client`, then waits until a cache watching through it reports the record. */
async function publishesAndWatches(client: BrokerClient, name: string, withinMs: number): Promise<number> {
  const t0 = Date.now();
  const { cache, seen } = watching(client);
  try {
    await client.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
    await client.publishExport(exp(name));
    await eventually(`the watch to report ${name}`, () => (seen().includes(name) ? true : undefined), withinMs);
    return Date.now() - t0;
  } finally {
    await cache.stop();
  }
}

test('the first address dead (nothing listening): publishes and watches through the second', async () => {
  const b = await lab.startBroker();
  const dead = await freePort();
  const client = lab.clientAt(`127.0.0.1:${dead},127.0.0.1:${b.port}`, await lab.tls('c1'), { retryForMs: 5_000 });
  assert.is(client.target, `ipv4:127.0.0.1:${dead},127.0.0.1:${b.port}`, 'one channel, both addresses');
  const ms = await publishesAndWatches(client, 'refused', 5_000);
  assert.ok(ms < 3_000, `took ${ms} ms`);
  client.close();
  await lab.stopBroker(b);
});

test('the first address accepts and never answers: the client moves on after a moment, not after a connect timeout', async () => {
  const b = await lab.startBroker();
  const silent = await silentListener();
  try {
    const client = lab.clientAt([`127.0.0.1:${silent.port}`, `127.0.0.1:${b.port}`], await lab.tls('c1'), { retryForMs: 5_000, callTimeoutMs: 5_000 });
    const ms = await publishesAndWatches(client, 'silent', 5_000);
    assert.ok(ms < 3_000, `took ${ms} ms`);
    assert.ok(silent.accepted() > 0, 'the silent listener was dialled first');
    client.close();
  } finally {
    await closeListener(silent);
    await lab.stopBroker(b);
  }
});

test('a listener that is then closed: calls carry on through the other address', async () => {
  const b = await lab.startBroker();
  const gone = await silentListener();
  const client = lab.clientAt(`127.0.0.1:${gone.port},127.0.0.1:${b.port}`, await lab.tls('c1'), { retryForMs: 5_000 });
  await closeListener(gone);
  const ms = await publishesAndWatches(client, 'closed', 5_000);
  assert.ok(ms < 3_000, `took ${ms} ms`);
  client.close();
  await lab.stopBroker(b);
});

test('DNS names and IPv6: one target each family, one per name; a dead one hands over to the next', async () => {
  const b = await lab.startBroker();
  const dead = await freePort();
  // localhost is named in the broker's certificate; each name is its own target, the client moves between them
  const names = lab.clientAt(`localhost:${dead},localhost:${b.port}`, await lab.tls('c1'), { retryForMs: 10_000 });
  assert.is(names.target, `dns:localhost:${dead}`);
  await publishesAndWatches(names, 'by-name', 10_000);
  assert.is(names.target, `dns:localhost:${b.port}`, 'moved to the name that answers');
  names.close();
  // an IPv4 address that does not answer, then the name that does
  const mixed = lab.clientAt(`127.0.0.1:${dead},localhost:${b.port}`, await lab.tls('c1'), { retryForMs: 10_000 });
  await publishesAndWatches(mixed, 'mixed', 10_000);
  mixed.close();
  await lab.stopBroker(b);

  // IPv6: a broker on ::1 (the certificate names 127.0.0.1 and localhost: check against localhost)
  const six = await lab.startBroker({ listen: '[::1]:0' });
  const v6 = lab.clientAt(`[::1]:${dead},[::1]:${six.port}`, await lab.tls('c1'), { retryForMs: 10_000, serverName: 'localhost' });
  assert.is(v6.target, `ipv6:[::1]:${dead},[::1]:${six.port}`);
  await publishesAndWatches(v6, 'six', 10_000);
  v6.close();
  await lab.stopBroker(six);
});

test('the broker certificate is still checked: an address whose name it does not hold is refused', async () => {
  const b = await lab.startBroker();
  // the TLS name of a target is its first host; 127.0.0.2 is not in the broker's certificate
  const wrong = lab.clientAt(`127.0.0.2:${b.port},127.0.0.1:${b.port}`, await lab.tls('c1'), { retryForMs: 0 });
  let refused: unknown;
  try {
    await wrong.list(['CLUSTER']);
  } catch (err) {
    refused = err;
  }
  assert.ok(refused !== undefined, 'a broker certificate without the name is not accepted');
  assert.match((refused as Error).message, /127\.0\.0\.2 is not in the cert's list/, 'refused for the name (its connection to 127.0.0.1 was checked against the first host)');
  wrong.close();
  await lab.stopBroker(b);
});

test('the replica in use dies mid-watch: the watch and the calls carry on through the other, resumed, not relisted', async () => {
  const a = await lab.startBroker();
  const b = await lab.startBroker();
  const writer = lab.client(b.port, await lab.tls('c1'));
  await writer.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  await writer.publishExport(exp('before'));
  const client = lab.clientAt(`127.0.0.1:${a.port},127.0.0.1:${b.port}`, await lab.tls('c1'), { retryForMs: 10_000 });
  const { cache, seen } = watching(client);
  try {
    await cache.synced;
    const mine = new Set(['before', 'live', 'after-a', 'by-client']);
    assert.equal(seen().filter((n) => mine.has(n)), ['before']);
    // which replica serves the watch: the first address, as pick_first takes them in order
    const watchers = async (x: typeof a): Promise<string> => (await x.metrics.getSingleMetricAsString('isthmus_broker_watchers')).split('\n').filter((l) => l.startsWith('isthmus_broker_watchers '))[0] ?? '';
    await eventually('the watch on replica A', async () => ((await watchers(a)) === 'isthmus_broker_watchers 1' ? true : undefined));
    await writer.publishExport(exp('live'));
    await eventually('live change', () => (seen().includes('live') ? true : undefined));

    await lab.stopBroker(a);
    await writer.publishExport(exp('after-a'));
    const t0 = Date.now();
    await eventually('the watch resumed through B', () => (seen().includes('after-a') && cache.connected ? true : undefined), 10_000);
    const ms = Date.now() - t0;
    assert.ok(ms < 5_000, `resumed after ${ms} ms`);
    assert.is((await watchers(b)), 'isthmus_broker_watchers 1', 'the watch is on replica B now');
    assert.is(cache.relists, 1, 'resumed from its revision, no new List');
    // and unary calls of the same client go through B too
    await client.publishExport(exp('by-client'));
    await eventually('own write seen', () => (seen().includes('by-client') ? true : undefined));
    assert.equal(seen().filter((n) => mine.has(n)), ['before', 'live', 'after-a', 'by-client'], 'each change once');
  } finally {
    await cache.stop();
  }
  await lab.stopBroker(b);
});

test.run();
