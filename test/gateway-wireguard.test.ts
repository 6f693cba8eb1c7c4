// e2e, needs root: the gateway engine with the wireguard driver (wireguard-go here) on the
// sandbox, real parts only: 3 clusters with two gateway nodes each, c3 behind NAT, a real
// etcd + broker on the host's wan address, the Lease and the Gateway status in each
// cluster's real apiserver. Traffic is sent between the gateway nodes' pod-CIDR addresses.
// Covers: full mesh with NAT, process restart without re-creating anything, a stand-down over
// a paused apiserver that keeps the cables when the Lease is taken back, SIGKILL
// failover followed by the remote clusters, a remote endpoint with a bad key, the broker
// stopped, and a cluster leaving.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../sandbox/index.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, isthmus, requireRootForTest } from './lib/cli.ts';
import { Clusterset, LONG_LEASE, exited, kill, type GatewayProc } from './lib/clusterset.ts';
import { inNetns, processesNamed } from './lib/netns.ts';

requireRootForTest('test/gateway-wireguard.test.ts');
const cs = new Clusterset();
const gw = new Map<string, GatewayProc>();
// c1's Lease outlives a process restart, so the restart test keeps the same active gateway
const timings = (c: string): readonly string[] => (c === 'c1' ? LONG_LEASE : []);

