// Benchmark (needs root, binaries cached by ./setup): the sandbox data plane.
// - `sandbox up --clusters 3 --nodes 2` → every node Ready and CoreDNS Ready (target ≤ 90 s);
// - iperf3 pod→pod across two nodes vs node→node, same run (ratio target ≥ 0.9);
// - pod start, object created → Ready condition True (target p50 ≤ 1 s).
//
// usage: node bench/sandbox-dataplane.ts [--pods 20] [--seconds 5]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../core/k8s.ts';
import type { SandboxState } from '../sandbox/index.ts';
import { isthmus, run } from '../test/lib/cli.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const podsToStart = arg('pods', 20);
const seconds = arg('seconds', 5);
const dir = mkdtempSync('/tmp/isthmus-bench-dp-');
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

async function iperf(serverNs: string, clientNs: string, serverIp: string): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  try {
    const r = await run('ip', ['netns', 'exec', clientNs, 'iperf3', '-c', serverIp, '-p', '5201', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
    if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(0, 300)} ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    server.kill();
  }
}

console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`);
try {
  const t0 = performance.now();
  const up = await isthmus(['sandbox', 'up', '--clusters', '3', '--nodes', '2', '--port-base', '28500'], env);
  if (up.code !== 0) throw new Error(up.stderr);
  console.log(`sandbox up --clusters 3 --nodes 2 → all nodes and CoreDNS Ready: ${((performance.now() - t0) / 1000).toFixed(1)} s (target ≤ 90 s)`);

  const state = JSON.parse(readFileSync(join(sbx, 'state.json'), 'utf8')) as SandboxState;
  const c1 = state.clusters[0];
  if (c1 === undefined) throw new Error('no c1');
  const api = loadKubeConfig({ kubeconfig: join(c1.dir, 'kubelet.kubeconfig') }).makeApiClient(CoreV1Api);

  // pod start latency, one pod at a time, alternating nodes
  const latencies: number[] = [];
  for (let i = 0; i < podsToStart; i++) {
    const name = `bench-${i}`;
    const start = performance.now();
    await api.createNamespacedPod({ namespace: 'default', body: { metadata: { name }, spec: { nodeName: c1.nodes[i % 2]?.name ?? '', containers: [{ name: 'e', image: 'isthmus/echo' }] } } });
    for (;;) {
      const p = await api.readNamespacedPodStatus({ name, namespace: 'default' });
      if ((p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    latencies.push(performance.now() - start);
  }
  console.log(`pod start (created → Ready), ${podsToStart} pods: p50 ${pct(latencies, 50).toFixed(0)} ms, p90 ${pct(latencies, 90).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms (target p50 ≤ 1000 ms)`);

  // iperf3: pod on n1 → pod on n2, and n1 → n2
  const recs = (await api.listNamespacedPod({ namespace: 'default' })).items;
  const a = recs.find((p) => p.spec?.nodeName === c1.nodes[0]?.name && p.status?.podIP !== undefined);
  const b = recs.find((p) => p.spec?.nodeName === c1.nodes[1]?.name && p.status?.podIP !== undefined);
  const netnsOf = (uid: string): string => `isb-${c1.name}-${uid.slice(0, 8)}`;
  if (a === undefined || b === undefined) throw new Error('need a pod on each node');
  const n1 = c1.nodes[0];
  const n2 = c1.nodes[1];
  if (n1 === undefined || n2 === undefined) throw new Error('need two nodes');
  // alternate the two paths so a busy moment of the machine does not land on one of them
  const nodeRuns: number[] = [];
  const podRuns: number[] = [];
  for (let round = 0; round < 3; round++) {
    nodeRuns.push(await iperf(n2.netns, n1.netns, n2.ip));
    podRuns.push(await iperf(netnsOf(b.metadata?.uid ?? ''), netnsOf(a.metadata?.uid ?? ''), b.status?.podIP ?? ''));
  }
  const nodeGbps = pct(nodeRuns, 50);
  const podGbps = pct(podRuns, 50);
  console.log(`iperf3 TCP, 3 alternating rounds of ${seconds} s, medians: node→node ${nodeGbps.toFixed(2)} Gbit/s (${nodeRuns.map((x) => x.toFixed(2)).join(', ')}), pod→pod across nodes ${podGbps.toFixed(2)} Gbit/s (${podRuns.map((x) => x.toFixed(2)).join(', ')}), ratio ${(podGbps / nodeGbps).toFixed(2)} (target ≥ 0.9)`);
} finally {
  await isthmus(['sandbox', 'down'], env);
  rmSync(dir, { recursive: true, force: true });
}
