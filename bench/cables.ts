// Benchmark (root): the wireguard and vxlan cable drivers between two network namespaces.
// Per driver, in one run: iperf3 TCP throughput and ping RTT through the cable (cluster CIDR
// address → cluster CIDR address) vs the underlay (veth + bridge) between the same two
// namespaces, with the ratio; and the time from `set()` to the first packet through
// (target ≤ 2 s for both).
//
// WireGuard runs once per wireguard-go build (Debian's, and the one ./setup builds) and is
// also set against one core's ChaCha20-Poly1305 rate at 1420-byte packets (`openssl speed`,
// before and after the WireGuard runs): on a machine without the kernel module that cipher,
// not the veth underlay, is the ceiling (target: cable ≥ 0.3 of it).
//
// usage: node bench/cables.ts [--seconds 5] [--rounds 3] [--driver wireguard|vxlan] [--wireguard-go debian,isthmus]
//
// This file also exports the namespace lab the e2e tests (test/cable-*.test.ts) use:
// N "gateway" namespaces on a bridge that lives in a hub namespace of its own, each with a
// "cluster CIDR" address on its lo. Nothing touches the host's own interfaces.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  NetnsRunner, SystemRunner, createLogger, silentLogger, wireguardKeyPair, type CommandRunner, type Logger, type RunOptions, type RunResult,
} from '../core/index.ts';
import type { CableDriver, CableSpec, CableStatus, LocalEndpoint } from '../gateway/cable/driver.ts';
import { netnsPids } from '../test/lib/netns.ts';
import { VxlanDriver } from '../gateway/cable/vxlan.ts';
import { ISTHMUS_WIREGUARD_GO, WireGuardDriver } from '../gateway/cable/wireguard.ts';

const system = new SystemRunner();

export interface LabNode {
  readonly name: string;
  readonly ns: string;
  readonly runner: NetnsRunner;
  /** Underlay address on the bridge. */
  readonly ip: string;
  /** The "cluster CIDR" and the address of it on lo. */
  readonly cidr: string;
  readonly hostIp: string;
}

export interface Lab {
  readonly id: string;
  readonly hub: string;
  readonly nodes: readonly LabNode[];
  /** A private directory for this lab's files (wireguard-go sockets). */
  readonly dir: string;
  destroy(): Promise<void>;
}

/** A debug logger that keeps every line it writes in `logs` (tests search them for secrets). */
export function capturingLogger(): { logger: Logger; logs: string[] } {
  const logs: string[] = [];
  const destination = new Writable({ write(chunk: Buffer, _enc, cb) { logs.push(chunk.toString()); cb(); } });
  return { logger: createLogger({ component: 'gateway', level: 'debug', destination }), logs };
}

export function must<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`missing ${what}`);
  return v;
}

/** The status of the cable to `cluster` in a connections() list. */
export function stateOf(list: readonly CableStatus[], cluster: string): CableStatus {
  return must(list.find((s) => s.remoteCluster === cluster), `status of ${cluster}`);
}

/** Accessors for the lab's drivers a, b, c (set up in test.before). */
export function abc(drivers: readonly LabDriver[]): [() => LabDriver, () => LabDriver, () => LabDriver] {
  const at = (i: number) => (): LabDriver => must(drivers[i], `driver ${'abc'[i] ?? String(i)}`);
  return [at(0), at(1), at(2)];
}

async function sh(args: readonly string[]): Promise<RunResult> {
  return system.run(args[0] ?? '', args.slice(1));
}

// Labs not destroyed yet: removed synchronously if the process is stopped by a signal.
const live = new Map<string, { namespaces: string[]; dir: string }>();

function destroyNow(entry: { namespaces: string[]; dir: string }): void {
  for (const ns of entry.namespaces) {
    try {
      for (const pid of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // namespace or process already gone
    }
  }
  for (const ns of entry.namespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  rmSync(entry.dir, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const entry of live.values()) destroyNow(entry);
    live.clear();
    process.exit(130);
  });
}
// also when the process ends without destroy() having run (process.exit, an unsettled top-level await)
process.once('exit', () => {
  for (const entry of live.values()) destroyNow(entry);
});

