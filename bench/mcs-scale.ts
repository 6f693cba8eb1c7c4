// Benchmark (root, uses the sandbox): 1,000 Services exported at once → imported in another
// cluster, with real parts: two sandbox clusters, a real etcd + broker, `isthmus mcs` in each
// (admin kubeconfig). The Services (selectorless, one port) exist first in c1; then their
// ServiceExports are created at once (50 requests in flight) and the clock runs until c2 holds a
// ServiceImport with a clusterset IP for every one, in c2 and in c1 (the exporter imports too).
// Also: the mcs controllers' RSS after, and their V8 heap and external memory (their /metrics).
// usage: node bench/mcs-scale.ts [--services 1000] [--timeout-s 600] [--floor] [--workers 16] [--node-flags '--max-old-space-size=128'] [--compiled]
//   --split: Services and exports alternate between c1 and c2 (the broker's quota is raised to N + 100
//     records per cluster either way)
//   --compiled: run isthmus mcs from tsc's output, as it ships (bench/lib/build.ts), not the .ts sources
//   --floor: after the run, the controllers stopped, the writes one import takes (derived Service,
//     ServiceImport, its status) done N times in c2 by the bench alone, as many in flight as workers:
//     the time this machine's apiserver needs for them, with nothing else running (a lower bound)
//   --node-flags: V8 flags for the isthmus mcs processes (a heap cap shows what is live, not what V8 let grow)
import { cpus, release } from 'node:os';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../core/index.ts';
import { brokerClientFromDir } from '../cli/broker-client.ts';
import { projectRoot } from '../sandbox/index.ts';
import { kubectl } from '../test/lib/cli.ts';
import { Clusterset } from '../test/lib/clusterset.ts';
import { arg, numberArg } from './lib/args.ts';
import { buildCli } from './lib/build.ts';
import { rssMb } from './lib/proc.ts';
import { parseRequestCounts, requestDelta, type RequestCounts } from './lib/apiserver-requests.ts';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { KubeRest, loadKubeTarget } from '../core/kube-lite.ts';

const N = numberArg('services', 1000);
const NODE_FLAGS = arg('node-flags', '').split(' ').filter((f) => f !== '');
const WORKERS = numberArg('workers', 16);
const SPLIT = process.argv.includes('--split');
const TIMEOUT_S = numberArg('timeout-s', 600);
const FLOOR = process.argv.includes('--floor');
/** The cluster Service i lives in and is exported from. */
const home = (i: number): 'c1' | 'c2' => (SPLIT && i % 2 === 1 ? 'c2' : 'c1');
const metricsPort = (c: string): number => 27790 + Number(c.slice(1));
const cs = new Clusterset();
const build = process.argv.includes('--compiled') ? buildCli() : undefined;
const cli = build?.cli ?? join(projectRoot(), 'cli', 'main.ts');

async function pool<T>(items: readonly T[], width: number, f: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await f(items[next++] as T);
  }));
}

