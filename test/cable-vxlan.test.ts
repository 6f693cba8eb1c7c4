// E2E (root): the VXLAN cable driver on real namespaces with the kernel's VXLAN. Three
// gateway namespaces ist-vx-<random>-a/b/c on a bridge in their own hub namespace; cluster
// CIDRs 10.201.N.0/24 with 10.201.N.1 on lo; traffic is ping -I from one CIDR address to another.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VxlanDriver, tunnelAddress, vtepMac } from '../gateway/cable/vxlan.ts';
import { VxlanOrigin } from '../gateway/cable/vxlan-origin.ts';
import { readLink, readRoutes } from '../gateway/cable/wireguard.ts';
import {
  RecordingRunner, abc, capturingLogger, createLab, must, stateOf, isReadOnly, labDriver, meshSpecs, ping, waitPing, type Lab, type LabDriver,
} from '../bench/cables.ts';
import { requireRootForTest } from './lib/cli.ts';

requireRootForTest('test/cable-vxlan.test.ts');

let lab: Lab | undefined;
const drivers: LabDriver[] = [];
const { logger, logs } = capturingLogger();
const [A, B, C] = abc(drivers);

async function fdbOf(d: LabDriver): Promise<{ mac: string; dst: string }[]> {
  const r = await d.node.runner.run('bridge', ['-j', 'fdb', 'show', 'dev', 'vx-isthmus']);
  return (JSON.parse(r.stdout) as { mac: string; dst?: string }[]).filter((e) => e.dst !== undefined).map((e) => ({ mac: e.mac, dst: e.dst ?? '' }));
}

test.before(async () => {
  lab = await createLab('vx', 3);
  const port = 30000 + Math.floor(Math.random() * 20000);
  for (const node of lab.nodes) drivers.push(labDriver('vxlan', lab, node, { logger, port }));
});

test.after(async () => {
  for (const d of drivers) await d.driver.cleanup().catch(() => undefined);
  await lab?.destroy();
});

test('full mesh of three: traffic between every pair of cluster CIDRs, every cable connected, no ARP', async () => {
  for (const d of drivers) await d.driver.init(d.local);
  for (const d of drivers) assert.equal((await d.driver.set(meshSpecs(drivers, d))).failed, []);
  for (const from of drivers) for (const to of drivers) if (from !== to) await waitPing(from.node, to.node);
  for (const d of drivers) {
    const st = await d.driver.connections();
    assert.equal(st.map((s) => s.state), ['connected', 'connected']);
  }
  // one unicast FDB entry per remote gateway, pointing at its underlay address
  const fdb = await fdbOf(A());
  const expect = [B(), C()].map((d) => ({ mac: vtepMac(tunnelAddress(d.local.clusterId)), dst: d.node.ip }));
  assert.equal(fdb.sort((x, y) => x.mac.localeCompare(y.mac)), expect.sort((x, y) => x.mac.localeCompare(y.mac)));
  // neighbours are the static ones only: nothing was learnt by ARP
  const neigh = JSON.parse((await A().node.runner.run('ip', ['-j', 'neigh', 'show', 'dev', 'vx-isthmus'])).stdout) as { dst: string; state: string[] }[];
  assert.ok(neigh.length === 2 && neigh.every((n) => n.state.includes('PERMANENT')), JSON.stringify(neigh));
  const routes = await readRoutes(A().node.runner, 'vx-isthmus');
  assert.is(routes.get('10.201.2.0/24'), tunnelAddress(B().local.clusterId));
  const link = must(await readLink(A().node.runner, 'vx-isthmus'), 'link');
  assert.is(link.mtu, 1450, 'veth MTU 1500 − 50 for an IPv4 underlay');
});

test('set() twice with the same input runs no modifying command the second time', async () => {
  const rec = new RecordingRunner(A().node.runner);
  const again = new VxlanDriver({ runner: rec, logger });
  await again.init(A().local);
  await again.set(meshSpecs(drivers, A()));
  rec.lines.length = 0;
  await again.set(meshSpecs(drivers, A()));
  assert.ok(rec.lines.length > 0);
  assert.equal(rec.lines.filter((l) => !isReadOnly(l)), []);
  await waitPing(A().node, B().node);
});

