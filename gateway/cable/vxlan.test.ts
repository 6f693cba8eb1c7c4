import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, FakeRunner, isIsthmusError, missingDependency, parseCidr, cidrContains, silentLogger, type FakeCall, type RunResult } from '../../core/index.ts';
import type { CableSpec, LocalEndpoint } from './driver.ts';
import { VxlanDriver, planVxlan, tunnelAddress, vtepMac } from './vxlan.ts';


const LOCAL: LocalEndpoint = { clusterId: 'c1', privateIp: '172.31.0.10', port: 4789, cidrs: ['10.1.0.0/16'], secrets: {} };
const spec = (cluster: string, ip: string, cidrs: string[], over: Partial<CableSpec> = {}): CableSpec => ({
  remoteCluster: cluster, remoteIp: ip, remotePort: 4789, remoteCidrs: cidrs, natTraversal: false, backend: { vni: '100' }, ...over,
});
const B = spec('c2', '172.31.0.11', ['10.2.0.0/16']);
const C = spec('c3', '172.31.0.12', ['10.3.0.0/16', '10.103.0.0/16'], { backend: {} });
const T1 = tunnelAddress('c1');
const T2 = tunnelAddress('c2');
const T3 = tunnelAddress('c3');
const PLAN_LOCAL = { ...LOCAL, vni: 100, tunnelCidr: '240.0.0.0/8' };

test('tunnelAddress: deterministic, inside the range, never the network or broadcast address; vtepMac: 02:69 + the address', () => {
  assert.is(tunnelAddress('c1'), tunnelAddress('c1'));
  assert.is.not(T1, T2);
  for (const id of ['c1', 'c2', 'cluster-a', 'x'.repeat(63)]) assert.ok(cidrContains(parseCidr('240.0.0.0/8'), tunnelAddress(id)));
  for (let i = 0; i < 200; i++) {
    const t = tunnelAddress(`k${String(i)}`, '100.64.0.0/30');
    assert.ok(t === '100.64.0.1' || t === '100.64.0.2', t);
  }
  assert.is(vtepMac('240.1.2.254'), '02:69:f0:01:02:fe');
  for (const bad of ['fd00::/64', '10.0.0.0/31']) {
    try {
      tunnelAddress('c1', bad);
      assert.unreachable(bad);
    } catch (err) {
      assert.ok(isIsthmusError(err, ErrorCodes.INVALID_CONFIG));
    }
  }
});

test('planVxlan: per remote its tunnel address, MAC, routes; a port other than the local one is kept per FDB entry', () => {
  const p = planVxlan(PLAN_LOCAL, [C, B, spec('c4', '172.31.0.14', ['10.4.0.0/16'], { remotePort: 8472 })]);
  assert.equal(p.refused, []);
  assert.equal(p.peers.map((x) => [x.remoteCluster, x.remoteIp, x.port, x.tunnelIp, x.mac, x.routes]), [
    ['c2', '172.31.0.11', undefined, T2, vtepMac(T2), ['10.2.0.0/16']],
    ['c3', '172.31.0.12', undefined, T3, vtepMac(T3), ['10.103.0.0/16', '10.3.0.0/16']],
    ['c4', '172.31.0.14', 8472, tunnelAddress('c4'), vtepMac(tunnelAddress('c4')), ['10.4.0.0/16']],
  ]);
});

