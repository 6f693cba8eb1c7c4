import { spawn, type ChildProcess } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NetnsRunner, SystemRunner } from '../core/index.ts';
import { validatePolicySpec } from '../core/broker-api/index.ts';
import { requireRootForTest } from '../test/lib/cli.ts';
import { policyLab, type PolicyLab } from '../test/lib/policy-lab.ts';
import { AuditLog, type AuditLine } from './audit.ts';
import { compile, type LocalPod, type RemotePod } from './compile.ts';
import { resolve, type PolicyInput } from './evaluate.ts';
import { cutRemoteFlows } from './conntrack.ts';
import { IptablesPolicyTable } from './ipt.ts';
import { NftPolicyTable } from './nft.ts';
import type { PolicyTable } from './table.ts';

/*
 * The policy table against the real kernel — nftables, then iptables + ipset — with real TCP connections, in
 * namespaces this test makes (pt-<rnd>-*) and removes; traffic stays inside them.
 *
 *   rem: 10.2.0.5 (c2 web/frontend), 10.2.0.6 (c2 shop/frontend), 10.3.0.5 (c3 web/frontend),
 *        172.31.252.2 (not a remote pod CIDR)
 *     └ eth0 ── r0 [node: forwards, isthmus-policy] r1 ── pod 10.1.0.3 (c1 backend/backend), listening on 8080 and 9090
 */
let lab: PolicyLab | undefined;
const servers: ChildProcess[] = [];
let tables: PolicyTable[] = [];
const L = (): PolicyLab => {
  if (lab === undefined) throw new Error('no lab');
  return lab;
};

function cleanup(): void {
  for (const s of servers) s.kill('SIGKILL');
  lab?.cleanup();
}

test.before(async () => {
  requireRootForTest('policy/enforce.netns.test.ts');
  lab = policyLab('pt', 252, ['10.2.0.5', '10.2.0.6', '10.3.0.5']);
  const nodeRunner = new NetnsRunner(new SystemRunner(), lab.ns.node);
  tables = [new NftPolicyTable(nodeRunner), new IptablesPolicyTable(nodeRunner)];
  servers.push(spawn('ip', ['netns', 'exec', lab.ns.pod, 'socat', 'TCP-LISTEN:7070,fork,reuseaddr', 'EXEC:cat'], { stdio: 'ignore' }));
  for (const port of [8080, 9090]) servers.push(spawn('ip', ['netns', 'exec', lab.ns.pod, 'socat', `TCP-LISTEN:${port},fork,reuseaddr`, `SYSTEM:echo ${port}`], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 300));
});
test.after(cleanup);

/** A long-lived TCP connection from `source` to the pod's echo port 7070: says whether a line comes back. */
function stream(source: string): { echoes(text: string): Promise<boolean>; close(): void } {
  const p = spawn('ip', ['netns', 'exec', L().ns.rem, 'socat', '-', `TCP:10.1.0.3:7070,bind=${source}`], { stdio: ['pipe', 'pipe', 'ignore'] });
  let got = '';
  p.stdout.on('data', (d: Buffer) => (got += d.toString()));
  return {
    async echoes(text) {
      p.stdin.write(`${text}\n`);
      for (let i = 0; i < 20 && !got.includes(text); i++) await new Promise((r) => setTimeout(r, 100));
      return got.includes(text);
    },
    close: () => p.kill('SIGKILL'),
  };
}

/** True when a TCP connection from `source` to the pod's port is answered. */
function connects(source: string, port: number): boolean {
  try {
    return L().sh(L().ns.rem, 'socat', '-T2', 'STDIO', `TCP:10.1.0.3:${port},bind=${source},connect-timeout=2`).trim() === String(port);
  } catch {
    return false;
  }
}

const policy: PolicyInput = {
  key: 'c1/backend/frontend-in', cluster: 'c1', namespace: 'backend', name: 'frontend-in',
  spec: validatePolicySpec({
    appliedTo: { podSelector: { matchLabels: { app: 'backend' } } },
    ingress: [{ name: 'frontend', priority: 10, action: 'Allow', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: { matchLabels: { team: 'web' } }, podSelector: { matchLabels: { app: 'frontend' } } }], ports: [{ protocol: 'TCP', port: 8080 }, { protocol: 'TCP', port: 7070 }] }],
    default: 'Deny',
  }),
};
const local: LocalPod[] = [{ ip: '10.1.0.3', namespace: 'backend', name: 'backend-1', labels: { app: 'backend' } }];
const remote = (frontendLabel: string): RemotePod[] => [
  { ip: '10.2.0.5', source: { cluster: 'c2', namespace: 'web', namespaceLabels: { team: 'web' }, pod: 'frontend-1', labels: { app: frontendLabel } } },
  { ip: '10.2.0.6', source: { cluster: 'c2', namespace: 'shop', namespaceLabels: { team: 'shop' }, pod: 'frontend-2', labels: { app: 'frontend' } } },
  { ip: '10.3.0.5', source: { cluster: 'c3', namespace: 'web', namespaceLabels: { team: 'web' }, pod: 'frontend-3', labels: { app: 'frontend' } } },
];
const rulesetFor = (remotePods: RemotePod[]) => compile({
  resolved: resolve({ cluster: 'c1', clusterLabels: new Map(), namespaces: [{ name: 'backend', labels: {} }], policies: [policy] }),
  remoteCidrs: ['10.2.0.0/16', '10.3.0.0/16'], localPods: local, remotePods,
});