async function ifindex(netns: string, dev: string): Promise<string> {
  const r = await inNetns(netns, 'cat', [`/sys/class/net/${dev}/ifindex`]);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test.after(async () => {
  await cs.close();
});

test('3 clusters (c3 behind NAT) connect in full mesh; the second gateway of each stays passive', async () => {
  await cs.up({ clusters: 3, gateways: 2, nat: ['c3'], portBase: 26700 });
  for (const c of ['c1', 'c2', 'c3']) gw.set(`${c}-n1`, await cs.startGateway(c, 0, 'wireguard', timings(c)));
  for (const c of ['c1', 'c2', 'c3']) {
    const g = await cs.connected(c, `${c}-n1`, ['c1', 'c2', 'c3'].filter((x) => x !== c));
    assert.is(g.status?.localEndpoint?.behindNAT, c === 'c3');
    if (c !== 'c3') assert.is(g.status?.connections?.find((x) => x.cluster === 'c3')?.natTraversal, true, `${c} uses NAT traversal towards c3`);
  }
  for (const c of ['c1', 'c2', 'c3']) gw.set(`${c}-n2`, await cs.startGateway(c, 1, 'wireguard', timings(c)));
  for (const c of ['c1', 'c2', 'c3']) {
    await eventually(`${c}-n2 passive`, async () => ((await cs.gateway(c, `${c}-n2`).catch(() => undefined))?.status?.haStatus === 'passive' ? true : undefined));
  }
  for (const [a, b] of [['c1', 'c2'], ['c2', 'c3'], ['c3', 'c1']] as const) await cs.pingOk([a, 0], [b, 0]);
});

test('NAT discovery by probe exchange: c3\'s private address is unreachable from c1, c1\'s reachable from c3', async () => {
  const discovery = async (c: string, remote: string): Promise<string | undefined> =>
    (await cs.gateway(c, `${c}-n1`))?.status?.connections?.find((x) => x.cluster === remote)?.natDiscovery;
  // c3's public address answers only once c3's own probe opened the NAT mapping towards c1
  const c1c3 = await eventually('c1 → c3 probed', async () => {
    const d = await discovery('c1', 'c3');
    return d === 'public' || d === 'unanswered' ? d : undefined;
  });
  process.stdout.write(`  NAT discovery c1 → c3: ${c1c3}\n`);
  assert.is((await cs.gateway('c1', 'c1-n1'))?.status?.connections?.find((x) => x.cluster === 'c3')?.usingIP, '172.29.0.13', 'c3 is reached at its NAT router');
  await eventually('c3 → c1 probed: private', async () => ((await discovery('c3', 'c1')) === 'private' ? true : undefined));
  assert.is((await cs.gateway('c3', 'c3-n1'))?.status?.connections?.find((x) => x.cluster === 'c1')?.usingIP, cs.node('c1', 0).wan?.ip);
});

test('Prometheus metrics: active, each connection\'s status and RTT', async () => {
  const text = await cs.metrics('c1', 0);
  assert.match(text, /^isthmus_gateway_active 1$/m);
  assert.match(text, /^isthmus_gateway_connection_status\{remote_cluster="c2",status="connected"\} 1$/m);
  assert.match(text, /^isthmus_gateway_connection_rtt_seconds\{remote_cluster="c3",stat="avg"\} [0-9.e-]+$/m);
  assert.match(await cs.metrics('c1', 1), /^isthmus_gateway_active 0$/m, 'the passive one says so');
});

test('deploy/ manifests pass the apiserver\'s validation (the gateways already run with rbac.yaml\'s rights)', async () => {
  const deploy = join(projectRoot(), 'deploy');
  for (const f of ['gateway/deployment.yaml', 'broker/etcd.yaml', 'broker/broker.yaml']) {
    const out = await cs.kubectl('c1', ['apply', '--dry-run=server', '-f', join(deploy, f)]);
    assert.match(out, /(created|configured) \(server dry run\)/, f);
  }
});

test('secrets stay out of logs and the Gateway status', async () => {
  for (const name of ['c1-n1', 'c2-n1', 'c3-n1']) {
    const key = readFileSync(cs.path(`state-${name}/wireguard.key`), 'utf8').trim();
    assert.ok(key.length > 40);
    assert.not.ok(cs.log(`gateway-${name}`).includes(key), `${name}'s private key in its log`);
    const cluster = name.slice(0, 2);
    assert.not.ok(JSON.stringify(await cs.gateway(cluster, name)).includes(key), `${name}'s private key in its Gateway`);
  }
});

test('a gateway process restart re-creates nothing: same device, same wireguard-go, traffic flows', async () => {
  const n1 = cs.node('c1', 0).netns;
  const before = { index: await ifindex(n1, 'isthmus-wg'), daemons: processesNamed(n1, 'wireguard-go') };
  assert.is(before.daemons.length, 1);
  const old = gw.get('c1-n1');
  assert.ok(old);
  // the data plane does not need the process
  gw.set('c1-n1', await cs.restartGateway(old, 'wireguard', timings('c1'), () => cs.pingOk(['c1', 0], ['c2', 0])));
  await cs.connected('c1', 'c1-n1', ['c2', 'c3']);
  assert.equal({ index: await ifindex(n1, 'isthmus-wg'), daemons: processesNamed(n1, 'wireguard-go') }, before, 'the device and its wireguard-go were adopted, not re-created');
  await cs.pingOk(['c1', 0], ['c3', 0]);
});

test('c3\'s apiserver paused past the renew deadline: its active gateway stands down, takes the Lease back and keeps its cables (same device, same wireguard-go), traffic flows', async () => {
  const n1 = cs.node('c3', 0).netns;
  const before = { index: await ifindex(n1, 'isthmus-wg'), daemons: processesNamed(n1, 'wireguard-go') };
  const standby = gw.get('c3-n2');
  const apiserver = cs.state.processes.find((p) => p.name === 'c3/kube-apiserver');
  assert.ok(standby && apiserver);
  const count = (what: string): number => cs.log('gateway-c3-n1').split('\n').filter((l) => l.includes(what)).length;
  const taken = count('took the Lease back');
  // the lease as c3-n1 last stated it (stretched when the machine is loaded): the pause
  // outlasts its renew deadline (3/4 of it) by 1 s, and ends well before the kept cables would go
  const stated = Number(await cs.kubectl('c3', ['-n', 'isthmus-system', 'get', 'lease', 'isthmus-gateway', '-o', 'jsonpath={.spec.leaseDurationSeconds}']));
  const pauseMs = 0.75 * Math.max(2000, stated * 1000) + 1000;
  kill(standby.proc, 'SIGSTOP'); // the standby must not take over meanwhile
  try {
    process.kill(apiserver.pid, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, pauseMs));
    } finally {
      process.kill(apiserver.pid, 'SIGCONT');
    }
    await eventually('c3-n1 took the Lease back', async () => (count('took the Lease back') > taken ? true : undefined), 30_000);
  } finally {
    kill(standby.proc, 'SIGCONT');
  }
  assert.ok(count('could not renew the lease in time') > 0, 'it stood down');
  await cs.connected('c3', 'c3-n1', ['c1', 'c2']);
  assert.equal({ index: await ifindex(n1, 'isthmus-wg'), daemons: processesNamed(n1, 'wireguard-go') }, before, 'the device and its wireguard-go were kept and adopted');
  await cs.pingOk(['c3', 0], ['c1', 0]);
  await cs.pingOk(['c2', 0], ['c3', 0]);
});