test('a bad remote port, address or VNI fails only that cable; connections() shows the reason', async () => {
  const good = meshSpecs(drivers, A());
  const cId = C().local.clusterId;
  const r1 = await A().driver.set(good.map((s) => (s.remoteCluster === cId ? { ...s, remotePort: 0 } : s)));
  assert.equal(r1.failed.map((f) => f.remoteCluster), [cId]);
  assert.match(r1.failed[0]?.reason ?? '', /port 0/);
  const st = await A().driver.connections();
  assert.is(stateOf(st, cId).state, 'error');
  assert.match(stateOf(st, cId).message ?? '', /port 0/);
  assert.is(stateOf(st, B().local.clusterId).state, 'connected');
  await waitPing(A().node, B().node);
  assert.not.ok(await ping(A().node, C().node));

  const r2 = await A().driver.set(good.map((s) => (s.remoteCluster === cId ? { ...s, remoteIp: 'gateway.example' } : s)));
  assert.match(r2.failed[0]?.reason ?? '', /not an IP address/);
  const r3 = await A().driver.set(good.map((s) => (s.remoteCluster === cId ? { ...s, backend: { vni: '7' } } : s)));
  assert.match(r3.failed[0]?.reason ?? '', /VNI 7/);
  await waitPing(A().node, B().node);
  assert.equal((await A().driver.set(good)).failed, []);
  await waitPing(A().node, C().node);
});

test('removing a remote removes its FDB entry, neighbour and routes only', async () => {
  const cId = C().local.clusterId;
  assert.equal((await A().driver.set(meshSpecs(drivers, A()).filter((s) => s.remoteCluster !== cId))).failed, []);
  assert.equal((await fdbOf(A())).map((e) => e.dst), [B().node.ip]);
  const routes = await readRoutes(A().node.runner, 'vx-isthmus');
  assert.equal([...routes.keys()].sort(), ['10.201.2.0/24', `${tunnelAddress(B().local.clusterId)}/32`].sort());
  await waitPing(A().node, B().node);
  assert.not.ok(await ping(A().node, C().node));
  assert.equal((await A().driver.set(meshSpecs(drivers, A()))).failed, []);
  await waitPing(A().node, C().node);
});

test('a deleted device is recreated by the next set()', async () => {
  await A().node.runner.run('ip', ['link', 'del', 'dev', 'vx-isthmus']);
  const st = await A().driver.connections();
  assert.ok(st.every((s) => s.state === 'error' && /gone/.test(s.message ?? '')));
  assert.equal((await A().driver.set(meshSpecs(drivers, A()))).failed, []);
  await waitPing(A().node, B().node);
  await waitPing(C().node, A().node);
});

test('a new driver instance on the same namespace (process restart) adopts the device: nothing created, traffic flows', async () => {
  const rec = new RecordingRunner(B().node.runner);
  const restarted = new VxlanDriver({ runner: rec, logger });
  await restarted.init(B().local);
  assert.equal((await restarted.set(meshSpecs(drivers, B()))).failed, []);
  assert.equal(rec.lines.filter((l) => /\blink add\b/.test(l)), [], 'no interface created');
  assert.equal(rec.lines.filter((l) => !isReadOnly(l)), [], 'nothing changed at all');
  await waitPing(B().node, A().node);
  await waitPing(B().node, C().node);
  assert.ok((await restarted.connections()).every((s) => s.state === 'connected'));
  assert.match(logs.join(''), /adopted the existing VXLAN device/);
});

