import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, isIsthmusError } from '../../core/index.ts';
import { originRuleset } from './vxlan-origin.ts';

const B = { remoteCluster: 'c2', remoteIp: '172.31.0.11', tunnelIp: '240.1.2.3', routes: ['10.2.0.0/16', '10.102.0.0/16'] };
const C = { remoteCluster: 'c3', remoteIp: 'fd00::12', tunnelIp: '240.1.2.4', routes: ['10.3.128.0/17', 'fd00:3::/64'] };

test('originRuleset: per remote, its outer address and each inner source prefix (its CIDRs and tunnel address); the rest of the VNI and port dropped', () => {
  const text = originRuleset({ port: 4789, vni: 100, peers: [C, B] });
  const rules = text.split('\n').filter((l) => l.startsWith('    '));
  assert.equal(rules, [
    '    fib daddr type local udp dport 4789 @th,96,24 100 jump from-cable',
    '    ip saddr 172.31.0.11 @th,224,16 0x0800 @th,336,16 0xa66 accept comment "c2"',
    '    ip saddr 172.31.0.11 @th,224,16 0x0800 @th,336,16 0xa02 accept comment "c2"',
    '    ip saddr 172.31.0.11 @th,224,16 0x0800 @th,336,32 0xf0010203 accept comment "c2"',
    '    ip6 saddr fd00::12 @th,224,16 0x0800 @th,336,17 0x1407 accept comment "c3"',
    '    ip6 saddr fd00::12 @th,224,16 0x0800 @th,336,32 0xf0010204 accept comment "c3"',
    '    ip6 saddr fd00::12 @th,224,16 0x86dd @th,304,64 0xfd00000300000000 accept comment "c3"',
    '    counter drop',
  ]);
  // 10.3.128.0/17: its first 17 bits, 0x0a03 << 1 | 1
  assert.is((0x0a03 << 1) | 1, 0x1407);
});

test('originRuleset: deterministic (the order of the remotes does not matter), the digest follows the rules; no remote → everything of the VNI dropped', () => {
  const a = originRuleset({ port: 4789, vni: 100, peers: [B, C] });
  assert.is(originRuleset({ port: 4789, vni: 100, peers: [C, B] }), a);
  const digest = (t: string): string => /isthmus vxlan-origin ([0-9a-f]{16})/.exec(t)?.[1] ?? '';
  assert.is.not(digest(originRuleset({ port: 4789, vni: 100, peers: [B] })), digest(a));
  assert.is.not(digest(originRuleset({ port: 4790, vni: 100, peers: [B, C] })), digest(a));
  const none = originRuleset({ port: 4789, vni: 7, peers: [] });
  assert.match(none, /@th,96,24 7 jump from-cable/);
  assert.match(none, /chain from-cable \{\n {4}counter drop\n {2}\}/);
});

test('originRuleset: a remote CIDR of prefix length 0 is refused (it would let every source in)', () => {
  try {
    originRuleset({ port: 4789, vni: 100, peers: [{ ...B, routes: ['0.0.0.0/0'] }] });
    assert.unreachable('accepted');
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.INVALID_ARGUMENT), String(err));
  }
});

test.run();
