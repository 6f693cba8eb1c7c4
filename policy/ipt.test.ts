import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeRunner } from '../core/index.ts';
import { validatePolicySpec } from '../core/broker-api/index.ts';
import { compile, type CompileInput } from './compile.ts';
import { resolve } from './evaluate.ts';
import { IptablesPolicyTable, iptablesChain, ipsetScript, parseIpsetAudit } from './ipt.ts';

const input: CompileInput = {
  resolved: resolve({
    cluster: 'c1', clusterLabels: new Map(), namespaces: [{ name: 'backend', labels: {} }],
    policies: [{ key: 'c1/backend/p', cluster: 'c1', namespace: 'backend', name: 'p', spec: validatePolicySpec({
      appliedTo: {}, ingress: [{ name: 'web', priority: 1, action: 'Allow', from: [{ clusters: { ids: ['c2'] } }], ports: [{ port: 8080 }, { port: 9000, endPort: 9010 }, ...Array.from({ length: 14 }, (_, i) => ({ port: 100 + i }))] }], default: 'Deny',
    }) }],
  }),
  remoteCidrs: ['10.2.0.0/16'],
  localPods: [{ ip: '10.1.0.3', namespace: 'backend', name: 'b', labels: {} }],
  remotePods: [{ ip: '10.2.0.5', source: { cluster: 'c2', namespace: 'backend', namespaceLabels: {}, pod: 'f', labels: {} } }],
};
const ruleset = compile(input);
/** FORWARD's jump as iptables-save prints it. */
const JUMP = '-A FORWARD -m conntrack ! --ctstate RELATED,ESTABLISHED -j ISTHMUS-POLICY';

test('iptables: the chain carries the digest, returns for non-remote sources, then audit + verdict per match (Allow returns to FORWARD, Deny drops)', () => {
  const lines = iptablesChain(ruleset);
  assert.is(lines[0], `-A ISTHMUS-POLICY -m comment --comment "isthmus policy ${ruleset.digest}"`);
  assert.is(lines[1], '-A ISTHMUS-POLICY -m set ! --match-set isthmus-p-remote src -j RETURN');
  // 17 port items (a range counts 2) do not fit one multiport: two matches, each audited then decided
  assert.is(lines[2], '-A ISTHMUS-POLICY -m set --match-set isthmus-p-dst0 dst -m set --match-set isthmus-p-src1 src -p tcp -m multiport --dports 8080,9000:9010,100,101,102,103,104,105,106,107,108,109,110,111 -j SET --add-set isthmus-p-audit0 src,dst,dst');
  assert.match(lines[3] ?? '', /--dports 8080,9000:9010,.* -m comment --comment "c1\/backend\/p web" -j RETURN$/);
  assert.match(lines[4] ?? '', /--dports 112,113 -j SET/);
  assert.is(lines[6], '-A ISTHMUS-POLICY -m set --match-set isthmus-p-dst0 dst -j SET --add-set isthmus-p-audit1 src,dst,dst');
  assert.is(lines[7], '-A ISTHMUS-POLICY -m set --match-set isthmus-p-dst0 dst -m comment --comment "backend default Deny" -j DROP');
});

test('ipset: every set filled aside and swapped in; audit sets with the timeout', () => {
  const script = ipsetScript(ruleset.plan);
  assert.match(script, /^create isthmus-p-remote hash:net family inet maxelem 65536 -exist\ncreate isthmus-p-remote-n hash:net .* -exist\nflush isthmus-p-remote-n\nadd isthmus-p-remote-n 10\.2\.0\.0\/16\nswap isthmus-p-remote-n isthmus-p-remote\ndestroy isthmus-p-remote-n\n/);
  assert.match(script, /add isthmus-p-src1-n 10\.2\.0\.5\n/);
  assert.match(script, /create isthmus-p-audit1 hash:ip,port,ip family inet timeout 60 maxelem 65536 -exist\nflush isthmus-p-audit1\n$/);
});

