import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError, cidrsOverlap, parseCidr } from '../core/index.ts';
import { issueFor, writeIssued } from '../certs/index.ts';
import { join } from 'node:path';
import { refusal, withLab, type Lab } from './broker-harness.ts';

// Overlap refusal without global addressing; global CIDR allocation with it,
// including clusters registering at the same moment through two broker replicas.

const IDS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];


async function setup(lab: Lab): Promise<void> {
  await lab.startEtcd(1);
  await lab.makePki(IDS);
}

test('overlapping CIDRs are refused with FAILED_PRECONDITION naming the other cluster', async () => {
  await withLab(async (lab) => {
    await setup(lab);
    const broker = await lab.startBroker();
    const c1 = lab.client(broker.port, await lab.tls('c1'), { retryForMs: 0 });
    const c2 = lab.client(broker.port, await lab.tls('c2'), { retryForMs: 0 });
    await c1.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16', 'fd00:1::/48'], service_cidrs: ['10.101.0.0/16'] });
    const e = await refusal(c2.registerCluster({ cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: ['10.1.128.0/17'] }));
    assert.is(e.code, ErrorCodes.FAILED_PRECONDITION);
    assert.match(e.message, /10\.1\.128\.0\/17 overlaps 10\.1\.0\.0\/16 of cluster c1/);
    const v6 = await refusal(c2.registerCluster({ cluster_id: 'c2', pod_cidrs: ['fd00:1:0:5::/64'], service_cidrs: ['10.102.0.0/16'] }));
    assert.match(v6.message, /overlaps fd00:1::\/48 of cluster c1/);
    // re-registering with the same CIDRs is not an overlap with itself
    const again = await c1.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16', 'fd00:1::/48'], service_cidrs: ['10.101.0.0/16'], labels: { zone: 'a' } });
    assert.is(again.cluster.global_cidr, '');
    await c2.registerCluster({ cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: ['10.102.0.0/16'] });
    const { events } = await c2.list(['CLUSTER']);
    assert.equal(events.map((x) => x.key).sort(), ['c1', 'c2']);
  });
});

test('two clusters with overlapping CIDRs registering at once through two replicas: exactly one wins', async () => {
  await withLab(async (lab) => {
    await setup(lab);
    const a = await lab.startBroker();
    const b = await lab.startBroker();
    for (let round = 0; round < 3; round++) {
      const x = IDS[2 * round] as string;
      const y = IDS[2 * round + 1] as string;
      const cx = lab.client(a.port, await lab.tls(x), { retryForMs: 0 });
      const cy = lab.client(b.port, await lab.tls(y), { retryForMs: 0 });
      const cidr = `10.${50 + round}.0.0/16`;
      const results = await Promise.allSettled([
        cx.registerCluster({ cluster_id: x, pod_cidrs: [cidr], service_cidrs: [`10.${150 + 2 * round}.0.0/16`] }),
        cy.registerCluster({ cluster_id: y, pod_cidrs: [cidr], service_cidrs: [`10.${151 + 2 * round}.0.0/16`] }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.is(won.length, 1, `round ${round}: exactly one registration succeeds`);
      assert.is(lost.length, 1);
      const err = lost[0]?.reason as IsthmusError;
      assert.is(err.code, ErrorCodes.FAILED_PRECONDITION);
      const winner = results[0]?.status === 'fulfilled' ? x : y;
      assert.match(err.message, new RegExp(`of cluster ${winner}`));
    }
  });
});

test('global addressing: non-overlapping, stable, released on removal, atomic under concurrency', async () => {
  await withLab(async (lab) => {
    await setup(lab);
    const a = await lab.startBroker({ globalCidrPool: '242.0.0.0/8' });
    const b = await lab.startBroker({ globalCidrPool: '242.0.0.0/8' });
    // all eight clusters use the same pod and service CIDRs, and register at once, half through each replica
    const clients = await Promise.all(IDS.map(async (id, i) => lab.client((i % 2 === 0 ? a : b).port, await lab.tls(id), { retryForMs: 0 })));
    const got = await Promise.all(IDS.map((id, i) => clients[i]?.registerCluster({ cluster_id: id, pod_cidrs: ['10.0.0.0/16'], service_cidrs: ['10.96.0.0/12'] })));
    const cidrs = got.map((g) => g?.cluster.global_cidr ?? '');
    for (const c of cidrs) assert.match(c, /^242\.\d+\.0\.0\/16$/);
    for (let i = 0; i < cidrs.length; i++) {
      for (let j = i + 1; j < cidrs.length; j++) assert.not.ok(cidrsOverlap(parseCidr(cidrs[i] as string), parseCidr(cidrs[j] as string)), `${cidrs[i]} vs ${cidrs[j]}`);
    }
    assert.equal([...cidrs].sort(), IDS.map((_, i) => `242.${i}.0.0/16`).sort(), 'the lowest free blocks, each once');
    // stable across re-registration (through the other replica)
    const c1Cidr = cidrs[0] as string;
    const c1b = lab.client(b.port, await lab.tls('c1'), { retryForMs: 0 });
    const again = await c1b.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.0.0.0/16'], service_cidrs: ['10.96.0.0/12'], labels: { re: 'registered' } });
    assert.is(again.cluster.global_cidr, c1Cidr);
    // released when the cluster is removed, then handed out again
    await clients[0]?.unregisterCluster('c1');
    const etcd = lab.etcd();
    assert.is(await etcd.get(`/isthmus/v1/globalcidrs/${c1Cidr.replace('/', '_')}`).string(), null, 'allocation released');
    const admin = lab.client(a.port, await lab.tls('admin'), { retryForMs: 0 });
    const c9 = await admin.registerCluster({ cluster_id: 'c9', pod_cidrs: ['10.0.0.0/16'], service_cidrs: ['10.96.0.0/12'] });
    assert.is(c9.cluster.global_cidr, c1Cidr);
    // a replica started with another pool refuses to start
    const wrong = await refusal(lab.startBroker({ globalCidrPool: '243.0.0.0/8' }));
    assert.is(wrong.code, ErrorCodes.INVALID_CONFIG);
    assert.match(wrong.message, /242\.0\.0\.0\/8/);
    const none = await refusal(lab.startBroker());
    assert.is(none.code, ErrorCodes.INVALID_CONFIG);
  });
});

test('an exhausted global pool is refused with a clear message', async () => {
  await withLab(async (lab) => {
    await setup(lab);
    const broker = await lab.startBroker({ globalCidrPool: '242.0.0.0/23', globalCidrPrefix: 24 });
    const admin = lab.client(broker.port, await lab.tls('admin'), { retryForMs: 0 });
    for (const id of ['c1', 'c2']) await admin.registerCluster({ cluster_id: id, pod_cidrs: ['10.0.0.0/16'], service_cidrs: ['10.96.0.0/12'] });
    const e = await refusal(admin.registerCluster({ cluster_id: 'c3', pod_cidrs: ['10.0.0.0/16'], service_cidrs: ['10.96.0.0/12'] }));
    assert.is(e.code, ErrorCodes.FAILED_PRECONDITION);
    assert.match(e.message, /has no free \/24 left/);
    // writes under the harness PKI dir still work after the refusal
    await writeIssued(join(lab.pki, 'extra'), issueFor(lab.ca, { role: 'cluster', clusterId: 'c4' }), lab.ca);
    const { events } = await admin.list(['CLUSTER']);
    assert.is(events.length, 2, 'nothing stored for the refused cluster');
  });
});

test.run();
