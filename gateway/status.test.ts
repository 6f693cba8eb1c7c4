import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gatewayStatus, type StatusInput } from './status.ts';

const local = { clusterID: 'c1', hostname: 'c1-n1', privateIP: '172.29.0.11', publicIP: '172.29.0.11', behindNAT: false, natSeenByProbe: false, cableDriver: 'wireguard', port: 51820 };
const spec = (c: string, nat = false) => ({ remoteCluster: c, remoteIp: `172.29.0.1${c.slice(1)}`, remotePort: 51820, remoteCidrs: [`10.${c.slice(1)}.0.0/16`], natTraversal: nat, backend: { 'public-key': 'PUB' } });
const stats = (avg: number, dead = false) => ({ lastMs: avg, minMs: avg, avgMs: avg, maxMs: avg, stddevMs: 0, loss: dead ? 1 : 0, sent: 5, dead });

function input(over: Partial<StatusInput>): StatusInput {
  return { active: true, local, desired: [], failed: new Map(), cables: [], health: new Map(), nat: new Map(), ...over };
}

test('connected cables with RTT, summary and average', () => {
  const s = gatewayStatus(input({
    desired: [spec('c2'), spec('c3', true)],
    cables: [{ remoteCluster: 'c2', state: 'connected', remoteIp: '172.29.0.12', rxBytes: 10, txBytes: 20 }, { remoteCluster: 'c3', state: 'connected', remoteIp: '172.29.0.13' }],
    health: new Map([['c2', stats(1)], ['c3', stats(3)]]),
    mtus: new Map([['c2', 1420]]),
  }));
  assert.is(s.haStatus, 'active');
  assert.is(s.summary, '2/2');
  assert.is(s.averageRTT, '2.000ms');
  assert.equal(s.connections[0], { cluster: 'c2', status: 'connected', endpoint: '172.29.0.12:51820', usingIP: '172.29.0.12', subnets: ['10.2.0.0/16'], mtu: 1420, natTraversal: false, rtt: { lastMs: 1, minMs: 1, avgMs: 1, maxMs: 1, stddevMs: 0 }, loss: 0, rxBytes: 10, txBytes: 20 });
  assert.is(s.connections[1]?.natTraversal, true);
});

test('a refused spec is an error with its reason; a cable with no health answers is an error; no cable yet is connecting', () => {
  const s = gatewayStatus(input({
    desired: [spec('c2'), spec('c3'), spec('c4')],
    failed: new Map([['c2', 'public key is not 32 bytes of base64']]),
    cables: [{ remoteCluster: 'c3', state: 'connected', remoteIp: '172.29.0.13' }],
    health: new Map([['c3', stats(1, true)]]),
  }));
  assert.equal(s.connections.map((c) => [c.cluster, c.status, c.statusMessage]), [
    ['c2', 'error', 'public key is not 32 bytes of base64'],
    ['c3', 'error', 'no answer to health probes through the cable'],
    ['c4', 'connecting', undefined],
  ]);
  assert.is(s.summary, '0/3');
  assert.is(s.averageRTT, '-');
});

test('each connection tells what its NAT probe found, when the remote is probed', () => {
  const s = gatewayStatus(input({
    local: { ...local, behindNAT: true, natSeenByProbe: true },
    desired: [spec('c2'), spec('c3'), spec('c4')],
    nat: new Map([['c2', 'private'], ['c3', 'pending']]),
  }));
  assert.equal(s.connections.map((c) => [c.cluster, c.natDiscovery]), [['c2', 'private'], ['c3', 'pending'], ['c4', undefined]]);
  assert.not.ok('natDiscovery' in (s.connections[2] ?? {}), 'an unprobed remote has no natDiscovery field');
  assert.equal([s.localEndpoint.behindNAT, s.localEndpoint.natSeenByProbe], [true, true]);
});

test('a passive gateway reports no connections; secrets never appear', () => {
  const s = gatewayStatus(input({ active: false, desired: [spec('c2')] }));
  assert.equal([s.haStatus, s.summary, s.connections], ['passive', '-', []]);
  const active = JSON.stringify(gatewayStatus(input({ desired: [spec('c2')] })));
  assert.not.match(active, 'PUB');
});

test('a cable refused for its CIDRs publishes no subnets: the route agents must not route them anywhere', () => {
  const s = gatewayStatus(input({
    desired: [spec('c2'), spec('c3')],
    failed: new Map([['c2', 'refused: 10.2.0.0/16 contains the broker'], ['c3', 'handshake failed']]),
    refused: new Set(['c2']),
  }));
  assert.equal(s.connections.map((c) => [c.cluster, c.status, c.subnets]), [['c2', 'error', []], ['c3', 'error', ['10.3.0.0/16']]]);
});

test.run();
