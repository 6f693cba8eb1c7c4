import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CableSpec } from './cable/driver.ts';
import { clusterShapeProblem, displayable, endpointShapeProblem, healthProblem, screenCables } from './screen.ts';

// Issue 10 findings 4, 5, 8, 10 at the receiver: what a gateway refuses whatever the broker relayed.
const spec = (remoteCluster: string, extra: Partial<CableSpec> = {}): CableSpec => ({
  remoteCluster, remoteIp: `172.29.0.${remoteCluster.length + 10}`, remotePort: 51820, remoteCidrs: ['10.2.0.0/16'], natTraversal: false, backend: {}, ...extra,
});
const ctx = { ownAddresses: ['172.29.0.11', '192.168.7.5'], brokerAddresses: ['172.29.0.2'] };
const reasons = (specs: CableSpec[]) => {
  const r = screenCables(specs, ctx);
  return { accepted: r.accepted.map((s) => s.remoteCluster), refused: Object.fromEntries(r.refused.map((x) => [x.remoteCluster, x.reason])) };
};

test('refusals caused by the CIDRs say so (routed nowhere); others leave CIDRs to fail closed on', () => {
  const r = screenCables([spec('brk', { remoteCidrs: ['172.29.0.0/30'] }), spec('a', { backend: { 'public-key': 'same' }, remoteCidrs: ['10.5.0.0/16'] }), spec('b', { backend: { 'public-key': 'same' }, remoteCidrs: ['10.6.0.0/16'] })], ctx);
  assert.equal(r.refused.map((x) => [x.remoteCluster, x.badCidrs ?? false]), [['brk', true], ['a', false], ['b', false]]);
});

test('sound cables pass untouched', () => {
  const specs = [spec('c2'), spec('c3', { remoteCidrs: ['10.3.0.0/16'], backend: { 'public-key': 'k3' } }), spec('c4', { remoteCidrs: ['242.1.0.0/16'], backend: { 'cert-cn': 'gw.c4' } })];
  assert.equal(screenCables(specs, ctx).accepted, specs);
});

test('finding 5: a remote CIDR holding this node, the broker, a peer\'s cable address or a non-unicast range is refused', () => {
  const r = reasons([
    spec('own', { remoteCidrs: ['192.168.0.0/16'] }),
    spec('brk', { remoteCidrs: ['172.29.0.0/30'] }),
    spec('peer', { remoteCidrs: ['10.9.0.0/16'] }),
    spec('victim', { remoteIp: '10.9.0.7' }),
    spec('meta', { remoteCidrs: ['169.254.0.0/16'] }),
    spec('mcast', { remoteCidrs: ['224.0.0.0/4'] }),
    spec('wide', { remoteCidrs: ['0.0.0.0/1'] }),
  ]);
  assert.match(r.refused['own'] ?? '', /contains this gateway's own address 192\.168\.7\.5/);
  assert.match(r.refused['brk'] ?? '', /contains the broker's address 172\.29\.0\.2/);
  assert.match(r.refused['peer'] ?? '', /contains the cable address 10\.9\.0\.7 of cluster victim/);
  assert.match(r.refused['meta'] ?? '', /169\.254\.0\.0\/16/);
  assert.match(r.refused['mcast'] ?? '', /multicast/);
  assert.match(r.refused['wide'] ?? '', /this network|broader/);
  assert.equal(r.accepted, ['victim']);
});

test('finding 10: a non-unicast gateway address is refused', () => {
  for (const ip of ['0.0.0.0', '255.255.255.255', '224.0.0.1', '127.0.0.1', '::']) {
    assert.match(reasons([spec('c2', { remoteIp: ip })]).refused['c2'] ?? '', /not a unicast address/, ip);
  }
  const long = reasons([spec('c2', { remoteIp: 'x\n'.repeat(2000) })]).refused['c2'] ?? '';
  assert.match(long, /not an IP address/);
  assert.ok(long.length < 200, 'the reason quotes a bounded part of it');
  assert.is(displayable(spec('c2', { remoteIp: 'x\n'.repeat(2000) })).remoteIp, '(not an IP address)', 'the status does not copy it');
  assert.is(displayable(spec('c2', { remoteIp: '224.0.0.1' })).remoteIp, '224.0.0.1');
  for (const port of [53, 0, 70_000, 1.5]) assert.match(reasons([spec('c2', { remotePort: port })]).refused['c2'] ?? '', /port .* is not 1024-65535/, String(port));
  assert.equal(reasons([spec('c2', { remotePort: 500 }), spec('c3', { remoteCidrs: ['10.3.0.0/16'], remotePort: 4500 })]).accepted, ['c2', 'c3']);
});

test('finding 4: every cable sharing a key is refused, none is chosen; finding 8: the IPsec identity is bound to the cluster', () => {
  const r = reasons([
    spec('a', { backend: { 'public-key': 'same' } }), spec('b', { remoteCidrs: ['10.3.0.0/16'], backend: { 'public-key': 'same' } }),
    spec('c', { remoteCidrs: ['10.4.0.0/16'], backend: { 'public-key': 'other' } }),
    spec('d', { remoteCidrs: ['10.5.0.0/16'], backend: { 'cert-cn': 'gw.c' } }),
  ]);
  assert.match(r.refused['a'] ?? '', /public-key is also published by cluster b/);
  assert.match(r.refused['b'] ?? '', /public-key is also published by cluster a/);
  assert.match(r.refused['d'] ?? '', /is not "<gateway>\.d"/);
  assert.equal(r.accepted, ['c']);
});

test('finding 9: a health-check address must be unicast and inside the remote\'s CIDRs', () => {
  assert.is(healthProblem('10.2.0.1', ['10.2.0.0/16']), undefined);
  assert.match(healthProblem('127.0.0.1', ['10.2.0.0/16']) ?? '', /loopback/);
  assert.match(healthProblem('10.1.0.1', ['10.2.0.0/16']) ?? '', /outside the remote's CIDRs/);
});

test('finding 12: relayed records of the wrong shape are named, so the engine skips them instead of throwing', () => {
  const ep = { cluster_id: 'c2', hostname: 'gw', private_ip: '10.0.0.1', public_ip: '', cable_driver: 'wireguard', health_check_ip: '', observed_source_ip: '', ports: [{ name: 'cable', port: 51820, protocol: 'UDP' }], backend_config: {} };
  assert.is(endpointShapeProblem(ep), undefined);
  assert.match(endpointShapeProblem({ ...ep, ports: 5 }) ?? '', /ports/);
  assert.match(endpointShapeProblem({ ...ep, ports: [null] }) ?? '', /ports/);
  assert.match(endpointShapeProblem({ ...ep, backend_config: { k: 1 } }) ?? '', /backend_config/);
  assert.match(endpointShapeProblem({ ...ep, private_ip: 7 }) ?? '', /private_ip/);
  assert.match(endpointShapeProblem(null) ?? '', /not an object/);
  const c = { cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: [], global_cidr: '', labels: {} };
  assert.is(clusterShapeProblem(c), undefined);
  assert.match(clusterShapeProblem({ ...c, pod_cidrs: 'x' }) ?? '', /pod_cidrs/);
  assert.match(clusterShapeProblem({ ...c, global_cidr: null }) ?? '', /global_cidr/);
});

test.run();