test('planVxlan: each bad spec is refused with its reason, the others planned', () => {
  const table: [CableSpec, RegExp][] = [
    [spec('v1', '172.31.0.20', ['10.20.0.0/16'], { backend: { vni: '7' } }), /VNI 7/],
    [spec('p1', '172.31.0.21', ['10.21.0.0/16'], { remotePort: 0 }), /port 0 /],
    [spec('i1', 'gw.example', ['10.22.0.0/16']), /not an IP address/],
    [spec('i2', 'fd00::1', ['10.23.0.0/16']), /address family/],
    [spec('r1', '172.31.0.24', []), /no CIDRs/],
    [spec('r2', '172.31.0.25', ['10.1.2.0/24']), /overlaps 10.1.0.0\/16 of this cluster/],
    [spec('r3', '172.31.0.26', ['10.2.128.0/17']), /overlaps 10.2.0.0\/16 of cluster c2/],
    [spec('', '172.31.0.27', ['10.27.0.0/16']), /no remote cluster id/],
  ];
  for (const [bad, why] of table) {
    const p = planVxlan(PLAN_LOCAL, [B, bad]);
    assert.equal(p.peers.map((x) => x.remoteCluster), ['c2'], bad.remoteCluster);
    assert.equal(p.refused.map((r) => r.remoteCluster), [bad.remoteCluster]);
    assert.match(p.refused[0]?.reason ?? '', why, bad.remoteCluster);
  }
  // a /30 tunnel range holds two clusters: the third collides and is refused
  const tiny = planVxlan({ ...PLAN_LOCAL, tunnelCidr: '100.64.0.0/30' }, ['k1', 'k2', 'k3', 'k4'].map((id, i) => spec(id, `172.31.0.${String(30 + i)}`, [`10.${String(30 + i)}.0.0/16`])));
  assert.ok(tiny.refused.length >= 2);
  assert.ok(tiny.refused.every((r) => /tunnel address .* also/.test(r.reason)));
});

/** A host with enough iproute2 for the VXLAN driver: state changes with the commands. */
class FakeHost {
  link: { mtu: number; up: boolean; address: string; id: number; port: number; local: string } | undefined;
  addrs = new Set<string>();
  fdb = new Map<string, { dst: string; port?: number }>();
  neigh = new Map<string, string>();
  routes = new Map<string, string>();
  /** The origin check's table (nft), as last loaded. */
  origin: string | undefined;
  readonly runner = new FakeRunner();

  constructor() {
    this.runner.on((c) => this.#handle(c));
  }

  /** `ip`/`bridge` commands (without the tool) that fail with EINVAL. */
  readonly fail = new Set<string>();

  /** Modifying commands, one line each; a batch as `TOOL -batch [line; line; …]`. */
  modifying(): string[] {
    return this.runner.calls
      .map((c) => (c.args.join(' ') === '-force -batch -' ? `${c.command} -batch [${(c.options.input ?? '').trim().split('\n').join('; ')}]` : [c.command, ...c.args].join(' ')))
      .filter((l) => !/ show\b|^nft list /.test(l));
  }

  /** `TOOL -force -batch -`: each stdin line as its own command, failures reported as iproute2 does. */
  #batch(command: string, input: string): Partial<RunResult> {
    let stderr = '';
    input.split('\n').filter((l) => l !== '').forEach((l, i) => {
      const r = this.#handle({ command, args: l.split(' '), options: {} });
      if ((r.code ?? 0) !== 0) stderr += `${r.stderr ?? ''}Command failed -:${String(i + 1)}\n`;
    });
    return stderr === '' ? {} : { code: 1, stderr };
  }

