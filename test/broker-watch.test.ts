import { test } from './broker-harness.ts';
import { createConnection, createServer, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { BrokerCache, type BrokerClient, type BrokerServer, type Change, type Export } from '../broker/index.ts';
import { Lab, eventually, watchingExports } from './broker-harness.ts';

// A watcher (the client cache) sees every change exactly once across a broker restart
// (resumed from its revision through the restarted replica's backfill, no relist) and
// across an etcd compaction (relist and sweep).
let lab: Lab;
/** These tests write thousands of records as fast as they can: well above the default per-cluster quotas. */
const BULK = { maxRecords: 10_000, maxBytes: 1 << 30, writesPerSecond: 100_000, writeBurst: 100_000 };

const exp = (name: string, v: number): Export => ({
  cluster_id: 'c1', namespace: 'default', name, type: 'ClusterSetIP', ports: [{ name: 'http', protocol: 'TCP', port: v, app_protocol: '' }],
  session_affinity: 'None', session_affinity_timeout_seconds: 0, ip_families: ['IPv4'], labels: {}, annotations: {}, creation_time: '2026-01-01T00:00:00Z', endpoints: [],
  internal_traffic_policy: '', traffic_distribution: '', endpoint_ports: [],
});

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1']);
});

test.after(async () => {
  await lab?.cleanup();
});

function describe(c: Change): string {
  const v = c.type === 'deleted' ? '' : `:${(c.record as Export).ports[0]?.port ?? 0}`;
  return `${c.type}:${c.key.split('/')[2] ?? c.key}${v}`;
}

test('every change exactly once across a broker restart and an etcd compaction', async () => {
  const a = await lab.startBroker();
  const portA = a.port;
  const b = await lab.startBroker();
  const viaA = lab.client(portA, await lab.tls('c1'));
  const viaB = lab.client(b.port, await lab.tls('c1'));
  await viaB.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  await viaB.publishExport(exp('pre', 1));

  const { cache, seen } = watchingExports(viaA);
  try {
    await cache.synced;
    assert.equal(seen.map(describe), ['added:pre:1'], 'initial list');
    const expected = ['added:pre:1'];

    // live changes through the other replica
    for (let i = 0; i < 10; i++) {
      await viaB.publishExport(exp(`s${i}`, 1));
      expected.push(`added:s${i}:1`);
    }
    await viaB.publishExport(exp('s0', 2));
    expected.push('updated:s0:2');
    await viaB.publishExport(exp('s0', 2)); // unchanged: no new revision, no event
    await viaB.withdrawExport('c1', 'default', 's1');
    expected.push('deleted:s1');
    await eventually('live changes', () => (seen.length === expected.length ? true : undefined));
    assert.equal(seen.map(describe), expected, 'live phase');

    // broker A goes away; the cache keeps serving; changes happen through B meanwhile
    const before = cache.revision;
    await lab.stopBroker(a);
    await eventually('cache to notice the broker is gone', () => (cache.connected ? undefined : true));
    assert.is(cache.list('EXPORT').length, 10, 'serves its last state while the broker is down');
    for (let i = 2; i < 6; i++) {
      await viaB.publishExport(exp(`s${i}`, 3));
      expected.push(`updated:s${i}:3`);
    }
    await viaB.withdrawExport('c1', 'default', 's6');
    expected.push('deleted:s6');
    await viaB.publishExport(exp('n1', 1));
    expected.push('added:n1:1');
    const a2 = await lab.startBroker({ listen: `127.0.0.1:${portA}` });
    await eventually('resume after restart', () => (seen.length === expected.length && cache.connected ? true : undefined), 15_000);
    assert.equal(seen.map(describe), expected, 'restart phase: each missed change once, in order');
    assert.is(cache.relists, 1, 'resumed from its revision without listing again');
    assert.ok(cache.revision > before);

    // now A goes away again, changes happen, and etcd compacts past the cache's revision
    await lab.stopBroker(a2);
    await eventually('cache to notice', () => (cache.connected ? undefined : true));
    const gap: string[] = [];
    await viaB.publishExport(exp('s7', 4));
    gap.push('updated:s7:4');
    await viaB.withdrawExport('c1', 'default', 's8');
    gap.push('deleted:s8');
    await viaB.publishExport(exp('n2', 1));
    gap.push('added:n2:1');
    const etcd = lab.etcd();
    const { header } = await etcd.kv.range({ key: Buffer.from('/isthmus/v1/clusters/c1') });
    await etcd.kv.compact({ revision: header.revision, physical: true });
    const a3 = await lab.startBroker({ listen: `127.0.0.1:${portA}` });
    await eventually('relist after compaction', () => (seen.length === expected.length + gap.length && cache.connected ? true : undefined), 15_000);
    assert.equal(seen.slice(expected.length).map(describe).sort(), gap.sort(), 'compaction phase: the sweep reports each change once');
    assert.is(cache.relists, 2, 'listed again exactly once');

    // and it keeps watching live after the relist
    await viaB.publishExport(exp('n3', 1));
    await eventually('live after relist', () => (seen.some((s) => describe(s) === 'added:n3:1') ? true : undefined));
    const perRevision = new Map<string, number>();
    for (const s of seen) perRevision.set(`${s.key}@${s.revision}`, (perRevision.get(`${s.key}@${s.revision}`) ?? 0) + 1);
    assert.ok([...perRevision.values()].every((n) => n === 1), 'no change was applied twice');
    const names = cache.list('EXPORT').map((x) => x.name).sort();
    assert.equal(names, ['n1', 'n2', 'n3', 'pre', 's0', 's2', 's3', 's4', 's5', 's7', 's9']);
    await lab.stopBroker(a3);
  } finally {
    await cache.stop();
  }
});

