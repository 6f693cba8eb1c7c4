import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ErrorCodes, FakeClock, FakeRunner, isIsthmusError, silentLogger, wireguardKeyPair, wireguardPublicKeyOf, type CommandRunner, type FakeCall, type RunResult,
} from '../../core/index.ts';
import type { CableSpec, LocalEndpoint } from './driver.ts';
import { ISTHMUS_WIREGUARD_GO, WireGuardDriver, planWireGuard } from './wireguard.ts';


const me = wireguardKeyPair();
const kb = wireguardKeyPair().publicKey;
const kc = wireguardKeyPair().publicKey;
const LOCAL: LocalEndpoint = { clusterId: 'c1', privateIp: '172.31.0.10', port: 51820, cidrs: ['10.1.0.0/16'], secrets: { privateKey: me.privateKey } };
const spec = (cluster: string, key: string, over: Partial<CableSpec> = {}): CableSpec => ({
  remoteCluster: cluster, remoteIp: '172.31.0.11', remotePort: 51820, remoteCidrs: ['10.2.0.0/16'], natTraversal: false, backend: { 'public-key': key }, ...over,
});
const B = spec('c2', kb);
const C = spec('c3', kc, { remoteIp: '172.31.0.12', remoteCidrs: ['10.3.0.0/16', '10.103.0.0/16'], natTraversal: true });

// ---- the pure plan ----

test('planWireGuard: one peer per cable, keepalive 25 only with NAT, CIDRs normalized and sorted', () => {
  const p = planWireGuard({ publicKey: me.publicKey, cidrs: LOCAL.cidrs }, [C, B]);
  assert.equal(p.refused, []);
  assert.equal(p.peers.map((x) => x.remoteCluster), ['c2', 'c3']);
  assert.equal(p.peers[0]?.peer, { publicKey: kb, endpoint: { ip: '172.31.0.11', port: 51820 }, allowedIps: ['10.2.0.0/16'] });
  assert.equal(p.peers[1]?.peer, { publicKey: kc, endpoint: { ip: '172.31.0.12', port: 51820 }, allowedIps: ['10.103.0.0/16', '10.3.0.0/16'], persistentKeepalive: 25 });
  const v6 = planWireGuard({ publicKey: me.publicKey, cidrs: [] }, [spec('c9', kb, { remoteIp: 'FD00:0::1', remoteCidrs: ['fd01:0::/64'] })]);
  assert.equal(v6.peers[0]?.peer.endpoint, { ip: 'fd00::1', port: 51820 });
  assert.equal(v6.peers[0]?.routes, ['fd01::/64']);
});

test('planWireGuard: each bad spec is refused with its reason, the others planned', () => {
  const table: [CableSpec, RegExp][] = [
    [spec('k1', 'short'), /public key/],
    [spec('k2', `${'A'.repeat(42)}B=`), /public key/],
    [spec('k3', me.publicKey), /own/],
    [spec('p1', wireguardKeyPair().publicKey, { remotePort: 0 }), /port 0 /],
    [spec('p2', wireguardKeyPair().publicKey, { remotePort: 65536 }), /port 65536/],
    [spec('p3', wireguardKeyPair().publicKey, { remotePort: 1.5 }), /port 1.5/],
    [spec('i1', wireguardKeyPair().publicKey, { remoteIp: '10.0.0.256' }), /not an IP address/],
    [spec('i2', wireguardKeyPair().publicKey, { remoteIp: '' }), /not an IP address/],
    [spec('r1', wireguardKeyPair().publicKey, { remoteCidrs: [] }), /no CIDRs/],
    [spec('r2', wireguardKeyPair().publicKey, { remoteCidrs: ['10.9.0.1/16'] }), /host bits/],
    [spec('r3', wireguardKeyPair().publicKey, { remoteCidrs: ['10.1.128.0/24'] }), /overlaps 10.1.0.0\/16 of this cluster/],
  ];
  for (const [bad, why] of table) {
    const p = planWireGuard({ publicKey: me.publicKey, cidrs: LOCAL.cidrs }, [B, bad]);
    assert.equal(p.peers.map((x) => x.remoteCluster), ['c2'], bad.remoteCluster);
    assert.is(p.refused.length, 1, bad.remoteCluster);
    assert.is(p.refused[0]?.remoteCluster, bad.remoteCluster);
    assert.match(p.refused[0]?.reason ?? '', why, bad.remoteCluster);
  }
});

