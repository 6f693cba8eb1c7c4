import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ipWatch, nftWatch } from './monitor.ts';

// Lines as `ip monitor label route rule link address` and `nft monitor` print them (iproute2 6.1, nftables 1.0.6).
const ip = ipWatch([230, 231], 'isthmus-ra');

test('ip monitor: our tables, our rules, our device and IPv4 addresses concern us', () => {
  for (const line of [
    '[ROUTE]10.5.0.0/16 via 10.9.0.2 dev d0 table 230 ',
    '[ROUTE]Deleted 10.5.0.0/16 via 10.9.0.2 dev d0 table 230 ',
    '[ROUTE]unreachable 10.6.0.0/16 table 230 ',
    '[ROUTE]10.1.0.0/24 via 240.0.0.2 dev isthmus-ra table 231 onlink ',
    '[RULE]230:\tfrom all lookup 230',
    '[RULE]Deleted 227:\tfrom 10.2.0.0/16 lookup 231',
    '[RULE]228:\tfrom all to 10.5.0.0/16 lookup main suppress_prefixlength 0',
    '[LINK]Deleted 5: isthmus-ra@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default ',
    '[ADDR]3: eth0    inet 172.18.0.4/16 brd 172.18.255.255 scope global eth0',
  ]) assert.ok(ip.concerns(line), line);
});

test('ip monitor: pod churn, other tables, other devices and IPv6 link-local addresses do not', () => {
  for (const line of [
    '[ROUTE]10.1.0.7 dev veth1234 scope link ',
    '[ROUTE]local fe80::9851:abff:fe18:eedf dev d0 table local proto kernel metric 0 pref medium',
    '[ROUTE]10.2.0.0/16 dev isthmus-wg proto static scope link ',
    '[ROUTE]10.2.0.0/16 dev xfrm0 table 2300 ',
    '[RULE]220:\tfrom all lookup 220',
    '[LINK]4: veth9f1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default ',
    '[LINK]6: isthmus-ra2: <BROADCAST> mtu 1500',
    '[ADDR]3: d0    inet6 fe80::9851:abff:fe18:eedf/64 scope link ',
    '       valid_lft forever preferred_lft forever',
    '    link/ether 3a:c6:13:76:d8:01 brd ff:ff:ff:ff:ff:ff',
  ]) assert.not.ok(ip.concerns(line), line);
});

test('nft monitor: our table only (kube-proxy\'s own table churns on every Service change)', () => {
  const nft = nftWatch('isthmus');
  assert.ok(nft.concerns('delete rule ip isthmus postrouting handle 5'));
  assert.ok(nft.concerns('delete table ip isthmus'));
  assert.ok(nft.concerns('add chain ip isthmus c { type nat hook postrouting priority srcnat - 10; policy accept; }'));
  assert.not.ok(nft.concerns('add rule ip kube-proxy services ip daddr 10.96.0.10 jump service-x'));
  assert.not.ok(nft.concerns('delete table ip isthmus2'));
  assert.not.ok(nft.concerns('# new generation 3 by process 10648 (nft)'));
});

test.run();
