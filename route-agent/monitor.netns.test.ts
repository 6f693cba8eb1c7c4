import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../core/index.ts';
import { requireRootForTest } from '../test/lib/cli.ts';
import { ChangeMonitor, ipWatch, nftWatch } from './monitor.ts';

// Needs root: the change monitors against the real kernel, in a namespace this test makes and removes.
const ns = `ram-${randomBytes(3).toString('hex')}`;
const ip = (...args: string[]): void => {
  execFileSync('ip', ['-n', ns, ...args]);
};
const nft = (...args: string[]): void => {
  execFileSync('ip', ['netns', 'exec', ns, 'nft', ...args]);
};
const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test.before(() => {
  requireRootForTest('route-agent/monitor.netns.test.ts');
  execFileSync('ip', ['netns', 'add', ns]);
  ip('link', 'add', 'e0', 'type', 'veth', 'peer', 'name', 'e1');
  ip('link', 'set', 'e0', 'up');
  ip('link', 'set', 'e1', 'up');
  ip('addr', 'add', '10.9.0.1/24', 'dev', 'e0');
});

test.after(() => {
  execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

test('changes to our table, rules, nftables table and addresses are reported, others not; a killed monitor is restarted; stop() ends them', async () => {
  let changes = 0;
  const m = new ChangeMonitor([ipWatch([230, 231], 'isthmus-ra'), nftWatch('isthmus')], () => changes++, createLogger({ component: 'test', level: 'warn' }), { netns: ns, restartMs: 200 });
  await m.start();
  await settle(500); // the monitors subscribe
  ip('route', 'add', '10.5.0.0/16', 'via', '10.9.0.2'); // main table: not ours
  nft('add', 'table', 'ip', 'other');
  await settle(500);
  assert.is(changes, 0, 'main-table routes and other nftables tables are not ours');
  const step = async (what: string, fn: () => void): Promise<void> => {
    const before = changes;
    fn();
    for (let i = 0; i < 40 && changes === before; i++) await settle(50);
    assert.ok(changes > before, what);
  };
  await step('a route in table 230', () => ip('route', 'add', '10.6.0.0/16', 'via', '10.9.0.2', 'table', '230'));
  await step('its deletion', () => ip('route', 'del', '10.6.0.0/16', 'table', '230'));
  await step('a rule looking up 230', () => ip('rule', 'add', 'pref', '230', 'lookup', '230'));
  await step('our nftables table', () => nft('add', 'table', 'ip', 'isthmus'));
  await step('an IPv4 address', () => ip('addr', 'add', '10.9.1.1/24', 'dev', 'e1'));
  const pids = (): string[] => execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).trim().split('\n').filter((x) => x !== '');
  const first = pids();
  assert.is(first.length, 2, 'ip monitor and nft monitor');
  await step('a monitor killed is restarted and reports (what changed meanwhile is unknown)', () => {
    for (const pid of first) process.kill(Number(pid), 'SIGKILL');
  });
  for (let i = 0; i < 40 && pids().length < 2; i++) await settle(50);
  assert.is(pids().length, 2);
  await step('the restarted monitors still watch', () => ip('route', 'add', '10.8.0.0/16', 'via', '10.9.0.2', 'table', '231'));
  await m.stop();
  const after = changes;
  ip('route', 'add', '10.7.0.0/16', 'via', '10.9.0.2', 'table', '230');
  await settle(300);
  assert.is(changes, after, 'nothing after stop()');
  assert.equal(pids(), [], 'no monitor left in the namespace');
});

test.run();
