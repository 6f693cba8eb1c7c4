// Benchmark (root): the route agent.
//   apply:  100 remote clusters (2 CIDRs each) applied by the real RouteTable and packet filter
//           in a network namespace this bench makes: from nothing, again with no change, with
//           the gateway moved (every route replaced), then cleanup. Wall time and the commands
//           run (and how many of them modify) for each, for the nftables and iptables backends.
//   sandbox: on the sandbox (3 clusters × 3 nodes, c3 behind NAT, wireguard unless --driver):
//           SIGKILL of c1's active gateway → first reply at a pod on a non-gateway node (a ping
//           every 20 ms to a c2 pod); the new gateway's "became the active gateway" → routes
//           changed on every c1 node; the route agents' RSS and idle CPU; iperf3 from a
//           non-gateway pod to a remote pod vs from the gateway node to the remote gateway
//           node, through the same cable, in the same run.
//
// usage: node bench/route-agent.ts [--part apply|sandbox|all] [--driver wireguard|ipsec|vxlan] [--failovers 3]
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { NetnsRunner, SystemRunner, type CommandRunner, type RunOptions, type RunResult } from '../core/index.ts';
import { desiredRoutes, type AgentView } from '../route-agent/desired.ts';
import { IptablesFilter, NftFilter, type PacketFilter } from '../route-agent/filter.ts';
import { RouteTable } from '../route-agent/routes.ts';
import { kill, type DriverName } from '../test/lib/clusterset.ts';
import { Datapath } from '../test/lib/datapath.ts';
import { inNetns, processesNamed } from '../test/lib/netns.ts';
import { arg, numberArg } from './lib/args.ts';
import { firstAfterOutage, pinger, until } from './lib/ping.ts';

