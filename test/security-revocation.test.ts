import { test, Lab, eventually } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { ErrorCodes, certificateInfo } from '../core/index.ts';
import { createClustersetCA, issueFor, loadClustersetCA, splitPemBundle, verifyWithBundle, writeClustersetCA } from '../certs/index.ts';
import { REVOKED_DIR, type BrokerServer } from '../broker/index.ts';
import { certsCommand } from '../cli/certs.ts';
import { errorCodeAsync, errorCode } from '../core/testing.ts';

// Issue 10 finding 11: the revocation list in etcd, checked on every request, written by
// `isthmus certs revoke`; `certs ca rotate --revoke-previous`; shorter default lifetimes.
let lab: Lab;
let broker: BrokerServer;

const cluster = (id: string, n: number) => ({ cluster_id: id, pod_cidrs: [`10.${n}.0.0/16`], service_cidrs: [`10.${100 + n}.0.0/16`] });

async function cli(args: string[]): Promise<number> {
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = () => true;
  try {
    return await certsCommand.run(args);
  } finally {
    process.stdout.write = write;
  }
}

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1', 'c2', 'c3']);
  broker = await lab.startBroker({ revocationReloadMs: 60_000 });
});

test.after(async () => {
  await lab?.cleanup();
});

test('a revoked certificate is refused on its next request; a new certificate of the same cluster works', async () => {
  const c1 = lab.client(broker.port, await lab.tls('c1'), { retryForMs: 0 });
  await c1.registerCluster(cluster('c1', 1));
  assert.is(await cli(['revoke', '--etcd', lab.etcdHosts.join(','), '--cert', join(lab.pki, 'c1', 'tls.crt'), '--reason', 'key leaked']), 0);
  const err = await eventually('the revocation to apply', async () => ((await errorCodeAsync(c1.list(['CLUSTER']))) === ErrorCodes.UNAUTHENTICATED ? true : undefined), 5_000);
  assert.ok(err);
  assert.is(await errorCodeAsync(c1.publishExport({ cluster_id: 'c1', namespace: 'default', name: 'web' })), ErrorCodes.UNAUTHENTICATED);
  const fresh = lab.client(broker.port, lab.tlsOf(issueFor(lab.ca, { role: 'cluster', clusterId: 'c1' })), { retryForMs: 0 });
  assert.is(await errorCodeAsync(fresh.publishExport({ cluster_id: 'c1', namespace: 'default', name: 'web' })), undefined);
});

test('a revoked cluster is refused with any certificate, also after it unregistered; the others are served; deleting the key lifts it', async () => {
  const c2 = lab.client(broker.port, await lab.tls('c2'), { retryForMs: 0 });
  const c3 = lab.client(broker.port, await lab.tls('c3'), { retryForMs: 0 });
  await c2.registerCluster(cluster('c2', 2));
  await c2.unregisterCluster('c2');
  assert.is(await cli(['revoke', '--etcd', lab.etcdHosts.join(','), '--cluster', 'c2']), 0);
  const again = lab.client(broker.port, lab.tlsOf(issueFor(lab.ca, { role: 'cluster', clusterId: 'c2' })), { retryForMs: 0 });
  await eventually('c2 refused', async () => ((await errorCodeAsync(again.registerCluster(cluster('c2', 2)))) === ErrorCodes.UNAUTHENTICATED ? true : undefined), 5_000);
  assert.is(await errorCodeAsync(c3.registerCluster(cluster('c3', 3))), undefined, 'c3 unaffected');
  await lab.etcd().delete().key(`${REVOKED_DIR}cluster/c2`);
  await eventually('c2 served again', async () => ((await errorCodeAsync(again.registerCluster(cluster('c2', 2)))) === undefined ? true : undefined), 5_000);
});

test('revoke: bad input says what to give', async () => {
  const code = async (args: string[]) => {
    try {
      await cli(args);
      return 'OK';
    } catch (err) {
      return String(err);
    }
  };
  assert.match(await code(['revoke', '--etcd', lab.etcdHosts[0] ?? '', '--cluster', 'c1', '--serial', 'AB']), /exactly one of/);
  assert.match(await code(['revoke', '--etcd', lab.etcdHosts[0] ?? '', '--serial', 'xyz']), /not a certificate serial/);
  assert.match(await code(['revoke', '--etcd', lab.etcdHosts[0] ?? '', '--cluster', 'Not_A_Label']), /RFC-1123/);
  assert.match(await code(['revoke', '--cluster', 'c1']), /--etcd is required/);
});

test('ca rotate --revoke-previous trusts only the new CA; default lifetimes are 90 days (leaves) and 5 years (CA)', async () => {
  const dir = join(lab.dir, 'rotate-ca');
  const old = createClustersetCA();
  await writeClustersetCA(dir, old);
  assert.ok(certificateInfo(old.certPem).notAfter.getTime() - Date.now() < 1826 * 86_400_000);
  const leaf = issueFor(old, { role: 'cluster', clusterId: 'c1' });
  const days = (certificateInfo(leaf.certPem).notAfter.getTime() - certificateInfo(leaf.certPem).notBefore.getTime()) / 86_400_000;
  assert.ok(days <= 90.01, `a leaf lives ${days} days`);
  assert.is(await cli(['ca', 'rotate', '--ca', dir]), 0);
  assert.is(splitPemBundle((await loadClustersetCA(dir)).bundlePem).length, 2, 'a plain rotation keeps the previous CA');
  assert.is(await cli(['ca', 'rotate', '--ca', dir, '--revoke-previous']), 0);
  const bundle = await readFile(join(dir, 'ca-bundle.crt'), 'utf8').catch(() => '');
  const loaded = await loadClustersetCA(dir);
  assert.is(splitPemBundle(loaded.bundlePem).length, 1, `the bundle holds the new CA only (${bundle.length} bytes)`);
  assert.is(errorCode(() => verifyWithBundle(leaf.certPem, loaded.bundlePem)), ErrorCodes.BAD_CREDENTIALS);
  assert.is(errorCode(() => verifyWithBundle(issueFor(loaded, { role: 'cluster', clusterId: 'c1' }).certPem, loaded.bundlePem)), undefined);
});

test.run();