/** `ist-<prefix>-<random>-a|b|c…` namespaces joined by a bridge in `…-hub`; underlay 172.31.R.(10+i)/24, cluster CIDR 10.201.(i+1).0/24 with .1 on lo. */
export async function createLab(prefix: string, count: number): Promise<Lab> {
  const id = `ist-${prefix}-${randomBytes(3).toString('hex')}`;
  const hub = `${id}-hub`;
  const subnet = 1 + (randomBytes(1)[0] ?? 0) % 250;
  const nodes: LabNode[] = [];
  const dir = mkdtempSync(`/tmp/${id}-`);
  const made: string[] = [];
  live.set(id, { namespaces: made, dir });
  const lab: Lab = {
    id, hub, nodes, dir,
    async destroy() {
      for (const ns of made) for (const pid of netnsPids(ns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      for (const ns of made) await system.run('ip', ['netns', 'del', ns], { allowFailure: true });
      rmSync(dir, { recursive: true, force: true });
      live.delete(id);
    },
  };
  try {
    await sh(['ip', 'netns', 'add', hub]);
    made.push(hub);
    await sh(['ip', '-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh(['ip', '-n', hub, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < count; i++) {
      const name = String.fromCharCode(97 + i);
      const ns = `${id}-${name}`;
      await sh(['ip', 'netns', 'add', ns]);
      made.push(ns);
      await sh(['ip', '-n', hub, 'link', 'add', `p-${name}`, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', ns]);
      await sh(['ip', '-n', hub, 'link', 'set', `p-${name}`, 'master', 'br0', 'up']);
      const ip = `172.31.${String(subnet)}.${String(10 + i)}`;
      const hostIp = `10.201.${String(i + 1)}.1`;
      await sh(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'uplink']);
      await sh(['ip', '-n', ns, 'link', 'set', 'uplink', 'up']);
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await sh(['ip', '-n', ns, 'addr', 'add', `${hostIp}/32`, 'dev', 'lo']);
      nodes.push({ name, ns, runner: new NetnsRunner(system, ns), ip, cidr: `10.201.${String(i + 1)}.0/24`, hostIp });
    }
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

/** One ping from `from`'s cluster address to `to`'s; true when answered within `waitS`. */
export async function ping(from: LabNode, to: LabNode, waitS = 1): Promise<boolean> {
  const r = await from.runner.run('ping', ['-n', '-q', '-c', '1', '-W', String(waitS), '-I', from.hostIp, to.hostIp], { allowFailure: true });
  return r.code === 0;
}

/** Pings until one is answered; throws after `timeoutMs`. */
export async function waitPing(from: LabNode, to: LabNode, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) if (await ping(from, to)) return;
  throw new Error(`no ping from ${from.hostIp} (${from.ns}) to ${to.hostIp} through the cable within ${String(timeoutMs)} ms`);
}

/** A runner that records every command line it runs (for "no modifying command" and "no interface created" checks). */
export class RecordingRunner implements CommandRunner {
  readonly lines: string[] = [];
  readonly #inner: CommandRunner;
  constructor(inner: CommandRunner) {
    this.#inner = inner;
  }
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    this.lines.push([command, ...args].join(' '));
    return this.#inner.run(command, args, options);
  }
}

/** Command lines that only read state. */
export function isReadOnly(line: string): boolean {
  return /(^|\s)wg (show|--version)\b/.test(line) || /^ip -j( -d| -4| -6)? (link|addr|address|route|neigh|rule) show\b/.test(line) || /^bridge -j fdb show\b/.test(line) || /^nft list /.test(line);
}

export interface LabDriver {
  readonly node: LabNode;
  readonly driver: CableDriver;
  readonly local: LocalEndpoint;
  /** Public data for the other side's CableSpec.backend. */
  readonly backend: Record<string, string>;
}

export type DriverKind = 'wireguard' | 'vxlan';

/** A driver for `node` with a fresh identity; `runner` defaults to the node's. */
export function labDriver(kind: DriverKind, lab: Lab, node: LabNode, opts: { runner?: CommandRunner; logger?: import('../core/index.ts').Logger; port?: number; privateKey?: string; wireguardGo?: readonly string[] } = {}): LabDriver {
  const deps = { runner: opts.runner ?? node.runner, logger: opts.logger ?? silentLogger() };
  if (kind === 'wireguard') {
    const keys = opts.privateKey === undefined ? wireguardKeyPair() : undefined;
    const privateKey = opts.privateKey ?? keys?.privateKey ?? '';
    const driver = new WireGuardDriver(deps, { socketDir: join(lab.dir, node.name), ...(opts.wireguardGo === undefined ? {} : { wireguardGo: opts.wireguardGo }) });
    const local: LocalEndpoint = { clusterId: `c-${node.name}`, privateIp: node.ip, port: opts.port ?? 51820, cidrs: [node.cidr], secrets: { privateKey } };
    return { node, driver, local, backend: { 'public-key': keys?.publicKey ?? '' } };
  }
  const driver = new VxlanDriver(deps);
  const local: LocalEndpoint = { clusterId: `c-${node.name}`, privateIp: node.ip, port: opts.port ?? 4789, cidrs: [node.cidr], secrets: {} };
  return { node, driver, local, backend: { vni: '100' } };
}

/** The spec `from` needs for a cable to `to`. */
export function specTo(to: LabDriver, over: Partial<CableSpec> = {}): CableSpec {
  return { remoteCluster: to.local.clusterId, remoteIp: to.node.ip, remotePort: to.local.port, remoteCidrs: [to.node.cidr], natTraversal: false, backend: to.backend, ...over };
}

/** Full mesh: every driver gets a cable to every other. */
export function meshSpecs(all: readonly LabDriver[], self: LabDriver): CableSpec[] {
  return all.filter((d) => d !== self).map((d) => specTo(d));
}

// ---- the benchmark ----

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? def) : def;
}

async function iperf(server: LabNode, client: LabNode, serverIp: string, clientIp: string, seconds: number): Promise<number> {
  const port = 20000 + ((randomBytes(2).readUInt16BE(0)) % 20000);
  const child = spawn('ip', ['netns', 'exec', server.ns, 'iperf3', '-s', '-1', '-B', serverIp, '-p', String(port)], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 400));
    const r = await client.runner.run('iperf3', ['-c', serverIp, '-B', clientIp, '-p', String(port), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000, allowFailure: true });
    if (r.code !== 0) throw new Error(`iperf3 ${clientIp} → ${serverIp} failed: ${r.stdout.slice(0, 300)} ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    child.kill();
  }
}

async function rtt(from: LabNode, src: string, dst: string, count: number): Promise<number> {
  const r = await from.runner.run('ping', ['-n', '-q', '-i', '0.01', '-c', String(count), '-I', src, dst], { timeoutMs: 60_000 });
  const m = /= [0-9.]+\/([0-9.]+)\//.exec(r.stdout);
  if (m?.[1] === undefined) throw new Error(`ping output without rtt: ${r.stdout}`);
  return Number(m[1]);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** What one driver (one wireguard-go build) measured. */
interface Measured {
  readonly label: string;
  readonly cable: number;
  readonly underlay: number;
  readonly drops: number;
}

/**
 * One core's ChaCha20-Poly1305 rate at 1420-byte packets (WireGuard's cipher at the
 * device MTU), Gbit/s: `openssl speed -evp chacha20-poly1305 -bytes 1420` (one process,
 * one core), machine-readable output.
 */
async function cipherRate(seconds: number): Promise<number> {
  const r = await system.run('openssl', ['speed', '-mr', '-seconds', String(seconds), '-evp', 'chacha20-poly1305', '-bytes', '1420'], { timeoutMs: (seconds + 30) * 1000 });
  const m = /^\+F:\d+:ChaCha20-Poly1305:([0-9.]+)/im.exec(r.stdout);
  if (m?.[1] === undefined) throw new Error(`openssl speed printed no ChaCha20-Poly1305 rate: ${r.stdout.slice(-300)}`);
  return (Number(m[1]) * 8) / 1e9;
}

async function benchDriver(kind: DriverKind, seconds: number, rounds: number, wireguardGo?: readonly string[]): Promise<Measured> {
  const lab = await createLab(kind === 'wireguard' ? 'wgb' : 'vxb', 2);
  try {
    const [na, nb] = lab.nodes;
    if (na === undefined || nb === undefined) throw new Error('lab without two nodes');
    const a = labDriver(kind, lab, na, wireguardGo === undefined ? {} : { wireguardGo });
    const b = labDriver(kind, lab, nb, wireguardGo === undefined ? {} : { wireguardGo });
    await a.driver.init(a.local);
    await b.driver.init(b.local);
    const label = `${kind} (${a.driver.implementationInfo() ?? '?'})`;
    // set() → first packet through: b already has its cable to a; a's set() starts the clock.
    // Five trials; between them a drops the cable (set([])), so every trial starts from no peer.
    await b.driver.set([specTo(a)]);
    const firsts: number[] = [];
    const sets: number[] = [];
    for (let trial = 0; trial < 5; trial++) {
      await a.driver.set([]);
      const t0 = performance.now();
      await a.driver.set([specTo(b)]);
      sets.push(performance.now() - t0);
      for (;;) {
        if (await pingFast(na, nb)) break;
        if (performance.now() - t0 > 20_000) throw new Error('no packet through within 20 s');
      }
      firsts.push(performance.now() - t0);
    }
    const ms = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join('/');
    console.log(`${label}: set() → first ping answered through the cable, 5 trials: median ${median(firsts).toFixed(0)} ms, max ${Math.max(...firsts).toFixed(0)} ms (${ms(firsts)}; of which set() itself ${ms(sets)} ms) (target ≤ 2000 ms)`);
    const under: number[] = [];
    const cable: number[] = [];
    const dropsBefore = await udpRcvbufErrors(nb);
    for (let i = 0; i < rounds; i++) {
      under.push(await iperf(nb, na, nb.ip, na.ip, seconds));
      cable.push(await iperf(nb, na, nb.hostIp, na.hostIp, seconds));
    }
    const drops = (await udpRcvbufErrors(nb)) - dropsBefore;
    const rttUnder = await rtt(na, na.ip, nb.ip, 200);
    const rttCable = await rtt(na, na.hostIp, nb.hostIp, 200);
    console.log(`${label}: iperf3 TCP ${String(rounds)}×${String(seconds)} s, medians: cable ${median(cable).toFixed(2)} Gbit/s, underlay ${median(under).toFixed(2)} Gbit/s, ratio ${(median(cable) / median(under)).toFixed(2)} (rounds: cable ${cable.map((x) => x.toFixed(2)).join('/')}, underlay ${under.map((x) => x.toFixed(2)).join('/')}); receiver UDP RcvbufErrors during the runs: ${String(drops)}`);
    console.log(`${label}: ping RTT avg over 200: cable ${rttCable.toFixed(3)} ms, underlay ${rttUnder.toFixed(3)} ms, ratio ${(rttCable / rttUnder).toFixed(2)}`);
    await a.driver.cleanup();
    await b.driver.cleanup();
    return { label, cable: median(cable), underlay: median(under), drops };
  } finally {
    await lab.destroy();
  }
}

/** The receiving side's count of UDP datagrams dropped for a full socket buffer (/proc/net/snmp). */
async function udpRcvbufErrors(node: LabNode): Promise<number> {
  const lines = (await node.runner.run('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp: '));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  const i = names?.indexOf('RcvbufErrors') ?? -1;
  return Number(values?.[i] ?? NaN);
}

/** A ping with a 100 ms wait, for measuring time to first packet. */
async function pingFast(from: LabNode, to: LabNode): Promise<boolean> {
  const r = await from.runner.run('ping', ['-n', '-q', '-c', '1', '-W', '0.1', '-I', from.hostIp, to.hostIp], { allowFailure: true });
  return r.code === 0;
}

/** The wireguard-go builds the bench compares (each alone, so the driver cannot fall back to the other). */
const WIREGUARD_GO_BUILDS: Readonly<Record<string, readonly string[]>> = {
  debian: ['/usr/bin/wireguard-go'],
  isthmus: [ISTHMUS_WIREGUARD_GO],
};

if (import.meta.main) {
  const seconds = Number(arg('seconds', '5'));
  const rounds = Number(arg('rounds', '3'));
  const only = arg('driver', '');
  const builds = arg('wireguard-go', 'debian,isthmus').split(',');
  for (const b of builds) if (WIREGUARD_GO_BUILDS[b] === undefined) throw new Error(`--wireguard-go ${b}: a comma-separated list of ${Object.keys(WIREGUARD_GO_BUILDS).join(', ')}`);
  console.log(`${new Date().toISOString()} on ${hostname()}: ${String(cpus().length)} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const results: Measured[] = [];
  let cipher: number | undefined;
  if (only === '' || only === 'wireguard') {
    cipher = await cipherRate(3);
    console.log(`one core's ChaCha20-Poly1305 at 1420-byte packets (openssl speed -evp chacha20-poly1305 -bytes 1420): ${cipher.toFixed(2)} Gbit/s`);
    for (const b of builds) results.push(await benchDriver('wireguard', seconds, rounds, WIREGUARD_GO_BUILDS[b]));
    const again = await cipherRate(3);
    console.log(`the same cipher rate after the WireGuard runs: ${again.toFixed(2)} Gbit/s (the ratios below use the mean, ${((cipher + again) / 2).toFixed(2)})`);
    cipher = (cipher + again) / 2;
  }
  if (only === '' || only === 'vxlan') results.push(await benchDriver('vxlan', seconds, rounds));
  console.log(`\n| cable | TCP cable Gbit/s | underlay Gbit/s | cable / underlay | cable / one core's ChaCha20-Poly1305 (target ≥ 0.3 for wireguard) | receiver UDP RcvbufErrors |`);
  console.log('|---|---|---|---|---|---|');
  for (const m of results) {
    const vsCipher = m.label.startsWith('wireguard') && cipher !== undefined ? (m.cable / cipher).toFixed(2) : '–';
    console.log(`| ${m.label} | ${m.cable.toFixed(2)} | ${m.underlay.toFixed(2)} | ${(m.cable / m.underlay).toFixed(2)} | ${vsCipher} | ${String(m.drops)} |`);
  }
  console.log(`load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
