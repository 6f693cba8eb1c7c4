import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeRunner } from '../core/index.ts';
import { validatePolicySpec } from '../core/broker-api/index.ts';
import { compile } from './compile.ts';
import { resolve } from './evaluate.ts';
import { NftPolicyTable } from './nft.ts';

const ruleset = compile({ resolved: resolve({ cluster: 'c1', clusterLabels: new Map(), namespaces: [], policies: [] }), remoteCidrs: ['10.2.0.0/16'], localPods: [], remotePods: [] });

test('nft set(): one transaction when the kernel lacks the digest; then trusted for verifyMs without reading; read again after', async () => {
  let now = 0;
  const runner = new FakeRunner().when('nft', ['list', 'set', 'ip', 'isthmus-policy', 'digest'], { code: 1, stderr: 'No such file or directory' });
  const table = new NftPolicyTable(runner, undefined, { verifyMs: 1_000, now: () => now });
  assert.is(await table.set(ruleset), 'replaced');
  assert.equal(runner.lines(), ['nft list set ip isthmus-policy digest', 'nft -f -']);
  assert.match(runner.calls[1]?.options.input ?? '', /^table ip isthmus-policy\ndelete table ip isthmus-policy\ntable ip isthmus-policy \{\n  set digest \{ type ipv4_addr; elements = \{ 0\.0\.0\.0 comment "isthmus policy [0-9a-f]{16}" \} \}/);
  now = 500;
  assert.is(await table.set(ruleset), 'unchanged');
  assert.is(runner.calls.length, 2, 'no command within verifyMs');
  now = 1_500;
  assert.is(await table.set(ruleset), 'replaced', 'the kernel says it is gone: applied again');
  assert.is(runner.calls.length, 4);
});

const withRemote = (ips: string[]) => compile({
  resolved: resolve({ cluster: 'c1', clusterLabels: new Map(), namespaces: [{ name: 'backend', labels: {} }], policies: [{ key: 'c1/backend/p', cluster: 'c1', namespace: 'backend', name: 'p', spec: validatePolicySpec({
    appliedTo: {}, ingress: [{ name: 'web', priority: 1, action: 'Allow', from: [{ clusters: { ids: ['c2'] }, podSelector: { matchLabels: { app: 'web' } } }] }], default: 'Deny',
  }) }] }),
  remoteCidrs: ['10.2.0.0/16'],
  localPods: [{ ip: '10.1.0.3', namespace: 'backend', name: 'b', labels: {} }],
  remotePods: ips.map((ip) => ({ ip, source: { cluster: 'c2', namespace: 'backend', namespaceLabels: {}, pod: ip, labels: { app: 'web' } } })),
});

test('nft set(): only elements changed → one element transaction on the ruleset it applied; a failed one → replaced whole; another process → replaced', async () => {
  const a = withRemote(['10.2.0.5', '10.2.0.6']);
  const b = withRemote(['10.2.0.6', '10.2.0.7']);
  const runner = new FakeRunner().when('nft', ['list', 'set', 'ip', 'isthmus-policy', 'digest'], { code: 1, stderr: 'No such file or directory' });
  const table = new NftPolicyTable(runner);
  assert.is(await table.set(a), 'replaced');
  assert.is(await table.set(b), 'updated');
  assert.is(runner.calls[2]?.options.input, `delete element ip isthmus-policy src1 { 10.2.0.5 }\nadd element ip isthmus-policy src1 { 10.2.0.7 }\nflush set ip isthmus-policy digest\nadd element ip isthmus-policy digest { 0.0.0.0 comment "isthmus policy ${b.digest}" }\n`);
  runner.when('nft', ['-f', '-'], { code: 1, stderr: 'Could not process rule: No such file or directory' });
  await table.set(a).then(() => assert.unreachable('the replace fails too here'), () => undefined);
  assert.equal(runner.lines().slice(3), ['nft -f -', 'nft -f -'], 'the in-place try, then the whole replace');
  assert.match(runner.calls[4]?.options.input ?? '', /^table ip isthmus-policy\ndelete table/);
  await table.set(a).catch(() => undefined);
  assert.equal(runner.lines().slice(5), ['nft list set ip isthmus-policy digest', 'nft -f -'], 'after a failure nothing is trusted: the kernel read, then replaced whole');
  const other = new FakeRunner().when('nft', ['list', 'set', 'ip', 'isthmus-policy', 'digest'], { stdout: `table ip isthmus-policy {\n\tset digest {\n\t\telements = { 0.0.0.0 comment "isthmus policy ${a.digest}" }\n\t}\n}` });
  assert.is(await new NftPolicyTable(other).set(a), 'unchanged', 'a restarted agent adopts the table');
  assert.is(await new NftPolicyTable(other).set(b), 'replaced', 'without the base it applied, never in place');
});

test('nft audit sets: one list per set; a set that is gone is skipped', async () => {
  const runner = new FakeRunner()
    .when('nft', ['-j', 'list', 'set', 'ip', 'isthmus-policy', 'audit0'], { stdout: JSON.stringify({ nftables: [{ set: { elem: [{ elem: { val: { concat: ['10.2.0.5', '10.1.0.3', 'tcp', 8080] } } }] } }] }) })
    .when('nft', ['-j', 'list', 'set', 'ip', 'isthmus-policy', 'audit1'], { code: 1, stderr: 'No such file or directory' });
  assert.equal(await new NftPolicyTable(runner).readAudit(['audit0', 'audit1']), [{ set: 'audit0', saddr: '10.2.0.5', daddr: '10.1.0.3', protocol: 'tcp', port: 8080 }]);
});

test.run();
