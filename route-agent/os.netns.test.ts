import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NetnsRunner, SystemRunner } from '../core/index.ts';
import { requireRootForTest } from '../test/lib/cli.ts';
import { desiredRoutes, type AgentView } from './desired.ts';
import { IptablesFilter, NftFilter, type PacketFilter } from './filter.ts';
import { RouteTable } from './routes.ts';
import { Tunnel } from './tunnel.ts';

/*
 * The route agent's OS seams against the real kernel, iproute2, nftables and iptables, in
 * namespaces this test makes (ra-<rnd>-*) and removes; traffic stays inside them.
 *
 *   pod 10.2.0.5 ── r0 [node: routes, filter] r1 ── server 192.168.251.2
 *                    └ eth1 172.31.251.1 ── peer 172.31.251.2 (VXLAN underlay)
 *
 * The node masquerades everything leaving by r1 (as a CNI's rule would), so only the route
 * agent's filter keeps a remote pod's source address.
 */
const tag = `ra-${randomBytes(3).toString('hex')}`;
const NS = { pod: `${tag}-pod`, node: `${tag}-node`, server: `${tag}-srv`, peer: `${tag}-peer` } as const;
const sh = (ns: string, ...args: string[]): string => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const runner = (ns: string): NetnsRunner => new NetnsRunner(new SystemRunner(), ns);

function cleanup(): void {
  for (const ns of Object.values(NS)) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not made, or gone
    }
  }
}

