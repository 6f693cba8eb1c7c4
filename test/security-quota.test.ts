import { test, Lab, eventually } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { ErrorCodes, type IsthmusError } from '../core/index.ts';
import { BrokerCache, etcdKey, type BrokerClient, type BrokerServer, type EndpointInput, type Export } from '../broker/index.ts';

// Issue 10 findings 1 and 3: per-cluster quotas, and a hostile member's removal (or a
// revision too large to take) never freezes the other clusters' watches. Real broker,
// real etcd; the broker's etcd receive limit is set low so that "too large" is cheap.
let lab: Lab;
let broker: BrokerServer;
const clients: Record<string, BrokerClient> = {};
const QUOTAS = { maxRecords: 12, maxBytes: 400_000, maxEndpoints: 2, maxRecordBytes: 120_000, writesPerSecond: 5, writeBurst: 40, maxWatches: 2 };
const ETCD_MAX = 1024 * 1024;

const c = (id: string): BrokerClient => clients[id] as BrokerClient;
const exp = (id: string, name: string, annotationBytes = 0): Partial<Export> & Pick<Export, 'cluster_id' | 'namespace' | 'name'> => ({
  cluster_id: id, namespace: 'default', name, ...(annotationBytes === 0 ? {} : { annotations: annotations(annotationBytes) }),
});
/** Annotations of `bytes` in all (each value is limited to 64 KiB). */
function annotations(bytes: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; bytes > 0; i++, bytes -= 60_000) out[`a${i}`] = 'x'.repeat(Math.min(bytes, 60_000));
  return out;
}
const ep = (id: string, host: string): EndpointInput => ({ cluster_id: id, hostname: host, private_ip: '192.168.1.10', cable_driver: 'vxlan', ports: [{ name: 'cable', port: 4789, protocol: 'UDP' }] });

async function refusal(p: Promise<unknown>): Promise<IsthmusError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err as IsthmusError;
  }
}

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  const ids = ['victim', 'evil', 'fat', 'noisy', 'multi'];
  await lab.makePki(ids);
  broker = await lab.startBroker({ quotas: QUOTAS, etcdMaxMessageBytes: ETCD_MAX });
  for (const [i, id] of ids.entries()) {
    clients[id] = lab.client(broker.port, await lab.tls(id), { retryForMs: 0 });
    await c(id).registerCluster({ cluster_id: id, pod_cidrs: [`10.${i + 1}.0.0/16`], service_cidrs: [`10.${i + 101}.0.0/16`] });
  }
});

test.after(async () => {
  await lab?.cleanup();
});

test('maxRecords: the record over the limit is refused, naming the limit; the metric counts the records', async () => {
  for (let i = 0; i < QUOTAS.maxRecords; i++) await c('evil').publishExport(exp('evil', `svc-${i}`));
  const err = await refusal(c('evil').publishExport(exp('evil', 'one-more')));
  assert.is(err?.code, ErrorCodes.RESOURCE_EXHAUSTED);
  assert.match(err?.message ?? '', /maxRecords is 12/);
  assert.is(await refusal(c('evil').publishExport(exp('evil', 'svc-0', 10))), undefined, 'updating a record it holds is fine');
  const metrics = await broker.metrics.metrics();
  assert.match(metrics, /isthmus_broker_cluster_records\{cluster="evil"\} 12/);
  assert.match(metrics, /isthmus_broker_quota_refusals_total\{identity="evil",limit="maxRecords"\} 1/);
});

test('maxRecordBytes and maxBytes', async () => {
  const big = await refusal(c('fat').publishExport(exp('fat', 'huge', 130_000)));
  assert.match(big?.message ?? '', /maxRecordBytes is 120000/);
  for (let i = 0; i < 3; i++) await c('fat').publishExport(exp('fat', `part-${i}`, 110_000));
  const over = await refusal(c('fat').publishExport(exp('fat', 'part-3', 110_000)));
  assert.is(over?.code, ErrorCodes.RESOURCE_EXHAUSTED);
  assert.match(over?.message ?? '', /maxBytes is 400000/);
});