test('planWireGuard: duplicate cluster, duplicate key and overlapping CIDRs between cables: the later (by id) is refused', () => {
  const p = planWireGuard({ publicKey: me.publicKey, cidrs: [] }, [
    spec('c4', kc, { remoteCidrs: ['10.4.0.0/16'] }), B, spec('c2', kc), spec('c5', wireguardKeyPair().publicKey, { remoteCidrs: ['10.2.3.0/24'] }),
  ]);
  assert.equal(p.peers.map((x) => x.remoteCluster), ['c2', 'c4']);
  assert.equal(p.refused.map((r) => [r.remoteCluster, r.reason]), [
    ['c2', 'the remote cluster appears twice in the desired cables'],
    ['c5', 'remote CIDR 10.2.3.0/24 overlaps 10.2.0.0/16 of cluster c2'],
  ]);
  const dupKey = planWireGuard({ publicKey: me.publicKey, cidrs: [] }, [B, spec('c6', kb, { remoteCidrs: ['10.6.0.0/16'] })]);
  assert.match(dupKey.refused[0]?.reason ?? '', /also cluster c2's/);
});

// ---- the driver against a simulated host ----

interface Peer { endpoint: string; allowed: string[]; keepalive: number; handshake: number }

/** A host with iproute2 and wg, enough of both for the driver: state changes with the commands. */
class FakeHost {
  kernel = false;
  link: { mtu: number; up: boolean; kind: string } | undefined;
  answers = true; // false: the device exists but wg cannot reach it (dead wireguard-go)
  ours = false; // true: the wireguard-go ./setup builds is installed
  readonly started: string[] = []; // the wireguard-go binaries started
  readonly failRoutes = new Set<string>(); // `ip` commands (without "ip") that fail with EINVAL
  readonly badPeers = new Set<string>(); // public keys wg refuses

  pub = '(none)';
  port = 0;
  peers = new Map<string, Peer>();
  routes = new Set<string>();
  readonly runner = new FakeRunner();

  constructor() {
    this.runner.on((c) => this.#handle(c));
  }

  /** Modifying commands, one line each; a batch as `ip -batch [line; line; …]`. */
  modifying(): string[] {
    return this.runner.calls
      .map((c) => (c.args.join(' ') === '-force -batch -' ? `${c.command} -batch [${(c.options.input ?? '').trim().split('\n').join('; ')}]` : [c.command, ...c.args].join(' ')))
      .filter((l) => !/ show\b|--version/.test(l));
  }

  #handle(c: FakeCall): Partial<RunResult> {
    const a = c.command === 'sh' ? c.args.slice(3) : c.args;
    const cmd = c.command === 'sh' ? 'wg' : c.command;
    const line = a.join(' ');
    const nodev = { code: 1, stderr: 'Device "isthmus-wg" does not exist.\n' };
    if (cmd === 'ip') {
      if (line === '-force -batch -') return this.#batch(c.options.input ?? '');
      if (this.failRoutes.has(line)) return { code: 2, stderr: 'RTNETLINK answers: Invalid argument\n' };
      if (line === '-j -d link show dev isthmus-wg') return this.link === undefined ? nodev : { stdout: JSON.stringify([{ ifname: 'isthmus-wg', mtu: this.link.mtu, flags: this.link.up ? ['UP'] : [], linkinfo: { info_kind: this.link.kind } }]) };
      if (line === '-j addr show') return { stdout: JSON.stringify([{ mtu: 65536, addr_info: [{ local: '127.0.0.1' }] }, { mtu: 9000, addr_info: [{ local: '172.31.0.10' }] }]) };
      if (line === 'link add dev isthmus-wg type wireguard') {
        if (!this.kernel) return { code: 2, stderr: 'Error: Unknown device type.\n' };
        this.link = { mtu: 1420, up: false, kind: 'wireguard' };
        return {};
      }
      if (line === 'link del dev isthmus-wg') return this.#drop();
      let m = /^link set dev isthmus-wg mtu (\d+)$/.exec(line);
      if (m !== null && this.link !== undefined) return void (this.link.mtu = Number(m[1])), {};
      if (line === 'link set dev isthmus-wg up' && this.link !== undefined) return void (this.link.up = true), {};
      m = /^-j -([46]) route show table main dev isthmus-wg$/.exec(line);
      if (m !== null) return this.link === undefined ? nodev : { stdout: JSON.stringify([...this.routes].filter((r) => r.includes(':') === (m?.[1] === '6')).map((dst) => ({ dst, scope: 'link', protocol: 'static' }))) };
      m = /^route (replace|del) (\S+) dev isthmus-wg/.exec(line);
      if (m !== null && m[2] !== undefined) return void (m[1] === 'del' ? this.routes.delete(m[2]) : this.routes.add(m[2])), {};
    }
    if (cmd === 'wireguard-go' || (cmd === ISTHMUS_WIREGUARD_GO && this.ours)) {
      if (line === '--version') return { stdout: `wireguard-go v0.0.${cmd === 'wireguard-go' ? '20220316' : '20250522'}\n\nUserspace WireGuard daemon for linux-amd64.\n` };
      this.link = { mtu: 1420, up: false, kind: 'tun' };
      this.answers = true;
      this.started.push(cmd);
      return {};
    }
    if (cmd === ISTHMUS_WIREGUARD_GO) return { code: 255, stderr: `exec of "${cmd}" failed: No such file or directory\n` };
    if (cmd === 'rm') return {};
    if (cmd === 'wg') {
      if (line === '--version') return { stdout: 'wireguard-tools v1.0.20210914\n' };
      if (this.link === undefined || !this.answers) return { code: 1, stderr: 'Unable to access interface: No such device\n' };
      if (line === 'show isthmus-wg dump') {
        const head = `${LOCAL.secrets['privateKey'] ?? ''}\t${this.pub}\t${String(this.port)}\toff`;
        const peers = [...this.peers].map(([k, p]) => [k, '(none)', p.endpoint, p.allowed.join(',') || '(none)', String(p.handshake), '10', '20', p.keepalive === 0 ? 'off' : String(p.keepalive)].join('\t'));
        return { stdout: `${[head, ...peers].join('\n')}\n` };
      }
      if (line === 'set isthmus-wg private-key /dev/stdin') return void (this.pub = wireguardPublicKeyOf((c.options.input ?? '').trim())), {};
      const m = /^set isthmus-wg listen-port (\d+)$/.exec(line);
      if (m !== null) return void (this.port = Number(m[1])), {};
      if (line.startsWith('set isthmus-wg peer ')) return this.#setPeers(line.slice('set isthmus-wg '.length));
    }
    return { code: 99, stderr: `FakeHost does not know: ${c.command} ${c.args.join(' ')}` };
  }

  /** `wg set DEV peer … [peer …]`: parses every peer first (as wg does), then applies them all. */
  #setPeers(rest: string): Partial<RunResult> {
    const ops: (() => void)[] = [];
    for (const part of rest.split(/(?=\bpeer )/)) {
      const rm = /^peer (\S+) remove\s*$/.exec(part);
      const key = rm?.[1];
      if (key !== undefined) {
        ops.push(() => void this.peers.delete(key));
        continue;
      }
      const p = /^peer (\S+) endpoint (\S+) persistent-keepalive (\S+) allowed-ips (\S+)\s*$/.exec(part);
      const k = p?.[1];
      if (p === null || k === undefined || this.badPeers.has(k)) return { code: 1, stderr: `Key is not the correct length or format: \`${part.slice(5, 20)}\`\n` };
      ops.push(() => {
        const old = this.peers.get(k);
        this.peers.set(k, { endpoint: p[2] ?? '', keepalive: p[3] === 'off' ? 0 : Number(p[3]), allowed: (p[4] ?? '').split(','), handshake: old?.handshake ?? 0 });
      });
    }
    for (const op of ops) op();
    return {};
  }

  /** `ip -force -batch -`: each stdin line as its own `ip` command, failures reported as iproute2 does. */
  #batch(input: string): Partial<RunResult> {
    let stderr = '';
    input.split('\n').filter((l) => l !== '').forEach((l, i) => {
      const r = this.#handle({ command: 'ip', args: l.split(' '), options: {} });
      if ((r.code ?? 0) !== 0) stderr += `${r.stderr ?? ''}Command failed -:${String(i + 1)}\n`;
    });
    return stderr === '' ? {} : { code: 1, stderr };
  }

  #drop(): Partial<RunResult> {
    this.link = undefined;
    this.peers.clear();
    this.routes.clear();
    this.pub = '(none)';
    this.port = 0;
    return {};
  }
}

