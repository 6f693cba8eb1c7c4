import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeRunner } from '../core/index.ts';
import { compile } from './compile.ts';
import { resolve } from './evaluate.ts';
import { NftPolicyTable } from './nft.ts';

const ruleset = compile({ resolved: resolve({ cluster: 'c1', clusterLabels: new Map(), namespaces: [], policies: [] }), remoteCidrs: ['10.2.0.0/16'], localPods: [], remotePods: [] });

test('nft set(): one transaction when the kernel lacks the digest; then trusted for verifyMs without reading; read again after', async () => {
  let now = 0;
  const runner = new FakeRunner().when('nft', ['list', 'table', 'ip', 'isthmus-policy'], { code: 1, stderr: 'No such file or directory' });
  const table = new NftPolicyTable(runner, undefined, { verifyMs: 1_000, now: () => now });
  assert.is(await table.set(ruleset), true);
  assert.equal(runner.lines(), ['nft list table ip isthmus-policy', 'nft -f -']);
  assert.match(runner.calls[1]?.options.input ?? '', /^table ip isthmus-policy\ndelete table ip isthmus-policy\ntable ip isthmus-policy \{\n  comment "isthmus policy [0-9a-f]{16}"/);
  now = 500;
  assert.is(await table.set(ruleset), false);
  assert.is(runner.calls.length, 2, 'no command within verifyMs');
  now = 1_500;
  assert.is(await table.set(ruleset), true, 'the kernel says it is gone: applied again');
  assert.is(runner.calls.length, 4);
});

test('nft audit sets: one list per set; a set that is gone is skipped', async () => {
  const runner = new FakeRunner()
    .when('nft', ['-j', 'list', 'set', 'ip', 'isthmus-policy', 'audit0'], { stdout: JSON.stringify({ nftables: [{ set: { elem: [{ elem: { val: { concat: ['10.2.0.5', '10.1.0.3', 'tcp', 8080] } } }] } }] }) })
    .when('nft', ['-j', 'list', 'set', 'ip', 'isthmus-policy', 'audit1'], { code: 1, stderr: 'No such file or directory' });
  assert.equal(await new NftPolicyTable(runner).readAudit(['audit0', 'audit1']), [{ set: 'audit0', saddr: '10.2.0.5', daddr: '10.1.0.3', protocol: 'tcp', port: 8080 }]);
});

test.run();