test.before(() => {
  requireRootForTest('route-agent/os.netns.test.ts');
  try {
    for (const ns of Object.values(NS)) {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    execFileSync('ip', ['-n', NS.node, 'link', 'add', 'r0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.pod]);
    execFileSync('ip', ['-n', NS.node, 'link', 'add', 'r1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.server]);
    execFileSync('ip', ['-n', NS.node, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', NS.peer]);
    for (const [ns, dev, addr] of [[NS.node, 'r0', '10.2.0.1/24'], [NS.pod, 'eth0', '10.2.0.5/24'], [NS.node, 'r1', '192.168.251.1/24'],
      [NS.server, 'eth0', '192.168.251.2/24'], [NS.node, 'eth1', '172.31.251.1/24'], [NS.peer, 'eth1', '172.31.251.2/24']] as const) {
      execFileSync('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    execFileSync('ip', ['-n', NS.pod, 'route', 'add', 'default', 'via', '10.2.0.1']);
    execFileSync('ip', ['-n', NS.server, 'route', 'add', 'default', 'via', '192.168.251.1']);
    sh(NS.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    sh(NS.node, 'iptables', '-w', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'r1', '-j', 'MASQUERADE');
  } catch (err) {
    cleanup();
    throw err;
  }
});
test.after(cleanup);

const view = (over: Partial<AgentView>): AgentView => ({
  node: { name: 'n3', ip: '172.31.251.1', addresses: ['172.31.251.1'] },
  localCidrs: ['10.1.0.0/16'],
  gateway: { name: 'n2', ip: '172.31.251.2' },
  mode: 'direct',
  remotes: [{ cluster: 'c2', cidrs: ['10.62.0.0/16'], mtu: 1420 }, { cluster: 'c3', cidrs: ['10.63.0.0/16'] }],
  vxlanPeers: [],
  table: 220,
  pref: 220,
  ...over,
});

test('routes: applied once, a second set changes nothing, a failover replaces, cleanup leaves only what others own', async () => {
  const table = new RouteTable(runner(NS.node), [220, 221], [217, 218, 220]);
  sh(NS.node, 'ip', 'rule', 'add', 'pref', '1000', 'lookup', '100'); // someone else's
  const d = desiredRoutes(view({}));
  const first = await table.set(d.routes, d.rules, 220);
  assert.is(first.changes, 3);
  assert.equal(first.failed, []);
  assert.match(sh(NS.node, 'ip', 'route', 'get', '10.62.1.1'), /via 172\.31\.251\.2 dev eth1 table 220 .*\n.*mtu 1420/s);
  assert.equal(await table.set(d.routes, d.rules, 220), { changes: 0, failed: [] }, 'second set: zero changes');

  const moved = desiredRoutes(view({ gateway: { name: 'n4', ip: '172.31.251.4' } }));
  assert.is((await table.set(moved.routes, moved.rules, 220)).changes, 2);
  assert.match(sh(NS.node, 'ip', 'route', 'get', '10.63.1.1'), /via 172\.31\.251\.4/);

  // this node becomes the gateway: without a cable route the CIDRs are unreachable, with one the cable takes them
  const gw = desiredRoutes(view({ gateway: { name: 'n3', ip: '172.31.251.1' } }));
  await table.set(gw.routes, gw.rules, 220);
  assert.throws(() => sh(NS.node, 'ip', 'route', 'get', '10.62.1.1'), /unreachable|No route/);
  sh(NS.node, 'ip', 'route', 'add', '10.62.0.0/16', 'dev', 'r1'); // what a cable driver does
  assert.match(sh(NS.node, 'ip', 'route', 'get', '10.62.1.1'), /dev r1/);
  sh(NS.node, 'ip', 'route', 'del', '10.62.0.0/16', 'dev', 'r1');

  await table.cleanup();
  assert.equal(await table.routes(), []);
  assert.equal(await table.rules(), []);
  assert.match(sh(NS.node, 'ip', 'rule', 'show'), /1000:.*lookup 100/);
});

for (const make of [(r: NetnsRunner) => new NftFilter(r), (r: NetnsRunner) => new IptablesFilter(r)]) {
  const name = make(runner(NS.node)).name;
  test(`${name}: a remote pod's source address survives a masquerading node; set is idempotent; cleanup leaves the others' rules`, async () => {
    const filter: PacketFilter = make(runner(NS.node));
    /** The address the server saw a datagram from, sent from `ns` (bound to `src`); '' when none came in 2 s. */
    const seen = async (ns: string = NS.pod, src = '0.0.0.0'): Promise<string> => {
      sh(NS.node, 'conntrack', '-F');
      const server = execFileSync('ip', ['netns', 'exec', NS.server, 'python3', '-c',
        'import socket,subprocess\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("0.0.0.0",9999));s.settimeout(2)\n'
        + 'subprocess.Popen(["ip","netns","exec","' + ns + '","python3","-c","import socket;c=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);c.bind((\'' + src + '\',0));c.sendto(b\'x\',(\'192.168.251.2\',9999))"])\n'
        + 'try:\n  print(s.recvfrom(10)[1][0])\nexcept socket.timeout:\n  print("")'], { encoding: 'utf8' });
      return server.trim();
    };
    assert.is(await seen(), '192.168.251.1', 'masqueraded without the route agent');
    assert.is(await filter.set({ remoteCidrs: ['10.2.0.0/24'] }), true);
    assert.is(await seen(), '10.2.0.5', 'the pod address survives');
    assert.is(await filter.set({ remoteCidrs: ['10.2.0.0/24'] }), false, 'second set: no change');
    assert.is(await filter.set({ remoteCidrs: ['10.2.0.0/24', '10.9.0.0/16'] }), true);
    // the reverse-path check: 10.9.0.0/16 is routed into a "cable" (r0 here); a packet from it
    // that comes in on the underlay (eth1, from the peer) is dropped, one from the cable passes
    sh(NS.node, 'ip', 'route', 'add', '10.9.0.0/16', 'dev', 'r0');
    sh(NS.peer, 'ip', 'addr', 'add', '10.9.0.9/32', 'dev', 'lo');
    sh(NS.peer, 'ip', 'route', 'add', '192.168.251.0/24', 'via', '172.31.251.1');
    try {
      assert.is(await seen(NS.peer, '10.9.0.9'), '', 'a remote CIDR\'s address coming in on the underlay goes no further');
      assert.is(await seen(NS.peer, '172.31.251.2'), '192.168.251.1', 'the peer\'s own address is not ours to check');
      assert.is(await seen(), '10.2.0.5', 'a remote CIDR\'s address coming in where it is routed passes');
      await filter.cleanup();
      assert.is(await seen(NS.peer, '10.9.0.9'), '192.168.251.1', 'without the route agent the node forwarded it');
    } finally {
      sh(NS.node, 'ip', 'route', 'del', '10.9.0.0/16', 'dev', 'r0');
      sh(NS.peer, 'ip', 'addr', 'del', '10.9.0.9/32', 'dev', 'lo');
      sh(NS.peer, 'ip', 'route', 'del', '192.168.251.0/24', 'via', '172.31.251.1');
    }
    await filter.cleanup();
    assert.is(await seen(), '192.168.251.1', 'after cleanup the node masquerades again');
    assert.not.match(sh(NS.node, 'nft', 'list', 'ruleset'), /isthmus|ISTHMUS/);
    assert.match(sh(NS.node, 'iptables-save', '-t', 'nat'), /-A POSTROUTING -o r1 -j MASQUERADE/);
  });
}

test('vxlan tunnel: two nodes reach each other\'s tunnel address; a second set changes nothing; cleanup removes the device', async () => {
  const a = new Tunnel(runner(NS.node));
  const b = new Tunnel(runner(NS.peer));
  assert.ok((await a.set({ localIp: '172.31.251.1', peers: ['172.31.251.2'] })) > 0);
  await b.set({ localIp: '172.31.251.2', peers: ['172.31.251.1'] });
  sh(NS.node, 'ping', '-c', '1', '-W', '2', '240.31.251.2');
  assert.is(await a.set({ localIp: '172.31.251.1', peers: ['172.31.251.2'] }), 0);
  assert.ok((await a.set({ localIp: '172.31.251.1', peers: [] })) > 0, 'a peer removed');
  assert.throws(() => sh(NS.node, 'ping', '-c', '1', '-W', '1', '240.31.251.2'));
  await a.set(undefined);
  await b.cleanup();
  assert.not.match(sh(NS.node, 'ip', 'link', 'show'), /isthmus-ra/);
});

test.run();