function driverOn(host: FakeHost, clock = new FakeClock()): WireGuardDriver {
  return new WireGuardDriver({ runner: host.runner, logger: silentLogger() }, { clock });
}

test('preflight: wg (wireguard-tools) and, for userspace, wireguard-go must be installed; it changes nothing', async () => {
  const missing = (program: string): FakeRunner => new FakeRunner().when(program, [], { code: 255, stderr: `exec of "${program}" failed: No such file or directory\n` });
  const preflight = async (runner: FakeRunner, implementation: 'kernel' | 'userspace'): Promise<unknown> =>
    new WireGuardDriver({ runner, logger: silentLogger() }, { implementation }).preflight().then(() => undefined, (e: unknown) => e);
  const noWg = await preflight(missing('wg'), 'kernel');
  assert.ok(isIsthmusError(noWg, ErrorCodes.MISSING_DEPENDENCY), String(noWg));
  assert.match((noWg as Error).message, 'wireguard-tools');
  const noGo = await preflight(missing('wireguard-go').when(ISTHMUS_WIREGUARD_GO, [], { code: 255, stderr: `exec of "${ISTHMUS_WIREGUARD_GO}" failed: No such file or directory\n` }), 'userspace');
  assert.ok(isIsthmusError(noGo, ErrorCodes.MISSING_DEPENDENCY), String(noGo));
  assert.match((noGo as Error).message, '(package wireguard-go)');
  assert.match((noGo as Error).message, `./setup, which builds wireguard-go into ${ISTHMUS_WIREGUARD_GO}`);
  const debianOnly = missing(ISTHMUS_WIREGUARD_GO);
  assert.is(await preflight(debianOnly, 'userspace'), undefined, "Debian's wireguard-go is enough");
  assert.equal(debianOnly.lines(), ['wg --version', `${ISTHMUS_WIREGUARD_GO} --version`, 'wireguard-go --version']);
  const kernel = missing('wireguard-go');
  assert.is(await preflight(kernel, 'kernel'), undefined, 'the kernel device needs no wireguard-go');
  assert.equal(kernel.lines(), ['wg --version']);
});

