import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../core/index.ts';
import { validatePolicySpec } from '../core/broker-api/index.ts';
import { AuditLog, type AuditLine } from './audit.ts';
import { compile, type CompileInput, type LocalPod, type RemotePod } from './compile.ts';
import { resolve, type PolicyInput, type SourcePod } from './evaluate.ts';
import { parseAuditSet } from './nft.ts';
import type { AuditElement } from './table.ts';

const p = (name: string, spec: unknown): PolicyInput => ({ key: `c1/backend/${name}`, cluster: 'c1', namespace: 'backend', name, spec: validatePolicySpec(spec) });
const allowFrontend = p('frontend-in', {
  appliedTo: { podSelector: { matchLabels: { app: 'backend' } } },
  ingress: [{ name: 'frontend', priority: 10, action: 'Allow', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: {}, podSelector: { matchLabels: { app: 'frontend' } } }], ports: [{ protocol: 'TCP', port: 8080 }, { protocol: 'UDP', port: 53 }] }],
  default: 'Deny',
});
const local: LocalPod[] = [
  { ip: '10.1.0.20', namespace: 'backend', name: 'backend-b', labels: { app: 'backend' } },
  { ip: '10.1.0.3', namespace: 'backend', name: 'backend-a', labels: { app: 'backend' } },
  { ip: '10.1.0.9', namespace: 'backend', name: 'db', labels: { app: 'db' } },
  { ip: '10.1.0.30', namespace: 'other', name: 'o', labels: {} },
];
const remote: RemotePod[] = [
  { ip: '10.2.0.5', source: { cluster: 'c2', namespace: 'web', namespaceLabels: {}, pod: 'frontend-1', labels: { app: 'frontend' } } },
  { ip: '10.3.0.5', source: { cluster: 'c3', namespace: 'web', namespaceLabels: {}, pod: 'frontend-1', labels: { app: 'frontend' } } },
];
const input = (policies: PolicyInput[], extra: Partial<CompileInput> = {}): CompileInput => ({
  resolved: resolve({ cluster: 'c1', clusterLabels: new Map(), namespaces: [{ name: 'backend', labels: {} }, { name: 'other', labels: {} }], policies }),
  remoteCidrs: ['10.3.0.0/16', '10.2.0.0/16'], localPods: local, remotePods: remote, ...extra,
});

test('compile: the rules in evaluation order, sets keyed by pod IP, the namespace default last', () => {
  const r = compile(input([allowFrontend]));
  assert.match(r.text, /set remote \{ type ipv4_addr; flags interval; elements = \{ 10\.2\.0\.0\/16, 10\.3\.0\.0\/16 \} \}/);
  assert.match(r.text, /set dst0 \{ type ipv4_addr; elements = \{ 10\.1\.0\.3, 10\.1\.0\.20 \} \}/);
  assert.match(r.text, /set src1 \{ type ipv4_addr; elements = \{ 10\.2\.0\.5 \} \}/);
  const chain = r.text.slice(r.text.indexOf('chain forward'));
  const lines = chain.split('\n').map((l) => l.trim());
  assert.equal(lines.slice(1, 3), ['ct state established,related accept', 'ip saddr != @remote return']);
  assert.match(lines[3] ?? '', /^ip daddr @dst0 ip saddr @src1 meta l4proto tcp th dport \{ 8080 \} add @audit0 .* counter accept comment "c1\/backend\/frontend-in frontend"$/);
  assert.match(lines[4] ?? '', /^ip daddr @dst0 ip saddr @src1 meta l4proto udp th dport \{ 53 \} add @audit0 .* counter accept/);
  assert.match(lines[5] ?? '', /^ip daddr @dst2 add @audit1 .* counter drop comment "backend default Deny"$/);
  assert.match(r.text, /set dst2 \{ type ipv4_addr; elements = \{ 10\.1\.0\.3, 10\.1\.0\.9, 10\.1\.0\.20 \} \}/);
  assert.equal(r.audit.get('audit1'), { policy: 'c1/backend/frontend-in', rule: 'default', action: 'Deny' });
  assert.is(r.rules, 3);
});

test('compile: deterministic — same input in another order, same text and digest; a change changes the digest', () => {
  const a = compile(input([allowFrontend]));
  const b = compile(input([allowFrontend], { localPods: [...local].reverse(), remotePods: [...remote].reverse(), remoteCidrs: ['10.2.0.0/16', '10.3.0.0/16'] }));
  assert.is(a.text, b.text);
  assert.is(a.digest, b.digest);
  assert.is.not(compile(input([allowFrontend], { remotePods: remote.slice(1) })).digest, a.digest);
});

