import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pickHealthAddress } from './health-address.ts';

const pods = ['10.1.0.0/16'];

test('a CNI bridge address inside the pod CIDRs is used as it is', () => {
  const c = pickHealthAddress([{ ifname: 'eth0', address: '172.30.1.11' }, { ifname: 'cni0', address: '10.1.4.1' }, { ifname: 'lo', address: '10.1.9.1' }], pods, '10.1.4.0/24');
  assert.equal([c.address, c.onLoopback], ['10.1.4.1', false]);
  assert.match(c.reason, 'cni0');
});

test('no such interface (per-pod /32 routes): the first address of the node\'s pod CIDR, on lo', () => {
  const c = pickHealthAddress([{ ifname: 'eth0', address: '172.30.1.11' }, { ifname: 'eth0', address: 'fe80::1%eth0' }], pods, '10.1.1.0/24');
  assert.equal([c.address, c.onLoopback], ['10.1.1.1', true]);
});

test('an address already on lo does not count as an interface address (it is ours from an earlier run)', () => {
  const c = pickHealthAddress([{ ifname: 'lo', address: '10.1.1.1' }], pods, '10.1.1.0/24');
  assert.equal([c.address, c.onLoopback], ['10.1.1.1', true]);
});

test('none: a node pod CIDR outside --pod-cidrs, too small, IPv6 or absent turns health probes off with the reason', () => {
  assert.equal(pickHealthAddress([], pods, '10.9.1.0/24').address, '');
  assert.match(pickHealthAddress([], pods, '10.9.1.0/24').reason, 'outside --pod-cidrs');
  assert.equal(pickHealthAddress([], pods, '10.1.1.0/31').address, '');
  assert.equal(pickHealthAddress([], ['fd00::/48'], 'fd00::/64').address, '');
  assert.equal(pickHealthAddress([], pods, undefined).address, '');
  assert.equal(pickHealthAddress([], pods, undefined).onLoopback, false);
});

test.run();