test('a device with another VNI is recreated, not adopted', async () => {
  const rec = new RecordingRunner(C().node.runner);
  const other = new VxlanDriver({ runner: rec, logger }, { vni: 200 });
  await other.init(C().local);
  assert.is(rec.lines.filter((l) => /\blink add\b/.test(l)).length, 1);
  const info = JSON.parse((await C().node.runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', 'vx-isthmus'])).stdout) as { linkinfo: { info_data: { id: number } } }[];
  assert.is(info[0]?.linkinfo.info_data.id, 200);
  // back to VNI 100 for C
  await C().driver.init(C().local);
  assert.equal((await C().driver.set(meshSpecs(drivers, C()))).failed, []);
  await waitPing(C().node, A().node);
});

async function vxRx(d: LabDriver): Promise<number> {
  const j = JSON.parse((await d.node.runner.run('ip', ['-j', '-s', 'link', 'show', 'dev', 'vx-isthmus'])).stdout) as { stats64?: { rx?: { packets?: number } } }[];
  return j[0]?.stats64?.rx?.packets ?? 0;
}

test('the origin check: C cannot send with an address of B\'s CIDR (dropped before decapsulation, counted); without the check the same packets get in; C\'s own addresses pass', async () => {
  for (const d of drivers) assert.equal((await d.driver.set(meshSpecs(drivers, d))).failed, []);
  await waitPing(C().node, A().node);
  const origin = new VxlanOrigin(A().node.runner);
  const spoofed = '10.201.2.99'; // inside B's CIDR, put on C
  await C().node.runner.run('ip', ['addr', 'add', `${spoofed}/32`, 'dev', 'lo']);
  const pingAsB = async (): Promise<boolean> => (await C().node.runner.run('ping', ['-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', '-I', spoofed, A().node.hostIp], { allowFailure: true })).code === 0;
  try {
    const [drop0, rx0] = [await origin.dropped(), await vxRx(A())];
    assert.not.ok(await pingAsB());
    assert.ok(await origin.dropped() >= drop0 + 3, `A's origin check counted ${String(await origin.dropped() - drop0)} drops`);
    assert.is(await vxRx(A()), rx0, 'nothing of it reached A\'s VXLAN device');
    // the same packets without the check: they reach A's device (A answers towards B, so the ping still fails)
    await origin.cleanup();
    const rx1 = await vxRx(A());
    await pingAsB();
    assert.ok(await vxRx(A()) >= rx1 + 3, 'without the check C\'s packets claiming B\'s address get in');
    // set() puts it back; C's own address still passes
    assert.equal((await A().driver.set(meshSpecs(drivers, A()))).failed, []);
    assert.match((await A().node.runner.run('nft', ['list', 'table', 'inet', 'isthmus-vxlan'])).stdout, /isthmus vxlan-origin/);
    await waitPing(C().node, A().node);
    const drop2 = await origin.dropped();
    assert.not.ok(await pingAsB());
    assert.ok(await origin.dropped() >= drop2 + 3);
  } finally {
    await C().node.runner.run('ip', ['addr', 'del', `${spoofed}/32`, 'dev', 'lo'], { allowFailure: true });
  }
});

test('the origin check: a gateway that is not a remote of A (no cable to it) gets nothing in', async () => {
  assert.equal((await A().driver.set(meshSpecs(drivers, A()).filter((s) => s.remoteCluster !== C().local.clusterId))).failed, []);
  const origin = new VxlanOrigin(A().node.runner);
  const [drop0, rx0] = [await origin.dropped(), await vxRx(A())];
  assert.not.ok(await ping(C().node, A().node));
  assert.ok(await origin.dropped() > drop0, 'C\'s packets dropped by A\'s check');
  assert.is(await vxRx(A()), rx0);
  assert.equal((await A().driver.set(meshSpecs(drivers, A()))).failed, []);
  await waitPing(C().node, A().node);
});

test('cleanup() leaves no device, route, neighbour or FDB entry behind', async () => {
  for (const d of drivers) await d.driver.cleanup();
  for (const d of drivers) {
    assert.is(await readLink(d.node.runner, 'vx-isthmus'), undefined);
    assert.equal([...(await readRoutes(d.node.runner, 'vx-isthmus')).keys()], []);
    const routes = (await d.node.runner.run('ip', ['route', 'show'])).stdout;
    assert.not.match(routes, /10\.201\.|240\./);
    assert.not.ok(await ping(d.node, must(drivers.find((x) => x !== d), 'other').node));
    assert.is((await d.node.runner.run('nft', ['list', 'table', 'inet', 'isthmus-vxlan'], { allowFailure: true })).code, 1, 'the origin check table is gone');
  }
  await A().driver.cleanup(); // safe when nothing exists
});

test.run();
