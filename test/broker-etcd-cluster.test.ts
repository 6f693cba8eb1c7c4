import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { BrokerCache, type Change } from '../broker/index.ts';
import { Lab, eventually, sleepMs, type EtcdMember } from './broker-harness.ts';

// A broker on a 3-member etcd cluster: killing a follower, then the leader, never
// fails a client request (they wait out the election) and loses no record.
let lab: Lab;

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(3);
  await lab.makePki(['c1', 'c2']);
});

test.after(async () => {
  await lab?.cleanup();
});

const exp = (name: string) => ({ cluster_id: 'c1', namespace: 'default', name, type: 'ClusterSetIP', ports: [{ name: 'http', protocol: 'TCP', port: 80, app_protocol: '' }] });

test('killing a follower and then the leader fails no request and loses no record', async () => {
  const broker = await lab.startBroker();
  const c1 = lab.client(broker.port, await lab.tls('c1'));
  const c2 = lab.client(broker.port, await lab.tls('c2'));
  await c1.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  const cache = new BrokerCache(c2, { kinds: ['EXPORT'], backoff: { baseMs: 50, maxMs: 500 } });
  const seen: Change[] = [];
  cache.onChange((c) => seen.push(c));
  cache.start();
  await cache.synced;

  const acknowledged: string[] = [];
  const failures: string[] = [];
  let longest = 0;
  let running = true;
  const writer = (async () => {
    for (let i = 0; running; i++) {
      const started = Date.now();
      try {
        await c1.publishExport(exp(`svc-${i}`));
        acknowledged.push(`c1/default/svc-${i}`);
      } catch (err) {
        failures.push(`svc-${i}: ${String(err)}`);
      }
      longest = Math.max(longest, Date.now() - started);
      await sleepMs(20);
    }
  })();
  try {
    await sleepMs(500);
    const leader = await lab.leader();
    const follower = lab.members.find((m) => m !== leader) as EtcdMember;
    await lab.killMember(follower);
    await sleepMs(2_000);
    lab.restartMember(follower);
    await lab.waitEtcdReady([follower.clientUrl]);
    await sleepMs(500);
    const followerPhase = longest;
    const leader2 = await lab.leader();
    const killedAt = acknowledged.length;
    await lab.killMember(leader2);
    await eventually('writes to continue after the election', () => (acknowledged.length > killedAt + 20 ? true : undefined), 30_000);
    running = false;
    await writer;
    console.log(`  ${acknowledged.length} writes; longest request: ${followerPhase} ms through the follower kill, ${longest} ms overall (leader kill, election timeout 1 s)`);
    assert.equal(failures, [], 'no request failed');
    // "for longer than the election takes": a generous correctness bound (several election timeouts), not a speed target
    assert.ok(longest < 10_000, `a request waited ${longest} ms`);
    const { events } = await c2.list(['EXPORT']);
    const stored = new Set(events.map((e) => e.key));
    const lost = acknowledged.filter((k) => !stored.has(k));
    assert.equal(lost, [], 'every acknowledged write is stored');
    await eventually('the watcher to have every record', () => (acknowledged.every((k) => cache.get('EXPORT', k) !== undefined) ? true : undefined), 15_000);
    const added = seen.filter((s) => s.type === 'added').map((s) => s.key);
    assert.is(new Set(added).size, added.length, 'each record reached the watcher once');
    assert.is(added.length, acknowledged.length);
  } finally {
    running = false;
    await writer;
    await cache.stop();
    await lab.stopBroker(broker);
  }
});

test.run();
