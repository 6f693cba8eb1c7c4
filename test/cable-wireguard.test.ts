// E2E (root): the WireGuard cable driver on real namespaces with real wireguard-go (this
// machine's kernel has no WireGuard module; the driver probes and falls back). Three gateway
// namespaces ist-wg-<random>-a/b/c on a bridge in their own hub namespace; cluster CIDRs
// 10.201.N.0/24 with 10.201.N.1 on lo; traffic is ping -I from one CIDR address to another.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, SystemRunner, isIsthmusError, type CommandRunner, type RunOptions, type RunResult } from '../core/index.ts';
import { Wg } from '../gateway/cable/wg.ts';
import { WireGuardDriver, readRoutes } from '../gateway/cable/wireguard.ts';
import {
  RecordingRunner, abc, capturingLogger, createLab, must, stateOf, isReadOnly, labDriver, meshSpecs, ping, waitPing, type Lab, type LabDriver,
} from '../bench/cables.ts';
import { eventually, requireRootForTest } from './lib/cli.ts';
import { processesNamed } from './lib/netns.ts';

requireRootForTest('test/cable-wireguard.test.ts');

let lab: Lab | undefined;
const drivers: LabDriver[] = [];
const { logger, logs } = capturingLogger();
const [A, B, C] = abc(drivers);
const wgOf = (d: LabDriver): Wg => new Wg(d.node.runner, { socketDir: `${must(lab, 'lab').dir}/${d.node.name}` });

const wireguardGoPids = (ns: string): number[] => processesNamed(ns, 'wireguard-go');


test.before(async () => {
  lab = await createLab('wg', 3);
  for (const node of lab.nodes) drivers.push(labDriver('wireguard', lab, node, { logger, port: 40000 + Math.floor(Math.random() * 20000) }));
});

test.after(async () => {
  for (const d of drivers) await d.driver.cleanup().catch(() => undefined);
  await lab?.destroy();
});

test('full mesh of three: traffic between every pair of cluster CIDRs, every cable connected', async () => {
  for (const d of drivers) await d.driver.init(d.local);
  assert.is((A().driver as WireGuardDriver).implementation, 'userspace', 'no kernel module here: wireguard-go');
  for (const d of drivers) {
    const r = await d.driver.set(meshSpecs(drivers, d));
    assert.equal(r.failed, []);
  }
  for (const from of drivers) for (const to of drivers) if (from !== to) await waitPing(from.node, to.node);
  for (const d of drivers) {
    const st = await d.driver.connections();
    assert.is(st.length, 2);
    for (const s of st) {
      assert.is(s.state, 'connected', `${d.node.name} → ${s.remoteCluster}: ${s.message ?? ''}`);
      assert.ok((s.rxBytes ?? 0) > 0 && (s.txBytes ?? 0) > 0);
      assert.type(s.establishedAt, 'number');
    }
  }
  const dump = must(await wgOf(A()).showDump('isthmus-wg'), 'dump');
  assert.is(dump.interface.publicKey, A().backend['public-key']);
  assert.is(dump.interface.listenPort, A().local.port);
  assert.equal(dump.peers.map((p) => p.allowedIps.join(',')).sort(), ['10.201.2.0/24', '10.201.3.0/24']);
  const toB = must(dump.peers.find((p) => p.publicKey === B().backend['public-key']), 'peer b');
  assert.is(toB.endpoint, `${B().node.ip}:${String(B().local.port)}`);
  assert.is(toB.persistentKeepalive, undefined, 'no NAT: no keepalive');
  const mtu = await A().node.runner.run('cat', ['/sys/class/net/isthmus-wg/mtu']);
  assert.is(mtu.stdout.trim(), '1440', 'veth MTU 1500 − 60 for an IPv4 underlay');
});

