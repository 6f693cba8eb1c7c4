import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { desiredRoutes, tunnelIp, tunnelMac, type AgentView, type RemoteView } from './desired.ts';

const c2: RemoteView = { cluster: 'c2', cidrs: ['10.2.0.0/16', '10.102.0.0/16'], mtu: 1420 };
const c3: RemoteView = { cluster: 'c3', cidrs: ['10.3.0.0/16', '10.103.0.0/16'] };

function view(over: Partial<AgentView> = {}): AgentView {
  return {
    node: { name: 'c1-n3', ip: '172.30.1.13', addresses: ['172.30.1.13'] },
    localCidrs: ['10.1.0.0/16', '10.101.0.0/16'],
    gateway: { name: 'c1-n1', ip: '172.30.1.11' },
    mode: 'direct',
    remotes: [c3, c2],
    vxlanPeers: [],
    table: 220,
    pref: 220,
    ...over,
  };
}

test('a node that is not the gateway routes every remote CIDR to the gateway node, with the cable MTU', () => {
  const d = desiredRoutes(view());
  assert.equal(d.routes, [
    { table: 220, dst: '10.2.0.0/16', type: 'unicast', via: '172.30.1.11', mtu: 1420 },
    { table: 220, dst: '10.102.0.0/16', type: 'unicast', via: '172.30.1.11', mtu: 1420 },
    // c3's gateway has not published an MTU yet: the smallest our drivers use
    { table: 220, dst: '10.3.0.0/16', type: 'unicast', via: '172.30.1.11', mtu: 1400 },
    { table: 220, dst: '10.103.0.0/16', type: 'unicast', via: '172.30.1.11', mtu: 1400 },
  ]);
  assert.equal(d.rules, [{ pref: 220, table: 220 }]);
  assert.equal(d.filter.remoteCidrs, ['10.2.0.0/16', '10.102.0.0/16', '10.3.0.0/16', '10.103.0.0/16']);
  assert.is(d.tunnel, undefined);
  assert.equal(d.routed.map((r) => [r.cluster, r.via, r.mode]), [['c2', 'c1-n1', 'direct'], ['c3', 'c1-n1', 'direct']]);
  assert.equal(d.refused, []);
});

test('the same view gives the same desired state whatever the order of remotes', () => {
  assert.equal(desiredRoutes(view({ remotes: [c2, c3] })), desiredRoutes(view({ remotes: [c3, c2] })));
});

test('on the active gateway node: fail-closed unreachable routes behind main without its default route', () => {
  const d = desiredRoutes(view({ node: { name: 'c1-n1', ip: '172.30.1.11', addresses: ['172.30.1.11', '172.29.0.11'] } }));
  assert.ok(d.routes.every((r) => r.type === 'unreachable' && r.table === 220));
  assert.equal(d.routes.map((r) => r.dst), ['10.2.0.0/16', '10.102.0.0/16', '10.3.0.0/16', '10.103.0.0/16']);
  assert.equal(d.rules, [
    { pref: 218, table: 'main', to: '10.102.0.0/16', suppressPrefixLength: 0 },
    { pref: 218, table: 'main', to: '10.103.0.0/16', suppressPrefixLength: 0 },
    { pref: 218, table: 'main', to: '10.2.0.0/16', suppressPrefixLength: 0 },
    { pref: 218, table: 'main', to: '10.3.0.0/16', suppressPrefixLength: 0 },
    { pref: 220, table: 220 },
  ]);
  assert.equal(d.routed.map((r) => r.mode), ['cable', 'cable']);
  assert.is(d.tunnel, undefined);
});

test('no gateway known (none holds the Lease): remote CIDRs are unreachable, never sent by the default route', () => {
  const d = desiredRoutes(view({ gateway: undefined }));
  assert.ok(d.routes.length === 4 && d.routes.every((r) => r.type === 'unreachable'));
  assert.equal(d.routed.map((r) => r.mode), ['none', 'none']);
});

test('failing over: the routes follow the new gateway node', () => {
  const before = desiredRoutes(view());
  const after = desiredRoutes(view({ gateway: { name: 'c1-n2', ip: '172.30.1.12' } }));
  assert.ok(before.routes.every((r) => r.via === '172.30.1.11'));
  assert.ok(after.routes.every((r) => r.via === '172.30.1.12'));
  // the old gateway node, now passive, routes to the new one like any other node
  const oldGw = desiredRoutes(view({ node: { name: 'c1-n1', ip: '172.30.1.11', addresses: [] }, gateway: { name: 'c1-n2', ip: '172.30.1.12' } }));
  assert.ok(oldGw.routes.every((r) => r.type === 'unicast' && r.via === '172.30.1.12'));
  assert.equal(oldGw.rules, [{ pref: 220, table: 220 }]);
});