  #handle(c: FakeCall): Partial<RunResult> {
    const line = c.args.join(' ');
    if (line === '-force -batch -') return this.#batch(c.command, c.options.input ?? '');
    if (this.fail.has(line)) return { code: 2, stderr: 'RTNETLINK answers: Invalid argument\n' };
    const nodev = { code: 1, stderr: 'Device "vx-isthmus" does not exist.\n' };
    const ok = {};
    if (c.command === 'nft') {
      if (this.fail.has(`nft ${line}`)) return { code: 1, stderr: 'Error: Could not process rule: Operation not supported\n' };
      if (line === 'list tables') return ok;
      if (line === 'list table inet isthmus-vxlan') return this.origin === undefined ? { code: 1, stderr: 'Error: No such file or directory\n' } : { stdout: this.origin };
      if (line === '-f -') return (this.origin = (c.options.input ?? '').split('\n').slice(2).join('\n')), ok;
      if (line === 'delete table inet isthmus-vxlan') return this.origin === undefined ? { code: 1, stderr: 'Error: No such file or directory\n' } : ((this.origin = undefined), ok);
    }
    if (c.command === 'bridge') {
      if (line === '-j fdb show dev vx-isthmus') return { stdout: JSON.stringify([...this.fdb].map(([mac, e]) => ({ mac, ...e, flags: ['self'], state: 'permanent' }))) };
      const m = /^fdb replace (\S+) dev vx-isthmus dst (\S+)( port (\d+))? self permanent$/.exec(line);
      if (m?.[1] !== undefined) return this.fdb.set(m[1], { dst: m[2] ?? '', ...(m[4] === undefined ? {} : { port: Number(m[4]) }) }), ok;
      const d = /^fdb del (\S+) dev vx-isthmus dst \S+ self$/.exec(line);
      if (d?.[1] !== undefined) return this.fdb.delete(d[1]), ok;
    }
    if (c.command === 'ip') {
      const l = this.link;
      if (line === '-j -d link show dev vx-isthmus') {
        return l === undefined ? nodev : { stdout: JSON.stringify([{ ifname: 'vx-isthmus', mtu: l.mtu, flags: l.up ? ['UP'] : [], address: l.address, linkinfo: { info_kind: 'vxlan', info_data: { id: l.id, port: l.port, local: l.local, learning: false } } }]) };
      }
      if (line === '-j addr show') return { stdout: JSON.stringify([{ mtu: 1500, addr_info: [{ local: '172.31.0.10' }] }]) };
      if (line === '-j addr show dev vx-isthmus') return { stdout: JSON.stringify([{ addr_info: [...this.addrs].map((a) => ({ local: a.split('/')[0], prefixlen: Number(a.split('/')[1]), scope: 'global' })) }]) };
      let m = /^link add vx-isthmus address (\S+) type vxlan id (\d+) dstport (\d+) local (\S+) nolearning$/.exec(line);
      if (m !== null) return (this.link = { mtu: 1500, up: false, address: m[1] ?? '', id: Number(m[2]), port: Number(m[3]), local: m[4] ?? '' }), ok;
      if (line === 'link del dev vx-isthmus') {
        this.link = undefined;
        this.addrs.clear();
        this.fdb.clear();
        this.neigh.clear();
        this.routes.clear();
        return ok;
      }
      if (l === undefined) return nodev;
      m = /^link set dev vx-isthmus mtu (\d+)$/.exec(line);
      if (m !== null) return (l.mtu = Number(m[1])), ok;
      if (line === 'link set dev vx-isthmus up') return (l.up = true), ok;
      m = /^addr (add|del) (\S+) dev vx-isthmus$/.exec(line);
      if (m?.[2] !== undefined) return m[1] === 'add' ? this.addrs.add(m[2]) : this.addrs.delete(m[2]), ok;
      if (line === '-j neigh show dev vx-isthmus') return { stdout: JSON.stringify([...this.neigh].map(([dst, lladdr]) => ({ dst, lladdr, state: ['PERMANENT'] }))) };
      m = /^neigh replace (\S+) lladdr (\S+) dev vx-isthmus nud permanent$/.exec(line);
      if (m?.[1] !== undefined) return this.neigh.set(m[1], m[2] ?? ''), ok;
      m = /^neigh del (\S+) dev vx-isthmus$/.exec(line);
      if (m?.[1] !== undefined) return this.neigh.delete(m[1]), ok;
      if (line === '-j -4 route show table main dev vx-isthmus') return { stdout: JSON.stringify([...this.routes].map(([dst, gw]) => (gw === '' ? { dst: dst.replace('/32', ''), scope: 'link' } : { dst, gateway: gw, flags: ['onlink'] }))) };
      if (line === '-j -6 route show table main dev vx-isthmus') return { stdout: '[]' };
      m = /^route replace (\S+) (via (\S+) )?dev vx-isthmus/.exec(line);
      if (m?.[1] !== undefined) return this.routes.set(m[1], m[3] ?? ''), ok;
      m = /^route del (\S+) dev vx-isthmus$/.exec(line);
      if (m?.[1] !== undefined) return this.routes.delete(m[1]), ok;
    }
    return { code: 99, stderr: `FakeHost does not know: ${c.command} ${line}` };
  }
}

const driverOn = (host: FakeHost, vni?: number): VxlanDriver => new VxlanDriver({ runner: host.runner, logger: silentLogger() }, vni === undefined ? {} : { vni });