test('a gateway that lost the Lease to the other removes its cables as soon as it reads the new holder (c3-n1 paused, c3-n2 takes over; then back)', async () => {
  const hasDevice = async (netns: string): Promise<boolean> => (await inNetns(netns, 'ip', ['link', 'show', 'isthmus-wg'])).code === 0;
  // hand the Lease from `from` to `to` by pausing `from`'s process until `to` is active; `from`, resumed, removes its cables
  const handOver = async (from: string, to: string, index: number): Promise<void> => {
    const p = gw.get(from);
    assert.ok(p);
    kill(p.proc, 'SIGSTOP');
    try {
      await cs.connected('c3', to, ['c1', 'c2']);
    } finally {
      kill(p.proc, 'SIGCONT');
    }
    await eventually(`${from} removed its cables`, async () => (!(await hasDevice(cs.node('c3', index).netns)) ? true : undefined), 15_000);
    assert.ok(await hasDevice(cs.node('c3', index === 0 ? 1 : 0).netns), `${to} has its device`);
  };
  await handOver('c3-n1', 'c3-n2', 0);
  await cs.pingOk(['c1', 0], ['c3', 1]);
  await handOver('c3-n2', 'c3-n1', 1);
  await cs.pingOk(['c1', 0], ['c3', 0]);
  await cs.pingOk(['c3', 0], ['c2', 0]);
});

test('SIGKILL of c2\'s active gateway: the passive one takes over and c1 and c3 follow', async () => {
  const active = gw.get('c2-n1');
  assert.ok(active);
  const killedAt = Date.now();
  kill(active.proc, 'SIGKILL');
  const flowed = await eventually('c1 → c2-n2 through the cable', async () => ((await cs.ping(['c1', 0], ['c2', 1])).code === 0 ? Date.now() : undefined), 30_000);
  process.stdout.write(`  failover: SIGKILL → first ping answered by c2-n2 after ${flowed - killedAt} ms (coarse: pinged every ~1.5 s; bench/gateway-engine.ts measures it)\n`);
  const g = await cs.connected('c2', 'c2-n2', ['c1', 'c3']);
  assert.is(g.status?.haStatus, 'active');
  const wanIp = cs.node('c2', 1).wan?.ip;
  for (const c of ['c1', 'c3']) {
    await eventually(`${c} follows c2 to c2-n2`, async () => {
      const o = await cs.gateway(c, c === 'c1' ? 'c1-n1' : 'c3-n1');
      const conn = o?.status?.connections?.find((x) => x.cluster === 'c2');
      return conn?.status === 'connected' && conn.usingIP === wanIp ? true : undefined;
    });
  }
  await cs.pingOk(['c3', 0], ['c2', 1]);
});

test('wireguard-go killed on the active gateway: the engine recreates the device and traffic flows again', async () => {
  const netns = cs.node('c2', 1).netns;
  const [pid] = processesNamed(netns, 'wireguard-go');
  assert.ok(pid !== undefined);
  process.kill(pid, 'SIGKILL');
  await eventually('c2-n2 → c1 after wireguard-go was restarted', async () => ((await cs.ping(['c2', 1], ['c1', 0])).code === 0 ? true : undefined), 30_000);
  assert.is(processesNamed(netns, 'wireguard-go').length, 1);
  assert.is(cs.log('gateway-c2-n2').split('\n').filter((l) => l.includes('started wireguard-go')).length, 2, 'the engine started a second wireguard-go');
});