test('init: no kernel module → wireguard-go; key through stdin, listen port, MTU = underlay − 60, up', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  assert.is(d.implementation, 'userspace');
  assert.is(d.publicKey, me.publicKey);
  assert.equal(host.modifying(), [
    'ip link add dev isthmus-wg type wireguard',
    'wireguard-go isthmus-wg',
    'sh -c cat | wg "$@" wg set isthmus-wg private-key /dev/stdin',
    'wg set isthmus-wg listen-port 51820',
    'ip link set dev isthmus-wg mtu 8940',
    'ip link set dev isthmus-wg up',
  ]);
  for (const c of host.runner.calls) assert.not.ok(c.args.some((x) => x.includes(me.privateKey)), 'key on a command line');
});

test("init: the wireguard-go ./setup builds when it is installed, else Debian's; options.wireguardGo sets the order", async () => {
  const ours = new FakeHost();
  ours.ours = true;
  const d = driverOn(ours);
  await d.init(LOCAL);
  assert.equal(ours.started, [ISTHMUS_WIREGUARD_GO]);
  assert.equal(d.userspaceProgram, { program: ISTHMUS_WIREGUARD_GO, version: 'wireguard-go v0.0.20250522' });
  assert.is(d.implementationInfo(), `wireguard-go v0.0.20250522 (${ISTHMUS_WIREGUARD_GO})`, 'for the Gateway status');
  assert.is(driverOn(new FakeHost()).implementationInfo(), undefined, 'not known before init()');
  const debian = new FakeHost();
  const e = driverOn(debian);
  await e.init(LOCAL);
  assert.equal(debian.started, ['wireguard-go']);
  assert.equal(e.userspaceProgram, { program: 'wireguard-go', version: 'wireguard-go v0.0.20220316' });
  const chosen = new FakeHost();
  chosen.ours = true;
  await new WireGuardDriver({ runner: chosen.runner, logger: silentLogger() }, { wireguardGo: ['wireguard-go', ISTHMUS_WIREGUARD_GO] }).init(LOCAL);
  assert.equal(chosen.started, ['wireguard-go']);
  const kernel = new FakeHost();
  kernel.kernel = true;
  kernel.ours = true;
  const k = driverOn(kernel);
  await k.init(LOCAL);
  assert.equal([k.implementation, k.userspaceProgram, kernel.started], ['kernel', undefined, []], 'the kernel module first');
  assert.is(k.implementationInfo(), 'kernel WireGuard');
});

