import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NetnsRunner, SystemRunner } from '../core/index.ts';
import { validatePolicySpec } from '../core/broker-api/index.ts';
import { requireRootForTest } from '../test/lib/cli.ts';
import { AuditLog, type AuditLine } from './audit.ts';
import { compile, type LocalPod, type RemotePod } from './compile.ts';
import { resolve, type PolicyInput } from './evaluate.ts';
import { NftPolicyTable } from './nft.ts';

/*
 * The policy table against the real kernel and nftables, with real TCP connections, in
 * namespaces this test makes (pt-<rnd>-*) and removes; traffic stays inside them.
 *
 *   rem: 10.2.0.5 (c2 web/frontend), 10.2.0.6 (c2 shop/frontend), 10.3.0.5 (c3 web/frontend),
 *        172.31.252.2 (not a remote pod CIDR)
 *     └ eth0 ── r0 [node: forwards, isthmus-policy] r1 ── pod 10.1.0.3 (c1 backend/backend), listening on 8080 and 9090
 */
const tag = `pt-${randomBytes(3).toString('hex')}`;
const NS = { rem: `${tag}-rem`, node: `${tag}-node`, pod: `${tag}-pod` } as const;
const sh = (ns: string, ...args: string[]): string => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const servers: ChildProcess[] = [];
const table = new NftPolicyTable(new NetnsRunner(new SystemRunner(), NS.node));

function cleanup(): void {
  for (const s of servers) s.kill('SIGKILL');
  for (const ns of Object.values(NS)) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not made, or gone
    }
  }
}

test.before(async () => {
  requireRootForTest('policy/enforce.netns.test.ts');
  try {
    for (const ns of Object.values(NS)) {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    execFileSync('ip', ['-n', NS.node, 'link', 'add', 'r0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.rem]);
    execFileSync('ip', ['-n', NS.node, 'link', 'add', 'r1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.pod]);
    for (const [ns, dev, addr] of [[NS.node, 'r0', '172.31.252.1/24'], [NS.rem, 'eth0', '172.31.252.2/24'], [NS.node, 'r1', '10.1.0.1/24'], [NS.pod, 'eth0', '10.1.0.3/24']] as const) {
      execFileSync('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    for (const a of ['10.2.0.5/32', '10.2.0.6/32', '10.3.0.5/32']) execFileSync('ip', ['-n', NS.rem, 'addr', 'add', a, 'dev', 'lo']);
    execFileSync('ip', ['-n', NS.rem, 'route', 'add', 'default', 'via', '172.31.252.1']);
    execFileSync('ip', ['-n', NS.pod, 'route', 'add', 'default', 'via', '10.1.0.1']);
    for (const c of ['10.2.0.0/16', '10.3.0.0/16']) execFileSync('ip', ['-n', NS.node, 'route', 'add', c, 'via', '172.31.252.2']);
    sh(NS.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const port of [8080, 9090]) {
      const s = spawn('ip', ['netns', 'exec', NS.pod, 'socat', `TCP-LISTEN:${port},fork,reuseaddr`, `SYSTEM:echo ${port}`], { stdio: 'ignore' });
      servers.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
  } catch (err) {
    cleanup();
    throw err;
  }
});
test.after(cleanup);

/** True when a TCP connection from `source` to the pod's port is answered. */
function connects(source: string, port: number): boolean {
  try {
    return sh(NS.rem, 'socat', '-T2', 'STDIO', `TCP:10.1.0.3:${port},bind=${source},connect-timeout=2`).trim() === String(port);
  } catch {
    return false;
  }
}

const policy: PolicyInput = {
  key: 'c1/backend/frontend-in', cluster: 'c1', namespace: 'backend', name: 'frontend-in',
  spec: validatePolicySpec({
    appliedTo: { podSelector: { matchLabels: { app: 'backend' } } },
    ingress: [{ name: 'frontend', priority: 10, action: 'Allow', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: { matchLabels: { team: 'web' } }, podSelector: { matchLabels: { app: 'frontend' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }],
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

test('before any policy every flow passes', () => {
  assert.ok(connects('10.3.0.5', 9090));
});

test('c2 web/frontend reaches backend:8080 only; c3, another namespace of c2, port 9090 are dropped; non-remote sources unaffected', async () => {
  const r = rulesetFor(remote('frontend'));
  assert.is(await table.set(r), true);
  assert.is(await table.set(r), false, 'the same ruleset again changes nothing');
  assert.ok(connects('10.2.0.5', 8080), 'c2 web/frontend → 8080');
  assert.not.ok(connects('10.2.0.5', 9090), 'c2 web/frontend → 9090');
  assert.not.ok(connects('10.2.0.6', 8080), 'c2 shop/frontend → 8080');
  assert.not.ok(connects('10.3.0.5', 8080), 'c3 web/frontend → 8080');
  assert.ok(connects('172.31.252.2', 9090), 'a source outside the remote pod CIDRs is not governed');

  const lines: AuditLine[] = [];
  new AuditLog({ write: () => undefined }).observe(await table.readAudit(r.audit.keys()), r.audit, new Map(remote('frontend').map((p) => [p.ip, p.source])), new Map(local.map((p) => [p.ip, p])))
    .forEach((l) => lines.push(l));
  const summary = lines.map((l) => `${l.verdict} ${l.rule} ${l.source.cluster}/${l.source.namespace}/${l.source.pod} ${l.destination.pod}:${l.destination.port}`).sort();
  assert.equal(summary, [
    'Allow frontend c2/web/frontend-1 backend-1:8080',
    'Deny default c2/shop/frontend-2 backend-1:8080',
    'Deny default c2/web/frontend-1 backend-1:9090',
    'Deny default c3/web/frontend-3 backend-1:8080',
  ]);
});

test('a pod relabelled in c2 loses access at the next apply', async () => {
  assert.is(await table.set(rulesetFor(remote('batch'))), true);
  assert.not.ok(connects('10.2.0.5', 8080));
  assert.is(await table.set(rulesetFor(remote('frontend'))), true);
  assert.ok(connects('10.2.0.5', 8080));
});

test('cleanup removes the table: everything passes again', async () => {
  await table.cleanup();
  assert.is(await table.current(), undefined);
  assert.ok(connects('10.3.0.5', 8080));
});

test.run();