test('a revision from the future is refused; a compacted one says so', async () => {
  const broker: BrokerServer = await lab.startBroker();
  const client: BrokerClient = lab.client(broker.port, await lab.tls('c1'), { retryForMs: 0 });
  const end = (kinds: string[], from: number): Promise<{ code: string; reason: unknown; message: string }> => new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`the watch from ${from} was not refused within 10 s`)), 10_000).unref();
    client.watch(kinds as never, from, {
      onEvents: () => undefined,
      onEnd: (err) => (err === undefined ? reject(new Error('watch ended cleanly')) : resolve({ code: err.code, reason: err.context['reason'], message: err.message })),
    }).catch(reject);
  });
  // compact everything so far, so revision 2 is surely gone
  const etcd = lab.etcd();
  const { header } = await etcd.kv.range({ key: Buffer.from('/isthmus/v1/clusters/c1') });
  await etcd.kv.compact({ revision: header.revision, physical: true });
  const future = await end(['EXPORT'], 10_000_000);
  assert.equal([future.code, future.reason], ['ISTHMUS_INVALID_ARGUMENT', 'future-revision']);
  assert.match(future.message, /in the future/);
  const old = await end(['EXPORT'], 2);
  assert.equal([old.code, old.reason], ['ISTHMUS_COMPACTED', 'compacted']);
  // watches that clients cancel are released by the broker
  const watchers = async (): Promise<string> => (await broker.metrics.getSingleMetricAsString('isthmus_broker_watchers')).split('\n').filter((l) => l.startsWith('isthmus_broker_watchers '))[0] ?? '';
  const cancels = await Promise.all(Array.from({ length: 5 }, () => client.watch(['EXPORT'], 0, { onEvents: () => undefined, onEnd: () => undefined })));
  await eventually('5 watchers open', async () => ((await watchers()) === 'isthmus_broker_watchers 5' ? true : undefined));
  for (const cancel of cancels) cancel();
  await eventually('watchers released', async () => ((await watchers()) === 'isthmus_broker_watchers 0' ? true : undefined));
  await lab.stopBroker(broker);
});

test('a List always holds every write acknowledged before it, also while writes pour in', async () => {
  const broker: BrokerServer = await lab.startBroker({ quotas: BULK });
  const writer = lab.client(broker.port, await lab.tls('c1'));
  const reader = lab.client(broker.port, await lab.tls('c1'));
  const acked = new Set<string>();
  let writing = true;
  const names = Array.from({ length: 400 }, (_, i) => `ryw-${i}`);
  const writes = (async () => {
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < names.length) {
        const name = names[next++] as string;
        await writer.publishExport(exp(name, 1));
        acked.add(`c1/default/${name}`);
      }
    }));
    writing = false;
  })();
  let lists = 0;
  while (writing || lists < 3) {
    const before = [...acked];
    const { events } = await reader.list(['EXPORT']);
    const listed = new Set(events.map((e) => e.key));
    const missing = before.filter((k) => !listed.has(k));
    assert.equal(missing, [], `list ${lists} lacks acknowledged writes`);
    lists++;
  }
  await writes;
  assert.ok(lists >= 3);
  await lab.stopBroker(broker);
});