test('init: the kernel device when the module is there (no wireguard-go); IPv6 underlay MTU − 80; options.mtu overrides', async () => {
  const host = new FakeHost();
  host.kernel = true;
  const d = driverOn(host);
  await d.init(LOCAL);
  assert.is(d.implementation, 'kernel');
  assert.not.ok(host.runner.lines().some((l) => l.startsWith('wireguard-go')));
  const h6 = new FakeHost();
  h6.kernel = true;
  await driverOn(h6).init({ ...LOCAL, privateIp: 'fd00::10' });
  assert.is(h6.link?.mtu, 1420, 'no address match → 1500 − 80');
  assert.not.ok(h6.runner.lines().some((l) => l.includes(' mtu ')), 'already right: not set');
  const h7 = new FakeHost();
  await new WireGuardDriver({ runner: h7.runner, logger: silentLogger() }, { mtu: 1280 }).init(LOCAL);
  assert.ok(h7.runner.lines().includes('ip link set dev isthmus-wg mtu 1280'));
});

test('init: adopts a device that answers (nothing created or changed); recreates one that does not', async () => {
  const host = new FakeHost();
  await driverOn(host).init(LOCAL);
  host.runner.calls.length = 0;
  const again = driverOn(host);
  await again.init(LOCAL);
  assert.equal(host.modifying(), []);
  assert.is(again.implementation, 'userspace');
  host.answers = false;
  host.runner.calls.length = 0;
  await driverOn(host).init(LOCAL);
  assert.equal(host.modifying().slice(0, 3), ['ip link del dev isthmus-wg', 'ip link add dev isthmus-wg type wireguard', 'wireguard-go isthmus-wg']);
});