test('set() twice with the same input runs no modifying command the second time', async () => {
  const rec = new RecordingRunner(A().node.runner);
  const again = labDriver('wireguard', must(lab, 'lab'), A().node, { runner: rec, logger, port: A().local.port, privateKey: A().local.secrets['privateKey'] ?? '' });
  // same identity, fresh instance; first prime it, then count
  await again.driver.init(A().local);
  await again.driver.set(meshSpecs(drivers, A()));
  rec.lines.length = 0;
  await again.driver.set(meshSpecs(drivers, A()));
  assert.ok(rec.lines.length > 0, 'it reads the state');
  assert.equal(rec.lines.filter((l) => !isReadOnly(l)), []);
  rec.lines.length = 0;
  await A().driver.set(meshSpecs(drivers, A()));
  await A().driver.set(meshSpecs(drivers, A()));
  await waitPing(A().node, B().node);
});

test('a bad remote key or port fails only that cable; connections() shows the reason', async () => {
  const good = meshSpecs(drivers, A());
  const badKey = good.map((s) => (s.remoteCluster === C().local.clusterId ? { ...s, backend: { 'public-key': 'not-a-key' } } : s));
  const r1 = await A().driver.set(badKey);
  assert.is(r1.failed.length, 1);
  assert.is(r1.failed[0]?.remoteCluster, C().local.clusterId);
  assert.match(r1.failed[0]?.reason ?? '', /public key/);
  const st = await A().driver.connections();
  assert.is(stateOf(st, C().local.clusterId).state, 'error');
  assert.match(stateOf(st, C().local.clusterId).message ?? '', /public key/);
  assert.is(stateOf(st, B().local.clusterId).state, 'connected');
  await waitPing(A().node, B().node);
  assert.not.ok(await ping(A().node, C().node), 'the refused cable is not applied');

  const badPort = good.map((s) => (s.remoteCluster === C().local.clusterId ? { ...s, remotePort: 70000 } : s));
  const r2 = await A().driver.set(badPort);
  assert.equal(r2.failed.map((f) => f.remoteCluster), [C().local.clusterId]);
  assert.match(r2.failed[0]?.reason ?? '', /port 70000/);
  const badIp = good.map((s) => (s.remoteCluster === C().local.clusterId ? { ...s, remoteIp: '300.1.1.1' } : s));
  const r3 = await A().driver.set(badIp);
  assert.match(r3.failed[0]?.reason ?? '', /not an IP address/);
  await waitPing(A().node, B().node);

  assert.equal((await A().driver.set(good)).failed, []);
  await waitPing(A().node, C().node);
});

test('natTraversal: persistent keepalive 25 on that peer only, traffic still flows', async () => {
  const cId = C().local.clusterId;
  const nat = meshSpecs(drivers, A()).map((s) => (s.remoteCluster === cId ? { ...s, natTraversal: true } : s));
  assert.equal((await A().driver.set(nat)).failed, []);
  const dump = must(await wgOf(A()).showDump('isthmus-wg'), 'dump');
  assert.equal(dump.peers.map((p) => [p.publicKey === C().backend['public-key'] ? 'c' : 'b', p.persistentKeepalive]).sort(), [['b', undefined], ['c', 25]]);
  await waitPing(A().node, C().node);
  assert.equal((await A().driver.set(meshSpecs(drivers, A()))).failed, []);
  assert.is(must(await wgOf(A()).showDump('isthmus-wg'), 'dump').peers.find((p) => p.publicKey === C().backend['public-key'])?.persistentKeepalive, undefined);
});

test('removing a remote removes its peer and routes only', async () => {
  const withoutC = meshSpecs(drivers, A()).filter((s) => s.remoteCluster !== C().local.clusterId);
  assert.equal((await A().driver.set(withoutC)).failed, []);
  const dump = must(await wgOf(A()).showDump('isthmus-wg'), 'dump');
  assert.equal(dump.peers.map((p) => p.publicKey), [B().backend['public-key']]);
  const routes = await readRoutes(A().node.runner, 'isthmus-wg');
  assert.equal([...routes.keys()], ['10.201.2.0/24']);
  assert.equal((await A().driver.connections()).map((s) => s.remoteCluster), [B().local.clusterId]);
  await waitPing(A().node, B().node);
  assert.not.ok(await ping(A().node, C().node));
  assert.equal((await A().driver.set(meshSpecs(drivers, A()))).failed, []);
  await waitPing(A().node, C().node);
});

