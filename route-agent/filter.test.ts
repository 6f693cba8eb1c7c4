import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, FakeRunner } from '../core/index.ts';
import { errorCodeAsync } from '../core/testing.ts';
import { IptablesFilter, NftFilter, chooseFilter, iptablesRules, nftRuleset } from './filter.ts';

const spec = { remoteCidrs: ['10.3.0.0/16', '10.2.0.0/16'] };

test('the nftables ruleset is deterministic and names its digest', () => {
  const a = nftRuleset(spec);
  assert.is(a, nftRuleset({ remoteCidrs: ['10.2.0.0/16', '10.3.0.0/16'] }));
  assert.match(a, /elements = \{ 10\.2\.0\.0\/16, 10\.3\.0\.0\/16 \}/);
  assert.match(a, /comment "isthmus route-agent [0-9a-f]{16}"/);
  assert.match(a, /priority srcnat - 10/);
  assert.match(a, /ip saddr @remote snat ip to ip saddr/);
  assert.match(a, /maxseg size set rt mtu/);
  assert.match(a, /hook prerouting priority raw;[^}]*ip saddr @remote fib saddr \. iif oif missing counter drop/, 'the reverse-path check');
  assert.not.equal(a, nftRuleset({ remoteCidrs: ['10.2.0.0/16'] }));
  assert.not.match(nftRuleset({ remoteCidrs: [] }), /elements/);
});

test('nftables set(): one atomic nft -f when the digest differs, nothing when it matches', async () => {
  const digest = /isthmus route-agent ([0-9a-f]+)/.exec(nftRuleset(spec))?.[1] ?? '';
  const same = new FakeRunner().when('nft', ['list', 'table', 'ip', 'isthmus'], { stdout: `table ip isthmus {\n\tcomment "isthmus route-agent ${digest}"\n}` });
  assert.is(await new NftFilter(same).set(spec), false);
  assert.equal(same.lines(), ['nft list table ip isthmus']);

  const other = new FakeRunner().when('nft', ['list', 'table', 'ip', 'isthmus'], { code: 1, stderr: 'No such file or directory' });
  assert.is(await new NftFilter(other).set(spec), true);
  const apply = other.calls.find((c) => c.args[0] === '-f');
  assert.ok(apply !== undefined);
  assert.match(apply.options.input ?? '', /^table ip isthmus\ndelete table ip isthmus\ntable ip isthmus \{/);
});

test('iptables rules: ACCEPT before anyone\'s masquerade, MSS clamp both ways, kube-proxy\'s masquerade bit cleared', () => {
  const r = iptablesRules(spec);
  assert.equal(r.nat, [
    '-A ISTHMUS-POSTROUTING -s 10.2.0.0/16 -j ACCEPT', '-A ISTHMUS-POSTROUTING -d 10.2.0.0/16 -j ACCEPT',
    '-A ISTHMUS-POSTROUTING -s 10.3.0.0/16 -j ACCEPT', '-A ISTHMUS-POSTROUTING -d 10.3.0.0/16 -j ACCEPT',
  ]);
  assert.ok(r.mangle.includes('-A ISTHMUS-FORWARD -s 10.2.0.0/16 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu'));
  assert.ok(r.mangle.includes('-A ISTHMUS-POSTROUTING -s 10.3.0.0/16 -j MARK --set-xmark 0x0/0x4000'));
  assert.ok(r.mangle.includes('-A ISTHMUS-PREROUTING -s 10.3.0.0/16 -m rpfilter --invert -j DROP'));
  assert.ok(iptablesRules(spec, 0x8000).mangle.some((l) => l.endsWith('0x0/0x8000')));
});

test('iptables set(): nothing when our chains and jumps are as wanted; else one iptables-restore --noflush that inserts missing jumps first', async () => {
  const r = iptablesRules(spec);
  const natSave = ['*nat', ':POSTROUTING ACCEPT [0:0]', ':ISTHMUS-POSTROUTING - [0:0]', '-A POSTROUTING -j ISTHMUS-POSTROUTING', '-A POSTROUTING -j KUBE-POSTROUTING', ...r.nat, 'COMMIT'].join('\n');
  // (iptables-save lists the chains in the kernel's order)
  const mangleSave = ['*mangle', ':ISTHMUS-POSTROUTING - [0:0]', ':ISTHMUS-FORWARD - [0:0]', ':ISTHMUS-PREROUTING - [0:0]', '-A PREROUTING -j ISTHMUS-PREROUTING', '-A FORWARD -j ISTHMUS-FORWARD', '-A POSTROUTING -j ISTHMUS-POSTROUTING',
    ...r.mangle.filter((l) => l.startsWith('-A ISTHMUS-POSTROUTING ')), ...r.mangle.filter((l) => !l.startsWith('-A ISTHMUS-POSTROUTING ')), 'COMMIT'].join('\n');
  const same = new FakeRunner().when('iptables-save', ['-t', 'nat'], { stdout: natSave }).when('iptables-save', ['-t', 'mangle'], { stdout: mangleSave });
  assert.is(await new IptablesFilter(same).set(spec), false);
  assert.ok(same.calls.every((c) => c.command === 'iptables-save'));

  const fresh = new FakeRunner().when('iptables-save', ['-t', 'nat'], { stdout: '*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j KUBE-POSTROUTING\nCOMMIT' });
  assert.is(await new IptablesFilter(fresh).set(spec), true);
  const input = fresh.calls.find((c) => c.command === 'iptables-restore')?.options.input ?? '';
  assert.match(input, /-I POSTROUTING 1 -j ISTHMUS-POSTROUTING/);
  assert.match(input, /-I FORWARD 1 -j ISTHMUS-FORWARD/);
  assert.match(input, /-I PREROUTING 1 -j ISTHMUS-PREROUTING/);
  assert.not.match(input, /KUBE-POSTROUTING/, 'another owner\'s rules are never written');
});

test('auto takes nftables when it works, iptables when only it does, and names both packages when neither does', async () => {
  assert.is((await chooseFilter(new FakeRunner(), 'auto')).name, 'nftables');
  assert.is((await chooseFilter(new FakeRunner().when('nft', ['list'], { code: 1, stderr: 'Operation not permitted' }), 'auto')).name, 'iptables');
  const none = new FakeRunner().when('nft', [], { code: 1, stderr: 'x' }).when('iptables-save', [], { code: 1, stderr: 'y' });
  assert.is(await errorCodeAsync(() => chooseFilter(none, 'auto')), ErrorCodes.MISSING_DEPENDENCY);
  assert.is(await errorCodeAsync(() => chooseFilter(none, 'nftables')), ErrorCodes.NOT_ROOT);
});

test.run();