test('preflight: ip and bridge must be installed, nft able to read the ruleset; it changes nothing', async () => {
  const ok = new FakeRunner();
  await new VxlanDriver({ runner: ok, logger: silentLogger() }).preflight();
  assert.equal(ok.lines(), ['ip -V', 'bridge -V', 'nft list tables']);
  const noBridge = new FakeRunner().on((c) => {
    if (c.command === 'bridge') throw missingDependency('bridge');
    return undefined;
  });
  try {
    await new VxlanDriver({ runner: noBridge, logger: silentLogger() }).preflight();
    assert.unreachable('preflight should fail');
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.MISSING_DEPENDENCY), String(err));
    assert.match((err as Error).message, 'iproute2');
  }
});

test('init: creates the device with its MAC, VNI, port, local address, nolearning; MTU − 50; its tunnel /32; up', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  assert.is(d.tunnelIp, T1);
  assert.equal(host.modifying(), [
    `ip link add vx-isthmus address ${vtepMac(T1)} type vxlan id 100 dstport 4789 local 172.31.0.10 nolearning`,
    'ip link set dev vx-isthmus mtu 1450',
    `ip addr add ${T1}/32 dev vx-isthmus`,
    'ip link set dev vx-isthmus up',
  ]);
});

test('init: adopts a matching device without a change; recreates one with another VNI; drops foreign addresses', async () => {
  const host = new FakeHost();
  await driverOn(host).init(LOCAL);
  host.addrs.add('192.0.2.1/24');
  host.runner.calls.length = 0;
  await driverOn(host).init(LOCAL);
  assert.equal(host.modifying(), ['ip addr del 192.0.2.1/24 dev vx-isthmus']);
  host.runner.calls.length = 0;
  await driverOn(host).init(LOCAL);
  assert.equal(host.modifying(), []);
  await driverOn(host, 200).init(LOCAL);
  assert.equal(host.modifying().slice(0, 2), ['ip link del dev vx-isthmus', `ip link add vx-isthmus address ${vtepMac(T1)} type vxlan id 200 dstport 4789 local 172.31.0.10 nolearning`]);
});

test('init: bad VNI, port, address or tunnel range: INVALID_CONFIG', async () => {
  const cases: [VxlanDriver, LocalEndpoint][] = [
    [driverOn(new FakeHost(), 0), LOCAL],
    [driverOn(new FakeHost(), 1 << 24), LOCAL],
    [driverOn(new FakeHost()), { ...LOCAL, port: 70000 }],
    [driverOn(new FakeHost()), { ...LOCAL, privateIp: '1.2.3' }],
    [driverOn(new FakeHost()), { ...LOCAL, clusterId: '' }],
    [new VxlanDriver({ runner: new FakeHost().runner, logger: silentLogger() }, { tunnelCidr: '10.0.0.0/31' }), LOCAL],
  ];
  for (const [d, local] of cases) {
    try {
      await d.init(local);
      assert.unreachable();
    } catch (err) {
      assert.ok(isIsthmusError(err, ErrorCodes.INVALID_CONFIG), String(err));
    }
  }
});

test('set: exact commands the first time (FDB, neighbour, host route, CIDR routes), none the second; removals after adds', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  host.runner.calls.length = 0;
  assert.equal(await d.set([C, B]), { failed: [] });
  assert.equal(host.modifying(), [
    'nft -f -',
    `bridge -batch [fdb replace ${vtepMac(T2)} dev vx-isthmus dst 172.31.0.11 self permanent; fdb replace ${vtepMac(T3)} dev vx-isthmus dst 172.31.0.12 self permanent]`,
    `ip -batch [neigh replace ${T2} lladdr ${vtepMac(T2)} dev vx-isthmus nud permanent; route replace ${T2}/32 dev vx-isthmus proto static; route replace 10.2.0.0/16 via ${T2} dev vx-isthmus onlink proto static; `
      + `neigh replace ${T3} lladdr ${vtepMac(T3)} dev vx-isthmus nud permanent; route replace ${T3}/32 dev vx-isthmus proto static; route replace 10.103.0.0/16 via ${T3} dev vx-isthmus onlink proto static; route replace 10.3.0.0/16 via ${T3} dev vx-isthmus onlink proto static]`,
  ], 'the origin check first, then one bridge -batch for the FDB, one ip -batch for neighbours and routes');
  assert.ok(host.origin?.includes('    ip saddr 172.31.0.11 @th,224,16 0x0800 @th,336,16 0xa02 accept comment "c2"\n'), host.origin);
  assert.ok(host.origin?.includes('    ip saddr 172.31.0.12 @th,224,16 0x0800 @th,336,16 0xa67 accept comment "c3"\n'), host.origin);
  host.runner.calls.length = 0;
  await d.set([B, C]);
  assert.equal(host.modifying(), []);
  // C moves to another gateway address and port; B goes
  await d.set([{ ...C, remoteIp: '172.31.0.99', remotePort: 8472 }]);
  assert.ok(host.origin?.includes('ip saddr 172.31.0.99 ') && !host.origin.includes('172.31.0.11'), 'the origin check follows: C\'s new address, B gone');
  assert.equal(host.modifying(), [
    'nft -f -',
    `bridge -batch [fdb replace ${vtepMac(T3)} dev vx-isthmus dst 172.31.0.99 port 8472 self permanent]`,
    `ip -batch [route del ${T2}/32 dev vx-isthmus; route del 10.2.0.0/16 dev vx-isthmus; neigh del ${T2} dev vx-isthmus]`,
    `bridge -batch [fdb del ${vtepMac(T2)} dev vx-isthmus dst 172.31.0.11 self]`,
  ], 'adds and updates first, then removals');
});

