/**
 * Broker speed and memory on real etcd, with the broker in its own process (started
 * as `isthmus broker` would start it) so its CPU and RSS can be read from /proc.
 *
 *   node bench/broker.ts [--watchers 100,1000] [--exports 10000] [--changes 1000]
 *
 * Measures, at each watcher count: how long one change takes to reach every watcher
 * (p50/p99/max over 20 changes), the broker's CPU per 1,000 changes, its RSS, and how
 * long a new watcher takes to list 10,000 exports and start watching (BrokerCache.synced).
 * Watchers are raw gRPC streams, one TLS connection each (a local subchannel pool per
 * client so connections are not shared), all in this process; identities cycle through
 * ten cluster certificates because making a thousand RSA keys would dominate the run.
 */
import type { ChildProcess } from 'node:child_process';
import { Client, credentials } from '@grpc/grpc-js';
import { BrokerCache, type BrokerClient, type ExportInput } from '../broker/index.ts';
import { methods } from '../core/broker-api/proto.ts';
import { Lab, eventually } from '../test/broker-harness.ts';
import { procStat, spawnBroker } from './lib/broker-process.ts';

interface Args {
  watchers: number[];
  exports: number;
  changes: number;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, def: number): number => {
    const v = get(name);
    const n = v === undefined ? def : Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number`);
    return n;
  };
  const watchers = (get('watchers') ?? '100,1000').split(',').map(Number);
  if (watchers.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error('--watchers must be positive whole numbers, e.g. 100,1000');
  return { watchers: watchers.sort((a, b) => a - b), exports: num('exports', 10_000), changes: num('changes', 1_000) };
}

const CLUSTERS = Array.from({ length: 10 }, (_, i) => `c${i + 1}`);
/** The broker's V8 heap in use and its total, from its /metrics (process-wide figures). */
async function brokerHeap(metricsPort: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 1048576;
  return `heap used ${value('isthmus_broker_nodejs_heap_size_used_bytes').toFixed(0)} MB of ${value('isthmus_broker_nodejs_heap_size_total_bytes').toFixed(0)} MB, external ${value('isthmus_broker_nodejs_external_memory_bytes').toFixed(0)} MB`;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function exportRecord(cluster: string, i: number, version: number): ExportInput {
  return {
    cluster_id: cluster, namespace: `ns-${i % 100}`, name: `svc-${i}`, type: 'ClusterSetIP',
    ports: [{ name: 'http', protocol: 'TCP', port: 80, app_protocol: 'http' }, { name: 'metrics', protocol: 'TCP', port: 9090, app_protocol: '' }],
    session_affinity: 'None', ip_families: ['IPv4'],
    labels: { app: `svc-${i}`, team: `team-${i % 17}` },
    annotations: { 'isthmus.dev/version': String(version), 'example.com/owner': `owner-${i % 31}@example.com` },
  };
}

/** One simulated cluster's Watch: a raw stream on its own connection; records when each revision arrives. */
class Watcher {
  readonly client: Client;
  latest = 0;
  closing = false;
  onRevision: ((revision: number, at: number) => void) | undefined;

  constructor(port: number, tls: { caPem: string; certPem: string; keyPem: string }) {
    this.client = new Client(`127.0.0.1:${port}`, credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem)), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
  }

  start(fromRevision: number): void {
    const m = methods.Watch;
    const stream = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { kinds: ['EXPORT'], from_revision: String(fromRevision) }, {});
    stream.on('data', (res: { revision: string }) => {
      const r = Number(res.revision);
      const at = performance.now();
      if (r > this.latest) this.latest = r;
      this.onRevision?.(r, at);
    });
    stream.on('error', (err: Error) => {
      if (!this.closing) process.stderr.write(`watch ended: ${err.message}\n`);
    });
  }

  close(): void {
    this.closing = true;
    this.client.close();
  }
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  }));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const lab = await Lab.create();
  let broker: ChildProcess | undefined;
  const watchers: Watcher[] = [];
  try {
    await lab.startEtcd(1);
    await lab.makePki(CLUSTERS);
    const nodeFlags = (process.env['BROKER_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');
    // a throughput benchmark: writes as fast as it can and opens up to 1,000 watches over as many
    // connections from one address, far above the default per-cluster and per-address limits
    const bp = await spawnBroker(lab, [
      '--quotas', 'writesPerSecond=100000,writeBurst=100000,maxWatches=100000',
      '--limits', 'maxConnections=100000,maxConnectionsPerPeer=100000,maxNewConnectionsPerSecond=100000',
    ], nodeFlags);
    broker = bp.proc;
    const { pid, port, metricsPort } = bp;
    const brokerLog = bp.log;
    const tlsOf = async (id: string) => lab.tls(id);
    const writers = new Map<string, BrokerClient>();
    for (const id of CLUSTERS) writers.set(id, lab.client(port, await tlsOf(id), { retryForMs: 10_000 }));
    await eventually('the broker to serve', async () => {
      if (broker?.exitCode !== null) throw new Error(`broker exited: ${brokerLog()}`);
      await writers.get('c1')?.list(['CLUSTER']);
      return true;
    }, 30_000, 200);
    const idle = procStat(pid);
    for (const id of CLUSTERS) await writers.get(id)?.registerCluster({ cluster_id: id, pod_cidrs: [`10.${CLUSTERS.indexOf(id) + 1}.0.0/16`], service_cidrs: [`10.${CLUSTERS.indexOf(id) + 101}.0.0/16`] });

    // 10,000 exports, written through the broker
    const indices = Array.from({ length: args.exports }, (_, i) => i);
    const clusterOf = (i: number): string => CLUSTERS[i % CLUSTERS.length] as string;
    let t0 = performance.now();
    await pool(indices, 64, async (i) => {
      await writers.get(clusterOf(i))?.publishExport(exportRecord(clusterOf(i), i, 0));
    });
    const loadSeconds = (performance.now() - t0) / 1000;
    const loaded = procStat(pid);
    console.log(`loaded ${args.exports} exports through the broker in ${loadSeconds.toFixed(1)} s (${Math.round(args.exports / loadSeconds)}/s); broker RSS ${loaded.rssMb.toFixed(0)} MB (idle ${idle.rssMb.toFixed(0)} MB; ${await brokerHeap(metricsPort)})`);

    const rows: string[] = [];
    let version = 1;
    const change = async (i: number): Promise<number> => (await writers.get(clusterOf(i))?.publishExport(exportRecord(clusterOf(i), i, version++)))?.revision ?? 0;
    for (const n of args.watchers) {
      const current = (await writers.get('c1')?.list(['CLUSTER']))?.revision ?? 0;
      while (watchers.length < n) {
        const w = new Watcher(port, await tlsOf(CLUSTERS[watchers.length % CLUSTERS.length] as string));
        w.start(current + 1);
        watchers.push(w);
      }
      // every watcher connected: one change reaches all
      const warm = await change(0);
      await eventually(`${n} watchers to connect`, () => (watchers.every((w) => w.latest >= warm) ? true : undefined), 120_000, 50);

      // fan-out latency: publish start → arrival at each watcher
      const latencies: number[] = [];
      for (let k = 0; k < 20; k++) {
        let target = Number.POSITIVE_INFINITY;
        const started = performance.now();
        let pending = n;
        const done = new Promise<void>((resolve) => {
          for (const w of watchers) {
            w.onRevision = (r, at) => {
              if (r >= target && w.onRevision !== undefined) {
                latencies.push(at - started);
                w.onRevision = undefined;
                if (--pending === 0) resolve();
              }
            };
          }
        });
        target = await change(k * 37 % args.exports);
        for (const w of watchers) if (w.latest >= target && w.onRevision !== undefined) w.onRevision(w.latest, performance.now());
        await done;
      }
      latencies.sort((a, b) => a - b);

      // broker CPU per 1,000 changes (8 writers at once), until every watcher has the last one
      const before = procStat(pid);
      t0 = performance.now();
      let last = 0;
      const changes = Array.from({ length: args.changes }, (_, i) => (i * 7919) % args.exports);
      await pool(changes, 8, async (i) => {
        const r = await change(i);
        if (r > last) last = r;
      });
      await eventually('every watcher to get every change', () => (watchers.every((w) => w.latest >= last) ? true : undefined), 300_000, 50);
      const wall = (performance.now() - t0) / 1000;
      const after = procStat(pid);
      const cpuPer1000 = ((after.cpuSeconds - before.cpuSeconds) * 1000) / args.changes;

      // a new watcher's full sync: List of every export + Watch
      const syncs: number[] = [];
      for (let k = 0; k < 3; k++) {
        const client = lab.client(port, await tlsOf('c1'));
        const cache = new BrokerCache(client, { kinds: ['EXPORT'] });
        const s = performance.now();
        cache.start();
        await cache.synced;
        syncs.push(performance.now() - s);
        if (cache.list('EXPORT').length !== args.exports) throw new Error(`full sync returned ${cache.list('EXPORT').length} exports, expected ${args.exports}`);
        await cache.stop();
        client.close();
      }
      syncs.sort((a, b) => a - b);
      const rss = procStat(pid).rssMb;
      const row = `| ${n} | ${pct(latencies, 50).toFixed(0)} ms | ${pct(latencies, 99).toFixed(0)} ms | ${(latencies.at(-1) ?? NaN).toFixed(0)} ms | ${cpuPer1000.toFixed(2)} s (${args.changes} changes in ${wall.toFixed(1)} s wall) | ${(syncs[1] ?? NaN).toFixed(0)} ms (max ${(syncs.at(-1) ?? NaN).toFixed(0)}) | ${rss.toFixed(0)} MB |`;
      console.log(`${row}  [${await brokerHeap(metricsPort)}]`);
      rows.push(row);
    }
    console.log('\n| watchers | change → all watchers p50 | p99 | max | broker CPU per 1,000 changes | new watcher full sync of ' + args.exports + ' (median of 3) | broker RSS |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    for (const w of watchers) w.closing = true;
    for (const w of watchers) w.close();
    if (broker !== undefined && broker.exitCode === null) {
      const exited = new Promise((r) => broker?.once('exit', r));
      broker.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (broker.exitCode === null) broker.kill('SIGKILL');
    }
    await lab.cleanup();
  }
}

await main();