test('init: bad private key, port or address: INVALID_CONFIG without the key; wg missing: MISSING_DEPENDENCY', async () => {
  const host = new FakeHost();
  for (const bad of [{ secrets: { privateKey: 'x' } }, { secrets: {} }, { port: 0 }, { privateIp: 'gw' }]) {
    try {
      await driverOn(host).init({ ...LOCAL, ...bad });
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.ok(isIsthmusError(err, ErrorCodes.INVALID_CONFIG), String(err));
    }
  }
  const none = new FakeRunner().on(() => ({ code: 255, stderr: 'exec of "wg" failed: No such file or directory' }));
  try {
    await new WireGuardDriver({ runner: none, logger: silentLogger() }).init(LOCAL);
    assert.unreachable();
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.MISSING_DEPENDENCY));
    assert.match((err as Error).message, /wireguard-tools/);
  }
  const denied = new FakeRunner().on((c) => (c.args.join(' ') === 'link add dev isthmus-wg type wireguard' ? { code: 2, stderr: 'RTNETLINK answers: Operation not permitted' } : c.command === 'ip' ? { code: 1, stderr: 'Device "isthmus-wg" does not exist.' } : {}));
  try {
    await new WireGuardDriver({ runner: denied, logger: silentLogger() }).init(LOCAL);
    assert.unreachable();
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.NOT_ROOT), String(err));
  }
});

test('set: exact commands the first time, none the second; peers and routes added before stale ones go', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  host.runner.calls.length = 0;
  assert.equal(await d.set([B, C]), { failed: [] });
  assert.equal(host.modifying(), [
    `wg set isthmus-wg peer ${kb} endpoint 172.31.0.11:51820 persistent-keepalive off allowed-ips 10.2.0.0/16 peer ${kc} endpoint 172.31.0.12:51820 persistent-keepalive 25 allowed-ips 10.103.0.0/16,10.3.0.0/16`,
    'ip -batch [route replace 10.2.0.0/16 dev isthmus-wg proto static; route replace 10.103.0.0/16 dev isthmus-wg proto static; route replace 10.3.0.0/16 dev isthmus-wg proto static]',
  ], 'one wg set for every peer, one ip -batch for every route');
  host.runner.calls.length = 0;
  await d.set([C, B]);
  assert.equal(host.modifying(), [], 'same input, any order: nothing runs');

  // B gets a new key and loses a CIDR to a new cluster D; C goes
  const kb2 = wireguardKeyPair().publicKey;
  const kd = wireguardKeyPair().publicKey;
  host.runner.calls.length = 0;
  await d.set([{ ...B, backend: { 'public-key': kb2 } }, spec('c4', kd, { remoteIp: '172.31.0.14', remoteCidrs: ['10.4.0.0/16'] })]);
  assert.equal(host.modifying(), [
    `wg set isthmus-wg peer ${kb2} endpoint 172.31.0.11:51820 persistent-keepalive off allowed-ips 10.2.0.0/16 peer ${kd} endpoint 172.31.0.14:51820 persistent-keepalive off allowed-ips 10.4.0.0/16`,
    'ip -batch [route replace 10.4.0.0/16 dev isthmus-wg proto static]',
    'ip -batch [route del 10.103.0.0/16 dev isthmus-wg; route del 10.3.0.0/16 dev isthmus-wg]',
    `wg set isthmus-wg peer ${kb} remove peer ${kc} remove`,
  ], 'adds and updates first, then deletes');
  assert.equal([...host.peers.keys()].sort(), [kb2, kd].sort());
  assert.equal([...host.routes].sort(), ['10.2.0.0/16', '10.4.0.0/16']);
});

test('set: an endpoint WireGuard roamed (NAT) is left alone while the spec is unchanged; a changed spec is re-applied', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  await d.set([C]);
  const peer = host.peers.get(kc);
  if (peer === undefined) throw new Error('no peer');
  peer.endpoint = '198.51.100.7:40001';
  host.runner.calls.length = 0;
  await d.set([C]);
  assert.equal(host.modifying(), []);
  await d.set([{ ...C, remotePort: 51821 }]);
  const moved = `wg set isthmus-wg peer ${kc} endpoint 172.31.0.12:51821 persistent-keepalive 25 allowed-ips 10.103.0.0/16,10.3.0.0/16`;
  // the moved NAT-traversal peer gets its keepalive turned off and on: WireGuard sends at once
  assert.equal(host.modifying(), [moved, moved.replace('persistent-keepalive 25', 'persistent-keepalive off'), moved]);
});