/** Counts the commands it runs, and those that modify (batches, nft -f, iptables-restore). */
class Counting implements CommandRunner {
  total = 0;
  modifying = 0;
  readonly #inner: CommandRunner;
  constructor(inner: CommandRunner) {
    this.#inner = inner;
  }
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    this.total++;
    if (args.includes('-batch') || (command === 'nft' && args[0] === '-f') || command === 'iptables-restore') this.modifying++;
    return this.#inner.run(command, args, options);
  }
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function applyPart(): Promise<void> {
  const ns = `rab-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '172.31.252.1/24', 'dev', 'eth0']);
    for (const d of ['lo', 'eth0', 'eth1']) execFileSync('ip', ['-n', ns, 'link', 'set', d, 'up']);
    const remotes = Array.from({ length: 100 }, (_, i) => ({ cluster: `r${i}`, cidrs: [`10.${i + 1}.0.0/16`, `172.${16 + (i >> 6)}.${(i & 63) * 4}.0/22`], mtu: 1420 }));
    const view = (gw: string): AgentView => ({
      node: { name: 'n', ip: '172.31.252.1', addresses: [] }, localCidrs: ['192.168.0.0/16'], gateway: { name: 'gw', ip: gw },
      mode: 'direct', remotes, vxlanPeers: [], table: 230, pref: 230,
    });
    for (const make of [(r: CommandRunner) => new NftFilter(r), (r: CommandRunner) => new IptablesFilter(r)]) {
      const runner = new Counting(new NetnsRunner(new SystemRunner(), ns));
      const table = new RouteTable(runner, [230, 231], [227, 228, 230]);
      const filter: PacketFilter = make(runner);
      const step = async (what: string, gw: string): Promise<void> => {
        runner.total = 0;
        runner.modifying = 0;
        const d = desiredRoutes(view(gw));
        const t0 = process.hrtime.bigint();
        const r = await table.set(d.routes, d.rules, 230);
        await filter.set(d.filter);
        const took = ms(t0);
        if (r.failed.length > 0) throw new Error(r.failed.join('; '));
        console.log(`  ${filter.name.padEnd(9)} ${what.padEnd(28)} ${took.toFixed(1).padStart(7)} ms  ${String(runner.total).padStart(3)} commands (${runner.modifying} modifying), ${d.routes.length} routes`);
      };
      await step('100 remotes from nothing', '172.31.252.2');
      await step('no change', '172.31.252.2');
      await step('gateway moved (all replaced)', '172.31.252.3');
      const t0 = process.hrtime.bigint();
      await table.cleanup();
      await filter.cleanup();
      console.log(`  ${filter.name.padEnd(9)} ${'cleanup'.padEnd(28)} ${ms(t0).toFixed(1).padStart(7)} ms`);
    }
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

/** Epoch ms of the last log line matching `re` (pino JSON lines carry `time`). */
function lastLogTime(text: string, re: RegExp): number | undefined {
  const lines = text.split('\n').filter((l) => re.test(l));
  const last = lines.at(-1);
  if (last === undefined) return undefined;
  try {
    return (JSON.parse(last) as { time?: number }).time;
  } catch {
    return undefined;
  }
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}

async function iperf(clientNetns: string, serverNetns: string, serverIp: string, bind?: string): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', serverNetns, 'iperf3', '-s', '-1', '-B', serverIp], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  try {
    const r = await inNetns(clientNetns, 'iperf3', ['-c', serverIp, '-t', '5', '-J', ...(bind === undefined ? [] : ['-B', bind])], 30_000);
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
    return (j.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
  } finally {
    kill(server, 'SIGKILL');
  }
}

async function sandboxPart(driver: DriverName, failovers: number): Promise<void> {
  const dp = new Datapath();
  try {
    // the default resync (the e2e tests run them with 2 s); VXLAN cables do not cross NAT (as in test/route-agent-vxlan)
    await dp.up(driver, driver === 'vxlan' ? { nat: [] } : {}, ['--resync-ms', '30000']);
    const from = dp.pod('c1', 2);
    const to = dp.pod('c2', 2);
    // idle route agents: RSS and CPU over 20 s
    // `ip netns exec` execs node in its own process: the pid is the route agent's
    const pids = [...dp.agents.values()].map((a) => a.proc.pid ?? 0);
    const cpu0 = pids.map(cpuSeconds);
    await new Promise((r) => setTimeout(r, 20_000));
    const cpu1 = pids.map(cpuSeconds);
    const rss = pids.map(rssMb);
    console.log(`  route agents (${pids.length}, kernel change monitors + resync every 30 s): RSS median ${median(rss).toFixed(1)} MB, max ${Math.max(...rss).toFixed(1)} MB; idle CPU ${((cpu1.reduce((a, b) => a + b, 0) - cpu0.reduce((a, b) => a + b, 0)) / pids.length / 20 * 100).toFixed(2)} % of a core per agent`);

    const gwNode = dp.cs.node('c1', (await dp.activeGateway('c1')) === 'c1-n1' ? 0 : 1);
    const remoteGw = dp.cs.node('c2', (await dp.activeGateway('c2')) === 'c2-n1' ? 0 : 1);
    const pod = await iperf(from.netns, to.netns, to.ip);
    const node = await iperf(gwNode.netns, remoteGw.netns, await dp.cs.healthIp('c2', (await dp.activeGateway('c2')) === 'c2-n1' ? 0 : 1), await dp.cs.healthIp('c1', (await dp.activeGateway('c1')) === 'c1-n1' ? 0 : 1));
    console.log(`  iperf3 ${driver}: non-gateway pod → remote pod ${pod.toFixed(2)} Gbit/s; gateway node → remote gateway node ${node.toFixed(2)} Gbit/s; ratio ${(pod / node).toFixed(2)}`);

    const firstReply: number[] = [];
    const routesMoved: number[] = [];
    for (let i = 0; i < failovers; i++) {
      const active = await dp.activeGateway('c1');
      const next = active === 'c1-n1' ? 'c1-n2' : 'c1-n1';
      const nextIp = dp.cs.node('c1', next === 'c1-n1' ? 0 : 1).ip;
      const ping = pinger(from.netns, to.ip);
      await until('replies before the kill', () => (ping.replies.length > 5 ? true : undefined));
      const g = dp.gateways.get(active);
      if (g === undefined) throw new Error(`no gateway process on ${active}`);
      // the node "dies": its gateway and cable daemon get SIGKILL and its wan link goes down at once
      // (a gateway process alone dying leaves the data path up through the old node)
      const dying = dp.cs.node('c1', active === 'c1-n1' ? 0 : 1);
      const killedAt = Date.now();
      kill(g.proc, 'SIGKILL');
      for (const pid of processesNamed(dying.netns, 'wireguard-go', 'charon')) process.kill(pid, 'SIGKILL');
      execFileSync('ip', ['-n', dying.netns, 'link', 'set', 'wan0', 'down']);
      // every c1 node's route to c2 via the new gateway node (on the new gateway node: the fail-closed routes)
      const moved = await Promise.all([0, 1, 2].map((k) => until(`c1-n${k + 1} routes via ${next}`, async () => {
        const node = dp.cs.node('c1', k);
        const r = await inNetns(node.netns, 'ip', ['route', 'show', 'table', '230']);
        // the new gateway node itself: its fail-closed routes behind the cable's
        const done = node.name === next ? /^unreachable /m.test(r.stdout) && !r.stdout.includes(' via ') : r.stdout.includes(`via ${nextIp}`);
        return done ? Date.now() : undefined;
      })));
      const reply = await until('first reply after the outage', () => firstAfterOutage(ping.replies, killedAt), 30_000);
      ping.stop();
      const became = lastLogTime(dp.cs.log(`gateway-${next}`), /became the active gateway/) ?? NaN;
      firstReply.push(Math.round(reply - killedAt));
      routesMoved.push(Math.max(...moved) - became);
      console.log(`  failover ${i + 1}: SIGKILL → first reply at the non-gateway pod ${Math.round(reply - killedAt)} ms; new gateway active → routes moved on every node ${Math.max(...moved) - became} ms`);
      execFileSync('ip', ['-n', dying.netns, 'link', 'set', 'wan0', 'up']);
      dp.gateways.set(active, await dp.cs.startGateway('c1', active === 'c1-n1' ? 0 : 1, driver));
      await dp.cs.connected('c1', next, ['c2', 'c3']);
      await new Promise((r) => setTimeout(r, 3000));
    }
    console.log(`  ${driver} failover median: first reply ${median(firstReply)} ms (target ≤ 3000); routes moved ${median(routesMoved)} ms (target ≤ 500)`);
  } finally {
    await dp.close();
  }
}

const part = arg('part', 'all');
console.log(`route agent benchmark — ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Linux ${release()}, ${new Date().toISOString()}`);
if (part === 'apply' || part === 'all') {
  console.log('apply (100 remote clusters, 2 CIDRs each, real kernel in a namespace):');
  await applyPart();
}
if (part === 'sandbox' || part === 'all') {
  const driver = arg('driver', 'wireguard') as DriverName;
  console.log(`sandbox (${driver}):`);
  await sandboxPart(driver, numberArg('failovers', 3));
}
