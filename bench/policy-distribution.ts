// Benchmark (root, uses the sandbox): how long a ClusterSetNetworkPolicy change or a pod
// relabel takes to be enforced in the kernel on every node of the receiving clusters, as a
// distribution. Real parts only: 3 clusters × 3 nodes (test/lib/datapath.ts: WireGuard cables,
// route agents), an etcd + broker, `isthmus policy controller` per cluster and `isthmus policy
// agent` on every node (their RBAC tokens). A policy written in c1 lets c2's web/frontend pods
// into backend:8080 and makes the namespace's default Deny; namespace backend has a pod on every
// node of c1 and of c3 (6 receiving nodes). A prober in c2's frontend pod (bench/lib/tcp-probe.ts)
// connects to all six all the time, so "enforced" is what the kernel does to a new flow, not
// what an agent says. Each change flips the verdict:
//   relabel: c2's pod app=frontend ↔ app=batch (c2's controller → broker → c1's and c3's
//            controllers → their ConfigMaps → the agents → nftables);
//   policy:  the rule's port 8080 ↔ 9090 (c1's apiserver → c1's controller → broker → …).
// Before the first measured change, one unmeasured relabel each way shows the policy in force on
// every node (before that, the first change measured the parts' start-up too).
// The time of a change runs from just before its API request to the first probe on the LAST of
// the six nodes that sees the new verdict (resolution: the probe interval, and the connect
// timeout for a flow becoming allowed).
// When a change takes over 2 s, the parts' logs are kept in /tmp/policy-distribution-logs-<time>/
// (the sandbox's folder goes with it) and the change's start time is printed, to find the cause.
// usage: node bench/policy-distribution.ts [--changes 30] (per kind) [--interval 20] [--timeout 60]
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { resolveNetns } from '../sandbox/exec.ts';
import { projectRoot } from '../sandbox/index.ts';
import { eventually, kubectl } from '../test/lib/cli.ts';
import { Datapath } from '../test/lib/datapath.ts';
import { numberArg } from './lib/args.ts';

const CHANGES = numberArg('changes', 30);
const INTERVAL = numberArg('interval', 20);
const TIMEOUT = numberArg('timeout', 60);
const RECEIVERS = ['c1', 'c3'] as const;
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const dp = new Datapath();
const cs = dp.cs;

const rule = (port: number): object[] => [{
  name: 'frontend', priority: 10, action: 'Allow',
  from: [{ clusters: { ids: ['c2'] }, namespaceSelector: { matchLabels: { team: 'web' } }, podSelector: { matchLabels: { app: 'frontend' } } }],
  ports: [{ protocol: 'TCP', port }],
}];

function client<T>(context: string, api: new (...a: never[]) => T): T {
  const kc = new KubeConfig();
  kc.loadFromFile(cs.kubeconfig);
  kc.setCurrentContext(context);
  return kc.makeApiClient(api as never) as T;
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};
const summary = (xs: readonly number[]): string => `n=${xs.length} p50 ${quantile(xs, 0.5)} ms, p90 ${quantile(xs, 0.9)} ms, p99 ${quantile(xs, 0.99)} ms, max ${Math.max(...xs)} ms`;

