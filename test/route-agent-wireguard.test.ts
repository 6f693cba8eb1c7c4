// e2e, needs root: the route agent and the whole data path on the sandbox, real parts only
// (3 clusters × 3 nodes, two gateway nodes each, c3 behind NAT; real apiservers, kube-proxy in
// iptables mode, etcd + broker, `isthmus gateway --driver wireguard` on the gateway nodes,
// `isthmus route-agent` on every node with its RBAC's token).
// Covers: every pod reaches every remote pod and remote ClusterIP over TCP and UDP with its
// own source address, a 10 MiB body, the largest DF ping and "fragmentation needed" one byte
// above it, SIGKILL failover followed by every node, a route agent restart that re-creates
// nothing, a deleted route/rule/nftables table repaired by the kernel change monitors,
// metrics, a remote CIDR overlapping a local one refused with the reason, vxlan mode
// and its unreachable-port status, the iptables backend, and cleanup leaving nothing.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectRoot } from '../sandbox/index.ts';
import { eventually, isthmus, requireRootForTest } from './lib/cli.ts';
import { ROUTE_AGENT_METRICS_PORT, exited, kill, others } from './lib/clusterset.ts';
import { Datapath, dataPathTests } from './lib/datapath.ts';
import { inNetns } from './lib/netns.ts';

requireRootForTest('test/route-agent-wireguard.test.ts');
const dp = new Datapath();
const cs = dp.cs;

test.after(async () => {
  await dp.close();
});