test('removing a cluster with thousands of exports reaches watchers as changes (in bounded batches)', async () => {
  const broker: BrokerServer = await lab.startBroker({ quotas: BULK });
  const admin = lab.client(broker.port, await lab.tls('c1'));
  await admin.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  const big = 'v'.repeat(2_000);
  const names = Array.from({ length: 3_000 }, (_, i) => `bulk-${i}`);
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < names.length) {
      const name = names[next++] as string;
      await admin.publishExport({ ...exp(name, 1), annotations: { 'example.com/blob': big } });
    }
  }));
  const cache = new BrokerCache(lab.client(broker.port, await lab.tls('c1')), { kinds: ['EXPORT'], backoff: { baseMs: 50, maxMs: 500 } });
  let deleted = 0;
  cache.onChange((c) => {
    if (c.type === 'deleted') deleted++;
  });
  cache.start();
  try {
    await cache.synced;
    const count = cache.list('EXPORT').length;
    assert.ok(count >= names.length, `synced ${count} exports`);
    // ~3,000 keys with ~2 KB values each, deleted in batches of at most 64 keys per revision
    await admin.unregisterCluster('c1');
    await eventually('every delete to reach the watcher', () => (deleted === count ? true : undefined), 20_000);
    assert.is(cache.relists, 1, 'delivered as a change, not by listing again');
  } finally {
    await cache.stop();
    await lab.stopBroker(broker);
  }
});

/**
 * A loopback TCP relay to `target` whose open connections can be frozen: bytes stop flowing
 * both ways but the sockets stay open, as when a NAT entry is lost or a peer's host vanishes
 * without a reset. New connections are relayed as usual.
 */
async function freezableRelay(target: URL): Promise<{ url: string; freeze(): void; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((down) => {
    const up = createConnection({ host: target.hostname, port: Number(target.port) });
    const pair: [Socket, Socket] = [down, up];
    pairs.add(pair);
    down.pipe(up).on('error', () => undefined);
    up.pipe(down).on('error', () => undefined);
    down.on('close', () => { up.destroy(); pairs.delete(pair); });
    up.on('close', () => { down.destroy(); pairs.delete(pair); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    freeze: () => {
      for (const [down, up] of pairs) {
        down.unpipe(up); up.unpipe(down); down.pause(); up.pause();
      }
    },
    close: async () => {
      server.close();
      for (const [down, up] of pairs) { down.destroy(); up.destroy(); }
    },
  };
}

test('an etcd connection that dies without a word: the replica notices within seconds and its watchers get the changes', async () => {
  const relay = await freezableRelay(new URL(lab.etcdHosts[0] ?? ''));
  const a = await lab.startBroker({ etcdHosts: [relay.url] });
  const b = await lab.startBroker();
  const viaA = lab.client(a.port, await lab.tls('c1'));
  const viaB = lab.client(b.port, await lab.tls('c1'));
  const { cache, seen } = watchingExports(viaA);
  try {
    await cache.synced;
    await viaB.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
    await viaB.publishExport(exp('before-freeze', 1));
    await eventually('the change through A', () => (seen.some((c) => describe(c) === 'added:before-freeze:1') ? true : undefined));
    relay.freeze(); // A's etcd connection now swallows everything; etcd itself is fine
    await viaB.publishExport(exp('after-freeze', 1));
    // A's keepalive (10 s + 5 s) breaks the dead connection; its hub resumes on a new one
    await eventually('the change written during the freeze, through A', () => (seen.some((c) => describe(c) === 'added:after-freeze:1') ? true : undefined), 40_000);
    assert.is(seen.filter((c) => describe(c) === 'added:after-freeze:1').length, 1, 'once');
    assert.ok(cache.connected, 'the client never had to leave A');
  } finally {
    await relay.close(); // first: nothing may wait on a frozen connection
    await cache.stop();
    await lab.stopBroker(a);
    await lab.stopBroker(b);
  }
});

test.run();
