// Benchmark (root, uses the sandbox): ServiceExport created → the name resolves and connects
// from every cluster, with real parts: 3 sandbox clusters of 2 nodes, wireguard gateways, a
// route agent on every node, a real etcd + broker, `isthmus mcs` and `isthmus dns` per cluster
// (test/lib/mcs.ts: ServiceAccount tokens of deploy/mcs-api/rbac.yaml, 100 ms coalescing),
// real CoreDNS and kube-proxy. c1 runs 2 echo pods and --exports Services selecting them, not
// exported yet. A client pod in each cluster runs bench/lib/mcs-probe.ts in its network
// namespace: once every probe is asking for the next name (through its cluster's CoreDNS,
// every 10 ms), the bench creates that ServiceExport in c1 (one POST; t0 just before it);
// each probe reports when the name first resolved and when a TCP connection to the answer
// (the clusterset IP, kube-proxy of that cluster) was first accepted. One export at a time.
// usage: node bench/mcs-latency.ts [--exports 20] [--proxy-min-sync MS]
//   --proxy-min-sync: kube-proxy's --iptables-min-sync-period (default: kube-proxy's own, 1 s)
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { KubeRest, loadKubeTarget } from '../core/kube-lite.ts';
import { echoManifest, projectRoot } from '../sandbox/index.ts';
import { resolveNetns } from '../sandbox/exec.ts';
import { eventually, kubectl } from '../test/lib/cli.ts';
import { Clusterset } from '../test/lib/clusterset.ts';
import { startMcs, upWithRoutes } from '../test/lib/mcs.ts';
import { numberArg } from './lib/args.ts';

const N = numberArg('exports', 20);
const MIN_SYNC = process.argv.includes('--proxy-min-sync') ? numberArg('proxy-min-sync', 1000) : undefined;
const CLUSTERS = ['c1', 'c2', 'c3'];
const cs = new Clusterset();
const probes = new Map<string, { proc: ChildProcessWithoutNullStreams; lines: Interface; next: () => Promise<Record<string, unknown>> }>();

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
}

function startProbe(c: string, netns: string, dns: string): void {
  const proc = spawn('ip', ['netns', 'exec', netns, process.execPath, '--no-warnings', join(projectRoot(), 'bench', 'lib', 'mcs-probe.ts'), '--dns', dns, '--port', '8080']);
  proc.stderr.on('data', (d: Buffer) => process.stderr.write(`probe ${c}: ${d.toString()}`));
  const lines = createInterface({ input: proc.stdout });
  const queue: Record<string, unknown>[] = [];
  const waiters: ((o: Record<string, unknown>) => void)[] = [];
  lines.on('line', (l) => {
    const o = JSON.parse(l) as Record<string, unknown>;
    const w = waiters.shift();
    if (w === undefined) queue.push(o);
    else w(o);
  });
  const next = (): Promise<Record<string, unknown>> => {
    const o = queue.shift();
    return o !== undefined ? Promise.resolve(o) : new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`probe in ${c}: no answer in 60 s`)), 60_000);
      waiters.push((x) => { clearTimeout(t); resolve(x); });
    });
  };
  probes.set(c, { proc, lines, next });
}

