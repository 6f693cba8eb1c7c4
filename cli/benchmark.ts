import { ErrorCodes, IsthmusError, int, messageOf, oneOf, optionalStr, str, validateConfig } from '../core/index.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { GATEWAY_LABEL } from './failover.ts';
import { Kube, waitFor, type Obj } from './kube-apply.ts';
import { AGNHOST, NETSHOOT, execIn, namespaceObject, podObject, podReady } from './pods.ts';
import { formatRows } from './show.ts';

/**
 * `isthmus benchmark throughput|latency --context A --tocontext B`: pod-to-pod across the
 * cable, with pods of its own in a namespace of its own in both clusters (deleted afterwards,
 * on failure and on Ctrl-C too). Two variants: client and server on the active gateway nodes
 * (one hop less), and on nodes that are not gateways (the route agent's path to the gateway
 * added on both sides) — skipped, saying why, when a cluster has no such node. Throughput:
 * iperf3 (TCP, one stream) for --duration seconds. Latency: --count HTTP requests by curl, each
 * a new connection: the TCP handshake (connect) and the request's round trip (first byte after
 * sending), p50/p90/p99. Printed as table, json or yaml.
 */
const USAGE = 'isthmus benchmark throughput|latency --context A --tocontext B [--kubeconfig F] [--duration S] [--count N] [--timeout S] [-o table|json|yaml]';
export const BENCHMARK_NS = 'isthmus-benchmark';
const IPERF_PORT = 5201;
const HTTP_PORT = 8080;

/** Bits per second received and the sender's retransmits, from `iperf3 -J`. Pure; INVALID_ARGUMENT on an iperf3 error or no summary. */
export function parseIperf(json: string): { bitsPerSecond: number; retransmits: number } {
  let o: { error?: string; end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } } };
  try {
    o = JSON.parse(json) as typeof o;
  } catch {
    throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `iperf3 printed no JSON: ${json.slice(0, 200)}`);
  }
  if (o.error !== undefined) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `iperf3: ${o.error}`);
  const bps = o.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, 'iperf3 reported no received total');
  return { bitsPerSecond: bps, retransmits: o.end?.sum_sent?.retransmits ?? 0 };
}

/** iperf3 failing on its control connection, before measuring anything: worth another try. Pure. */
export const iperfRetryable = (message: string): boolean => /unable to (connect to server|receive control message|send control message)|server is busy/i.test(message);

/**
 * One iperf3 measurement; tried up to 3 times, 1 s apart, while it fails on the control
 * connection (the iperf3 server handles one client at a time and resets connections that
 * arrive while it starts over).
 */
export async function iperf<T>(run: () => Promise<T>, say: (s: string) => void, attempts = 3, pauseMs = 1000): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await run();
    } catch (err) {
      if (n >= attempts || !iperfRetryable(messageOf(err))) throw err;
      say(`  iperf3 failed before measuring (${messageOf(err)}); trying again`);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }
}

/** The p-th percentile (nearest rank) of `values`; NaN for none. Pure. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Per request, from curl's `-w '%{time_connect} %{time_pretransfer} %{time_starttransfer}'` lines (seconds): connect and request round trips in ms. Pure; lines that are not three numbers are skipped. */
export function parseCurlTimes(text: string): { connectMs: number[]; requestMs: number[] } {
  const connectMs: number[] = [];
  const requestMs: number[] = [];
  for (const line of text.split('\n')) {
    const n = line.trim().split(/\s+/).map(Number);
    if (n.length !== 3 || n.some((x) => !Number.isFinite(x)) || (n[0] as number) <= 0) continue;
    connectMs.push((n[0] as number) * 1000);
    requestMs.push(((n[2] as number) - (n[1] as number)) * 1000);
  }
  return { connectMs, requestMs };
}

interface Variant { readonly name: string; readonly client?: string; readonly server?: string; readonly skip?: string }

/** The variants from each side's active gateway node and nodes without a gateway label. Pure. */
export function variants(a: { context: string; active: string; plain: readonly string[] }, b: { context: string; active: string; plain: readonly string[] }): Variant[] {
  const none = [a, b].find((s) => s.plain.length === 0);
  return [
    { name: 'gateway node → gateway node', client: a.active, server: b.active },
    none === undefined ? { name: 'non-gateway node → non-gateway node', client: a.plain[0] as string, server: b.plain[0] as string }
      : { name: 'non-gateway node → non-gateway node', skip: `${none.context} has no node without a gateway` },
  ];
}

interface GatewayObj extends Obj { status?: { haStatus?: string } }