test('set: a failing FDB entry or route fails only its own cable; the next set() retries it', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  const D = spec('c4', '172.31.0.14', ['10.4.0.0/16']);
  host.fail.add(`fdb replace ${vtepMac(T2)} dev vx-isthmus dst 172.31.0.11 self permanent`);
  host.fail.add(`route replace 10.103.0.0/16 via ${T3} dev vx-isthmus onlink proto static`);
  const r = await d.set([B, C, D]);
  assert.equal(r.failed.map((f) => f.remoteCluster), ['c2', 'c3']);
  assert.match(r.failed[0]?.reason ?? '', /^bridge fdb replace .* self permanent: RTNETLINK answers: Invalid argument$/);
  assert.match(r.failed[1]?.reason ?? '', /^ip route replace 10.103.0.0\/16 via .*: RTNETLINK answers: Invalid argument$/);
  assert.not.ok(host.neigh.has(T2), 'no neighbour or route for a cable whose FDB entry failed');
  assert.not.ok(host.routes.has('10.2.0.0/16'));
  assert.ok(host.routes.has('10.4.0.0/16') && host.routes.has('10.3.0.0/16'), 'the other lines of the batches ran');
  assert.equal((await d.connections()).map((s) => [s.remoteCluster, s.state]), [['c2', 'error'], ['c3', 'error'], ['c4', 'connected']]);
  host.fail.clear();
  assert.equal(await d.set([B, C, D]), { failed: [] });
  assert.ok((await d.connections()).every((s) => s.state === 'connected'));
});

test('set: iproute2 stopping a batch early (a line it cannot parse) falls back to line by line, so the other cables are still applied', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  // like iproute2 on an argument it cannot parse: it prints the error and exits, reporting no line
  const bad = `route replace 10.103.0.0/16 via ${T3} dev vx-isthmus onlink proto static`;
  host.runner.calls.length = 0;
  const runner = host.runner;
  const original = runner.run.bind(runner);
  runner.run = async (cmd, args, o) => {
    const input = o?.input ?? '';
    if (cmd === 'ip' && args.join(' ') === '-force -batch -' && input.includes(bad)) {
      const before = input.slice(0, input.indexOf(bad)).trim().split('\n').filter((l) => l !== '');
      for (const l of before) await original('ip', l.split(' '));
      return { code: 255, stdout: '', stderr: 'Error: any valid prefix is expected rather than "10.103.0.0/16".\n' };
    }
    if (cmd === 'ip' && args.join(' ') === bad) return { code: 255, stdout: '', stderr: 'Error: any valid prefix is expected.\n' };
    return original(cmd, args, o);
  };
  const r = await d.set([B, C]);
  assert.equal(r.failed.map((f) => f.remoteCluster), ['c3']);
  assert.match(r.failed[0]?.reason ?? '', /any valid prefix/);
  assert.ok(host.routes.has('10.3.0.0/16'), 'the line after the bad one ran in the fallback');
  assert.ok(host.routes.has('10.2.0.0/16') && host.neigh.has(T2));
});