test('a remote endpoint with a bad key: that cable shows the error, the others are untouched', async () => {
  const bad = await cs.badRemote('c1', 'c1-n1', {
    hostname: 'c9-n1', private_ip: '172.29.0.99', ports: [{ name: 'cable', port: 51820, protocol: 'UDP' }],
    cable_driver: 'wireguard', backend_config: { 'public-key': 'not-a-wireguard-key' },
  });
  assert.match(bad.message, /public key/);
  assert.equal(bad.others, { c2: 'connected', c3: 'connected' });
  await cs.connected('c1', 'c1-n1', ['c2', 'c3']);
});

test('the broker stopped: cables carry traffic past the endpoint TTL and are not rebuilt on its return; a gateway that became active meanwhile connects then', async () => {
  gw.set('c2-n1', await cs.startGateway('c2', 0, 'wireguard')); // killed in the failover test: back as the passive one
  await eventually('c2-n1 passive', async () => ((await cs.gateway('c2', 'c2-n1'))?.status?.haStatus === 'passive' ? true : undefined));
  const c3PeerAdds = (): number => cs.log('gateway-c1-n1').split('\n').filter((l) => l.includes('"WireGuard peer added"') && l.includes('"remoteCluster":"c3"')).length;
  const addsBefore = c3PeerAdds();
  cs.stopBroker();
  await new Promise((r) => setTimeout(r, 12_000)); // endpoint leases (10 s) expire in etcd meanwhile
  await cs.pingOk(['c1', 0], ['c2', 1]);
  await cs.pingOk(['c3', 0], ['c1', 0]);
  // c2's active gateway dies while the broker is away: c2-n1 takes the Lease but cannot register
  const active = gw.get('c2-n2');
  assert.ok(active);
  kill(active.proc, 'SIGKILL');
  const failing = await eventually('c2-n1 active, saying it cannot reach the broker', async () => {
    const s = (await cs.gateway('c2', 'c2-n1'))?.status;
    return s?.haStatus === 'active' && /register the cluster/.test(s.statusFailure ?? '') ? s : undefined;
  }, 60_000);
  assert.is(failing.connections?.length ?? 0, 0);
  cs.startBroker();
  await cs.connected('c2', 'c2-n1', ['c1', 'c3']);
  await cs.connected('c1', 'c1-n1', ['c2', 'c3']);
  await cs.connected('c3', 'c3-n1', ['c1', 'c2']);
  await cs.pingOk(['c2', 0], ['c3', 0]);
  await cs.pingOk(['c1', 0], ['c2', 0]);
  assert.is(c3PeerAdds(), addsBefore, "c1's cable to c3 was kept while the broker was away and when it returned");
});

test('a cluster leaves: its cables go in every other cluster', async () => {
  const c3 = ['c3-n1', 'c3-n2'].map((name) => gw.get(name));
  for (const p of c3) if (p !== undefined) kill(p.proc, 'SIGTERM');
  for (const p of c3) if (p !== undefined) await exited(p.proc);
  const left = await isthmus(['leave', '--cluster', 'c3', '--broker', cs.broker, '--broker-tls-dir', cs.path('c3')]);
  assert.is(left.code, 0, left.stderr);
  assert.match(left.stdout, 'c3 left the clusterset');
  await cs.connected('c1', 'c1-n1', ['c2']);
  await cs.connected('c2', 'c2-n1', ['c1']);
  for (const [c, i] of [['c1', 0], ['c2', 0]] as const) {
    const routes = await inNetns(cs.node(c, i).netns, 'ip', ['route', 'show', '10.3.0.0/16']);
    assert.is(routes.stdout.trim(), '', `${c} still routes c3's pod CIDR: ${routes.stdout}`);
  }
  await cs.pingOk(['c1', 0], ['c2', 0]);
  const again = await isthmus(['leave', '--cluster', 'c3', '--broker', cs.broker, '--broker-tls-dir', cs.path('c3')]);
  assert.match(again.stdout, 'was not in the clusterset');
});

test.run();
