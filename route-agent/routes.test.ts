import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeRunner } from '../core/index.ts';
import type { RouteSpec, RuleSpec } from './desired.ts';
import { RouteTable, routeArgs, ruleArgs } from './routes.ts';

const routes: RouteSpec[] = [
  { table: 220, dst: '10.2.0.0/16', type: 'unicast', via: '172.30.1.11', mtu: 1420 },
  { table: 220, dst: '10.3.0.0/16', type: 'unreachable' },
];
const rules: RuleSpec[] = [
  { pref: 218, table: 'main', to: '10.2.0.0/16', suppressPrefixLength: 0 },
  { pref: 220, table: 220 },
];

/** What `ip -j` prints for the state above (as the kernel shows it). */
const IP_ROUTES = JSON.stringify([
  { dst: '10.2.0.0/16', gateway: '172.30.1.11', dev: 'eth0', flags: [], metrics: [{ mtu: 1420 }] },
  { type: 'unreachable', dst: '10.3.0.0/16', flags: [] },
]);
const IP_RULES = JSON.stringify([
  { priority: 0, src: 'all', table: 'local' },
  { priority: 218, src: 'all', dst: '10.2.0.0', dstlen: 16, table: 'main', suppress_prefixlen: 0 },
  { priority: 220, src: 'all', table: '220' },
  { priority: 1000, src: 'all', table: '100' }, // someone else's
  { priority: 32766, src: 'all', table: 'main' },
]);

function fake(routeJson: string, ruleJson: string): FakeRunner {
  return new FakeRunner()
    .when('ip', ['-j', 'route', 'show', 'table', '220'], { stdout: routeJson })
    .when('ip', ['-j', 'route', 'show', 'table', '221'], { code: 2, stderr: 'Error: ipv4: FIB table does not exist.' })
    .when('ip', ['-j', 'rule', 'show'], { stdout: ruleJson });
}

const modifying = (r: FakeRunner): string[] => r.calls.filter((c) => c.args.includes('-batch')).map((c) => c.options.input ?? '');

test('words for ip route / ip rule', () => {
  assert.is(routeArgs({ table: 220, dst: '10.2.0.0/16', type: 'unicast', via: '240.30.1.11', dev: 'isthmus-ra', onlink: true, mtu: 1450 }),
    '10.2.0.0/16 via 240.30.1.11 dev isthmus-ra onlink table 220 mtu 1450');
  assert.is(routeArgs({ table: 220, dst: '10.3.0.0/16', type: 'unreachable' }), 'unreachable 10.3.0.0/16 table 220');
  assert.is(ruleArgs({ pref: 217, table: 221, from: '10.2.0.0/16' }), 'pref 217 from 10.2.0.0/16 lookup 221');
});

test('set() with what exists already runs no modifying command', async () => {
  const r = fake(IP_ROUTES, IP_RULES);
  const t = new RouteTable(r, [220, 221], [217, 218, 220]);
  const res = await t.set(routes, rules, 220);
  assert.equal(res, { changes: 0, failed: [] });
  assert.equal(modifying(r), []);
});

test('from nothing: one batch, early rules before routes, the table lookup after them', async () => {
  const r = fake('', JSON.stringify([{ priority: 0, src: 'all', table: 'local' }]));
  const res = await new RouteTable(r, [220, 221], [217, 218, 220]).set(routes, rules, 220);
  assert.is(res.changes, 4);
  assert.equal(modifying(r), [[
    'rule add pref 218 to 10.2.0.0/16 lookup main suppress_prefixlength 0',
    'route replace 10.2.0.0/16 via 172.30.1.11 table 220 mtu 1420',
    'route replace unreachable 10.3.0.0/16 table 220',
    'rule add pref 220 lookup 220',
  ].join('\n') + '\n']);
});

test('changes only the difference; deletes what is no longer wanted, last; never touches another owner\'s rules', async () => {
  const r = fake(IP_ROUTES, IP_RULES);
  const next: RouteSpec[] = [{ table: 220, dst: '10.2.0.0/16', type: 'unicast', via: '172.30.1.12', mtu: 1420 }];
  await new RouteTable(r, [220, 221], [217, 218, 220]).set(next, [{ pref: 220, table: 220 }], 220);
  assert.equal(modifying(r), [[
    'route replace 10.2.0.0/16 via 172.30.1.12 table 220 mtu 1420',
    'route del unreachable 10.3.0.0/16 table 220',
    'rule del pref 218 to 10.2.0.0/16 lookup main suppress_prefixlength 0',
  ].join('\n') + '\n']);
});

test('an MTU change is a replace', async () => {
  const r = fake(IP_ROUTES, IP_RULES);
  await new RouteTable(r, [220, 221], [217, 218, 220]).set([{ ...routes[0]!, mtu: 1380 }, routes[1]!], rules, 220);
  assert.equal(modifying(r), ['route replace 10.2.0.0/16 via 172.30.1.11 table 220 mtu 1380\n']);
});

test('a line the kernel refuses is reported, read back from the kernel', async () => {
  let applied = false;
  const r = new FakeRunner()
    .on((c) => (c.args.includes('-batch') ? ((applied = true), { code: 1, stderr: 'Error: Nexthop has invalid gateway.\nCommand failed -:1' }) : undefined))
    .on((c) => (c.args.join(' ') === '-j route show table 220' ? { stdout: applied ? JSON.stringify([{ type: 'unreachable', dst: '10.3.0.0/16' }]) : '' } : undefined))
    .on((c) => (c.args.join(' ') === '-j rule show' ? { stdout: JSON.stringify(applied ? [{ priority: 218, src: 'all', dst: '10.2.0.0', dstlen: 16, table: 'main', suppress_prefixlen: 0 }, { priority: 220, src: 'all', table: '220' }] : []) } : undefined))
    .on((c) => (c.args.join(' ') === '-j route show table 221' ? { code: 2 } : undefined));
  const res = await new RouteTable(r, [220, 221], [217, 218, 220]).set(routes, rules, 220);
  assert.equal(res.failed, ['route 10.2.0.0/16 via 172.30.1.11 table 220 mtu 1420: Error: Nexthop has invalid gateway.']);
});

test('cleanup removes every route of its tables and every rule at its preferences, and nothing else', async () => {
  const r = fake(IP_ROUTES, IP_RULES);
  await new RouteTable(r, [220, 221], [217, 218, 220]).cleanup();
  const batch = modifying(r).join('');
  assert.match(batch, /route del 10\.2\.0\.0\/16 table 220/);
  assert.match(batch, /route del unreachable 10\.3\.0\.0\/16 table 220/);
  assert.match(batch, /rule del pref 218/);
  assert.match(batch, /rule del pref 220 lookup 220/);
  assert.not.match(batch, /1000|32766|local/);
});

test.run();
