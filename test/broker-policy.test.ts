import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { BrokerCache, validateIdentitySet, validatePolicyRecord, validatePolicyStatus, type BrokerClient, type BrokerServer, type IdentitySet, type PolicyStatusRecord } from '../broker/index.ts';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { Lab, eventually } from './broker-harness.ts';

// The POLICY and IDENTITY record kinds on a real broker over a real etcd: a cluster writes
// only its own, identities only for addresses in its own pod CIDRs, a spec must be valid;
// a watcher of another cluster receives them and validates them again.
let lab: Lab;
let broker: BrokerServer;
let c1: BrokerClient;
let c2: BrokerClient;

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1', 'c2']);
  broker = await lab.startBroker();
  c1 = lab.client(broker.port, await lab.tls('c1'), { retryForMs: 0 });
  c2 = lab.client(broker.port, await lab.tls('c2'), { retryForMs: 0 });
  await c1.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  await c2.registerCluster({ cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: ['10.102.0.0/16'] });
});

test.after(async () => {
  await lab?.cleanup();
});

async function refusedWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof IsthmusError, String(err));
    assert.is(err.code, code, err.message);
    assert.match(err.message, message);
    return;
  }
  assert.unreachable('the broker accepted it');
}

const spec = JSON.stringify({ appliedTo: { podSelector: { matchLabels: { app: 'backend' } } }, ingress: [{ name: 'frontend', priority: 10, action: 'Allow', from: [{ clusters: { ids: ['c2'] } }], ports: [{ port: 8080 }] }], default: 'Deny' });
const identities = (over: Partial<IdentitySet> = {}): IdentitySet => ({
  cluster_id: 'c2', namespace: 'web', namespace_labels: { team: 'web' },
  identities: [{ id: 1, labels: { app: 'frontend' } }], pods: [{ ip: '10.2.0.5', name: 'frontend-1', identity: 1 }], ...over,
});

test('policies and identities are published, watched by another cluster and valid there', async () => {
  const cache = new BrokerCache(c1, { kinds: ['POLICY', 'IDENTITY'] });
  cache.start();
  await cache.synced;
  try {
    const first = await c1.publishPolicy({ cluster_id: 'c1', namespace: 'backend', name: 'frontend-in', spec, generation: 1 });
    const again = await c1.publishPolicy({ cluster_id: 'c1', namespace: 'backend', name: 'frontend-in', spec, generation: 1 });
    assert.is(again.revision, first.revision, 'an unchanged policy makes no new revision');
    await c2.publishIdentities(identities());
    const got = await eventually('both records at the watcher', () => {
      const p = cache.get('POLICY', 'c1/backend/frontend-in');
      const i = cache.get('IDENTITY', 'c2/web');
      return p !== undefined && i !== undefined ? { p, i } : undefined;
    });
    assert.is(validatePolicyRecord(got.p).spec.default, 'Deny');
    assert.equal(validateIdentitySet(got.i, ['10.2.0.0/16']).pods, [{ ip: '10.2.0.5', name: 'frontend-1', identity: 1 }]);
    assert.is((await c2.withdrawIdentities('c2', 'web')).existed, true);
    await eventually('identity withdrawn at the watcher', () => (cache.get('IDENTITY', 'c2/web') === undefined ? true : undefined));
  } finally {
    await cache.stop();
  }
});

test('a cluster writes only its own policies and identities', async () => {
  await refusedWith(c2.publishPolicy({ cluster_id: 'c1', namespace: 'backend', name: 'takeover', spec, generation: 1 }), ErrorCodes.PERMISSION_DENIED, /c2/);
  await refusedWith(c2.withdrawPolicy('c1', 'backend', 'frontend-in'), ErrorCodes.PERMISSION_DENIED, /c2/);
  await refusedWith(c1.publishIdentities(identities()), ErrorCodes.PERMISSION_DENIED, /c1/);
});

test('identities for addresses outside the cluster\'s own pod CIDRs are refused', async () => {
  await refusedWith(c2.publishIdentities(identities({ pods: [{ ip: '10.1.0.9', name: 'spoof', identity: 1 }] })), ErrorCodes.INVALID_ARGUMENT, /10\.1\.0\.9 is outside the pod CIDRs of cluster c2/);
  await refusedWith(c2.publishIdentities(identities({ pods: [{ ip: '10.2.0.9', name: 'x', identity: 7 }] })), ErrorCodes.INVALID_ARGUMENT, /names no identity/);
});

test('an invalid spec is refused with the field named', async () => {
  const bad = JSON.stringify({ appliedTo: {}, ingress: [{ name: 'a', priority: 1, action: 'Allow', ports: [{ port: 70000 }] }] });
  await refusedWith(c1.publishPolicy({ cluster_id: 'c1', namespace: 'backend', name: 'bad', spec: bad, generation: 1 }), ErrorCodes.INVALID_ARGUMENT, /ingress\[0\]\.ports\[0\]\.port: port 70000 is out of range/);
  await refusedWith(c1.publishPolicy({ cluster_id: 'c1', namespace: 'backend', name: 'bad', spec: '{', generation: 1 }), ErrorCodes.INVALID_ARGUMENT, /spec is not JSON/);
});

