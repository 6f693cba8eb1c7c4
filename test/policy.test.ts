// e2e, needs root: ClusterSetNetworkPolicy on the sandbox with real parts only (3 clusters ×
// 3 nodes, WireGuard cables, route agents, etcd + broker; `isthmus policy controller` per
// cluster and `isthmus policy agent` on every node, each with its RBAC's token).
// Covers the issue's "done when": a policy written in c1 lets c2's web/frontend pods into
// backend:8080 only — c3's frontend, another namespace of c2 and port 9090 are refused,
// traffic inside c1 is unaffected; a pod relabelled in c2 loses access; one audit line per
// flow with the identities; `isthmus policy test` says the same; with the broker down the
// enforcement keeps its last state and changes made meanwhile apply when it returns; a
// policy with a bad spec gets its error in the status; denying a whole cluster.
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveNetns } from '../sandbox/exec.ts';
import { eventually, isthmus, kubectl, requireRootForTest } from './lib/cli.ts';
import { Datapath } from './lib/datapath.ts';
import { echoFrom } from './lib/netns.ts';

requireRootForTest('test/policy.test.ts');
const dp = new Datapath();
const cs = dp.cs;

test.after(async () => {
  await dp.close();
});

interface Pod { cluster: string; ns: string; name: string; ip: string; netns: string; node: string }
const pods = new Map<string, Pod>();
const P = (key: string): Pod => {
  const p = pods.get(key);
  if (p === undefined) throw new Error(`no pod ${key}`);
  return p;
};

async function deploy(cluster: string, ns: string, nsLabels: Record<string, string>, name: string, labels: Record<string, string>, ports: number[]): Promise<void> {
  const node = cs.node(cluster, 2);
  await kubectl(cs.kubeconfig, cluster, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: nsLabels } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { nodeName: node.name, containers: [{ name: 'echo', image: 'isthmus/echo:dev', ports: ports.map((containerPort) => ({ containerPort })) }] } },
  ] }));
  const ip = await eventually(`${cluster}/${ns}/${name}'s address`, async () => (await cs.kubectl(cluster, ['-n', ns, 'get', 'pod', name, '-o', 'jsonpath={.status.podIP}'])).trim() || undefined, 90_000);
  await eventually(`${cluster}/${ns}/${name} answers`, async () => ((await echoFrom(node.netns, 'tcp', ip, ports[0] ?? 8080).catch(() => undefined)) === undefined ? undefined : true), 90_000);
  pods.set(`${cluster}/${ns}/${name}`, { cluster, ns, name, ip, netns: await resolveNetns(cs.sandboxDir, cluster, name, ns), node: node.name });
}

/** True when `from` gets an answer from the backend pod on `port` (and the server saw from's own IP). */
async function reaches(from: Pod, port: number, to: Pod = P('c1/backend/backend')): Promise<boolean> {
  const a = await echoFrom(from.netns, 'tcp', to.ip, port).catch(() => undefined);
  return a !== undefined && String(a['client']).startsWith(`${from.ip}:`);
}

/**
 * True when `from` reaches the backend within `ms`: a check that a flow is still allowed must
 * not fail on a moment without a path (on a loaded machine a gateway may lose its lease and
 * fail over, ~3 s without cables; seen in bench/policy-distribution.ts).
 */
const reachesSoon = (from: Pod, port: number, ms = 10_000): Promise<boolean> =>
  eventually(`${from.cluster}/${from.ns}/${from.name} → backend:${port}`, async () => ((await reaches(from, port)) ? true : undefined), ms).catch(() => false);

const expectReach = (from: string, port: number, want: boolean): Promise<true> =>
  eventually(`${from} → c1/backend/backend:${port} ${want ? 'allowed' : 'refused'}`, async () => ((await reaches(P(from), port)) === want ? true : undefined), 30_000);

const POLICY = `apiVersion: isthmus.dev/v1alpha1
kind: ClusterSetNetworkPolicy
metadata: { name: frontend-in, namespace: backend }
spec:
  appliedTo: { podSelector: { matchLabels: { app: backend } } }
  ingress:
    - name: frontend
      priority: 10
      action: Allow
      from: [{ clusters: { ids: [c2] }, namespaceSelector: { matchLabels: { team: web } }, podSelector: { matchLabels: { app: frontend } } }]
      ports: [{ protocol: TCP, port: 8080 }]
  default: Deny
`;

