import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { desiredCables, guessVerdict, newestEndpoints, type RemoteCluster, type RemoteEndpoint } from './desired.ts';

const ep = (clusterId: string, over: Partial<RemoteEndpoint> = {}): RemoteEndpoint => ({
  clusterId, hostname: `${clusterId}-n1`, privateIp: `172.29.0.1${clusterId.slice(1)}`, publicIp: '', observedIp: `172.29.0.1${clusterId.slice(1)}`,
  port: 51820, natProbePort: 4490, driver: 'wireguard', backend: { 'public-key': `key-${clusterId}` }, revision: 10, ...over,
});
const clusters = new Map<string, RemoteCluster>([
  ['c1', { clusterId: 'c1', cidrs: ['10.1.0.0/16', '10.101.0.0/16'] }],
  ['c2', { clusterId: 'c2', cidrs: ['10.2.0.0/16', '10.102.0.0/16'] }],
  ['c3', { clusterId: 'c3', cidrs: ['10.3.0.0/16', '10.103.0.0/16'] }],
]);
const local = { clusterId: 'c1', driver: 'wireguard', behindNat: false, forceNatTraversal: false };

test('one cable per remote cluster, never to ourselves, sorted', () => {
  const cables = desiredCables(local, [ep('c3'), ep('c1'), ep('c2')], clusters);
  assert.equal(cables.map((c) => [c.remoteCluster, c.remoteIp, c.natTraversal]), [['c2', '172.29.0.12', false], ['c3', '172.29.0.13', false]]);
  assert.equal(cables[0]?.remoteCidrs, ['10.2.0.0/16', '10.102.0.0/16']);
  assert.equal(cables[0]?.backend, { 'public-key': 'key-c2' });
});

test('a remote behind NAT is reached at its public address with NAT traversal', () => {
  const natted = ep('c3', { privateIp: '172.28.3.10', observedIp: '172.29.0.13' });
  const [c3] = desiredCables(local, [natted], clusters);
  assert.equal([c3?.remoteIp, c3?.natTraversal], ['172.29.0.13', true]);
  const configured = ep('c3', { privateIp: '172.28.3.10', publicIp: '198.51.100.7', observedIp: '172.29.0.13' });
  assert.is(desiredCables(local, [configured], clusters)[0]?.remoteIp, '198.51.100.7');
});

test('being behind NAT ourselves, or forcing it, turns NAT traversal on', () => {
  assert.is(desiredCables({ ...local, behindNat: true }, [ep('c2')], clusters)[0]?.natTraversal, true);
  assert.is(desiredCables({ ...local, forceNatTraversal: true }, [ep('c2')], clusters)[0]?.natTraversal, true);
});

test('the newest endpoint of a cluster wins (failover before the old lease expires)', () => {
  const old = ep('c2', { hostname: 'c2-n1', privateIp: '172.29.0.12', revision: 5 });
  const fresh = ep('c2', { hostname: 'c2-n2', privateIp: '172.29.0.22', observedIp: '172.29.0.22', revision: 9 });
  assert.is(desiredCables(local, [fresh, old], clusters)[0]?.remoteIp, '172.29.0.22');
  assert.is(desiredCables(local, [old, fresh], clusters)[0]?.remoteIp, '172.29.0.22');
});

test('other drivers and clusters without a record are skipped; a probe verdict overrides the guess', () => {
  assert.equal(desiredCables(local, [ep('c2', { driver: 'ipsec' }), ep('c9')], clusters), []);
  const natted = ep('c3', { privateIp: '172.28.3.10', observedIp: '172.29.0.13' });
  assert.is(desiredCables(local, [natted], clusters, new Map([['c3', 'private' as const]]))[0]?.remoteIp, '172.28.3.10');
});

test('a public verdict sends the cable to the public address even when the guess was private', () => {
  const e = ep('c2', { publicIp: '198.51.100.2', observedIp: '172.29.0.12' });
  assert.is(desiredCables(local, [e], clusters)[0]?.remoteIp, '198.51.100.2', 'a configured public address other than the private one: the guess is public');
  const plain = ep('c2');
  assert.is(guessVerdict(plain), 'private');
  assert.is(desiredCables(local, [plain], clusters, new Map([['c2', 'public' as const]]))[0]?.remoteIp, '172.29.0.12', 'no public address but the private one');
  assert.is(desiredCables(local, [e], clusters, new Map([['c2', 'private' as const]]))[0]?.remoteIp, '172.29.0.12');
});

test('newestEndpoints: one per remote cluster on our driver, highest revision, sorted', () => {
  const got = newestEndpoints(local, [ep('c3', { revision: 2 }), ep('c2', { revision: 4, hostname: 'old' }), ep('c2', { revision: 5, hostname: 'new' }), ep('c1'), ep('c4', { driver: 'ipsec' })]);
  assert.equal(got.map((e) => [e.clusterId, e.hostname]), [['c2', 'new'], ['c3', 'c3-n1']]);
});

test('same input, same output (pure)', () => {
  const input = [ep('c2'), ep('c3')];
  assert.equal(desiredCables(local, input, clusters), desiredCables(local, input, clusters));
});

test.run();
