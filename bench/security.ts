/**
 * Issue 10's two security benchmarks, on real etcd with the broker in its own process
 * (default quotas and connection limits, heap capped at BROKER_HEAP_MB, default 192):
 *
 *   node bench/security.ts [--anonymous 800]
 *
 * 1. A hostile member fills its quota (exports of ~60 KB until RESOURCE_EXHAUSTED) and
 *    then unregisters, while a victim publishes one export every 100 ms and watches for
 *    it: the victim's "own change → seen on its watch" latency (p50/p99/max) in each
 *    phase, and the broker's RSS (sampled every 50 ms) against its heap cap.
 * 2. N anonymous clients (no certificate; bench/lib/anonymous-load.ts, another process)
 *    hold connections: half sit idle after TCP connect, half attempt TLS without a
 *    certificate over and over; they come from 50 loopback source addresses, so the
 *    per-address limit does not refuse them all. The broker's RSS growth, and a member's
 *    List + PublishExport latency meanwhile.
 */
import { spawn } from 'node:child_process';
import { BrokerCache, type BrokerClient, type ExportInput } from '../broker/index.ts';
import { Lab, eventually, sleepMs } from '../test/broker-harness.ts';
import { procStat, spawnBroker } from './lib/broker-process.ts';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const n = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number`);
  return n;
};
const ANONYMOUS = arg('anonymous', 800);
const HEAP_MB = Number(process.env['BROKER_HEAP_MB'] ?? 192);

const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const fmt = (xs: readonly number[]): string => `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (${xs.length} changes)`;

/** The victim's own change → its watch, once every 100 ms while `during` runs. */
async function victimLatencies(victim: BrokerClient, cache: BrokerCache, during: Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  let done = false;
  void during.finally(() => (done = true));
  let i = 0;
  while (!done || out.length < 10) {
    const name = `own-${Date.now()}-${i++}`;
    const t0 = performance.now();
    const seen = new Promise<void>((resolve) => {
      const off = cache.onChange((c) => {
        if (c.key === `victim/default/${name}`) {
          off();
          resolve();
        }
      });
    });
    await victim.publishExport({ cluster_id: 'victim', namespace: 'default', name });
    await seen;
    out.push(performance.now() - t0);
    await victim.withdrawExport('victim', 'default', name);
    await sleepMs(100);
  }
  return out;
}

async function hostileMember(lab: Lab, port: number): Promise<void> {
  const lines: string[] = [];
  const evil = lab.client(port, await lab.tls('evil'), { retryForMs: 10_000 });
  const victim = lab.client(port, await lab.tls('victim'), { retryForMs: 10_000 });
  await evil.registerCluster({ cluster_id: 'evil', pod_cidrs: ['10.66.0.0/16'], service_cidrs: ['10.166.0.0/16'] });
  const cache = new BrokerCache(lab.client(port, await lab.tls('victim')), { kinds: ['EXPORT'] });
  cache.start();
  await cache.synced;
  const big = (i: number): ExportInput => ({ cluster_id: 'evil', namespace: 'default', name: `fill-${i}`, annotations: { a: 'x'.repeat(60_000) } });
  let stored = 0;
  let refusal = '';
  const t0 = performance.now();
  const fill = (async () => {
    for (let i = 0; ; i++) {
      try {
        await evil.publishExport(big(i));
        stored++;
      } catch (err) {
        refusal = (err as Error).message;
        break;
      }
    }
  })();
  const duringFill = await victimLatencies(victim, cache, fill);
  lines.push(`hostile member fills its quota: ${stored} exports of ~60 KB in ${((performance.now() - t0) / 1000).toFixed(1)} s, then refused: "${refusal.replace(/^broker PublishExport: /, '')}"`);
  lines.push(`  victim's own change → its watch while the hostile member fills: ${fmt(duringFill)}`);
  const t1 = performance.now();
  const unregister = evil.unregisterCluster('evil');
  const duringRemoval = await victimLatencies(victim, cache, unregister);
  lines.push(`  hostile member unregisters (${stored} records deleted in batches) in ${((performance.now() - t1) / 1000).toFixed(1)} s; victim meanwhile: ${fmt(duringRemoval)}`);
  await cache.stop();
  for (const l of lines) console.log(l);
}

