// Benchmark (root, uses the sandbox): the gateway engine end to end, per cable driver, with
// real parts (sandbox apiservers for the Lease and the Gateway status, etcd, the broker,
// `isthmus gateway` processes with default timings):
//   1. remote endpoint published → first packet through: c1's gateway runs; a continuous
//      ping (every 20 ms, timestamped) from c1's gateway node to c2's gateway node's pod-CIDR
//      address runs; c2's gateway starts. From the moment c2's gateway logs "endpoint
//      published" (its Endpoint is at the broker) to the first echo reply. Both sides must
//      set their cable for a reply to come back. Then c2 leaves and its cable state is wiped.
//   2. failover: c2 runs two gateways and both hold the same address (10.2.255.1) on lo; the
//      ping goes there. The active gateway node "dies": its gateway process and cable daemon
//      get SIGKILL and its wan link goes down, at once. Failover time = first reply after
//      the kill − the kill. The dead node is then revived as the passive one.
// The broker-side figures (publish → remote cable) are in the gateway logs; this measures
// what a user sees: packets.
//
// usage: node bench/gateway-engine.ts [--driver wireguard|ipsec|vxlan] [--runs 5] [--failovers 3]
import { execFileSync } from 'node:child_process';
import { cpus, release } from 'node:os';
import { isthmus } from '../test/lib/cli.ts';
import { Clusterset, exited, kill, type DriverName, type GatewayProc } from '../test/lib/clusterset.ts';
import { processesNamed } from '../test/lib/netns.ts';
import { arg, numberArg } from './lib/args.ts';
import { firstAfterOutage, pinger, until } from './lib/ping.ts';

const DRIVERS: readonly DriverName[] = ['wireguard', 'ipsec', 'vxlan'];
const ANYCAST = '10.2.255.1';
const DAEMONS = ['wireguard-go', 'charon'];

/** Epoch ms of the last "endpoint published" line of a gateway log after `since`. */
function publishedAt(cs: Clusterset, node: string, since: number): number | undefined {
  const times = cs.log(`gateway-${node}`).split('\n').filter((l) => l.includes('"endpoint published"'))
    .map((l) => (JSON.parse(l) as { time: number }).time).filter((t) => t >= since);
  return times[0];
}

/** Kills the cable daemons in a node and removes the cable devices and state a gateway left. */
function wipeCables(cs: Clusterset, node: { netns: string; name: string }): void {
  for (const pid of processesNamed(node.netns, ...DAEMONS)) process.kill(pid, 'SIGKILL');
  for (const dev of ['isthmus-wg', 'vx-isthmus']) {
    try {
      execFileSync('ip', ['-n', node.netns, 'link', 'del', dev], { stdio: 'ignore' });
    } catch {
      /* not there */
    }
  }
  execFileSync('rm', ['-rf', cs.path(`state-${node.name}`)]);
}

async function stopGateway(g: GatewayProc): Promise<void> {
  kill(g.proc, 'SIGTERM');
  await exited(g.proc);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? (s[(s.length - 1) / 2] ?? NaN) : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
};
const fmt = (xs: readonly number[]): string => `median ${median(xs).toFixed(0)} ms, min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)} (n=${xs.length}: ${xs.map((x) => x.toFixed(0)).join(', ')})`;

async function firstPacket(cs: Clusterset, driver: DriverName, runs: number): Promise<number[]> {
  const c1 = cs.node('c1', 0);
  const c2 = cs.node('c2', 0);
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const since = Date.now();
    const ping = pinger(c1.netns, await cs.healthIp('c2', 0), await cs.healthIp('c1', 0));
    const g = await cs.startGateway('c2', 0, driver);
    const published = await until('c2 publishes its endpoint', () => publishedAt(cs, 'c2-n1', since));
    const first = await until('the first reply', () => ping.replies.find((t) => t >= published), 60_000);
    ping.stop();
    out.push(first - published);
    await stopGateway(g);
    const left = await isthmus(['leave', '--cluster', 'c2', '--broker', cs.broker, '--broker-tls-dir', cs.path('c2')]);
    if (left.code !== 0) throw new Error(`leave: ${left.stderr}`);
    wipeCables(cs, c2);
    await until('c1 drops its cable to c2', async () => ((await cs.gateway('c1', 'c1-n1'))?.status?.connections?.length === 0 ? true : undefined));
  }
  return out;
}