test('setup: the clusterset, the backend in c1 and frontends in c2 (two namespaces) and c3; without a policy all connect', async () => {
  await dp.up('wireguard');
  await deploy('c1', 'backend', { team: 'api' }, 'backend', { app: 'backend' }, [8080, 9090]);
  await deploy('c2', 'web', { team: 'web' }, 'frontend', { app: 'frontend' }, [8080]);
  await deploy('c2', 'shop', { team: 'shop' }, 'frontend', { app: 'frontend' }, [8080]);
  await deploy('c3', 'web', { team: 'web' }, 'frontend', { app: 'frontend' }, [8080]);
  for (const c of ['c1', 'c2', 'c3']) await cs.startPolicy(c);
  for (const f of ['c2/web/frontend', 'c2/shop/frontend', 'c3/web/frontend']) await expectReach(f, 8080, true);
  // c1 knows the frontends' identities (published by c2 and c3, mirrored by c1's controller),
  // so the audit lines of the next test name them
  await eventually('c1 holds the identities of the three frontends', async () => {
    const cms = JSON.parse(await cs.kubectl('c1', ['get', 'configmaps', '-A', '-l', 'isthmus.dev/policy-state=identities', '-o', 'json'])) as { items: { data?: Record<string, string> }[] };
    const ips = new Set(cms.items.flatMap((cm) => (JSON.parse(cm.data?.['identities.json'] ?? '{}') as { pods?: { ip: string }[] }).pods ?? []).map((p) => p.ip));
    return ['c2/web/frontend', 'c2/shop/frontend', 'c3/web/frontend'].every((f) => ips.has(P(f).ip)) ? true : undefined;
  }, 30_000);
});

test('a policy applied in c1 lets c2 web/frontend into backend:8080 only', async () => {
  writeFileSync(cs.path('policy.yaml'), POLICY);
  const r = await isthmus(['policy', 'apply', '-f', cs.path('policy.yaml'), '--kubeconfig', cs.kubeconfig, '--context', 'c1']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /clustersetnetworkpolicy backend\/frontend-in created/);
  await expectReach('c3/web/frontend', 8080, false);
  await expectReach('c2/web/frontend', 8080, true);
  await expectReach('c2/shop/frontend', 8080, false);
  await expectReach('c2/web/frontend', 9090, false);
  // inside c1 nothing is governed
  assert.ok(await reaches({ ...dp.pod('c1', 0), ns: 'demo' }, 9090));
  // its status, one entry per cluster (c2's and c3's through the broker): enforced on N of M
  // nodes, M the schedulable nodes of that cluster, N those whose agent reports the policy at its generation
  const nodes = (await cs.kubectl('c1', ['get', 'nodes', '-o', 'name'])).trim().split('\n').length;
  type Entry = { cluster: string; state: string; message?: string; enforcedNodes?: number; nodes?: number; observedGeneration?: number };
  let seen: Entry[] | undefined;
  const status = await eventually('the policy\'s status: enforced on every node of every cluster', async () => {
    const o = JSON.parse(await cs.kubectl('c1', ['-n', 'backend', 'get', 'clustersetnetworkpolicy', 'frontend-in', '-o', 'json'])) as { status?: { clusters?: Entry[] } };
    seen = o.status?.clusters;
    return seen !== undefined && seen.length === 3 && seen.every((c) => c.enforcedNodes === nodes) ? seen : undefined;
  }, 30_000).catch((err: unknown) => {
    throw new Error(`${String(err)}; last status: ${JSON.stringify(seen)}`);
  });
  assert.equal(status.map((c) => `${c.cluster} ${c.state} ${c.message ?? ''} ${c.enforcedNodes ?? '-'}/${c.nodes ?? '-'} g${c.observedGeneration ?? '-'}`), [
    `c1 Accepted governs backend; enforced on ${nodes} of ${nodes} nodes ${nodes}/${nodes} g1`,
    `c2 Accepted governs no namespace here; enforced on ${nodes} of ${nodes} nodes ${nodes}/${nodes} g1`,
    `c3 Accepted governs no namespace here; enforced on ${nodes} of ${nodes} nodes ${nodes}/${nodes} g1`,
  ]);
  const reports = JSON.parse(await cs.kubectl('c1', ['-n', 'isthmus-system', 'get', 'policyagents.isthmus.dev', '-o', 'json'])) as { items: { metadata: { name: string }; status?: { applied?: { policy: string; generation: number }[]; error?: string } }[] };
  assert.is(reports.items.length, nodes, 'one PolicyAgent per node');
  for (const r of reports.items) assert.equal([r.status?.error, r.status?.applied?.map((a) => a.policy)], ['', ['c1/backend/frontend-in']], r.metadata.name);
});

