import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PRIVATE_RANGES, addressProblem, cidrHolding, nonUnicastCidrProblem, routedCidrProblem } from './unicast.ts';

test('unicast addresses pass; every special range is refused with its name', () => {
  for (const ok of ['10.0.0.1', '192.168.1.5', '203.0.113.9', 'fd00::5', '2001:db8::1']) assert.is(addressProblem(ok), undefined, ok);
  const bad: [string, RegExp][] = [
    ['0.0.0.0', /this network/], ['255.255.255.255', /reserved/], ['224.0.0.1', /multicast/], ['127.0.0.1', /loopback/],
    ['169.254.169.254', /metadata/], ['::', /unspecified/], ['::1', /loopback/], ['ff02::1', /multicast/], ['fe80::1', /link-local/],
    ['::ffff:10.0.0.1', /IPv4-mapped/], ['240.0.0.1', /reserved/], ['1.2.3', /not an IP/], ['', /not an IP/],
  ];
  for (const [ip, why] of bad) assert.match(addressProblem(ip) ?? 'accepted', why, ip);
});

test('routed CIDRs: inside the allow-list, unicast, not too broad', () => {
  for (const ok of ['10.1.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '100.64.0.0/10', 'fd00:1::/64']) assert.is(routedCidrProblem(ok), undefined, ok);
  assert.match(routedCidrProblem('127.0.0.0/8') ?? '', /loopback/);
  assert.match(routedCidrProblem('169.254.0.0/16') ?? '', /metadata/);
  assert.match(routedCidrProblem('224.0.0.0/4') ?? '', /multicast/);
  assert.match(routedCidrProblem('32.0.0.0/4') ?? '', /broader than \/8/);
  assert.match(routedCidrProblem('0.0.0.0/0') ?? '', /this network/);
  assert.match(routedCidrProblem('8.8.8.0/24') ?? '', /outside the clusterset's allowed ranges/);
  assert.match(routedCidrProblem('2001:db8::/32') ?? '', /outside/);
  assert.match(routedCidrProblem('fd00::/16') ?? '', /broader than \/32/);
  assert.is(routedCidrProblem('8.8.8.0/24', [...PRIVATE_RANGES, '8.8.0.0/16']), undefined, 'an extended allow-list');
  assert.match(routedCidrProblem('10.0.0.0/33') ?? '', /prefix/);
});

test('receivers: global addressing blocks pass, non-unicast ranges do not', () => {
  assert.is(nonUnicastCidrProblem('242.1.0.0/16'), undefined);
  assert.is(nonUnicastCidrProblem('8.8.8.0/24'), undefined, 'the allow-list is the broker\'s business');
  assert.match(nonUnicastCidrProblem('255.255.255.255/32') ?? '', /broadcast/);
  assert.match(nonUnicastCidrProblem('127.0.0.0/8') ?? '', /loopback/);
  assert.match(nonUnicastCidrProblem('0.0.0.0/1') ?? '', /this network|broader/);
});

test('cidrHolding names the CIDR that holds an address', () => {
  assert.is(cidrHolding(['10.1.0.0/16', '192.168.0.0/16'], '192.168.3.4'), '192.168.0.0/16');
  assert.is(cidrHolding(['10.1.0.0/16', 'junk'], '10.2.0.1'), undefined);
  assert.is(cidrHolding(['fd00::/8'], '10.0.0.1'), undefined);
});

test.run();
