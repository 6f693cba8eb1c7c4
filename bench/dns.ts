// Benchmark (root, uses the sandbox): `isthmus dns` against CoreDNS's kubernetes plugin, same
// machine, same load generator (bench/lib/dnsload.ts, its own process), same run.
//   - one sandbox cluster; N ClusterIP Services in namespace bench, and N ServiceImports of the
//     same names and IPs;
//   - CoreDNS (the sandbox's build) on 127.0.0.1 with only `kubernetes cluster.local` (no cache
//     plugin: isthmus dns has none in front of it either), against the sandbox apiserver;
//   - `isthmus dns` on 127.0.0.1 against the same apiserver;
//   - closed loop (64 queries in flight, A records of the N names in turn): answers per second,
//     twice each, alternating; open loop at --qps (10,000): latency percentiles; RSS of isthmus dns.
// usage: node bench/dns.ts [--services 200] [--seconds 10] [--qps 10000] [--node-flags '--max-semi-space-size=4'] [--compiled]
//   --node-flags: V8 flags for the isthmus dns process (memory versus throughput)
//   --compiled: run isthmus dns from tsc's output, as it ships (bench/lib/build.ts), not the .ts sources
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { pins, projectRoot } from '../sandbox/index.ts';
import { isthmus, kubectl, run } from '../test/lib/cli.ts';
import { arg, numberArg } from './lib/args.ts';
import { buildCli } from './lib/build.ts';
import { rssMb, rssPartsMb, rssTopMappings } from './lib/proc.ts';

const N = numberArg('services', 200);
const SECONDS = numberArg('seconds', 10);
const QPS = numberArg('qps', 10_000);
const NODE_FLAGS = arg('node-flags', '').split(' ').filter((f) => f !== '');
const build = process.argv.includes('--compiled') ? buildCli() : undefined;
const dir = mkdtempSync('/tmp/isthmus-bench-dns-');
const env = { ISTHMUS_SANDBOX_DIR: join(dir, 'sandbox') };
const kc = join(dir, 'sandbox', 'kubeconfig');
const cache = process.env['ISTHMUS_CACHE'] ?? '/var/cache/isthmus';
const coredns = join(cache, `coredns-${pins().coredns}`, 'coredns');
const procs: ChildProcess[] = [];
const COREDNS_PORT = 25353;
const ISTHMUS_PORT = 25354;

function start(name: string, cmd: string, args: string[]): ChildProcess {
  const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  p.stderr?.on('data', () => {});
  procs.push(p);
  process.stdout.write(`  started ${name} (pid ${p.pid})\n`);
  return p;
}