test('maxEndpoints (each endpoint holds a lease)', async () => {
  await c('multi').publishEndpoint(ep('multi', 'gw-1'), 30);
  await c('multi').publishEndpoint(ep('multi', 'gw-2'), 30);
  const err = await refusal(c('multi').publishEndpoint(ep('multi', 'gw-3'), 30));
  assert.is(err?.code, ErrorCodes.RESOURCE_EXHAUSTED);
  assert.match(err?.message ?? '', /maxEndpoints is 2/);
  assert.is(await refusal(c('multi').publishEndpoint(ep('multi', 'gw-1'), 30)), undefined, 'republishing one it has is fine');
});

test('writesPerSecond: a burst beyond writeBurst is refused; other identities write on', async () => {
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: 60 }, () => refusal(c('noisy').withdrawExport('noisy', 'default', 'nothing'))));
  const seconds = (Date.now() - t0) / 1000;
  const limited = results.filter((e) => e?.code === ErrorCodes.RESOURCE_EXHAUSTED);
  // the bucket lets through the burst and what refilled meanwhile, nothing more
  assert.ok(60 - limited.length <= QUOTAS.writeBurst + Math.ceil(seconds * QUOTAS.writesPerSecond) + 1, `${60 - limited.length} of 60 let through in ${seconds} s`);
  assert.ok(limited.length > 0);
  assert.match(limited[0]?.message ?? '', /faster than 5\/s/);
  assert.is(await refusal(c('victim').publishExport(exp('victim', 'web'))), undefined);
});

test('maxWatches: the third watch of one identity is refused', async () => {
  const ends: (IsthmusError | undefined)[] = [];
  const cancels: (() => void)[] = [];
  for (let i = 0; i < 3; i++) {
    cancels.push(await c('evil').watch(['CLUSTER'], 0, { onEvents: () => undefined, onEnd: (e) => ends.push(e) }));
  }
  try {
    const err = await eventually('the third watch to end', () => ends[0]);
    assert.is(err?.code, ErrorCodes.RESOURCE_EXHAUSTED);
    assert.match(err?.message ?? '', /maxWatches is 2/);
  } finally {
    for (const cancel of cancels) cancel();
  }
});

test('finding 1: a hostile member removing many large records, or a revision too large to take, freezes nobody', async () => {
  const cache = new BrokerCache(c('victim'), { kinds: ['CLUSTER', 'EXPORT'] });
  cache.start();
  try {
    await cache.synced;
    // "fat" holds 330 KB, "evil" 12 records: removing both used to be one revision each
    await c('fat').unregisterCluster('fat');
    await c('evil').unregisterCluster('evil');
    await c('victim').publishExport(exp('victim', 'after-removal'));
    await eventually('the victim to see its own change after the removals', () => (cache.get('EXPORT', 'victim/default/after-removal') === undefined ? undefined : true));
    assert.is(cache.list('EXPORT').filter((x) => x.cluster_id !== 'victim').length, 0, 'the removed clusters\' records are gone');
    // a revision above the broker's etcd receive limit (written behind its back): the broker lists again
    const etcd = lab.etcd();
    await etcd.kv.txn({
      compare: [],
      success: Array.from({ length: 6 }, (_, i) => ({
        request_put: { key: Buffer.from(etcdKey('EXPORT', `victim/default/bulk-${i}`)), value: Buffer.from(JSON.stringify({ ...exp('victim', `bulk-${i}`), annotations: { big: 'y'.repeat(200_000) } })) },
      })),
    });
    await c('victim').publishExport(exp('victim', 'after-big-revision'));
    await eventually('the victim to see its own change after the big revision', () => (cache.get('EXPORT', 'victim/default/after-big-revision') === undefined ? undefined : true), 20_000);
    assert.ok(cache.relists >= 2, 'the cache listed again instead of resuming into the big revision');
    assert.ok(await broker.ready(), 'the broker still serves');
  } finally {
    cache.stop();
  }
});

test('a restarted broker starts although its backfill holds the big revision', async () => {
  await lab.stopBroker(broker);
  broker = await lab.startBroker({ quotas: QUOTAS, etcdMaxMessageBytes: ETCD_MAX });
  const fresh = lab.client(broker.port, await lab.tls('victim'), { retryForMs: 0 });
  const { events } = await fresh.list(['EXPORT']);
  assert.ok(events.some((e) => e.key === 'victim/default/after-big-revision'));
});

test.run();