async function failover(cs: Clusterset, driver: DriverName, runs: number): Promise<number[]> {
  const nodes = [cs.node('c2', 0), cs.node('c2', 1)];
  for (const n of nodes) execFileSync('ip', ['-n', n.netns, 'addr', 'replace', `${ANYCAST}/32`, 'dev', 'lo']);
  const procs = new Map<string, GatewayProc>();
  procs.set(nodes[0]?.name ?? '', await cs.startGateway('c2', 0, driver));
  await cs.connected('c2', 'c2-n1', ['c1']);
  procs.set(nodes[1]?.name ?? '', await cs.startGateway('c2', 1, driver));
  await until('c2-n2 passive', async () => ((await cs.gateway('c2', 'c2-n2').catch(() => undefined))?.status?.haStatus === 'passive' ? true : undefined));
  const out: number[] = [];
  const ping = pinger(cs.node('c1', 0).netns, ANYCAST, await cs.healthIp('c1', 0));
  try {
    for (let i = 0; i < runs; i++) {
      const active = await until('an active c2 gateway', async () => {
        for (const n of nodes) if ((await cs.gateway('c2', n.name).catch(() => undefined))?.status?.haStatus === 'active') return n;
        return undefined;
      });
      const activeProc = procs.get(active.name);
      if (activeProc === undefined) throw new Error(`no process for ${active.name}`);
      await until('replies before the kill', () => (ping.replies.some((t) => t > Date.now() - 200) ? true : undefined), 30_000);
      const killedAt = Date.now();
      kill(activeProc.proc, 'SIGKILL');
      for (const pid of processesNamed(active.netns, ...DAEMONS)) process.kill(pid, 'SIGKILL');
      execFileSync('ip', ['-n', active.netns, 'link', 'set', 'wan0', 'down']);
      const back = await until('a reply after the outage', () => firstAfterOutage(ping.replies, killedAt), 60_000);
      out.push(Math.round(back - killedAt));
      // revive the dead node as the passive one
      await exited(activeProc.proc);
      wipeCables(cs, active);
      execFileSync('ip', ['-n', active.netns, 'link', 'set', 'wan0', 'up']);
      const idx = nodes.indexOf(active);
      procs.set(active.name, await cs.startGateway('c2', idx, driver));
      await until(`${active.name} passive`, async () => ((await cs.gateway('c2', active.name).catch(() => undefined))?.status?.haStatus === 'passive' ? true : undefined));
      await new Promise((r) => setTimeout(r, 3000));
    }
  } finally {
    ping.stop();
  }
  return out;
}

async function main(): Promise<void> {
  const only = arg('driver', '');
  const runs = numberArg('runs', 5);
  const failovers = numberArg('failovers', 3);
  process.stdout.write(`gateway engine, end to end on the sandbox — ${new Date().toISOString()}; ${cpus()[0]?.model ?? '?'} × ${cpus().length}; Linux ${release()}; Node ${process.version}\n`);
  for (const driver of DRIVERS.filter((d) => only === '' || d === only)) {
    const cs = new Clusterset();
    const stop = (): void => {
      void cs.close().finally(() => process.exit(130));
    };
    process.once('SIGINT', stop);
    try {
      await cs.up({ clusters: 2, gateways: 2, nat: [], portBase: 28600 });
      await cs.startGateway('c1', 0, driver);
      await until('c1 active', async () => ((await cs.gateway('c1', 'c1-n1').catch(() => undefined))?.status?.haStatus === 'active' ? true : undefined));
      const fp = await firstPacket(cs, driver, runs);
      process.stdout.write(`${driver.padEnd(9)} endpoint published → first packet: ${fmt(fp)}\n`);
      const fo = await failover(cs, driver, failovers);
      process.stdout.write(`${driver.padEnd(9)} failover (SIGKILL + link down → first reply): ${fmt(fo)}\n`);
    } finally {
      process.removeListener('SIGINT', stop);
      await cs.close();
    }
  }
}

await main();