test('isthmus policy test answers what the nodes enforce, and why', async () => {
  const allowed = await isthmus(['policy', 'test', '--from', 'c2/web/frontend', '--to', 'c1/backend/backend:8080', '--kubeconfig', cs.kubeconfig]);
  assert.is(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stdout, /ALLOWED .*\n  rule frontend \(priority 10\) of c1\/backend\/frontend-in matches/);
  const denied = await isthmus(['policy', 'test', '--from', 'c3/web/frontend', '--to', 'c1/backend/backend:8080', '--kubeconfig', cs.kubeconfig]);
  assert.is(denied.code, 1);
  assert.match(denied.stdout, /DENIED .*\n  no rule matches and c1\/backend\/frontend-in makes namespace backend's default Deny/);
});

test('the audit log on the backend\'s node: one line per flow, with the identities', async () => {
  const file = cs.path(`policy-audit-${P('c1/backend/backend').node}.jsonl`);
  const lines = await eventually('4 audit lines', async () => {
    const l = readFileSync(file, 'utf8').split('\n').filter((x) => x !== '').map((x) => JSON.parse(x) as { verdict: string; rule: string; policy: string; source: { cluster: string; namespace: string; pod: string; labels: Record<string, string> }; destination: { pod: string; port: number } });
    return l.length >= 4 ? l : undefined;
  }, 10_000);
  const summary = lines.map((l) => `${l.verdict} ${l.policy} ${l.rule} ${l.source.cluster}/${l.source.namespace}/${l.source.pod} app=${l.source.labels['app'] ?? ''} → ${l.destination.pod}:${l.destination.port}`);
  for (const want of [
    'Allow c1/backend/frontend-in frontend c2/web/frontend app=frontend → backend:8080',
    'Deny c1/backend/frontend-in default c2/shop/frontend app=frontend → backend:8080',
    'Deny c1/backend/frontend-in default c2/web/frontend app=frontend → backend:9090',
    'Deny c1/backend/frontend-in default c3/web/frontend app=frontend → backend:8080',
  ]) assert.is(summary.filter((l) => l === want).length, 1, `once: ${want}\n${summary.join('\n')}`);
  // the gateway nodes forwarded these flows without governing them: nothing logged there
  for (const i of [0, 1]) assert.is(readFileSync(cs.path(`policy-audit-${cs.node('c1', i).name}.jsonl`), 'utf8').includes('backend'), false);
});

test('a pod relabelled in c2 loses access; relabelled back, it regains it', async () => {
  await cs.kubectl('c2', ['-n', 'web', 'label', 'pod', 'frontend', 'app=batch', '--overwrite']);
  await expectReach('c2/web/frontend', 8080, false);
  await cs.kubectl('c2', ['-n', 'web', 'label', 'pod', 'frontend', 'app=frontend', '--overwrite']);
  await expectReach('c2/web/frontend', 8080, true);
});

test('broker down: enforcement keeps its last state; a change made meanwhile applies when it returns', async () => {
  cs.stopBroker();
  try {
    await cs.kubectl('c2', ['-n', 'web', 'label', 'pod', 'frontend', 'app=batch', '--overwrite']);
    await new Promise((r) => setTimeout(r, 3_000));
    assert.ok(await reachesSoon(P('c2/web/frontend'), 8080), 'the last state holds while the broker is away');
    assert.not.ok(await reaches(P('c3/web/frontend'), 8080));
  } finally {
    cs.startBroker();
  }
  await expectReach('c2/web/frontend', 8080, false);
  await cs.kubectl('c2', ['-n', 'web', 'label', 'pod', 'frontend', 'app=frontend', '--overwrite']);
  await expectReach('c2/web/frontend', 8080, true);
});

test('a policy with a bad spec: its error in the status, nothing else affected', async () => {
  await kubectl(cs.kubeconfig, 'c1', ['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'isthmus.dev/v1alpha1', kind: 'ClusterSetNetworkPolicy', metadata: { name: 'clash', namespace: 'backend' },
    spec: { appliedTo: {}, ingress: [{ name: 'a', priority: 1, action: 'Deny' }, { name: 'b', priority: 1, action: 'Allow' }] },
  }));
  const st = await eventually('the error in the status', async () => {
    const o = JSON.parse(await cs.kubectl('c1', ['-n', 'backend', 'get', 'clustersetnetworkpolicy', 'clash', '-o', 'json'])) as { status?: { clusters?: { state: string; message?: string }[] } };
    return o.status?.clusters?.[0]?.state === 'Error' ? o.status.clusters : undefined;
  }, 20_000);
  assert.is(st.length, 1, 'only c1 has it: an invalid policy is not published');
  assert.match(st[0]?.message ?? '', /spec\.ingress\[1\]\.priority: 1 is also the priority of rule "a"/);
  assert.ok(await reachesSoon(P('c2/web/frontend'), 8080));
  assert.not.ok(await reaches(P('c3/web/frontend'), 8080));
});

test('denying a whole cluster: a rule ahead of the allow refuses every pod of c2', async () => {
  await kubectl(cs.kubeconfig, 'c1', ['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'isthmus.dev/v1alpha1', kind: 'ClusterSetNetworkPolicy', metadata: { name: 'no-c2', namespace: 'backend' },
    spec: { appliedTo: {}, ingress: [{ name: 'c2-out', priority: 1, action: 'Deny', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: {} }] }] },
  }));
  await expectReach('c2/web/frontend', 8080, false);
  await cs.kubectl('c1', ['-n', 'backend', 'delete', 'clustersetnetworkpolicy', 'no-c2']);
  await expectReach('c2/web/frontend', 8080, true);
});

test.run();