test('ipset audit lines parse; set() changes nothing when the digest is there, else one restore each', async () => {
  assert.equal(parseIpsetAudit('audit0', 'create isthmus-p-audit0 hash:ip,port,ip family inet timeout 60\nadd isthmus-p-audit0 10.2.0.5,tcp:8080,10.1.0.3 timeout 57\nadd isthmus-p-audit0 10.2.0.6,icmp:8/0,10.1.0.3 timeout 3\n'), [
    { set: 'audit0', saddr: '10.2.0.5', protocol: 'tcp', port: 8080, daddr: '10.1.0.3' },
    { set: 'audit0', saddr: '10.2.0.6', protocol: 'icmp', port: 0, daddr: '10.1.0.3' },
  ]);
  const same = new FakeRunner().when('iptables-save', ['-t', 'filter'], { stdout: `*filter\n${JUMP}\n-A ISTHMUS-POLICY -m comment --comment "isthmus policy ${ruleset.digest}"\n` });
  assert.is(await new IptablesPolicyTable(same).set(ruleset), 'unchanged');
  assert.equal(same.lines(), ['iptables-save -t filter']);
  // an earlier version's jump (every packet) beside the chain: replaced by the one for packets of no admitted flow
  const fresh = new FakeRunner().when('iptables-save', ['-t', 'filter'], { stdout: `*filter\n-A FORWARD -j ISTHMUS-POLICY\n${JUMP}\n` }).when('ipset', ['list', '-n'], { stdout: 'isthmus-p-dst9\nother\n' })
    .on((c) => (c.command === 'iptables' && c.args[3] === '-D' && fresh.calls.filter((x) => x.args.join(' ') === c.args.join(' ')).length > 1 ? { code: 1, stderr: 'Bad rule' } : undefined));
  assert.is(await new IptablesPolicyTable(fresh).set(ruleset), 'replaced');
  assert.equal(fresh.lines(), ['iptables-save -t filter', 'ipset restore', 'iptables-restore -w --noflush',
    'iptables -w -t filter -D FORWARD -m conntrack ! --ctstate RELATED,ESTABLISHED -j ISTHMUS-POLICY', 'iptables -w -t filter -D FORWARD -m conntrack ! --ctstate RELATED,ESTABLISHED -j ISTHMUS-POLICY',
    'iptables -w -t filter -D FORWARD -j ISTHMUS-POLICY', 'iptables -w -t filter -D FORWARD -j ISTHMUS-POLICY',
    'iptables -w -t filter -I FORWARD 1 -m conntrack ! --ctstate RELATED,ESTABLISHED -j ISTHMUS-POLICY', 'ipset list -n', 'ipset destroy isthmus-p-dst9']);
  const restore = fresh.calls.find((c) => c.command === 'iptables-restore');
  assert.match(restore?.options.input ?? '', /^\*filter\n:ISTHMUS-POLICY - \[0:0\]\n[\s\S]*-j DROP\nCOMMIT\n$/);
});

test('iptables set(): only elements changed → one ipset restore of add/del and the digest rule replaced; a failed restore → replaced whole', async () => {
  const relabelled = compile({ ...input, remotePods: [{ ip: '10.2.0.7', source: { cluster: 'c2', namespace: 'backend', namespaceLabels: {}, pod: 'g', labels: {} } }] });
  const chain = `*filter\n${JUMP}\n-A ISTHMUS-POLICY -m comment --comment "isthmus policy ${ruleset.digest}"\n`;
  let saved = chain;
  let failDel = false;
  const runner = new FakeRunner().on((c) => (c.command === 'iptables-save' ? { stdout: saved } : undefined))
    .on((c) => (failDel && c.command === 'ipset' && c.options.input?.startsWith('del ') === true ? { code: 1, stderr: "Element cannot be deleted from the set: it's not added" } : undefined));
  assert.is(await new IptablesPolicyTable(runner).set(relabelled), 'replaced', 'a chain this object did not apply: never in place');
  const table = new IptablesPolicyTable(runner);
  saved = '*filter\n';
  assert.is(await table.set(ruleset), 'replaced');
  saved = chain;
  runner.calls.length = 0;
  assert.is(await table.set(relabelled), 'updated');
  assert.equal(runner.lines(), ['ipset restore', `iptables -w -t filter -R ISTHMUS-POLICY 1 -m comment --comment isthmus policy ${relabelled.digest}`]);
  assert.is(runner.calls[0]?.options.input, 'del isthmus-p-src1 10.2.0.5\nadd isthmus-p-src1 10.2.0.7\n');
  saved = saved.replace(ruleset.digest, relabelled.digest);
  runner.calls.length = 0;
  failDel = true;
  assert.is(await table.set(ruleset), 'replaced', 'the kernel drifted: the in-place restore fails, everything replaced');
  assert.equal(runner.lines().slice(0, 3), ['ipset restore', 'ipset restore', 'iptables-restore -w --noflush'], 'its digest trusted: no iptables-save');
});

test.run();