async function anonymous(lab: Lab, port: number, pid: number, metricsPort: number): Promise<void> {
  const member = lab.client(port, await lab.tls('victim'), { retryForMs: 10_000 });
  const measure = async (n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await member.list(['CLUSTER']);
      await member.publishExport({ cluster_id: 'victim', namespace: 'default', name: 'probe', labels: { n: String(i % 2) } });
      out.push(performance.now() - t0);
    }
    return out;
  };
  await measure(20);
  const before = procStat(pid).rssMb;
  const baseline = await measure(100);
  const load = spawn(process.execPath, ['--no-warnings', new URL('./lib/anonymous-load.ts', import.meta.url).pathname, String(port), String(ANONYMOUS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let report = '';
  load.stdout.on('data', (b: Buffer) => (report += b.toString()));
  try {
    await eventually('the idle connections to be held', () => (report.includes('held') ? true : undefined), 60_000, 100);
    report = '';
    await sleepMs(2_000);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, procStat(pid).rssMb)), 50);
    const under = await measure(100);
    clearInterval(sampler);
    const ended = new Promise((r) => load.once('exit', r));
    load.kill('SIGTERM');
    await ended;
    const [open, attempts] = report.trim().split(' ');
    const refused = /isthmus_broker_connections_refused\{limit="(\w+)"\} (\d+)/g;
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const byLimit = [...text.matchAll(refused)].map((m) => `${m[1]} ${m[2]}`).join(', ');
    console.log(`${ANONYMOUS} anonymous clients in another process (${Math.floor(ANONYMOUS / 2)} idle connections, ${open ?? '?'} of them still open at the end; ${ANONYMOUS - Math.floor(ANONYMOUS / 2)} TLS attempts without a certificate in a loop, ${attempts ?? '?'} attempts); refused by the broker: ${byLimit}`);
    console.log(`  broker RSS ${before.toFixed(0)} MB → peak ${peak.toFixed(0)} MB (+${(peak - before).toFixed(0)} MB)`);
    console.log(`  member List + PublishExport: before p50 ${pct(baseline, 50).toFixed(1)} ms, p99 ${pct(baseline, 99).toFixed(1)} ms; under the anonymous load p50 ${pct(under, 50).toFixed(1)} ms, p99 ${pct(under, 99).toFixed(1)} ms`);
  } finally {
    if (load.exitCode === null) load.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const lab = await Lab.create();
  let stopBroker: (() => Promise<void>) | undefined;
  try {
    await lab.startEtcd(1);
    await lab.makePki(['evil', 'victim']);
    const bp = await spawnBroker(lab, [], [`--max-old-space-size=${HEAP_MB}`, '--max-semi-space-size=2']);
    stopBroker = bp.stop;
    const probe = lab.client(bp.port, await lab.tls('victim'), { retryForMs: 10_000 });
    await eventually('the broker to serve', async () => {
      if (bp.proc.exitCode !== null) throw new Error(`broker exited: ${bp.log()}`);
      await probe.list(['CLUSTER']);
      return true;
    }, 30_000, 200);
    await probe.registerCluster({ cluster_id: 'victim', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
    console.log(`broker: default quotas and limits, --max-old-space-size=${HEAP_MB}; RSS at start ${procStat(bp.pid).rssMb.toFixed(0)} MB`);
    await anonymous(lab, bp.port, bp.pid, bp.metricsPort);
    let peak = 0;
    let heapPeak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, procStat(bp.pid).rssMb)), 50);
    const heapSampler = setInterval(() => {
      fetch(`http://127.0.0.1:${bp.metricsPort}/metrics`).then((r) => r.text()).then((t) => {
        heapPeak = Math.max(heapPeak, Number(/^isthmus_broker_nodejs_heap_size_used_bytes (\S+)/m.exec(t)?.[1] ?? 0) / 1048576);
      }, () => undefined);
    }, 250);
    await hostileMember(lab, bp.port);
    clearInterval(sampler);
    clearInterval(heapSampler);
    console.log(`  broker over the hostile member's run: RSS peak ${peak.toFixed(0)} MB, V8 heap used peak ${heapPeak.toFixed(0)} MB (cap ${HEAP_MB} MB)`);
  } finally {
    await stopBroker?.();
    await lab.cleanup();
  }
}

await main();