test('compile: no policy → only the pass-through chain; a rule with no pods here or no sources emits nothing', () => {
  const none = compile(input([]));
  assert.is(none.rules, 0);
  assert.not.match(none.text, /drop|accept comment/);
  const noSrc = compile(input([p('x', { appliedTo: {}, ingress: [{ name: 'r', priority: 1, action: 'Deny', from: [{ clusters: { ids: ['c9'] }, namespaceSelector: {} }] }] })]));
  assert.is(noSrc.rules, 0);
  const all = compile(input([p('y', { appliedTo: {}, ingress: [{ name: 'r', priority: 1, action: 'Deny' }] })]));
  assert.match(all.text, /ip daddr @dst0 ip saddr @remote add @audit0 .* counter drop/);
});

test('audit sets from nft -j parse; a flow is logged once while it stays in its set, with its identities', () => {
  const json = JSON.stringify({ nftables: [{ metainfo: {} }, { set: { name: 'audit0', elem: [{ elem: { val: { concat: ['10.2.0.5', '10.1.0.3', 'tcp', 8080] }, timeout: 60, expires: 59 } }, { concat: ['10.9.9.9', '10.1.0.3', 'icmp', 0] }, { bogus: 1 }] } }] });
  const elements = parseAuditSet('audit0', json);
  assert.is(elements.length, 2);
  const lines: string[] = [];
  const flows: string[] = [];
  const clock = new FakeClock(Date.parse('2026-11-30T15:00:00Z'));
  const log = new AuditLog({ write: (l) => lines.push(l), clock, maxPerSecond: 1, onFlow: (t) => flows.push(t.rule), identityWaitMs: 0 });
  const tags = new Map([['audit0', { policy: 'c1/backend/frontend-in', rule: 'frontend', action: 'Allow' as const }]]);
  const remoteByIp = new Map(remote.map((r) => [r.ip, r.source]));
  const localByIp = new Map(local.map((l) => [l.ip, l]));
  log.observe(elements, tags, remoteByIp, localByIp);
  assert.is(lines.length, 1, 'the second flow is over the rate limit');
  assert.is(log.suppressed, 1);
  assert.equal(flows, ['frontend', 'frontend']);
  assert.equal(JSON.parse(lines[0] ?? '{}'), {
    time: '2026-11-30T15:00:00.000Z', verdict: 'Allow', policy: 'c1/backend/frontend-in', rule: 'frontend',
    source: { cluster: 'c2', namespace: 'web', pod: 'frontend-1', labels: { app: 'frontend' }, ip: '10.2.0.5' },
    destination: { namespace: 'backend', pod: 'backend-a', ip: '10.1.0.3', protocol: 'tcp', port: 8080 },
  });
  clock.advance(5_000);
  log.observe(elements, tags, remoteByIp, localByIp);
  assert.is(lines.length, 1, 'still in the set: not logged again');
  log.observe([], tags, remoteByIp, localByIp);
  log.observe(elements.slice(0, 1), tags, remoteByIp, localByIp);
  assert.is(lines.length, 2, 'left the set and came back: logged again');
});

test('audit: a flow from a source without an identity waits for it (up to identityWaitMs), then is written once, timed when first seen', () => {
  const lines: AuditLine[] = [];
  const clock = new FakeClock(Date.parse('2026-11-30T15:00:00Z'));
  const log = new AuditLog({ write: () => undefined, clock, identityWaitMs: 5_000 });
  const tags = new Map([['audit0', { policy: 'c1/backend/frontend-in', rule: 'default', action: 'Deny' as const }]]);
  const flow = (saddr: string): AuditElement => ({ set: 'audit0', saddr, daddr: '10.1.0.3', protocol: 'tcp', port: 8080 });
  const known = new Map(remote.map((r) => [r.ip, r.source]));
  const localByIp = new Map(local.map((l) => [l.ip, l]));
  const observe = (remoteByIp: ReadonlyMap<string, SourcePod>): void => void lines.push(...log.observe([flow('10.2.0.5'), flow('10.3.9.9')], tags, remoteByIp, localByIp));
  observe(new Map());
  assert.is(lines.length, 0, 'both sources unknown yet: held back');
  clock.advance(2_000);
  observe(known);
  assert.equal(lines.map((l) => [l.source.pod, l.time]), [['frontend-1', '2026-11-30T15:00:00.000Z']], 'the identity arrived: written with it, at the first sighting');
  clock.advance(2_999);
  observe(known);
  assert.is(lines.length, 1, '10.3.9.9 still waits');
  clock.advance(1);
  observe(known);
  assert.equal(lines.slice(1).map((l) => [l.source.cluster, l.source.ip, l.time]), [['', '10.3.9.9', '2026-11-30T15:00:00.000Z']], 'no identity after the wait: written without');
  observe(known);
  assert.is(lines.length, 2, 'each once');
  // a waiting flow whose set element is gone (the ruleset replaced) is written at once, not lost
  lines.push(...log.observe([flow('10.3.7.7')], tags, known, localByIp));
  assert.is(lines.length, 2);
  lines.push(...log.observe([], tags, known, localByIp));
  assert.equal(lines.slice(2).map((l) => l.source.ip), ['10.3.7.7']);
});

test.run();