const slow: string[] = [];
const load: number[] = [];
try {
  await dp.up('wireguard');
  // the receiving pods: one per node of c1 and c3; the source: c2 web/frontend on c2's third node
  const targets = new Map<string, string>(); // ip:port → node
  for (const c of RECEIVERS) {
    const items: object[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'backend', labels: { team: 'api' } } }];
    for (const i of [0, 1, 2]) {
      const node = cs.node(c, i).name;
      items.push({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `backend-${node}`, namespace: 'backend', labels: { app: 'backend' } }, spec: { nodeName: node, containers: [{ name: 'echo', image: 'isthmus/echo:dev', ports: [{ containerPort: 8080 }] }] } });
    }
    await kubectl(cs.kubeconfig, c, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  }
  await kubectl(cs.kubeconfig, 'c2', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'web', labels: { team: 'web' } } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'frontend', namespace: 'web', labels: { app: 'frontend' } }, spec: { nodeName: cs.node('c2', 2).name, containers: [{ name: 'echo', image: 'isthmus/echo:dev' }] } },
  ] }));
  for (const c of RECEIVERS) {
    for (const i of [0, 1, 2]) {
      const node = cs.node(c, i).name;
      const ip = await eventually(`backend-${node}'s address`, async () => (await cs.kubectl(c, ['-n', 'backend', 'get', 'pod', `backend-${node}`, '-o', 'jsonpath={.status.podIP}'])).trim() || undefined, 90_000);
      targets.set(`${ip}:8080`, node);
    }
  }
  await eventually('c2 web/frontend running', async () => ((await cs.kubectl('c2', ['-n', 'web', 'get', 'pod', 'frontend', '-o', 'jsonpath={.status.podIP}'])).trim() || undefined), 90_000);
  const netns = await resolveNetns(cs.sandboxDir, 'c2', 'frontend', 'web');
  for (const c of ['c1', 'c2', 'c3']) await cs.startPolicy(c);
  await kubectl(cs.kubeconfig, 'c1', ['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'isthmus.dev/v1alpha1', kind: 'ClusterSetNetworkPolicy', metadata: { name: 'frontend-in', namespace: 'backend' },
    spec: { appliedTo: { podSelector: { matchLabels: { app: 'backend' } } }, ingress: rule(8080), default: 'Deny' },
  }));

  // the prober, and the state of every target as it last reported it
  const probe = spawn('ip', ['netns', 'exec', netns, process.execPath, '--no-warnings', join(projectRoot(), 'bench', 'lib', 'tcp-probe.ts'),
    '--interval', String(INTERVAL), '--timeout', String(TIMEOUT), ...targets.keys()], { stdio: ['ignore', 'pipe', 'inherit'] });
  const state = new Map<string, { ok: boolean; t: number }>();
  createInterface({ input: probe.stdout }).on('line', (l) => {
    const e = JSON.parse(l) as { t: number; target: string; ok: boolean };
    state.set(e.target, { ok: e.ok, t: e.t });
  });
  try {
    const until = async (ok: boolean, since: number, what: string): Promise<number[]> => eventually(what, async () => {
      const s = [...targets.keys()].map((k) => state.get(k));
      return s.every((x) => x !== undefined && x.ok === ok && x.t >= since) ? s.map((x) => (x?.t ?? 0) - since) : undefined;
    }, 30_000);
    const core = client('c2', CoreV1Api);
    const relabel = (app: string): Promise<unknown> => core.patchNamespacedPod({ name: 'frontend', namespace: 'web', body: { metadata: { labels: { app } } } }, merge);
    // Before the clock runs, the policy must be in force on all six nodes. "Allowed" cannot show
    // it (a node without the policy allows too), so one unmeasured relabel each way: refused on
    // every node (the policy is there), then allowed again.
    await until(true, 0, 'c2/frontend reaching every receiving node');
    const warm = Date.now();
    await relabel('batch');
    await until(false, warm, 'warm-up: the policy in force on every receiving node (c2/batch refused)');
    const back = Date.now();
    await relabel('frontend');
    await until(true, back, 'warm-up: c2/frontend allowed again on every receiving node');
    const objects = client('c1', CustomObjectsApi);
    const results: Record<'relabel' | 'policy', number[]> = { relabel: [], policy: [] };
    const perNode = new Map<string, number[]>();
    for (const kind of ['relabel', 'policy'] as const) {
      let allowed = true;
      // CHANGES flips (one more when that ends refused: each kind starts from allowed)
      for (let i = 0; i < CHANGES || !allowed; i++) {
        allowed = !allowed;
        // a rest of 300–800 ms, so changes do not line up with the parts' resyncs
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 500));
        const t0 = Date.now();
        if (kind === 'relabel') {
          await relabel(allowed ? 'frontend' : 'batch');
        } else {
          await objects.patchNamespacedCustomObject({ group: 'isthmus.dev', version: 'v1alpha1', namespace: 'backend', plural: 'clustersetnetworkpolicies', name: 'frontend-in', body: { spec: { ingress: rule(allowed ? 8080 : 9090) } } }, merge);
        }
        const times = await until(allowed, t0, `${kind} ${i}: ${allowed ? 'allowed' : 'refused'} on every receiving node`).catch((err: unknown) => {
          slow.push(`${kind} ${i} at ${new Date(t0).toISOString()}: not enforced on every node in 30 s (${[...targets].map(([k, n]) => `${n} ${state.get(k)?.ok === allowed ? 'done' : 'not yet'}`).join(', ')})`);
          process.stderr.write(`${slow.at(-1) ?? ''}\n`);
          throw err;
        });
        results[kind].push(Math.max(...times));
        load.push(loadavg()[0] ?? 0);
        if (Math.max(...times) > 2000) slow.push(`${kind} ${i} at ${new Date(t0).toISOString()}: ${[...targets.values()].map((n, j) => `${n} ${times[j] ?? 0} ms`).join(', ')}`);
        [...targets.values()].forEach((node, j) => perNode.set(node, [...(perNode.get(node) ?? []), times[j] ?? 0]));
      }
    }
    process.stdout.write(`\nMachine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, Linux ${release()}, Node ${process.version}\n`);
    process.stdout.write(`change → enforced on all 6 receiving nodes (c1, c3 × 3), probe every ${INTERVAL} ms, connect timeout ${TIMEOUT} ms:\n`);
    process.stdout.write(`  pod relabel in c2:        ${summary(results.relabel)}\n`);
    process.stdout.write(`  policy edit in c1:        ${summary(results.policy)}\n`);
    process.stdout.write(`  both:                     ${summary([...results.relabel, ...results.policy])}\n`);
    process.stdout.write('  per node (both kinds):\n');
    for (const [node, xs] of [...perNode].sort()) process.stdout.write(`    ${node}: ${summary(xs)}\n`);
    process.stdout.write(`  raw relabel: ${results.relabel.join(' ')}\n  raw policy: ${results.policy.join(' ')}\n`);
    process.stdout.write(`  1-minute load average during the changes: ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}\n`);
    for (const s of slow) process.stdout.write(`  over 2 s: ${s}\n`);
  } finally {
    probe.kill('SIGTERM');
  }
} finally {
  if (slow.length > 0) {
    const keep = `/tmp/policy-distribution-logs-${Date.now()}`;
    mkdirSync(keep, { recursive: true });
    for (const f of readdirSync(cs.path('.')).filter((x) => x.endsWith('.log'))) cpSync(cs.path(f), `${keep}/${f}`);
    process.stdout.write(`  the parts' logs: ${keep}\n`);
  }
  await dp.close();
}