test('set: 100 remotes take one bridge -batch and one ip -batch; the same again runs nothing; 100 → 0 two batches', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  const specs = Array.from({ length: 100 }, (_, i) => spec(`r${String(i)}`, `10.250.1.${String(i + 1)}`, [`10.${String(i + 10)}.0.0/17`, `10.${String(i + 10)}.128.0/17`]));
  host.runner.calls.length = 0;
  assert.equal(await d.set(specs), { failed: [] });
  assert.equal(host.modifying().map((l) => l.split(' ').slice(0, 3).join(' ')), ['nft -f -', 'bridge -batch [fdb', 'ip -batch [neigh']);
  assert.equal([host.fdb.size, host.neigh.size, host.routes.size], [100, 100, 300]);
  host.runner.calls.length = 0;
  await d.set([...specs].reverse());
  assert.equal(host.modifying(), []);
  await d.set([]);
  assert.equal(host.modifying().map((l) => l.split(' ').slice(0, 3).join(' ')), ['nft -f -', 'ip -batch [route', 'bridge -batch [fdb']);
  assert.equal([host.fdb.size, host.neigh.size, host.routes.size], [0, 0, 0]);
});

test('connections: connected when FDB, neighbour and routes are in place; error naming what is missing, a refused spec, a gone device', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  await d.set([B, C, spec('c9', '172.31.0.19', ['10.9.0.0/16'], { backend: { vni: '9' } })]);
  let st = await d.connections();
  assert.equal(st.map((s) => [s.remoteCluster, s.state]), [['c2', 'connected'], ['c3', 'connected'], ['c9', 'error']]);
  assert.match(st[2]?.message ?? '', /VNI 9/);
  host.fdb.delete(vtepMac(T2));
  host.routes.delete('10.3.0.0/16');
  st = await d.connections();
  assert.equal(st.map((s) => s.message), ['missing FDB entry; the next set() restores it', 'missing route 10.3.0.0/16; the next set() restores it', st[2]?.message]);
  await d.set([B, C]);
  assert.ok((await d.connections()).every((s) => s.state === 'connected'));
  host.link = undefined;
  st = await d.connections();
  assert.ok(st.every((s) => s.state === 'error' && /gone/.test(s.message ?? '')));
  await d.set([B, C]);
  assert.ok(host.link !== undefined, 'set() recreated the device');
  assert.ok((await d.connections()).every((s) => s.state === 'connected'));
});

test('cleanup: deletes the device; safe when nothing exists', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  await d.set([B]);
  host.runner.calls.length = 0;
  await d.cleanup();
  assert.equal(host.modifying(), ['nft delete table inet isthmus-vxlan', 'ip link del dev vx-isthmus']);
  assert.is(host.origin, undefined);
  assert.equal(await d.connections(), []);
  host.runner.calls.length = 0;
  await d.cleanup();
  assert.equal(host.modifying(), ['nft delete table inet isthmus-vxlan'], 'only the delete that finds nothing, which is not an error');
});

test('set: an origin check that cannot be applied fails every cable and removes their entries (no cable without it); the next set that can apply it restores them', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  assert.equal(await d.set([B, C]), { failed: [] });
  host.fail.add('nft -f -');
  const r = await d.set([B, C, { ...B, remoteCluster: 'c4', remoteIp: '172.31.0.14', remoteCidrs: ['10.4.0.0/16'] }]);
  assert.equal(r.failed.map((f) => f.remoteCluster).sort(), ['c2', 'c3', 'c4']);
  assert.match(r.failed[0]?.reason ?? '', /origin check \(nftables table isthmus-vxlan\) could not be applied, so no VXLAN cable is set up: .*Operation not supported/);
  assert.equal([host.fdb.size, host.neigh.size, host.routes.size], [0, 0, 0]);
  assert.ok((await d.connections()).every((s) => s.state === 'error'));
  host.fail.delete('nft -f -');
  assert.equal(await d.set([B, C]), { failed: [] });
  assert.equal([host.fdb.size, host.routes.has('10.2.0.0/16')], [2, true]);
});

test.run();