try {
  // room for every export at the broker (its default, 5,000 records per cluster, is below 10,000 from one exporter)
  await cs.up({ clusters: 2, gateways: 1, nat: [], portBase: 27700, brokerQuotas: `maxRecords=${N + 100},maxBytes=${Math.max(33_554_432, N * 4096)}` });
  const mcs = new Map<string, number>();
  const procs: ChildProcess[] = [];
  for (const c of cs.state.clusters) {
    const client = brokerClientFromDir(cs.broker, cs.path(c.name), createLogger({ component: 'bench', level: 'warn' }));
    await client.registerCluster({ cluster_id: c.name, pod_cidrs: [c.podCidr], service_cidrs: [c.serviceCidr] });
    client.close();
    for (const crd of ['serviceexports', 'serviceimports']) await cs.kubectl(c.name, ['apply', '-f', join(projectRoot(), 'deploy', 'crds', `${crd}.multicluster.x-k8s.io.json`)]);
    await cs.kubectl(c.name, ['wait', '--for=condition=Established', 'crd/serviceexports.multicluster.x-k8s.io', 'crd/serviceimports.multicluster.x-k8s.io']);
    await cs.kubectl(c.name, ['create', 'namespace', 'bench']);
    const p = cs.startProcess(`mcs-${c.name}`, process.execPath, ['--no-warnings', ...NODE_FLAGS, cli, 'mcs', '--cluster', c.name, '--broker', cs.broker, '--broker-tls-dir', cs.path(c.name),
      '--kubeconfig', cs.kubeconfig, '--context', c.name, '--dns-address', '127.0.0.1', '--workers', String(WORKERS), '--metrics', `127.0.0.1:${metricsPort(c.name)}`]);
    mcs.set(c.name, p.pid ?? 0);
    procs.push(p);
  }
  const svcs = Array.from({ length: N }, (_, i) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 80 }] } }));
  for (const c of ['c1', 'c2'] as const) {
    const items = svcs.filter((_, i) => home(i) === c);
    if (items.length > 0) await kubectl(cs.kubeconfig, c, ['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  }
  const kc = new KubeConfig();
  kc.loadFromFile(cs.kubeconfig);
  kc.setCurrentContext('c1');
  const c1 = kc.makeApiClient(CustomObjectsApi);
  const kc2 = new KubeConfig();
  kc2.loadFromFile(cs.kubeconfig);
  kc2.setCurrentContext('c2');
  const c2 = kc2.makeApiClient(CustomObjectsApi);
  const ref = { group: 'multicluster.x-k8s.io', version: 'v1beta1', namespace: 'bench' };
  const requests = async (): Promise<Map<string, RequestCounts>> => new Map(await Promise.all(['c1', 'c2'].map(async (c) => [c, parseRequestCounts(await cs.kubectl(c, ['get', '--raw', '/metrics']))] as const)));
  const requestsBefore = await requests();
  const t0 = Date.now();
  await pool(svcs.map((s, i) => ({ s, api: home(i) === 'c1' ? c1 : c2 })), 50, ({ s, api }) => api.createNamespacedCustomObject({ ...ref, plural: 'serviceexports', body: { apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceExport', metadata: { name: s.metadata.name, namespace: 'bench' } } }));
  const submitted = Date.now() - t0;
  const importedIn = async (c: CustomObjectsApi): Promise<number> => {
    const list = (await c.listNamespacedCustomObject({ ...ref, plural: 'serviceimports' })) as { items: { spec?: { ips?: string[] } }[] };
    return list.items.filter((x) => (x.spec?.ips?.length ?? 0) > 0).length;
  };
  const done = new Map<string, number>();
  for (;;) {
    const counts: string[] = [];
    for (const [name, api] of [['c2', c2], ['c1', c1]] as const) {
      if (done.has(name)) continue;
      const n = await importedIn(api);
      if (n >= N) done.set(name, Date.now() - t0);
      counts.push(`${name} ${n} imported, mcs RSS ${rssMb(mcs.get(name) ?? 0)} MB`);
    }
    // a long run says how far it got (and the memory on the way), so a timeout still tells something
    if (N > 2000) process.stdout.write(`${Math.round((Date.now() - t0) / 1000)} s: ${counts.join('; ')}\n`);
    if (done.size === 2) break;
    if (Date.now() - t0 > TIMEOUT_S * 1000) throw new Error(`not all ${N} imported after ${TIMEOUT_S} s: c1 ${await importedIn(c1)}, c2 ${await importedIn(c2)}`);
    // a list of every ServiceImport is itself apiserver work: at 10,000 a list a second slowed the imports down
    await new Promise((r) => setTimeout(r, N > 2000 ? 10_000 : 250));
  }
  const tDone = Math.max(...done.values());
  await new Promise((r) => setTimeout(r, 5000)); // the queues drain (conditions, statuses) before memory is read
  const requestsAfter = await requests();
  const gauge = (text: string, name: string): number => Math.round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? 0) / 1e6);
  const memory = async (c: string): Promise<string> => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort(c)}/metrics`)).text();
    return `RSS ${rssMb(mcs.get(c) ?? 0)} MB (V8 heap used ${gauge(text, 'isthmus_mcs_nodejs_heap_size_used_bytes')} of ${gauge(text, 'isthmus_mcs_nodejs_heap_size_total_bytes')} MB, external ${gauge(text, 'isthmus_mcs_nodejs_external_memory_bytes')} MB)`;
  };
  process.stdout.write(`\nMachine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, Linux ${release()}, Node ${process.version}\n`);
  process.stdout.write(`${N} ServiceExports created in ${SPLIT ? 'c1 and c2 (half each)' : 'c1'} in ${submitted} ms (50 in flight); all ${N} imported (ServiceImport with a clusterset IP) ${tDone} ms after the first create (c2 ${done.get('c2')} ms, c1 ${done.get('c1')} ms); ${WORKERS} workers\n`);
  for (const c of ['c1', 'c2']) {
    const delta = requestDelta(requestsBefore.get(c) ?? new Map(), requestsAfter.get(c) ?? new Map(), Math.max(2, N / 100))
      .filter(([k]) => !k.startsWith('WATCH ') && !k.includes(' leases '));
    process.stdout.write(`${c} apiserver requests during the run (≥ ${Math.max(2, N / 100)}, watches and leases left out): ${delta.map(([k, n]) => `${k} ${n}`).join('; ')}\n`);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort(c)}/metrics`)).text();
    process.stdout.write(`${c} isthmus mcs reconciles: ${[...text.matchAll(/^isthmus_mcs_reconciles_total\{([^}]*)\} (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`).join('; ')}\n`);
  }
  process.stdout.write(`isthmus mcs after (flags: ${NODE_FLAGS.join(' ') || 'none'}, ${build === undefined ? 'from the .ts sources' : 'compiled'}): c1 ${await memory('c1')}; c2 ${await memory('c2')}\n`);
  if (FLOOR) {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    await cs.kubectl('c2', ['create', 'namespace', 'floor']);
    const rest = new KubeRest(loadKubeTarget({ kubeconfig: cs.kubeconfig, context: 'c2' }));
    const si = '/apis/multicluster.x-k8s.io/v1beta1/namespaces/floor/serviceimports';
    const tf = Date.now();
    await pool(svcs, WORKERS, async ({ metadata: { name } }) => {
      const svc = await rest.json<{ spec?: { clusterIPs?: string[] } }>('POST', '/api/v1/namespaces/floor/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: `derived-${name}`, namespace: 'floor' }, spec: { ports: [{ name: 'http', port: 80 }] } });
      await rest.json('POST', si, { apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceImport', metadata: { name, namespace: 'floor' }, spec: { type: 'ClusterSetIP', ips: svc.spec?.clusterIPs ?? [], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } });
      await rest.json('PATCH', `${si}/${name}/status`, { status: { clusters: [{ cluster: 'c1' }] } }, 'application/merge-patch+json');
    });
    process.stdout.write(`floor: the same ${N} imports' writes (derived Service, ServiceImport, status) by the bench alone in c2, controllers stopped, ${WORKERS} in flight: ${Date.now() - tf} ms\n`);
  }
} finally {
  await cs.close();
  build?.remove();
}