test('vxlan mode: routes via the gateway\'s tunnel address on the tunnel device, MTU within the tunnel\'s', () => {
  const d = desiredRoutes(view({ mode: 'vxlan', remotes: [{ cluster: 'c2', cidrs: ['10.2.0.0/16'], mtu: 1480 }] }));
  assert.equal(d.routes, [{ table: 220, dst: '10.2.0.0/16', type: 'unicast', via: '240.30.1.11', dev: 'isthmus-ra', onlink: true, mtu: 1450 }]);
  assert.equal(d.tunnel, { localIp: '172.30.1.13', peers: ['172.30.1.11'] });
});

test('the gateway node sends return traffic to vxlan-mode nodes through the tunnel, for packets from remote CIDRs only', () => {
  const d = desiredRoutes(view({
    node: { name: 'c1-n1', ip: '172.30.1.11', addresses: [] },
    remotes: [{ cluster: 'c2', cidrs: ['10.2.0.0/16'] }],
    vxlanPeers: [{ ip: '172.30.1.13', podCidr: '10.1.2.0/24' }, { ip: '172.30.1.11', podCidr: '10.1.0.0/24' }],
  }));
  assert.equal(d.tunnel, { localIp: '172.30.1.11', peers: ['172.30.1.13'] });
  assert.ok(d.routes.some((r) => r.table === 221 && r.dst === '10.1.2.0/24' && r.via === '240.30.1.13' && r.dev === 'isthmus-ra'));
  assert.ok(d.rules.some((r) => r.pref === 217 && r.from === '10.2.0.0/16' && r.table === 221));
});

test('bad remote CIDRs refuse only their cluster, with the reason', () => {
  const cases: [RemoteView, RegExp][] = [
    [{ cluster: 'x', cidrs: ['10.1.5.0/24'] }, /overlaps this cluster's 10\.1\.0\.0\/16/],
    [{ cluster: 'x', cidrs: ['172.30.0.0/16'] }, /contains 172\.30\.1\.1[13]/],
    [{ cluster: 'x', cidrs: ['169.254.0.0/16'] }, /reserved/],
    [{ cluster: 'x', cidrs: ['224.1.0.0/16'] }, /reserved/],
    [{ cluster: 'x', cidrs: ['0.0.0.0/0'] }, /broader than a \/8/],
    [{ cluster: 'x', cidrs: ['fd00::/64'] }, /IPv6/],
    [{ cluster: 'x', cidrs: ['10.9.0.0/33'] }, /not a CIDR/],
    [{ cluster: 'x', cidrs: ['nonsense\nline'] }, /not a CIDR/],
    [{ cluster: 'x', cidrs: [] }, /no CIDR/],
  ];
  for (const [remote, reason] of cases) {
    const d = desiredRoutes(view({ remotes: [c2, remote] }));
    assert.is(d.refused.length, 1, `${remote.cidrs.join(',')} refused`);
    assert.match(d.refused[0]?.reason ?? '', reason);
    assert.equal(d.routed.map((r) => r.cluster), ['c2'], 'the others are routed');
    assert.ok(d.routes.every((r) => !remote.cidrs.includes(r.dst)), 'no route for the refused cluster');
  }
});

test('two remote clusters claiming overlapping CIDRs are both refused and their CIDRs made unreachable', () => {
  const d = desiredRoutes(view({ remotes: [c2, { cluster: 'c4', cidrs: ['10.2.128.0/17'] }, c3] }));
  assert.equal(d.refused.map((r) => r.cluster), ['c2', 'c4']);
  assert.equal(d.routed.map((r) => r.cluster), ['c3']);
  assert.ok(d.routes.filter((r) => r.dst.startsWith('10.2.')).every((r) => r.type === 'unreachable'));
  assert.equal(d.filter.remoteCidrs, ['10.3.0.0/16', '10.103.0.0/16']);
});

test('a cluster published twice is refused the second time', () => {
  const d = desiredRoutes(view({ remotes: [c2, { ...c2, cidrs: ['10.9.0.0/16'] }] }));
  assert.equal(d.refused.map((r) => r.reason), ['published twice']);
});

test('tunnel addresses and MACs derive from the node address', () => {
  assert.is(tunnelIp('172.30.1.13'), '240.30.1.13');
  assert.is(tunnelMac('172.30.1.13'), '02:1a:ac:1e:01:0d');
});

test.run();