async function load(port: number, names: string[], mode: 'max' | 'rate'): Promise<{ qps: number; p50: number; p99: number; lost: number }> {
  const r = await run(process.execPath, ['--no-warnings', join(projectRoot(), 'bench', 'lib', 'dnsload.ts'), '--port', String(port), '--names', names.join(','),
    '--seconds', String(SECONDS), '--mode', mode, '--qps', String(QPS)], { timeoutMs: (SECONDS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`dnsload: ${r.stderr}`);
  return JSON.parse(r.stdout) as { qps: number; p50: number; p99: number; lost: number };
}

async function waitAnswer(port: number, name: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const r = await run('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=1', '+tries=1', name]);
    if (r.stdout.trim() !== '') return;
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error(`no answer for ${name} on port ${port}`);
}

try {
  const up = await isthmus(['sandbox', 'up', '--clusters', '1', '--nodes', '1', '--port-base', '27600'], env);
  if (up.code !== 0) throw new Error(up.stderr);
  await kubectl(kc, 'c1', ['apply', '-f', join(projectRoot(), 'deploy', 'crds', 'serviceimports.multicluster.x-k8s.io.json')]);
  await kubectl(kc, 'c1', ['wait', '--for=condition=Established', 'crd/serviceimports.multicluster.x-k8s.io']);
  await kubectl(kc, 'c1', ['create', 'namespace', 'bench']);
  const svcs = Array.from({ length: N }, (_, i) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 80 }] } }));
  await kubectl(kc, 'c1', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: svcs }));
  const ips = JSON.parse(await kubectl(kc, 'c1', ['-n', 'bench', 'get', 'services', '-o', 'json'])) as { items: { metadata: { name: string }; spec: { clusterIP: string } }[] };
  const imports = ips.items.map((s) => ({
    apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceImport', metadata: { name: s.metadata.name, namespace: 'bench' },
    spec: { type: 'ClusterSetIP', ips: [s.spec.clusterIP], ipFamilies: ['IPv4'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
  }));
  await kubectl(kc, 'c1', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: imports }));
  writeFileSync(join(dir, 'Corefile'), `.:${COREDNS_PORT} {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        kubeconfig ${kc} c1\n    }\n}\n`);
  start('coredns', coredns, ['-conf', join(dir, 'Corefile')]);
  const ours = start('isthmus dns', process.execPath, ['--no-warnings', ...NODE_FLAGS, join(projectRoot(), 'cli', 'main.ts'), 'dns', '--listen', `127.0.0.1:${ISTHMUS_PORT}`, '--kubeconfig', kc, '--context', 'c1']);
  const local = Array.from({ length: N }, (_, i) => `s${i}.bench.svc.cluster.local`);
  const set = Array.from({ length: N }, (_, i) => `s${i}.bench.svc.clusterset.local`);
  await waitAnswer(COREDNS_PORT, local[N - 1] ?? '');
  await waitAnswer(ISTHMUS_PORT, set[N - 1] ?? '');
  const rounds: { c: number; i: number }[] = [];
  for (let r = 0; r < 2; r++) {
    const c = await load(COREDNS_PORT, local, 'max');
    const i = await load(ISTHMUS_PORT, set, 'max');
    rounds.push({ c: c.qps, i: i.qps });
    process.stdout.write(`  round ${r + 1}: CoreDNS ${c.qps} q/s, isthmus dns ${i.qps} q/s (lost ${c.lost} / ${i.lost})\n`);
  }
  const cRate = await load(COREDNS_PORT, local, 'rate');
  const iRate = await load(ISTHMUS_PORT, set, 'rate');
  const rss = ours.pid === undefined ? 0 : rssMb(ours.pid);
  const parts = ours.pid === undefined ? undefined : rssPartsMb(ours.pid);
  const top = ours.pid === undefined ? [] : rssTopMappings(ours.pid, 5);
  const best = (k: 'c' | 'i'): number => Math.max(...rounds.map((r) => r[k]));
  process.stdout.write(`\nMachine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, Linux ${release()}, Node ${process.version}; ${N} Services; ${SECONDS} s per run; isthmus dns flags: ${NODE_FLAGS.join(' ') || 'none'}, ${build === undefined ? 'from the .ts sources' : 'compiled (tsc output)'}\n`);
  process.stdout.write(`| server | max QPS (64 in flight, best of 2) | at ${QPS} QPS: p50 / p99 ms, lost |\n|---|---|---|\n`);
  process.stdout.write(`| CoreDNS ${pins().coredns} kubernetes plugin (cluster.local) | ${best('c')} | ${cRate.p50} / ${cRate.p99}, ${cRate.lost} |\n`);
  process.stdout.write(`| isthmus dns (clusterset.local) | ${best('i')} | ${iRate.p50} / ${iRate.p99}, ${iRate.lost} |\n`);
  process.stdout.write(`QPS ratio isthmus/CoreDNS: ${(best('i') / best('c')).toFixed(2)}; isthmus dns RSS ${rss} MB${parts === undefined ? '' : ` (anonymous ${parts.anon}, files ${parts.file}, shared ${parts.shmem})`}; MALLOC_ARENA_MAX=${process.env['MALLOC_ARENA_MAX'] ?? 'unset'}\n`);
  process.stdout.write(`isthmus dns's largest resident mappings: ${top.map((t) => `${t.mapping} ${t.mb} MB`).join(', ')}\n`);
} finally {
  for (const p of procs) {
    try {
      process.kill(-(p.pid ?? 0), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await isthmus(['sandbox', 'down'], env);
  execFileSync('rm', ['-rf', dir]);
  build?.remove();
}