test('adoption: a NAT-traversal peer at its address with the NAT\'s port is kept; at another address it is re-applied', async () => {
  const host = new FakeHost();
  const first = driverOn(host);
  await first.init(LOCAL);
  await first.set([C, B]);
  const peer = host.peers.get(kc);
  if (peer === undefined) throw new Error('no peer');
  peer.endpoint = '172.31.0.12:1024'; // the NAT in front of c3 mapped its port
  host.runner.calls.length = 0;
  const restarted = driverOn(host);
  await restarted.init(LOCAL);
  await restarted.set([C, B]);
  assert.equal(host.modifying(), [], 'a restart adopts the roamed peer');
  const again = driverOn(host);
  await again.init(LOCAL);
  host.peers.set(kc, { ...peer, endpoint: '198.51.100.7:1024' });
  await again.set([C, B]);
  const reapplied = `wg set isthmus-wg peer ${kc} endpoint 172.31.0.12:51820 persistent-keepalive 25 allowed-ips 10.103.0.0/16,10.3.0.0/16`;
  assert.equal(host.modifying(), [reapplied, reapplied.replace('persistent-keepalive 25', 'persistent-keepalive off'), reapplied]);
});

test('set: a refused spec is not applied (its old peer goes), the others are; a failing OS change fails its own cable only', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  await d.set([B, C]);
  const r = await d.set([B, { ...C, remotePort: 99999 }]);
  assert.equal(r.failed, [{ remoteCluster: 'c3', reason: 'remote port 99999 is not a port number (1-65535)' }]);
  assert.equal([...host.peers.keys()], [kb]);
  // one cable's route cannot be added (a line of the batch fails): only that cable fails
  const failing = new FakeHost();
  failing.failRoutes.add('route replace 10.3.0.0/16 dev isthmus-wg proto static');
  const d2 = driverOn(failing);
  await d2.init(LOCAL);
  const r2 = await d2.set([B, C]);
  assert.equal(r2.failed.map((f) => f.remoteCluster), ['c3']);
  assert.match(r2.failed[0]?.reason ?? '', /ip route replace 10.3.0.0\/16 dev isthmus-wg proto static: RTNETLINK answers: Invalid argument/);
  assert.ok(failing.routes.has('10.2.0.0/16'));
  assert.not.ok(failing.routes.has('10.103.0.0/16'), "the failed cable's other route is not kept");
  assert.equal([...failing.peers.keys()], [kb], "the failed cable's peer is removed, as for a refused spec");
  const st = await d2.connections();
  assert.equal(st.map((s) => [s.remoteCluster, s.state]), [['c2', 'connecting'], ['c3', 'error']]);
  // wg refuses the batched peers: they are set one by one, and only the bad one fails
  const refusing = new FakeHost();
  const d3 = driverOn(refusing);
  await d3.init(LOCAL);
  refusing.badPeers.add(kc);
  refusing.runner.calls.length = 0;
  const r3 = await d3.set([B, C]);
  assert.equal(r3.failed.map((f) => f.remoteCluster), ['c3']);
  assert.match(r3.failed[0]?.reason ?? '', /Key is not the correct length/);
  assert.equal(refusing.modifying(), [
    `wg set isthmus-wg peer ${kb} endpoint 172.31.0.11:51820 persistent-keepalive off allowed-ips 10.2.0.0/16 peer ${kc} endpoint 172.31.0.12:51820 persistent-keepalive 25 allowed-ips 10.103.0.0/16,10.3.0.0/16`,
    `wg set isthmus-wg peer ${kb} endpoint 172.31.0.11:51820 persistent-keepalive off allowed-ips 10.2.0.0/16`,
    `wg set isthmus-wg peer ${kc} endpoint 172.31.0.12:51820 persistent-keepalive 25 allowed-ips 10.103.0.0/16,10.3.0.0/16`,
    'ip -batch [route replace 10.2.0.0/16 dev isthmus-wg proto static]',
  ]);
  assert.equal([[...refusing.peers.keys()], [...refusing.routes]], [[kb], ['10.2.0.0/16']]);
  refusing.badPeers.clear();
  assert.equal(await d3.set([B, C]), { failed: [] }, 'fixed: the next set() applies it');
  assert.equal([...refusing.peers.keys()].sort(), [kb, kc].sort());
});