const ip = async (netns: string, ...args: string[]): Promise<string> => {
  const r = await inNetns(netns, 'ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} in ${netns}: ${r.stderr}`);
  return r.stdout;
};
const nft = async (netns: string): Promise<string> => (await inNetns(netns, 'nft', ['-a', 'list', 'table', 'ip', 'isthmus'])).stdout;

dataPathTests(test, dp, 'wireguard');

test('status: the mode, the filter backend and the gateway each node routes via', async () => {
  const s = await cs.routeAgent('c1', 'c1-n3');
  assert.is(s?.status?.mode, 'direct');
  assert.is(s?.status?.filter, 'nftables');
  const active = await dp.activeGateway('c1');
  assert.equal(s?.status?.remotes?.map((r) => r.via), [active, active]);
  assert.is((await cs.routeAgent('c1', active))?.status?.mode, 'gateway');
});

test('metrics: routes, remote clusters and reconciles', async () => {
  const res = await fetch(`http://${cs.node('c1', 2).ip}:${ROUTE_AGENT_METRICS_PORT}/metrics`);
  const text = await res.text();
  assert.match(text, /isthmus_route_agent_remote_clusters\{state="routed"\} 2/);
  assert.match(text, /isthmus_route_agent_routes 4/);
  assert.match(text, /isthmus_route_agent_reconciles_total\{result="ok"\} [1-9]/);
});

test('a route agent restart re-creates no route, rule or filter table', async () => {
  const node = cs.node('c1', 2);
  const before = { routes: await ip(node.netns, 'route', 'show', 'table', '230'), rules: await ip(node.netns, 'rule', 'show'), nft: await nft(node.netns) };
  const agent = dp.agents.get('c1-n3');
  assert.ok(agent);
  kill(agent.proc, 'SIGTERM');
  await exited(agent.proc);
  assert.equal(await dp.matrix([dp.pod('c1', 2)]), [], 'the data path works while the agent is away');
  const logBefore = cs.log('route-agent-c1-n3').length;
  dp.agents.set('c1-n3', cs.startRouteAgent('c1', 2));
  // it reconciled at least twice since it started (a resync every 2 s) and changed nothing
  await eventually('the restarted agent reconciled', async () => {
    const res = await fetch(`http://${node.ip}:${ROUTE_AGENT_METRICS_PORT}/metrics`).catch(() => undefined);
    const text = res === undefined ? '' : await res.text();
    return /isthmus_route_agent_reconciles_total\{result="ok"\} ([2-9]|\d{2,})\n/.test(text) ? text : undefined;
  });
  const text = await (await fetch(`http://${node.ip}:${ROUTE_AGENT_METRICS_PORT}/metrics`)).text();
  assert.match(text, /isthmus_route_agent_changes_total 0\b/);
  assert.not.match(cs.log('route-agent-c1-n3').slice(logBefore), /routes applied/);
  assert.equal({ routes: await ip(node.netns, 'route', 'show', 'table', '230'), rules: await ip(node.netns, 'rule', 'show'), nft: await nft(node.netns) }, before);
});

test('idle: Gateway status churn reconciles nothing; a route, a rule or the nftables table deleted by someone comes back at once: the kernel change monitors, not the resync (set to 10 min here)', async () => {
  const node = cs.node('c1', 2);
  const agent = dp.agents.get('c1-n3');
  assert.ok(agent);
  kill(agent.proc, 'SIGTERM');
  await exited(agent.proc);
  const slow = cs.startRouteAgent('c1', 2, ['--resync-ms', '600000']);
  dp.agents.set('c1-n3', slow);
  await dp.routed('c1', 'c1-n3', others('c1'));
  // the Gateway statuses change with every health probe (1 s): with nothing of the node's inputs
  // changed and no kernel change, those events read and apply nothing
  const reconciles = async (): Promise<number> => {
    const text = await (await fetch(`http://${node.ip}:${ROUTE_AGENT_METRICS_PORT}/metrics`)).text();
    return [...text.matchAll(/isthmus_route_agent_reconciles_total\{result="\w+"\} (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  };
  // the old agent's routes stay, so routed() may be true before the new process serves metrics:
  // wait for its first reconcile, then a second for the ones its informers' first lists bring
  await eventually('the restarted agent reconciled', async () => (await reconciles().catch(() => 0)) > 0 ? true : undefined);
  await new Promise((r) => setTimeout(r, 1000));
  const idle0 = await reconciles();
  const gw0 = JSON.stringify((await cs.kubectl('c1', ['-n', 'isthmus-system', 'get', 'gateways', '-o', 'json'])));
  await new Promise((r) => setTimeout(r, 5000));
  assert.is.not(JSON.stringify(await cs.kubectl('c1', ['-n', 'isthmus-system', 'get', 'gateways', '-o', 'json'])), gw0, 'the Gateway statuses changed meanwhile');
  assert.is(await reconciles(), idle0, 'no reconcile for events that change none of its inputs');
  const before = { routes: await ip(node.netns, 'route', 'show', 'table', '230'), rules: await ip(node.netns, 'rule', 'show') };
  const first = before.routes.split('\n')[0]?.trim() ?? '';
  assert.match(first, /via/);
  await ip(node.netns, 'route', 'del', ...first.split(/\s+/), 'table', '230');
  await ip(node.netns, 'rule', 'del', 'pref', '230');
  await inNetns(node.netns, 'nft', ['delete', 'table', 'ip', 'isthmus']);
  await eventually('routes, rule and table restored', async () => {
    const now = { routes: await ip(node.netns, 'route', 'show', 'table', '230'), rules: await ip(node.netns, 'rule', 'show') };
    return JSON.stringify(now) === JSON.stringify(before) && /isthmus route-agent/.test(await nft(node.netns)) ? true : undefined;
  }, 20_000);
  assert.equal(await dp.matrix([dp.pod('c1', 2)]), []);
  kill(slow.proc, 'SIGTERM');
  await exited(slow.proc);
  dp.agents.set('c1-n3', cs.startRouteAgent('c1', 2));
});

test('SIGKILL of c1\'s active gateway: every c1 node routes through the new one and traffic flows again', async () => {
  const active = await dp.activeGateway('c1');
  const g = dp.gateways.get(active);
  assert.ok(g);
  const killedAt = Date.now();
  kill(g.proc, 'SIGKILL');
  const next = active === 'c1-n1' ? 'c1-n2' : 'c1-n1';
  const c1Pods = dp.pods.filter((p) => p.cluster === 'c1');
  const flowed = await eventually('every c1 pod → c2 and c3 through the new gateway', async () => ((await dp.matrix(c1Pods, 0)).length === 0 ? Date.now() : undefined), 60_000);
  process.stdout.write(`  failover: SIGKILL → every exchange from every c1 pod answered after ${flowed - killedAt} ms (coarse; bench/route-agent.ts measures it)\n`);
  for (const n of ['c1-n1', 'c1-n3']) await dp.routed('c1', n, others('c1'), next);
  assert.equal(await dp.matrix(), []);
  dp.gateways.set(active, await cs.startGateway('c1', active === 'c1-n1' ? 0 : 1, 'wireguard')); // back, as the passive one
});

test('a node whose cluster CIDRs overlap a remote\'s refuses that cluster with the reason and routes the others', async () => {
  const agent = dp.agents.get('c2-n3');
  assert.ok(agent);
  kill(agent.proc, 'SIGTERM');
  await exited(agent.proc);
  // misconfigured: c2's route agent told its cluster owns c3's pod CIDR too
  dp.agents.set('c2-n3', cs.startRouteAgent('c2', 2, ['--pod-cidrs', `${cs.state.clusters[1]?.podCidr ?? ''},${cs.state.clusters[2]?.podCidr ?? ''}`]));
  const s = await eventually('c2-n3 refuses c3', async () => {
    const o = await cs.routeAgent('c2', 'c2-n3');
    return o?.status?.refused?.some((r) => r.cluster === 'c3') === true ? o.status : undefined;
  });
  assert.match(s.refused?.[0]?.reason ?? '', /overlaps this cluster's 10\.3\.0\.0\/16/);
  assert.equal(s.remotes?.map((r) => r.cluster), ['c1']);
  assert.equal(await dp.matrix([dp.pod('c2', 2)], 0).then((f) => f.filter((x) => !x.includes('→ c3'))), []);
  const a = dp.agents.get('c2-n3');
  if (a !== undefined) kill(a.proc, 'SIGTERM');
  dp.agents.set('c2-n3', cs.startRouteAgent('c2', 2));
  await dp.routed('c2', 'c2-n3', others('c2'));
});

test('vxlan mode: a node tunnels to the gateway node; a blocked VXLAN port is said in its status', async () => {
  const agent = dp.agents.get('c2-n3');
  assert.ok(agent);
  kill(agent.proc, 'SIGTERM');
  await exited(agent.proc);
  dp.agents.set('c2-n3', cs.startRouteAgent('c2', 2, ['--mode', 'vxlan']));
  await eventually('c2-n3 in vxlan mode', async () => ((await cs.routeAgent('c2', 'c2-n3'))?.status?.mode === 'vxlan' ? true : undefined));
  await eventually('the gateway node tunnels back to c2-n3', async () => ((await dp.matrix([dp.pod('c2', 2)], 0)).length === 0 ? true : undefined));
  assert.equal(await dp.matrix(), []);
  const gwNode = cs.node('c2', (await dp.activeGateway('c2')) === 'c2-n1' ? 0 : 1);
  const drop = ['-w', '-I', 'INPUT', '-p', 'udp', '--dport', '4799', '-j', 'DROP'];
  await inNetns(gwNode.netns, 'iptables', drop);
  try {
    const s = await eventually('c2-n3 reports the tunnel down', async () => {
      const o = await cs.routeAgent('c2', 'c2-n3');
      return o?.status?.errors?.some((e) => /does not answer through the VXLAN tunnel/.test(e)) === true ? o.status : undefined;
    });
    assert.match(s.errors?.join('\n') ?? '', /UDP port 4799/);
  } finally {
    await inNetns(gwNode.netns, 'iptables', ['-w', '-D', ...drop.slice(2)]);
  }
});

test('the iptables backend passes the same data-path tests; cleanup leaves no route, rule, chain or device of ours', async () => {
  for (const [key, a] of dp.agents) {
    kill(a.proc, 'SIGTERM');
    await exited(a.proc);
    const node = cs.state.clusters.flatMap((c) => c.nodes).find((n) => n.name === key);
    assert.ok(node);
    const r = await inNetns(node.netns, process.execPath, ['--no-warnings', join(projectRoot(), 'cli', 'main.ts'), 'route-agent', '--node', key, '--cleanup']);
    assert.is(r.code, 0, r.stderr);
    assert.not.match(await ip(node.netns, 'rule', 'show'), /lookup 23[01]/);
    assert.is((await inNetns(node.netns, 'nft', ['list', 'table', 'ip', 'isthmus'])).code, 1);
    assert.not.match(await ip(node.netns, 'link', 'show'), /isthmus-ra/);
  }
  for (const c of ['c1', 'c2', 'c3']) for (const i of [0, 1, 2]) dp.agents.set(`${c}-n${i + 1}`, cs.startRouteAgent(c, i, ['--filter', 'iptables']));
  for (const c of ['c1', 'c2', 'c3']) for (const i of [1, 2, 3]) await dp.routed(c, `${c}-n${i}`, others(c));
  assert.is((await cs.routeAgent('c1', 'c1-n3'))?.status?.filter, 'iptables');
  assert.equal(await dp.matrix(), []);
  assert.equal(await dp.clusterIps(), []);
  assert.match((await inNetns(cs.node('c1', 2).netns, 'iptables-save', ['-t', 'nat'])).stdout, /-A POSTROUTING -j ISTHMUS-POSTROUTING/);
});

test('isthmus route-agent refuses bad options before changing anything', async () => {
  const r = await isthmus(['route-agent', '--node', 'x', '--mode', 'tunnel']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /mode: must be one of auto, direct, vxlan/);
});

test.run();
