import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NetnsRunner, SystemRunner, createCA, createLogger, issueCertificate, type CertAndKey, type CommandRunner, type Logger, type RunOptions, type RunResult,
} from '../core/index.ts';
import type { CableSpec, CableStatus } from '../gateway/cable/driver.ts';
import { IpsecDriver } from '../gateway/cable/ipsec.ts';
import { ViciClient, type ViciMessage } from '../gateway/cable/vici.ts';
import { IpsecLab, type LabNode } from './lib/ipsec-lab.ts';
import { netnsList } from './lib/netns.ts';
import { eventually } from './lib/cli.ts';

/**
 * End-to-end: real charons (one per namespace) driven by IpsecDriver over VICI, in
 * namespaces joined by a bridge in a namespace of their own. Needs root.
 */

if (process.getuid?.() !== 0) {
  test('cable-ipsec e2e needs root (CAP_NET_ADMIN for namespaces)', () => {
    assert.unreachable('run as root: the IPsec e2e test creates network namespaces and runs charon');
  });
  test.run();
} else {
  const logLines: string[] = [];
  const logger: Logger = createLogger({ component: 'test-ipsec', level: 'debug', destination: { write: (s: string) => void logLines.push(s) } });
  const secretsSeen: string[] = [];
  let lab: IpsecLab | undefined;
  let lab2: IpsecLab | undefined;
  let lab3: IpsecLab | undefined;
  const drivers = new Map<string, IpsecDriver>();
  const ca = createCA({ commonName: 'ist-ipsec-e2e-ca', validDays: 1 });
  const rogueCa = createCA({ commonName: 'rogue-ca', validDays: 1 });
  const certs = new Map<string, CertAndKey>();

  function cert(id: string, issuer: CertAndKey = ca): CertAndKey {
    const c = issueCertificate({ ca: issuer, commonName: `gw.${id}`, dnsNames: [`gw.${id}`], usages: ['server', 'client'], validDays: 1 });
    secretsSeen.push(c.keyPem);
    certs.set(id, c);
    return c;
  }

  function specTo(n: LabNode, over: Partial<CableSpec> = {}): CableSpec {
    return { remoteCluster: n.id, remoteIp: n.underlayIp, remotePort: 500, remoteCidrs: [...n.cidrs], natTraversal: false, backend: { 'cert-cn': `gw.${n.id}` }, ...over };
  }

  function meshSpecs(l: IpsecLab, self: string, ids: readonly string[]): CableSpec[] {
    return ids.filter((id) => id !== self).map((id) => specTo(l.node(id)));
  }

  /** Every command a driver ran, per lab node (to check that a resync or an adoption changes nothing). */
  const commands = new Map<string, string[]>();
  class RecordingRunner implements CommandRunner {
    readonly #inner: CommandRunner;
    readonly #log: string[];
    constructor(inner: CommandRunner, log: string[]) {
      this.#inner = inner;
      this.#log = log;
    }
    run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
      this.#log.push([command, ...args].join(' '));
      return this.#inner.run(command, args, options);
    }
  }
  /** The `ip` commands that change something, from position `from` of node n's command log. */
  function ipChanges(n: LabNode, from: number): string[] {
    return (commands.get(n.id) ?? []).slice(from).filter((c) => c.startsWith('ip ') && !c.includes(' -j '));
  }

  async function newDriver(n: LabNode, autoRestart = true, rekey: { ikeRekeyTime?: string; childRekeyTime?: string } = {}): Promise<IpsecDriver> {
    const log = commands.get(n.id) ?? [];
    commands.set(n.id, log);
    return new IpsecDriver({ runner: new RecordingRunner(new NetnsRunner(new SystemRunner(), n.ns), log), logger: logger.child({ cluster: n.id }), dir: n.dir, retryMaxMs: 3_000, autoRestart, ...rekey });
  }

  /** The driver's routes (table 219): destination → source. */
  function ownRoutes(n: LabNode): Map<string, string | undefined> {
    let json = '[]';
    try {
      json = execFileSync('ip', ['-n', n.ns, '-j', 'route', 'show', 'table', '219'], { encoding: 'utf8', stdio: 'pipe' });
    } catch {
      // no such table: no routes
    }
    return new Map((JSON.parse(json) as { dst: string; dev: string; prefsrc?: string }[]).filter((r) => r.dev === 'ipsec0').map((r) => [r.dst, r.prefsrc]));
  }

  /** The routes a gateway of the mesh should have: every other node's CIDRs, from its own address in its first CIDR. */
  function meshRoutes(l: IpsecLab, self: string, ids: readonly string[]): Map<string, string> {
    const me = l.node(self);
    return new Map(ids.filter((id) => id !== self).flatMap((id) => l.node(id).cidrs.map((c): [string, string] => [c, me.cidrIp])));
  }

  function loAddresses(n: LabNode): string {
    return execFileSync('ip', ['-n', n.ns, '-4', '-o', 'address', 'show', 'dev', 'lo'], { encoding: 'utf8' });
  }

  const waitFor = <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 40_000): Promise<T> => eventually(what, f, timeoutMs);


  async function allConnected(d: IpsecDriver, ids: readonly string[]): Promise<readonly CableStatus[]> {
    return waitFor(`cables ${ids.join(',')} connected`, async () => {
      const s = await d.connections();
      return ids.every((id) => s.find((c) => c.remoteCluster === id)?.state === 'connected') ? s : undefined;
    });
  }

  function pingFrom(ns: string, src: string, dst: string): boolean {
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-I', src, dst], { stdio: 'pipe' });
      return true;
    } catch {
      return false;
    }
  }

  /** Gateway to gateway, from and to their addresses in the first cluster CIDR. */
  function ping(from: LabNode, to: LabNode): boolean {
    return pingFrom(from.ns, from.cidrIp, to.cidrIp);
  }

  /** Every pair of the two CIDRs: gateway → gateway, gateway → pod, pod → gateway, pod → pod (second CIDR, forwarded). */
  function pingAll(from: LabNode, to: LabNode): string[] {
    const bad: string[] = [];
    const paths: [string, string, string, string][] = [
      ['gw → gw', from.ns, from.cidrIp, to.cidrIp],
      ['gw → pod', from.ns, from.cidrIp, to.podIp],
      ['pod → gw', from.podNs, from.podIp, to.cidrIp],
      ['pod → pod', from.podNs, from.podIp, to.podIp],
    ];
    for (const [what, ns, src, dst] of paths) if (!pingFrom(ns, src, dst)) bad.push(`${from.id} → ${to.id} ${what} (${src} → ${dst})`);
    return bad;
  }

  async function listSas(n: LabNode): Promise<ViciMessage[]> {
    const v = await ViciClient.connect(`${n.dir}/charon.vici`);
    try {
      return (await v.stream('list-sas', 'list-sa', { noblock: 'yes' })).events;
    } finally {
      v.close();
    }
  }

  function addedConns(n: LabNode): number {
    return readFileSync(`${n.dir}/charon.log`, 'utf8').split('\n').filter((l) => /(added|replaced|updated) vici connection/.test(l)).length;
  }

  const MESH = ['a', 'b', 'c'];

  const tidy = async (): Promise<void> => {
    for (const d of drivers.values()) await d.cleanup().catch(() => undefined);
    drivers.clear();
    await lab?.destroy();
    await lab2?.destroy();
    await lab3?.destroy();
  };
  test.after(tidy);
  // killed by the harness (timeout) or by hand: still leave no charon, namespace or folder
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void tidy().finally(() => process.exit(130)));

  test('full mesh of 3 gateways on certificates, two cluster CIDRs each: every cable connects and carries traffic between all of them', async () => {
    lab = await IpsecLab.create([...MESH, 'd']);
    for (const id of MESH) {
      const n = lab.node(id);
      const c = cert(id);
      const d = await newDriver(n);
      // c gets a CA bundle (as during a CA rotation), with another CA first
      const caPem = id === 'c' ? `${rogueCa.certPem}${ca.certPem}` : ca.certPem;
      await d.init({ clusterId: id, privateIp: n.underlayIp, port: 500, cidrs: [...n.cidrs], secrets: { certPem: c.certPem, keyPem: c.keyPem, caPem } });
      drivers.set(id, d);
    }
    for (const id of MESH) assert.equal(await drivers.get(id)?.set(meshSpecs(lab, id, MESH)), { failed: [] });
    for (const id of MESH) {
      const s = await allConnected(drivers.get(id) as IpsecDriver, MESH.filter((x) => x !== id));
      for (const c of s) assert.ok((c.establishedAt ?? 0) > 0);
    }
    for (const from of MESH) {
      for (const to of MESH) {
        if (from !== to) assert.equal(pingAll(lab.node(from), lab.node(to)), [], `ping ${from} → ${to} through the SA`);
      }
    }
    const a = await drivers.get('a')?.connections();
    const toB = a?.find((c) => c.remoteCluster === 'b');
    assert.ok((toB?.rxBytes ?? 0) > 0 && (toB?.txBytes ?? 0) > 0, 'the SA counted the traffic');
    // the data path: charon needed an address in the second CIDR, which the gateway does not hold: an anchor on lo
    for (const id of MESH) assert.match(loAddresses(lab.node(id)), `inet ${lab.node(id).cidr2.replace('/16', '/32')}`);
    // the driver's routes to every remote CIDR (table 219, rule 219), from the gateway's own address, not the anchor
    for (const id of MESH) assert.equal(ownRoutes(lab.node(id)), meshRoutes(lab, id, MESH), `${id}'s routes`);
    assert.match(execFileSync('ip', ['-n', lab.node('a').ns, 'rule'], { encoding: 'utf8' }), /219:\s+from all lookup 219/);
    // so the gateway's own packets, with no source asked for, leave from its address and match the selectors
    assert.match(execFileSync('ip', ['-n', lab.node('a').ns, 'route', 'get', lab.node('b').podIp], { encoding: 'utf8' }), `dev ipsec0 table 219 src ${lab.node('a').cidrIp}`);
    execFileSync('ip', ['netns', 'exec', lab.node('a').ns, 'ping', '-c', '2', '-i', '0.2', '-W', '2', lab.node('b').podIp], { stdio: 'pipe' });
    // charon's own routes stay in table 220 as the fallback
    assert.match(execFileSync('ip', ['-n', lab.node('a').ns, 'route', 'show', 'table', '220'], { encoding: 'utf8' }), `${lab.node('b').cidr2} dev ipsec0`);
  });

  test('set() twice with the same input loads nothing and re-creates no SA', async () => {
    const l = lab as IpsecLab;
    const before = new Map<string, { conns: number; ids: string }>();
    for (const id of MESH) {
      const d = drivers.get(id) as IpsecDriver;
      before.set(id, { conns: addedConns(l.node(id)), ids: JSON.stringify([...(await d.ikeSaIds())].sort()) });
    }
    const marks = new Map(MESH.map((id) => [id, commands.get(id)?.length ?? 0]));
    for (const id of MESH) assert.equal(await drivers.get(id)?.set(meshSpecs(l, id, MESH)), { failed: [] });
    for (const id of MESH) {
      const d = drivers.get(id) as IpsecDriver;
      assert.equal(ipChanges(l.node(id), marks.get(id) ?? 0), [], `${id}: no ip command that changes anything`);
      assert.is(addedConns(l.node(id)), before.get(id)?.conns, `${id}: no load-conn`);
      assert.is(JSON.stringify([...(await d.ikeSaIds())].sort()), before.get(id)?.ids, `${id}: same IKE_SAs`);
    }
  });

  test('set() cycles through changes: an updated cable is re-established, a removed one goes, the others are untouched', async () => {
    const l = lab as IpsecLab;
    const a = drivers.get('a') as IpsecDriver;
    const ids = async (): Promise<Map<string, string[]>> => a.ikeSaIds();
    const before = await ids();
    const mesh = meshSpecs(l, 'a', MESH);
    // b's cable gets an extra remote CIDR (b narrows it to what it has): reloaded and re-initiated
    const wider = mesh.map((s) => (s.remoteCluster === 'b' ? { ...s, remoteCidrs: [...s.remoteCidrs, '10.99.0.0/16'] } : s));
    assert.equal(await a.set(wider), { failed: [] });
    const afterUpdate = await waitFor('b re-established', async () => {
      const m = await ids();
      const b = m.get('b') ?? [];
      return b.length === 1 && b[0] !== before.get('b')?.[0] && (await a.connections()).every((c) => c.state === 'connected') ? m : undefined;
    });
    assert.equal(afterUpdate.get('c'), before.get('c'), 'c untouched by the update of b');
    assert.ok(ping(l.node('a'), l.node('b')));
    assert.is(ownRoutes(l.node('a')).get('10.99.0.0/16'), l.node('a').cidrIp, 'a route for the new remote CIDR');
    // remove c: its SA and connection go, b stays
    assert.equal(await a.set(wider.filter((s) => s.remoteCluster !== 'c')), { failed: [] });
    const afterRemove = await ids();
    assert.equal(afterRemove.get('c') ?? [], []);
    assert.equal(afterRemove.get('b'), afterUpdate.get('b'));
    assert.equal((await a.connections()).map((c) => c.remoteCluster), ['b']);
    assert.equal([...ownRoutes(l.node('a')).keys()].sort(), [...l.node('b').cidrs, '10.99.0.0/16'].sort(), 'c\'s routes went with it');
    // back to the mesh
    assert.equal(await a.set(mesh), { failed: [] });
    await allConnected(a, ['b', 'c']);
    assert.ok(ping(l.node('c'), l.node('a')));
    assert.equal(ownRoutes(l.node('a')), meshRoutes(l, 'a', MESH));
  });

  test('bad remotes (unknown CA, wrong address, bad spec) fail only their own cable, with the reason', async () => {
    const l = lab as IpsecLab;
    const dn = l.node('d');
    const rogue = cert('d', rogueCa);
    const dd = await newDriver(dn);
    await dd.init({ clusterId: 'd', privateIp: dn.underlayIp, port: 500, cidrs: [...dn.cidrs], secrets: { certPem: rogue.certPem, keyPem: rogue.keyPem, caPem: rogueCa.certPem } });
    drivers.set('d', dd);
    assert.equal(await dd.set([specTo(l.node('a'))]), { failed: [] });
    const a = drivers.get('a') as IpsecDriver;
    const idsBefore = JSON.stringify([...(await a.ikeSaIds())].filter(([k]) => k === 'b' || k === 'c').sort());
    const good = meshSpecs(l, 'a', MESH);
    const r = await a.set([
      ...good,
      specTo(dn),
      { ...specTo(dn), remoteCluster: 'e', remoteIp: '192.168.77.99', backend: { 'cert-cn': 'gw.e' } },
      { ...specTo(dn), remoteCluster: 'f', remoteIp: 'not-an-ip' },
    ]);
    assert.equal(r.failed.map((f) => f.remoteCluster), ['f']);
    assert.match(r.failed[0]?.reason ?? '', 'not an IP address');
    const s = await waitFor('d and e in error', async () => {
      const st = await a.connections();
      const bad = st.filter((c) => c.remoteCluster === 'd' || c.remoteCluster === 'e');
      return bad.length === 2 && bad.every((c) => c.state === 'error') ? st : undefined;
    }, 60_000);
    const byId = new Map(s.map((c) => [c.remoteCluster, c]));
    for (const id of ['d', 'e', 'f']) console.log(`  cable a → ${id}: ${byId.get(id)?.state}: ${byId.get(id)?.message}`);
    assert.match(byId.get('d')?.message ?? '', /AUTHENTICATION_FAILED|trusted|constraint/);
    assert.match(byId.get('e')?.message ?? '', /retransmit|not responding|timeout|timed out/i);
    assert.is(byId.get('f')?.state, 'error');
    assert.is(byId.get('b')?.state, 'connected');
    assert.is(byId.get('c')?.state, 'connected');
    assert.ok(ping(l.node('a'), l.node('b')));
    assert.is(JSON.stringify([...(await a.ikeSaIds())].filter(([k]) => k === 'b' || k === 'c').sort()), idsBefore, 'good cables untouched');
    // back to the mesh: the bad cables go, the good ones stay
    assert.equal(await a.set(good), { failed: [] });
    const after = await a.connections();
    assert.equal(after.map((c) => c.remoteCluster), ['b', 'c']);
    await dd.cleanup();
    drivers.delete('d');
  });

  test('a gateway that claims another cluster\'s CIDR gets no SA for it: the peer narrows the selectors to the CIDRs it was told, so an inner packet from that CIDR has no SA to come through', async () => {
    const l = lab as IpsecLab;
    const dn = l.node('d');
    const cn = l.node('c');
    const own = cert('d');
    const dd = await newDriver(dn);
    // d (compromised, or misconfigured) says it also owns c's second CIDR; a was told d's own CIDRs (the broker's record)
    await dd.init({ clusterId: 'd', privateIp: dn.underlayIp, port: 500, cidrs: [...dn.cidrs, cn.cidr2], secrets: { certPem: own.certPem, keyPem: own.keyPem, caPem: ca.certPem } });
    drivers.set('d', dd);
    const a = drivers.get('a') as IpsecDriver;
    try {
      assert.equal(await dd.set([specTo(l.node('a'))]), { failed: [] });
      assert.equal(await a.set([...meshSpecs(l, 'a', MESH), specTo(dn)]), { failed: [] });
      await allConnected(a, ['b', 'c', 'd']);
      const children = (await listSas(l.node('a'))).flatMap((sa) => Object.entries(sa)).filter(([name]) => name === 'isthmus-d')
        .flatMap(([, ike]) => Object.values(((ike as Record<string, unknown>)['child-sas'] ?? {}) as Record<string, Record<string, unknown>>));
      assert.ok(children.length > 0, 'a has a CHILD_SA with d');
      for (const child of children) assert.equal([...(child['remote-ts'] as string[])].sort(), [...dn.cidrs].sort(), 'a\'s SA with d covers d\'s CIDRs only');
      // (strongSwan drops a decrypted packet that does not match its SA's policy: kernel xfrm and libipsec alike)
      assert.match(loAddresses(dn), `inet ${cn.cidr2.replace('/16', '/32')}`, 'd holds an address in the CIDR it claims');
      assert.not.ok(pingFrom(dn.ns, cn.cidr2.replace('/16', ''), l.node('a').cidrIp), 'the claimed address crosses no cable');
      assert.equal(pingAll(cn, l.node('a')), [], 'c\'s own traffic to a is untouched');
    } finally {
      assert.equal(await a.set(meshSpecs(l, 'a', MESH)), { failed: [] });
      await dd.cleanup();
      drivers.delete('d');
    }
  });

  test('a new driver instance adopts the running charon and its SAs: nothing re-initiated', async () => {
    const l = lab as IpsecLab;
    const old = drivers.get('a') as IpsecDriver;
    const ids = JSON.stringify([...(await old.ikeSaIds())].sort());
    const conns = addedConns(l.node('a'));
    const pid = await old.charon?.pid();
    await old.close();
    const n = l.node('a');
    const c = certs.get('a') as CertAndKey;
    // a driver in another namespace pointed at a's folder refuses to adopt a's charon
    const intruderPsk = 'intruder-psk-never-logged-0123456789';
    secretsSeen.push(intruderPsk);
    const intruder = new IpsecDriver({ runner: new NetnsRunner(new SystemRunner(), l.node('b').ns), logger, dir: n.dir });
    try {
      await intruder.init({ clusterId: 'b', privateIp: l.node('b').underlayIp, port: 500, cidrs: [...l.node('b').cidrs], secrets: { psk: intruderPsk } });
      assert.unreachable('adopting a charon of another namespace');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ISTHMUS_FAILED_PRECONDITION');
      assert.match((err as Error).message, 'another network namespace');
    }
    const fresh = await newDriver(n, false); // the next test restarts charon through init()
    const mark = commands.get('a')?.length ?? 0;
    await fresh.init({ clusterId: 'a', privateIp: n.underlayIp, port: 500, cidrs: [...n.cidrs], secrets: { certPem: c.certPem, keyPem: c.keyPem, caPem: ca.certPem } });
    drivers.set('a', fresh);
    assert.equal(await fresh.set(meshSpecs(l, 'a', MESH)), { failed: [] });
    assert.is(fresh.charonStarts, 0);
    assert.is(await fresh.charon?.pid(), pid);
    await allConnected(fresh, ['b', 'c']);
    assert.is(JSON.stringify([...(await fresh.ikeSaIds())].sort()), ids, 'no SA re-created');
    assert.is(addedConns(n), conns, 'no connection re-loaded');
    assert.is(fresh.ikeUps, 0);
    assert.equal(ipChanges(n, mark), [], 'the anchor and the routes adopted as they are');
    assert.equal(ownRoutes(n), meshRoutes(l, 'a', MESH));
    assert.equal(pingAll(n, l.node('c')), []);
  });

  test('charon killed: connections() says so, init() restarts it and traffic flows again', async () => {
    const l = lab as IpsecLab;
    const a = drivers.get('a') as IpsecDriver;
    const pid = await a.charon?.pid();
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGKILL');
    const down = await waitFor('cables in error', async () => {
      const s = await a.connections();
      return s.every((c) => c.state === 'error') ? s : undefined;
    });
    assert.match(down[0]?.message ?? '', 'charon');
    const n = l.node('a');
    const c = certs.get('a') as CertAndKey;
    await a.init({ clusterId: 'a', privateIp: n.underlayIp, port: 500, cidrs: [...n.cidrs], secrets: { certPem: c.certPem, keyPem: c.keyPem, caPem: ca.certPem } });
    assert.is(a.charonStarts, 1);
    assert.is.not(await a.charon?.pid(), pid);
    assert.equal(ownRoutes(n), meshRoutes(l, 'a', MESH), 'routes back on the new ipsec0');
    await allConnected(a, ['b', 'c']);
    await waitFor('traffic a → b and c → a again, both CIDRs', async () => ([...pingAll(n, l.node('b')), ...pingAll(l.node('c'), n)].length === 0 ? true : undefined));
  });

  test('charon killed under a driver with autoRestart: it restarts charon by itself and traffic flows again', async () => {
    const l = lab as IpsecLab;
    const b = drivers.get('b') as IpsecDriver;
    const pid = await b.charon?.pid();
    assert.ok(pid !== undefined);
    assert.is(b.charonStarts, 1);
    process.kill(pid, 'SIGKILL');
    await waitFor('b restarted charon', async () => (b.charonStarts === 2 ? true : undefined));
    assert.is.not(await b.charon?.pid(), pid);
    const sorted = (m: Map<string, string | undefined>): string => JSON.stringify([...m].sort());
    await waitFor('b\'s routes back on the new ipsec0', async () => (sorted(ownRoutes(l.node('b'))) === sorted(meshRoutes(l, 'b', MESH)) ? true : undefined), 10_000);
    await allConnected(b, ['a', 'c']);
    await waitFor('traffic b → a and c → b again, both CIDRs', async () => ([...pingAll(l.node('b'), l.node('a')), ...pingAll(l.node('c'), l.node('b'))].length === 0 ? true : undefined));
  });

  test('PSK mode with forced UDP encapsulation (NAT-T port 4500); the higher side behind a "NAT" initiates itself', async () => {
    lab2 = await IpsecLab.create(['p', 'q']);
    const l = lab2;
    // q (the responder by cluster id) lets no new inbound UDP in, as behind a NAT: p's initiations are lost
    execFileSync('ip', ['netns', 'exec', l.node('q').ns, 'iptables', '-A', 'INPUT', '-p', 'udp', '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP']);
    const psk = Buffer.from('0123456789abcdef0123456789abcdef-isthmus-e2e-psk').toString('base64');
    secretsSeen.push(psk);
    // a UDP port 500 already taken in the namespace is PORT_IN_USE, not a charon that silently cannot do IKE
    const holder = spawn('ip', ['netns', 'exec', l.node('p').ns, process.execPath, '-e', "require('dgram').createSocket('udp4').bind(500, () => console.log('bound')); setTimeout(() => {}, 60000)"], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((r) => holder.stdout.once('data', () => r()));
    const blocked = await newDriver(l.node('p'));
    try {
      await blocked.init({ clusterId: 'p', privateIp: l.node('p').underlayIp, port: 500, cidrs: [l.node('p').cidr], secrets: { psk } });
      assert.unreachable('init with port 500 taken');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ISTHMUS_PORT_IN_USE', (err as Error).message);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('close', r));
    }
    const ds = new Map<string, IpsecDriver>();
    for (const id of ['p', 'q']) {
      const n = l.node(id);
      const d = await newDriver(n, true, { ikeRekeyTime: '8s', childRekeyTime: '6s' }); // short, to see rekeying
      await d.init({ clusterId: id, privateIp: n.underlayIp, port: 500, cidrs: [...n.cidrs], secrets: { psk } });
      drivers.set(`psk-${id}`, d);
      ds.set(id, d);
    }
    for (const [id, other] of [['p', 'q'], ['q', 'p']] as const) {
      assert.equal(await ds.get(id)?.set([specTo(l.node(other), { natTraversal: true, backend: {} })]), { failed: [] });
    }
    await allConnected(ds.get('p') as IpsecDriver, ['q']);
    assert.equal(pingAll(l.node('p'), l.node('q')), []);
    assert.equal(pingAll(l.node('q'), l.node('p')), []);
    const sas = await listSas(l.node('p'));
    const ike = sas[0]?.['isthmus-q'] as Record<string, unknown> | undefined;
    assert.is(ike?.['remote-port'], '4500', 'IKE floated to the NAT-T port');
    assert.is(ike?.['nat-any'], 'yes', 'NAT-T forced');
    assert.is(ike?.['initiator'], undefined, 'q initiated: p is the responder of this IKE_SA');
    const child = Object.values((ike?.['child-sas'] ?? {}) as Record<string, Record<string, unknown>>)[0];
    assert.is(child?.['encap'], 'yes', 'ESP in UDP');
    // the IKE_SA and CHILD_SA rekey (every 6–8 s here) without the cable going down
    const p = ds.get('p') as IpsecDriver;
    const q = ds.get('q') as IpsecDriver;
    await waitFor('an IKE rekey', async () => (p.ikeRekeys + q.ikeRekeys > 0 ? true : undefined), 30_000);
    assert.ok((await p.connections()).every((c) => c.state === 'connected'));
    // (within seconds: a CHILD_SA rekeys every 6 s here, and kernel-libipsec on a loaded
    // machine may lose the packets of a moment while it switches SAs)
    await waitFor('traffic after rekeying', async () => (ping(l.node('p'), l.node('q')) ? true : undefined), 10_000);
  });

  test('a gateway behind a real NAT (masquerading router): it initiates itself, NAT is detected, traffic flows both ways', async () => {
    lab3 = await IpsecLab.create(['g']);
    const l = lab3;
    const s = await l.addNattedNode('s', 5);
    const g = l.node('g');
    const ds = new Map<string, IpsecDriver>();
    for (const n of [g, s]) {
      const c = cert(`${n.id}3`);
      const d = new IpsecDriver({ runner: new NetnsRunner(new SystemRunner(), n.ns), logger: logger.child({ cluster: n.id }), dir: n.dir, retryMaxMs: 3_000 });
      await d.init({ clusterId: n.id, privateIp: n.underlayIp, port: 500, cidrs: [...n.cidrs], secrets: { certPem: c.certPem, keyPem: c.keyPem, caPem: ca.certPem } });
      drivers.set(`nat-${n.id}`, d);
      ds.set(n.id, d);
    }
    // g (the lower id) reaches s only at its router's address, which lets nothing in: s must initiate
    assert.equal(await ds.get('g')?.set([{ ...specTo(s), remoteIp: s.publicIp ?? '', natTraversal: true, backend: { 'cert-cn': 'gw.s3' } }]), { failed: [] });
    assert.equal(await ds.get('s')?.set([{ ...specTo(g), natTraversal: true, backend: { 'cert-cn': 'gw.g3' } }]), { failed: [] });
    await allConnected(ds.get('s') as IpsecDriver, ['g']);
    await allConnected(ds.get('g') as IpsecDriver, ['s']);
    assert.equal(pingAll(s, g), [], 's → g through the SA');
    assert.equal(pingAll(g, s), [], 'g → s through the SA, into the NAT');
    const ike = (await listSas(s))[0]?.['isthmus-g'] as Record<string, unknown> | undefined;
    assert.is(ike?.['nat-local'], 'yes', 's sees itself behind NAT');
    assert.is(ike?.['initiator'], 'yes', 's initiated');
  });

  test('cleanup leaves no process, namespace or file; no secret in any log', async () => {
    const dirs = [...(lab?.nodes ?? []), ...(lab2?.nodes ?? []), ...(lab3?.nodes ?? [])].map((n) => n.dir);
    const charonLogs = dirs.map((d) => (existsSync(`${d}/charon.log`) ? readFileSync(`${d}/charon.log`, 'utf8') : '')).join('\n');
    for (const d of drivers.values()) await d.cleanup();
    drivers.clear();
    for (const dir of dirs) assert.not.ok(existsSync(dir), `${dir} removed`);
    // the anchors, the rule and the routes of the driver are gone; the lab's own address stays
    for (const l of [lab, lab2, lab3]) {
      for (const n of l?.nodes ?? []) {
        assert.not.match(loAddresses(n), `inet ${n.cidr2.replace('/16', '/32')}`, `${n.id}: anchor removed`);
        assert.match(loAddresses(n), `inet ${n.cidrIp}/32`);
        assert.equal(ownRoutes(n).size, 0, `${n.id}: routes removed`);
        assert.not.match(execFileSync('ip', ['-n', n.ns, 'rule'], { encoding: 'utf8' }), 'lookup 219', `${n.id}: rule removed`);
      }
    }
    const tags = [lab?.tag, lab2?.tag, lab3?.tag];
    for (const l of [lab, lab2, lab3]) {
      for (const n of l?.nodes ?? []) {
        assert.is(execFileSync('ip', ['netns', 'pids', n.ns], { encoding: 'utf8' }).trim(), '', `no process left in ${n.ns}`);
      }
    }
    await lab?.destroy();
    await lab2?.destroy();
    await lab3?.destroy();
    const left = netnsList().filter((ns) => tags.some((t) => t !== undefined && ns.startsWith(t)));
    assert.equal(left, []);
    assert.not.ok(existsSync(lab?.root ?? '/nonexistent'));
    lab = undefined;
    lab2 = undefined;
    lab3 = undefined;
    // secrets: no private key or PSK in the driver's logs or charon's
    const all = `${logLines.join('')}\n${charonLogs}`;
    assert.ok(logLines.length > 20, 'the driver logged');
    assert.not.match(all, 'PRIVATE KEY');
    for (const s of secretsSeen) {
      const body = s.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
      const pieces = body.length > 100 ? [body.slice(40, 80), body.slice(-60, -20)] : [body];
      for (const piece of pieces) assert.not.ok(piece.length >= 16 && all.includes(piece), 'a secret appeared in a log');
    }
  });

  test.run();
}
