import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterInputs, type GatewayLike, type NodeLike } from './contract.ts';

const nodes: NodeLike[] = ['1', '2', '3'].map((i) => ({ metadata: { name: `c1-n${i}` }, spec: { podCIDR: `10.1.${i}.0/24` }, status: { addresses: [{ type: 'Hostname', address: `c1-n${i}` }, { type: 'InternalIP', address: `172.30.1.1${i}` }] } }));
const gw = (name: string, haStatus: string, subnets: unknown = ['10.2.0.0/16'], mtu: unknown = 1420): GatewayLike =>
  ({ metadata: { name }, status: { haStatus, connections: [{ cluster: 'c2', subnets, mtu }] } });

test('the Lease holder is the gateway; its active Gateway lists the remotes', () => {
  const i = clusterInputs({ spec: { holderIdentity: 'c1-n2' } }, [gw('c1-n1', 'passive', []), gw('c1-n2', 'active', ['10.2.0.0/16', '10.102.0.0/16'])], nodes, []);
  assert.equal(i.gateway, { name: 'c1-n2', ip: '172.30.1.12' });
  assert.equal(i.remotes, [{ cluster: 'c2', cidrs: ['10.2.0.0/16', '10.102.0.0/16'], mtu: 1420 }]);
});

test('right after a takeover the routes follow the new holder, with the remotes of the last active Gateway', () => {
  const i = clusterInputs({ spec: { holderIdentity: 'c1-n2' } }, [gw('c1-n1', 'active'), gw('c1-n2', 'passive', [])], nodes, []);
  assert.equal(i.gateway?.name, 'c1-n2');
  assert.equal(i.remotes.map((r) => r.cluster), ['c2']);
});

test('no holder, or a holder without an address: no gateway, and why', () => {
  assert.equal(clusterInputs(undefined, [], nodes, []).note, 'no gateway holds the Lease');
  assert.equal(clusterInputs({ spec: { holderIdentity: '' } }, [], nodes, []).gateway, undefined);
  assert.match(clusterInputs({ spec: { holderIdentity: 'c1-n9' } }, [], nodes, []).note ?? '', /c1-n9 has no InternalIP/);
});

test('malformed status fields are dropped, not trusted', () => {
  const i = clusterInputs({ spec: { holderIdentity: 'c1-n1' } }, [gw('c1-n1', 'active', ['10.2.0.0/16', 7, null], 99999)], nodes, []);
  assert.equal(i.remotes, [{ cluster: 'c2', cidrs: ['10.2.0.0/16'] }]);
  const j = clusterInputs({ spec: { holderIdentity: 'c1-n1' } }, [{ metadata: { name: 'c1-n1' }, status: { haStatus: 'active', connections: [{ cluster: 5, subnets: ['x'] }, { cluster: 'c3', subnets: 'nope' }] } }], nodes, []);
  assert.equal(j.remotes, []);
});

test('vxlan peers: the RouteAgents that say they tunnel, with their node address and pod CIDR', () => {
  const i = clusterInputs(undefined, [], nodes, [
    { metadata: { name: 'c1-n3' }, status: { mode: 'vxlan', nodeIP: '172.30.1.13', podCIDR: '10.1.3.0/24' } },
    { metadata: { name: 'c1-n2' }, status: { mode: 'direct', nodeIP: '172.30.1.12', podCIDR: '10.1.2.0/24' } },
    { metadata: { name: 'c1-n1' }, status: { mode: 'vxlan', nodeIP: '172.30.1.11', podCIDR: '' } },
  ]);
  assert.equal(i.vxlanPeers, [{ ip: '172.30.1.13', podCidr: '10.1.3.0/24' }]);
});

test.run();
