// Benchmark (needs root, binaries cached by ./setup): the sandbox kubelet API and runtime.
// - `kubectl exec POD -- true` round trip (target p50 ≤ 300 ms);
// - a line written in a pod appears in `kubectl logs -f` (target ≤ 200 ms);
// - pod start, created → Ready, busybox `sleep infinity` under the shim (target p50 ≤ 1 s).
//
// usage: node bench/sandbox-kubelet.ts [--execs 20] [--pods 20] [--lines 20]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../core/k8s.ts';
import type { SandboxState } from '../sandbox/index.ts';
import { isthmus, kubectlPath, run } from '../test/lib/cli.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const execs = arg('execs', 20);
const podsToStart = arg('pods', 20);
const lines = arg('lines', 20);
const dir = mkdtempSync('/tmp/isthmus-bench-kubelet-');
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const kc = join(sbx, 'kubeconfig');
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;
const fmt = (xs: number[]): string => `p50 ${pct(xs, 50).toFixed(0)} ms, p90 ${pct(xs, 90).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;

async function ready(api: CoreV1Api, name: string): Promise<void> {
  for (;;) {
    const p = await api.readNamespacedPodStatus({ name, namespace: 'default' });
    if ((p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`);
try {
  const up = await isthmus(['sandbox', 'up', '--clusters', '1', '--nodes', '2', '--port-base', '28700'], env);
  if (up.code !== 0) throw new Error(up.stderr);
  const state = JSON.parse(readFileSync(join(sbx, 'state.json'), 'utf8')) as SandboxState;
  const c1 = state.clusters[0];
  if (c1 === undefined) throw new Error('no c1');
  const api = loadKubeConfig({ kubeconfig: join(c1.dir, 'kubelet.kubeconfig') }).makeApiClient(CoreV1Api);

  const starts: number[] = [];
  for (let i = 0; i < podsToStart; i++) {
    const name = `bench-${i}`;
    const t = performance.now();
    await api.createNamespacedPod({ namespace: 'default', body: { metadata: { name }, spec: { nodeName: c1.nodes[i % 2]?.name ?? '', containers: [{ name: 'b', image: 'busybox', command: ['sleep', 'infinity'] }] } } });
    await ready(api, name);
    starts.push(performance.now() - t);
  }
  console.log(`pod start (created → Ready), ${podsToStart} busybox pods: ${fmt(starts)} (target p50 ≤ 1000 ms)`);

  const times: number[] = [];
  for (let i = 0; i < execs; i++) {
    const t = performance.now();
    const r = await run(kubectlPath(), ['--kubeconfig', kc, '--context', 'c1', 'exec', 'bench-0', '--', 'true']);
    if (r.code !== 0) throw new Error(`exec failed: ${r.stderr}`);
    times.push(performance.now() - t);
  }
  console.log(`kubectl exec POD -- true, ${execs} runs: ${fmt(times)} (target p50 ≤ 300 ms)`);

  await api.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'ticker' }, spec: { containers: [{ name: 't', image: 'busybox', command: ['sh', '-c', 'while :; do echo tick $(date +%s%N); sleep 0.3; done'] }] } } });
  await ready(api, 'ticker');
  const lag: number[] = [];
  const f = spawn(kubectlPath(), ['--kubeconfig', kc, '--context', 'c1', 'logs', '-f', 'ticker', '--tail', '0']);
  let buf = '';
  await new Promise<void>((resolve) => {
    f.stdout.on('data', (d: Buffer) => {
      const now = Date.now();
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) {
        const m = /^tick (\d+)$/.exec(l);
        if (m?.[1] !== undefined) lag.push(now - Number(BigInt(m[1]) / 1_000_000n));
      }
      if (lag.length >= lines) resolve();
    });
  });
  f.kill('SIGKILL');
  console.log(`line written in a pod → seen by kubectl logs -f, ${lag.length} lines: ${fmt(lag)} (target ≤ 200 ms)`);
} finally {
  await isthmus(['sandbox', 'down'], env);
  rmSync(dir, { recursive: true, force: true });
}
