import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireRootForTest } from '../test/lib/cli.ts';
import type { NatProbeResult, NatProbeTarget } from './nat-probe.ts';

/*
 * NAT discovery through a real masquerading router, in three network namespaces this
 * test makes (natp-<rnd>-in, -rt, -out) and removes: traffic stays inside them.
 *
 *   inside 192.168.250.2 ── lan0 192.168.250.1 [router] wan0 198.51.100.1 ── outside 198.51.100.2
 *
 * The router masquerades the inside network, forwards UDP 4490 on its wan address to the
 * inside peer (the port the peer publishes), and drops every other new flow from outside.
 * Each peer runs a NatProbe on its private address at 4490 in a child process.
 */
const tag = `natp-${randomBytes(3).toString('hex')}`;
const NS = { inside: `${tag}-in`, router: `${tag}-rt`, outside: `${tag}-out` } as const;
const INSIDE = '192.168.250.2';
const ROUTER_WAN = '198.51.100.1';
const OUTSIDE = '198.51.100.2';
const PORT = 4490;
const children: ChildProcessWithoutNullStreams[] = [];

const sh = (ns: string, ...args: string[]): void => void execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe' });

function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
  for (const ns of Object.values(NS)) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not made, or already gone
    }
  }
}

test.before(() => {
  requireRootForTest('gateway/nat-probe.netns.test.ts');
  try {
    for (const ns of Object.values(NS)) execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', NS.router, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.outside]);
    execFileSync('ip', ['-n', NS.router, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.inside]);
    for (const [ns, dev, addr] of [[NS.router, 'wan0', `${ROUTER_WAN}/24`], [NS.router, 'lan0', '192.168.250.1/24'], [NS.outside, 'eth0', `${OUTSIDE}/24`], [NS.inside, 'eth0', `${INSIDE}/24`]] as const) {
      execFileSync('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    for (const ns of Object.values(NS)) execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', NS.inside, 'route', 'add', 'default', 'via', '192.168.250.1']);
    // the outside peer's packets for the inside network reach the router, which drops them
    execFileSync('ip', ['-n', NS.outside, 'route', 'add', 'default', 'via', ROUTER_WAN]);
    sh(NS.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    sh(NS.router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '192.168.250.0/24', '-o', 'wan0', '-j', 'MASQUERADE');
    sh(NS.router, 'iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', 'wan0', '-p', 'udp', '--dport', String(PORT), '-j', 'DNAT', '--to-destination', `${INSIDE}:${PORT}`);
    sh(NS.router, 'iptables', '-P', 'FORWARD', 'DROP');
    sh(NS.router, 'iptables', '-A', 'FORWARD', '-i', 'lan0', '-o', 'wan0', '-j', 'ACCEPT');
    sh(NS.router, 'iptables', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED,DNAT', '-j', 'ACCEPT');
  } catch (err) {
    cleanup();
    throw err;
  }
});

test.after(cleanup);

const PEER = `
import { createInterface } from 'node:readline';
const [module, address, clusterId, target] = process.argv.slice(1);
const { NatProbe } = await import(module);
const probe = await NatProbe.open({ address, port: ${PORT}, clusterId, attempts: 3, windowMs: 1000 });
process.stdout.write('ready\\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'go') process.stdout.write(JSON.stringify(await probe.probe(JSON.parse(target))) + '\\n');
}
probe.close();`;

interface Peer {
  probe(): Promise<NatProbeResult>;
  close(): Promise<void>;
}

/** A NatProbe in `ns` on `address`:4490, answering once this resolves; probe() runs one probe of `target`. */
async function peer(ns: string, address: string, clusterId: string, target: NatProbeTarget): Promise<Peer> {
  const module = new URL('./nat-probe.ts', import.meta.url).href;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--no-warnings', '--input-type=module', '-e', PEER, module, address, clusterId, JSON.stringify(target)]);
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (what: string): Promise<string> => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const line = await lines.next();
    clearTimeout(timer);
    if (line.done === true) throw new Error(`${clusterId} in ${ns} ended before ${what}: ${stderr}`);
    return line.value;
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  assert.is(await next('ready'), 'ready');
  return {
    async probe() {
      child.stdin.write('go\n');
      return JSON.parse(await next('its probe result')) as NatProbeResult;
    },
    async close() {
      child.stdin.end();
      await exited;
    },
  };
}

test('behind a masquerading router: outside finds the inside peer public, inside finds outside private and learns its NAT', async () => {
  const outside = await peer(NS.outside, OUTSIDE, 'c1', { cluster: 'c2', privateIp: INSIDE, publicIp: ROUTER_WAN, port: PORT });
  const inside = await peer(NS.inside, INSIDE, 'c2', { cluster: 'c1', privateIp: OUTSIDE, publicIp: OUTSIDE, port: PORT });
  const [fromOutside, fromInside] = await Promise.all([outside.probe(), inside.probe()]);
  await Promise.all([outside.close(), inside.close()]);
  // the inside peer's private address is unreachable from outside; its public one answers
  assert.is(fromOutside.verdict, 'public');
  assert.is(fromOutside.seen?.ip, OUTSIDE);
  assert.is(fromOutside.behindNat, false);
  // the outside peer's private address answers; it saw the inside peer as the router
  assert.is(fromInside.verdict, 'private');
  assert.is(fromInside.seen?.ip, ROUTER_WAN);
  assert.is(fromInside.behindNat, true);
});

test('from outside, the inside peer\'s private address alone goes unanswered (the router drops it)', async () => {
  const inside = await peer(NS.inside, INSIDE, 'c2', { cluster: 'c1', privateIp: OUTSIDE, publicIp: '', port: PORT });
  const outside = await peer(NS.outside, OUTSIDE, 'c1', { cluster: 'c2', privateIp: INSIDE, publicIp: '', port: PORT });
  const fromOutside = await outside.probe();
  await Promise.all([outside.close(), inside.close()]);
  assert.equal(fromOutside, { behindNat: false }, 'no verdict (JSON drops the undefined), nothing seen');
});

test.run();