for (const backend of ['nftables', 'iptables'] as const) {
  const table = (): PolicyTable => {
    const t = tables.find((x) => x.name === backend);
    if (t === undefined) throw new Error(`no ${backend} table`);
    return t;
  };
  test(`${backend}: before any policy every flow passes`, () => {
    assert.ok(connects('10.3.0.5', 9090));
  });

  test(`${backend}: c2 web/frontend reaches backend:8080 only; c3, another namespace of c2, port 9090 are dropped; non-remote sources unaffected`, async () => {
    const r = rulesetFor(remote('frontend'));
    assert.is(await table().set(r), 'replaced');
    assert.is(await table().set(r), 'unchanged', 'the same ruleset again changes nothing');
    assert.ok(connects('10.2.0.5', 8080), 'c2 web/frontend → 8080');
    assert.not.ok(connects('10.2.0.5', 9090), 'c2 web/frontend → 9090');
    assert.not.ok(connects('10.2.0.6', 8080), 'c2 shop/frontend → 8080');
    assert.not.ok(connects('10.3.0.5', 8080), 'c3 web/frontend → 8080');
    assert.ok(connects('172.31.252.2', 9090), 'a source outside the remote pod CIDRs is not governed');

    const lines: AuditLine[] = [];
    new AuditLog({ write: () => undefined }).observe(await table().readAudit(r.audit.keys()), r.audit, new Map(remote('frontend').map((p) => [p.ip, p.source])), new Map(local.map((p) => [p.ip, p])))
      .forEach((l) => lines.push(l));
    // (port 7070 is the next test's: a connection of the other backend's run may still send its last packets)
    const summary = lines.filter((l) => l.destination.port !== 7070).map((l) => `${l.verdict} ${l.rule} ${l.source.cluster}/${l.source.namespace}/${l.source.pod} ${l.destination.pod}:${l.destination.port}`).sort();
    assert.equal(summary, [
      'Allow frontend c2/web/frontend-1 backend-1:8080',
      'Deny default c2/shop/frontend-2 backend-1:8080',
      'Deny default c2/web/frontend-1 backend-1:9090',
      'Deny default c3/web/frontend-3 backend-1:8080',
    ]);
  });

  test(`${backend}: a pod relabelled in c2 loses access at the next apply`, async () => {
    assert.is(await table().set(rulesetFor(remote('batch'))), 'replaced', 'no source left for the rule: another shape');
    assert.not.ok(connects('10.2.0.5', 8080));
    assert.is(await table().set(rulesetFor(remote('frontend'))), 'replaced');
    assert.ok(connects('10.2.0.5', 8080));
  });

  test(`${backend}: a namespace relabelled in c2 is updated in place (set elements only) and the verdicts follow`, async () => {
    const shopIsWeb = remote('frontend').map((p) => (p.ip === '10.2.0.6' ? { ...p, source: { ...p.source, namespaceLabels: { team: 'web' } } } : p));
    assert.not.ok(connects('10.2.0.6', 8080), 'before: c2 shop is not team web');
    assert.is(await table().set(rulesetFor(shopIsWeb)), 'updated');
    assert.is(await table().current(), rulesetFor(shopIsWeb).digest, 'the kernel holds the new digest');
    assert.ok(connects('10.2.0.6', 8080), 'c2 shop/frontend now allowed');
    assert.ok(connects('10.2.0.5', 8080), 'c2 web/frontend still allowed');
    assert.is(await table().set(rulesetFor(remote('frontend'))), 'updated');
    assert.not.ok(connects('10.2.0.6', 8080), 'and refused again');
    assert.ok(connects('10.2.0.5', 8080));
  });

  test(`${backend}: an admitted flow outlives its rule (conntrack) unless flows are cut: then its next packet is dropped`, async () => {
    const runner = new NetnsRunner(new SystemRunner(), L().ns.node);
    assert.is(await table().set(rulesetFor(remote('frontend'))), 'unchanged');
    const kept = stream('10.2.0.5');
    try {
      assert.ok(await kept.echoes('one'), 'admitted');
      assert.is(await table().set(rulesetFor(remote('batch'))), 'replaced');
      assert.ok(await kept.echoes('two'), 'established: still passes');
      await cutRemoteFlows(runner, ['10.2.0.0/16', '10.3.0.0/16']);
      assert.not.ok(await kept.echoes('three'), 'cut: its next packet meets the new rules');
    } finally {
      kept.close();
    }
    assert.is(await table().set(rulesetFor(remote('frontend'))), 'replaced');
    const again = stream('10.2.0.5');
    try {
      assert.ok(await again.echoes('four'));
      assert.is(await cutRemoteFlows(runner, ['10.2.0.0/16']) > 0, true);
      assert.ok(await again.echoes('five'), 'cut but still allowed: picked up again and passes');
    } finally {
      again.close();
    }
  });

  test(`${backend}: cleanup removes the table: everything passes again`, async () => {
    await table().cleanup();
    assert.is(await table().current(), undefined);
    assert.ok(connects('10.3.0.5', 8080));
  });
}

test.run();