test('wireguard-go killed: connections() says so, init() restarts it and re-applies the cables', async () => {
  const pids = wireguardGoPids(A().node.ns);
  assert.is(pids.length, 1);
  process.kill(must(pids[0], 'pid'), 'SIGKILL');
  await eventually('the device to vanish', async () => ((await wgOf(A()).showDump('isthmus-wg')) === undefined ? true : undefined));
  const st = await A().driver.connections();
  assert.ok(st.every((s) => s.state === 'error' && /gone/.test(s.message ?? '')));
  await A().driver.init(A().local);
  assert.is(wireguardGoPids(A().node.ns).length, 1);
  await waitPing(A().node, B().node);
  await waitPing(A().node, C().node);
  await waitPing(C().node, A().node);
});

test('a new driver instance on the same namespace (process restart) adopts the device: nothing created, traffic flows', async () => {
  const rec = new RecordingRunner(B().node.runner);
  const restarted = labDriver('wireguard', must(lab, 'lab'), B().node, { runner: rec, logger, port: B().local.port, privateKey: B().local.secrets['privateKey'] ?? '' });
  const before = wireguardGoPids(B().node.ns);
  await restarted.driver.init(B().local);
  const r = await restarted.driver.set(meshSpecs(drivers, B()));
  assert.equal(r.failed, []);
  assert.equal(rec.lines.filter((l) => /\blink add\b|wireguard-go/.test(l)), [], 'no interface created, no wireguard-go started');
  assert.equal(rec.lines.filter((l) => !isReadOnly(l)), [], 'nothing changed at all');
  assert.equal(wireguardGoPids(B().node.ns), before);
  await waitPing(B().node, A().node);
  await waitPing(B().node, C().node);
  const st = await restarted.driver.connections();
  assert.ok(st.every((s) => s.state === 'connected'));
});

test('wg missing: init() fails with MISSING_DEPENDENCY naming wireguard-tools', async () => {
  const noWg: CommandRunner = {
    run: (cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> =>
      A().node.runner.run(cmd, args, { ...options, env: { ...options?.env, PATH: '/usr/sbin:/sbin' } }),
  };
  const d = new WireGuardDriver({ runner: noWg, logger }, { device: 'isthmus-wgx' });
  try {
    await d.init(A().local);
    assert.unreachable('init should fail');
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.MISSING_DEPENDENCY), String(err));
    assert.match((err as Error).message, /wireguard-tools/);
  }
});

test('the private keys never appear in the log output', () => {
  const all = logs.join('');
  assert.ok(logs.length > 5, 'the drivers logged');
  assert.match(all, /adopted the existing WireGuard device/);
  for (const d of drivers) assert.not.ok(all.includes(d.local.secrets['privateKey'] ?? '<none>'), `private key of ${d.node.name} in logs`);
});

test('cleanup() leaves no device, route, socket or wireguard-go behind', async () => {
  for (const d of drivers) await d.driver.cleanup();
  for (const d of drivers) {
    const link = await d.node.runner.run('ip', ['link', 'show', 'dev', 'isthmus-wg'], { allowFailure: true });
    assert.is.not(link.code, 0);
    assert.equal(wireguardGoPids(d.node.ns), []);
    assert.equal([...(await readRoutes(d.node.runner, 'isthmus-wg')).keys()], []);
    assert.is(await wgOf(d).showDump('isthmus-wg'), undefined);
    const sock = await new SystemRunner().run('ls', [`${must(lab, 'lab').dir}/${d.node.name}`], { allowFailure: true });
    assert.is(sock.stdout.trim(), '');
    assert.not.ok(await ping(d.node, must(drivers.find((x) => x !== d), 'other').node));
  }
  await A().driver.cleanup(); // safe when nothing exists
});

test.run();