try {
  await upWithRoutes(cs, CLUSTERS, 27800, MIN_SYNC);
  for (const c of CLUSTERS) await startMcs(cs, c, { metricsPort: 27890 + Number(c.slice(1)) });
  await kubectl(cs.kubeconfig, 'c1', ['apply', '-f', '-'], echoManifest(2, [{ name: 'http', port: 8080 }]));
  const names = Array.from({ length: N }, (_, i) => `l${i}`);
  const svcs = names.map((name) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 8080 }] } }));
  await kubectl(cs.kubeconfig, 'c1', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: svcs }));
  // ready as the EndpointSlice controller sees it (what the export publishes)
  await eventually('c1: 2 ready echo pods', async () => {
    const slices = JSON.parse(await cs.kubectl('c1', ['-n', 'demo', 'get', 'endpointslices', '-l', 'kubernetes.io/service-name=echo', '-o', 'json'])) as { items: { endpoints?: { conditions?: { ready?: boolean } }[] }[] };
    return slices.items.flatMap((x) => x.endpoints ?? []).filter((e) => e.conditions?.ready === true).length >= 2 ? true : undefined;
  }, 180_000).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${await cs.kubectl('c1', ['-n', 'demo', 'get', 'pods', '-o', 'wide'])}`);
  });
  const client = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: 'demo' }, spec: { containers: [{ name: 'c', image: 'example/client' }] } },
  ] });
  for (const c of CLUSTERS) await kubectl(cs.kubeconfig, c, ['apply', '-f', '-'], client);
  for (const c of CLUSTERS) {
    await cs.kubectl(c, ['-n', 'demo', 'wait', '--for=condition=Ready', 'pod/client', '--timeout=60s']);
    await eventually(`${c}: CoreDNS forwards clusterset.local`, async () =>
      (await cs.kubectl(c, ['-n', 'kube-system', 'get', 'configmap', 'coredns', '-o', 'jsonpath={.data.Corefile}'])).includes('clusterset.local') ? true : undefined);
    const dns = (await cs.kubectl(c, ['-n', 'kube-system', 'get', 'service', 'kube-dns', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    startProbe(c, await resolveNetns(cs.sandboxDir, c, 'client', 'demo'), dns);
  }
  const kube = new KubeRest(loadKubeTarget({ kubeconfig: cs.kubeconfig, context: 'c1' }));
  const resolveMs = new Map<string, number[]>(CLUSTERS.map((c) => [c, []]));
  const connectMs = new Map<string, number[]>(CLUSTERS.map((c) => [c, []]));
  for (const name of names) {
    for (const p of probes.values()) p.proc.stdin.write(`${name}.demo.svc.clusterset.local\n`);
    for (const [c, p] of probes) {
      const o = await p.next();
      if (o['ready'] !== true) throw new Error(`probe in ${c}: expected ready for ${name}, got ${JSON.stringify(o)}`);
    }
    const t0 = Date.now();
    await kube.json('POST', '/apis/multicluster.x-k8s.io/v1beta1/namespaces/demo/serviceexports', { apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceExport', metadata: { name, namespace: 'demo' } });
    const row: string[] = [];
    for (const [c, p] of probes) {
      const o = await p.next();
      const r = Number(o['resolvedAt']) - t0;
      const k = Number(o['connectedAt']) - t0;
      resolveMs.get(c)?.push(r);
      connectMs.get(c)?.push(k);
      row.push(`${c} ${r}/${k}`);
    }
    process.stdout.write(`${name}: resolves/connects after (ms) ${row.join(', ')}\n`);
  }
  process.stdout.write(`\nMachine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, Linux ${release()}, Node ${process.version}; kube-proxy min sync: ${MIN_SYNC === undefined ? 'its default (1 s)' : `${MIN_SYNC} ms`}\n`);
  process.stdout.write(`${N} ServiceExports in c1, one at a time; ms from the create to the first answer with the name (resolve) and to the first accepted TCP connection (connect), from a pod in each cluster\n`);
  process.stdout.write('| cluster | resolve p50 / p90 / p99 / max | connect p50 / p90 / p99 / max |\n|---|---|---|\n');
  const all = (m: Map<string, number[]>): number[] => [...m.values()].flat();
  const fmt = (xs: number[]): string => [0.5, 0.9, 0.99, 1].map((q) => quantile(xs, q)).join(' / ');
  for (const c of CLUSTERS) process.stdout.write(`| ${c} | ${fmt(resolveMs.get(c) ?? [])} | ${fmt(connectMs.get(c) ?? [])} |\n`);
  process.stdout.write(`| every cluster | ${fmt(all(resolveMs))} | ${fmt(all(connectMs))} |\n`);
} finally {
  for (const p of probes.values()) {
    p.lines.close();
    p.proc.kill('SIGKILL');
  }
  await cs.close();
}