async function sideOf(kube: Kube): Promise<{ context: string; active: string; plain: string[] }> {
  const nodes = (await kube.core.listNode()).items;
  const gws = await kube.list<GatewayObj>('isthmus.dev/v1alpha1', 'Gateway', 'isthmus-system');
  const active = gws.find((g) => g.status?.haStatus === 'active')?.metadata?.name;
  if (active === undefined) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `${kube.context} has no active gateway: join it first (isthmus join), then check \`isthmus diagnose --context ${kube.context}\``);
  const plain = nodes.filter((n) => n.metadata?.labels?.[GATEWAY_LABEL] !== 'true' && n.spec?.unschedulable !== true).map((n) => n.metadata?.name ?? '').sort();
  return { context: kube.context, active, plain };
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help']));
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  const [what, ...extra] = args.positionals;
  if ((what !== 'throughput' && what !== 'latency') || extra.length > 0) throw usageError(what === undefined ? 'which benchmark? throughput or latency' : `expected throughput or latency, got "${[what, ...extra].join(' ')}"`, USAGE);
  const cfg = validateConfig({
    kubeconfig: optionalStr('kubeconfig'), context: str('the client cluster'), tocontext: str('the server cluster'),
    duration: int('throughput: seconds iperf3 sends (default 5)', 5, 1, 600), count: int('latency: requests per variant (default 200)', 200, 10, 100_000),
    timeout: int('seconds to wait for each pod (default 120)', 120, 5, 3600), output: oneOf('-o: table, json or yaml', ['table', 'json', 'yaml'] as const, 'table'),
  }, optionRecord(args), 'benchmark options');
  const a = Kube.load(cfg.kubeconfig, cfg.context);
  const b = Kube.load(cfg.kubeconfig, cfg.tocontext);
  const say = (s: string): void => void process.stderr.write(`${s}\n`);
  const vs = variants(await sideOf(a), await sideOf(b));
  const cleanup = async (): Promise<void> => {
    for (const k of new Set([a, b])) await k.remove('v1', 'Namespace', BENCHMARK_NS).catch(() => false);
  };
  const onSignal = (): void => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rows: string[][] = [];
  try {
    for (const k of new Set([a, b])) {
      // a namespace of an earlier run may still be terminating: nothing can be made in it
      await waitFor(`namespace ${BENCHMARK_NS} of an earlier run gone from ${k.context}`, cfg.timeout * 1000, async () => ((await k.read('v1', 'Namespace', BENCHMARK_NS))?.metadata?.deletionTimestamp === undefined ? true : undefined), 1000);
      await k.apply(namespaceObject(BENCHMARK_NS));
    }
    for (const [i, v] of vs.entries()) {
      if (v.client === undefined || v.server === undefined) {
        rows.push(what === 'throughput' ? [v.name, '-', '-', '-', '-', `skipped: ${v.skip ?? ''}`] : [v.name, '-', '-', '-', '-', '-', '-', '-', `skipped: ${v.skip ?? ''}`]);
        continue;
      }
      const server = what === 'throughput'
        ? podObject({ name: `${what}-server-${i}`, namespace: BENCHMARK_NS, image: NETSHOOT, command: ['iperf3', '-s', '-p', String(IPERF_PORT)], port: IPERF_PORT, probeListening: true, node: v.server })
        : podObject({ name: `${what}-server-${i}`, namespace: BENCHMARK_NS, image: AGNHOST, args: ['netexec', `--http-port=${HTTP_PORT}`], port: HTTP_PORT, node: v.server });
      await b.apply(server);
      await a.apply(podObject({ name: `${what}-client-${i}`, namespace: BENCHMARK_NS, image: NETSHOOT, command: ['sleep', 'infinity'], node: v.client }));
      const ip = (await podReady(b, BENCHMARK_NS, `${what}-server-${i}`, cfg.timeout * 1000)).ip;
      await podReady(a, BENCHMARK_NS, `${what}-client-${i}`, cfg.timeout * 1000);
      say(`${v.name}: ${a.context}/${v.client} → ${b.context}/${v.server} (${ip}) …`);
      if (what === 'throughput') {
        const r = await iperf(() => execIn(a, BENCHMARK_NS, `${what}-client-${i}`, ['iperf3', '-c', ip, '-p', String(IPERF_PORT), '-t', String(cfg.duration), '-J']).then(parseIperf), say);
        rows.push([v.name, `${a.context}/${v.client}`, `${b.context}/${v.server}`, (r.bitsPerSecond / 1e6).toFixed(1), String(r.retransmits), '']);
      } else {
        const script = `for i in $(seq ${cfg.count}); do curl -s -o /dev/null --max-time 2 -w '%{time_connect} %{time_pretransfer} %{time_starttransfer}\\n' 'http://${ip}:${HTTP_PORT}/echo?msg=isthmus'; done`;
        const t = parseCurlTimes(await execIn(a, BENCHMARK_NS, `${what}-client-${i}`, ['sh', '-c', script]));
        for (const [kind, ms] of [['TCP connect', t.connectMs], ['HTTP request', t.requestMs]] as const) {
          rows.push([v.name, `${a.context}/${v.client}`, `${b.context}/${v.server}`, kind, String(ms.length), ...[50, 90, 99].map((p) => percentile(ms, p).toFixed(3)), ms.length < cfg.count ? `${cfg.count - ms.length} requests failed` : '']);
        }
      }
    }
  } catch (err) {
    throw err instanceof IsthmusError ? err : new IsthmusError(ErrorCodes.COMMAND_FAILED, `benchmark ${what}: ${messageOf(err)}`, { cause: err });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
  const columns = what === 'throughput' ? ['VARIANT', 'CLIENT', 'SERVER', 'MBIT/S', 'RETRANSMITS', 'NOTE'] : ['VARIANT', 'CLIENT', 'SERVER', 'ROUND-TRIP', 'SAMPLES', 'P50-MS', 'P90-MS', 'P99-MS', 'NOTE'];
  process.stdout.write(formatRows({ columns, rows }, cfg.output));
  return 0;
}

export const benchmarkCommand: Command = { name: 'benchmark', run };