test('cluster labels: published by a registration, kept by one without labels (the gateway\'s), replaced by the next; bad ones refused', async () => {
  const labelsOf = async (): Promise<Record<string, string> | undefined> => (await c1.list(['CLUSTER'])).events.map((e) => e.record).flatMap((r) => ('pod_cidrs' in r && 'global_cidr' in r && r.cluster_id === 'c2' ? [r.labels] : []))[0];
  const cidrs = { cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: ['10.102.0.0/16'] };
  await c2.registerCluster({ ...cidrs, labels: { 'cluster.clusterset.k8s.io': 'c2', tier: 'gold' } });
  assert.equal(await labelsOf(), { 'cluster.clusterset.k8s.io': 'c2', tier: 'gold' });
  await c2.registerCluster(cidrs);
  assert.equal(await labelsOf(), { 'cluster.clusterset.k8s.io': 'c2', tier: 'gold' }, 'a registration without labels keeps them');
  await c2.registerCluster({ ...cidrs, labels: { 'cluster.clusterset.k8s.io': 'c2' } });
  assert.equal(await labelsOf(), { 'cluster.clusterset.k8s.io': 'c2' });
  await refusedWith(c2.registerCluster({ ...cidrs, labels: { tier: 'a b' } }), ErrorCodes.INVALID_ARGUMENT, /labels\[tier\]: value is not valid/);
  await refusedWith(c2.registerCluster({ ...cidrs, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }), ErrorCodes.INVALID_ARGUMENT, /labels has 65 entries; at most 64/);
});

const status = (over: Partial<PolicyStatusRecord> = {}): PolicyStatusRecord => ({
  cluster_id: 'c2', policy_cluster: 'c1', namespace: 'backend', name: 'frontend-in', generation: 1,
  state: 'Accepted', message: 'governs backend; enforced on 2 of 3 nodes', enforced_nodes: 2, nodes: 3, ...over,
});

test('policy statuses: a receiver reports on another cluster\'s policy, the author watches it, unchanged makes no revision, withdraw removes it', async () => {
  const cache = new BrokerCache(c1, { kinds: ['POLICY_STATUS'] });
  cache.start();
  await cache.synced;
  try {
    const first = await c2.publishPolicyStatus(status());
    assert.is((await c2.publishPolicyStatus(status())).revision, first.revision, 'an unchanged status makes no new revision');
    const got = await eventually('the status at the author', () => cache.get('POLICY_STATUS', 'c2/c1/backend/frontend-in'));
    assert.equal(validatePolicyStatus(got), status());
    await c2.publishPolicyStatus(status({ enforced_nodes: 3 }));
    await eventually('the new count at the author', () => (cache.get('POLICY_STATUS', 'c2/c1/backend/frontend-in')?.enforced_nodes === 3 ? true : undefined));
    assert.is((await c2.withdrawPolicyStatus('c2', 'c1', 'backend', 'frontend-in')).existed, true);
    await eventually('withdrawn at the author', () => (cache.get('POLICY_STATUS', 'c2/c1/backend/frontend-in') === undefined ? true : undefined));
  } finally {
    await cache.stop();
  }
});

test('policy statuses: only the receiver writes its own, never about its own policy; bad fields refused with the field named', async () => {
  await refusedWith(c1.publishPolicyStatus(status()), ErrorCodes.PERMISSION_DENIED, /c1/);
  await refusedWith(c1.withdrawPolicyStatus('c2', 'c1', 'backend', 'frontend-in'), ErrorCodes.PERMISSION_DENIED, /c1/);
  await refusedWith(c2.publishPolicyStatus(status({ policy_cluster: 'c2' })), ErrorCodes.INVALID_ARGUMENT, /policy_cluster c2 is the reporting cluster itself/);
  await refusedWith(c2.publishPolicyStatus(status({ state: 'Fine' as PolicyStatusRecord['state'] })), ErrorCodes.INVALID_ARGUMENT, /state "Fine" must be one of Accepted, NotApplicable, Error/);
  await refusedWith(c2.publishPolicyStatus(status({ message: 'x'.repeat(1025) })), ErrorCodes.INVALID_ARGUMENT, /message is 1025 bytes; at most 1024/);
  await refusedWith(c2.publishPolicyStatus(status({ enforced_nodes: 4 })), ErrorCodes.INVALID_ARGUMENT, /enforced_nodes must be a whole number from 0 to 3/);
  await refusedWith(c2.publishPolicyStatus(status({ namespace: 'Back_End' })), ErrorCodes.INVALID_ARGUMENT, /namespace "Back_End" is not an RFC-1123 label/);
});

test('unregistering a cluster removes its policies, identities and policy statuses', async () => {
  await c2.publishIdentities(identities());
  await c2.publishPolicy({ cluster_id: 'c2', namespace: 'web', name: 'p', spec, generation: 1 });
  await c2.publishPolicyStatus(status());
  await c2.unregisterCluster('c2');
  const left = await c1.list(['POLICY', 'IDENTITY', 'POLICY_STATUS']);
  assert.equal(left.events.map((e) => e.key), ['c1/backend/frontend-in']);
});

test.run();