test('set: 100 remotes take one wg set and one ip -batch; the same 100 again run nothing; 100 → 0 one ip -batch and one wg set', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  const specs = Array.from({ length: 100 }, (_, i) => spec(`r${String(i)}`, wireguardKeyPair().publicKey, { remoteIp: `10.250.1.${String(i + 1)}`, remoteCidrs: [`10.${String(i + 10)}.0.0/17`, `10.${String(i + 10)}.128.0/17`] }));
  host.runner.calls.length = 0;
  assert.equal(await d.set(specs), { failed: [] });
  assert.equal(host.modifying().map((l) => l.split(' ').slice(0, 3).join(' ')), ['wg set isthmus-wg', 'ip -batch [route']);
  assert.is(host.peers.size, 100);
  assert.is(host.routes.size, 200);
  host.runner.calls.length = 0;
  await d.set([...specs].reverse());
  assert.equal(host.modifying(), []);
  assert.is(host.runner.calls.length, 3, 'wg show dump and ip route show (IPv4, IPv6)');
  await d.set([]);
  assert.equal(host.modifying().map((l) => l.split(' ').slice(0, 3).join(' ')), ['ip -batch [route', 'wg set isthmus-wg']);
  assert.equal([host.peers.size, host.routes.size], [0, 0]);
});

test('connections: connected under 3 min since the handshake, connecting after or before one, error when refused or the device is gone', async () => {
  const host = new FakeHost();
  const clock = new FakeClock(1_700_000_000_000);
  const d = driverOn(host, clock);
  await d.init(LOCAL);
  await d.set([B, C, spec('c9', 'bad')]);
  const pb = host.peers.get(kb);
  if (pb === undefined) throw new Error('no peer');
  pb.handshake = 1_700_000_000 - 10;
  let st = await d.connections();
  assert.equal(st.map((s) => [s.remoteCluster, s.state, s.message]), [
    ['c2', 'connected', undefined], ['c3', 'connecting', 'no handshake yet'], ['c9', 'error', 'the public key (backend "public-key") is not 44 characters of base64 encoding 32 bytes'],
  ]);
  assert.is(st[0]?.establishedAt, (1_700_000_000 - 10) * 1000);
  assert.is(st[0]?.rxBytes, 10);
  clock.advance(200_000);
  st = await d.connections();
  assert.equal([st[0]?.state, st[0]?.message], ['connecting', 'last handshake 210 s ago']);
  host.link = undefined;
  st = await d.connections();
  assert.ok(st.slice(0, 2).every((s) => s.state === 'error' && /gone/.test(s.message ?? '')));
  // set() recreates the vanished device and re-applies
  host.runner.calls.length = 0;
  await d.set([B, C]);
  assert.ok(host.modifying().includes('wireguard-go isthmus-wg'));
  assert.equal([...host.peers.keys()].sort(), [kb, kc].sort());
});

test('cleanup: deletes the device and the socket; safe when nothing exists', async () => {
  const host = new FakeHost();
  const d = driverOn(host);
  await d.init(LOCAL);
  await d.set([B]);
  host.runner.calls.length = 0;
  await d.cleanup();
  assert.equal(host.modifying(), ['ip link del dev isthmus-wg', 'rm -f /var/run/wireguard/isthmus-wg.sock']);
  assert.equal(await d.connections(), []);
  host.runner.calls.length = 0;
  await d.cleanup();
  assert.equal(host.modifying(), ['rm -f /var/run/wireguard/isthmus-wg.sock']);
});

test('set before init is a FAILED_PRECONDITION', async () => {
  try {
    await driverOn(new FakeHost()).set([B]);
    assert.unreachable();
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.FAILED_PRECONDITION));
  }
});

test.run();
