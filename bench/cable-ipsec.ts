// Benchmark (needs root, strongSwan from ./setup): the IPsec cable between two gateway
// namespaces joined by a bridge (test/lib/ipsec-lab.ts), same run:
// - iperf3 TCP throughput through the cable (cluster CIDR → cluster CIDR) vs the underlay, ratio;
// - ping RTT through the cable vs the underlay, ratio;
// - set() on both sides → first packet through the cable (target ≤ 5 s), median of --rounds.
//
// usage: node bench/cable-ipsec.ts [--seconds 5] [--rounds 3]
import { spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { NetnsRunner, SystemRunner, createCA, issueCertificate, silentLogger } from '../core/index.ts';
import type { CableSpec } from '../gateway/cable/driver.ts';
import { IpsecDriver } from '../gateway/cable/ipsec.ts';
import { run } from '../test/lib/cli.ts';
import { IpsecLab, type LabNode } from '../test/lib/ipsec-lab.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const seconds = arg('seconds', 5);
const rounds = arg('rounds', 3);
const port = 20_000 + Math.floor(Math.random() * 20_000);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function iperf(server: LabNode, client: LabNode, serverIp: string, bindIp: string): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', server.ns, 'iperf3', '-s', '-1', '-p', String(port), '-B', serverIp], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      const r = await run('ip', ['netns', 'exec', client.ns, 'iperf3', '-c', serverIp, '-B', bindIp, '-p', String(port), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
      const j = JSON.parse(r.stdout || '{}') as { error?: string; end?: { sum_received?: { bits_per_second: number } } };
      const bps = j.end?.sum_received?.bits_per_second;
      if (r.code === 0 && bps !== undefined) return bps / 1e9;
      if (!(j.error ?? '').includes('unable to connect')) throw new Error(`iperf3 failed: ${j.error ?? r.stdout.slice(0, 300)} ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('iperf3 server did not start');
  } finally {
    srv.kill();
  }
}

async function rtt(from: LabNode, to: string, src: string): Promise<number> {
  const r = await run('ip', ['netns', 'exec', from.ns, 'ping', '-q', '-c', '50', '-i', '0.02', '-I', src, to], { timeoutMs: 30_000 });
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (r.code !== 0 || m === null) throw new Error(`ping ${to} failed: ${r.stdout} ${r.stderr}`);
  return Number(m[1]);
}

async function firstPacket(from: LabNode, to: LabNode, deadlineMs: number): Promise<number> {
  while (performance.now() < deadlineMs) {
    const r = await run('ip', ['netns', 'exec', from.ns, 'ping', '-c', '1', '-W', '0.02', '-I', from.cidrIp, to.cidrIp], { timeoutMs: 5_000 });
    if (r.code === 0) return performance.now();
  }
  throw new Error('no packet through the cable before the deadline');
}

function specTo(n: LabNode): CableSpec {
  return { remoteCluster: n.id, remoteIp: n.underlayIp, remotePort: 500, remoteCidrs: [n.cidr], natTraversal: false, backend: { 'cert-cn': `gw.${n.id}` } };
}

console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; ${new Date().toISOString()}`);
const lab = await IpsecLab.create(['a', 'b']);
const ca = createCA({ commonName: 'bench-ca', validDays: 1 });
const drivers: IpsecDriver[] = [];
const tidy = async (): Promise<void> => {
  for (const d of drivers.splice(0)) await d.cleanup().catch(() => undefined);
  await lab.destroy();
};
// whatever ends the run, leave no charon, namespace or folder behind
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void tidy().finally(() => process.exit(130)));
process.once('uncaughtException', (err) => {
  console.error(err);
  void tidy().finally(() => process.exit(1));
});
try {
  const [a, b] = [lab.node('a'), lab.node('b')];
  const init = async (n: LabNode): Promise<IpsecDriver> => {
    const c = issueCertificate({ ca, commonName: `gw.${n.id}`, dnsNames: [`gw.${n.id}`], usages: ['server', 'client'], validDays: 1 });
    const d = new IpsecDriver({ runner: new NetnsRunner(new SystemRunner(), n.ns), logger: silentLogger(), dir: n.dir, retryMinMs: 200 });
    await d.init({ clusterId: n.id, privateIp: n.underlayIp, port: 500, cidrs: [n.cidr], secrets: { certPem: c.certPem, keyPem: c.keyPem, caPem: ca.certPem } });
    drivers.push(d);
    return d;
  };
  const [da, db] = [await init(a), await init(b)];
  console.log(`data path: ${da.charon?.dataPath ?? '?'}`);

  // set() → first packet, several rounds (remove the cable between rounds)
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await Promise.all([db.set([specTo(a)]), da.set([specTo(b)])]);
    const t1 = await firstPacket(a, b, t0 + 30_000);
    times.push(t1 - t0);
    if (i < rounds - 1) {
      await Promise.all([da.set([]), db.set([])]);
    }
  }
  console.log(`set() → first packet through: median ${median(times).toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(', ')} ms; target ≤ 5000 ms)`);

  const under = await iperf(b, a, b.underlayIp, a.underlayIp);
  const cable = await iperf(b, a, b.cidrIp, a.cidrIp);
  console.log(`iperf3 TCP ${seconds} s: underlay ${under.toFixed(2)} Gbit/s, IPsec cable ${cable.toFixed(3)} Gbit/s, ratio ${(cable / under).toFixed(3)}`);
  // charon SIGKILLed on one side → the driver restarts it (default 1 s delay) → traffic again
  const recover: number[] = [];
  for (const [side, d] of [[a, da], [b, db]] as const) {
    const pid = await d.charon?.pid();
    if (pid === undefined) throw new Error(`no charon on ${side.id}`);
    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 50));
    recover.push((await firstPacket(a, b, t0 + 60_000)) - t0);
  }
  console.log(`charon SIGKILL → traffic through the cable again (auto restart after 1 s): initiator side ${recover[0]?.toFixed(0)} ms, responder side ${recover[1]?.toFixed(0)} ms`);
  // 100 cables on one gateway: set(), the same set() again, connections(), removal of all
  const z = await lab.addNode('z', 3);
  const dz = await init(z);
  const many: CableSpec[] = Array.from({ length: 100 }, (_, i) => ({
    remoteCluster: `r${String(i).padStart(3, '0')}`, remoteIp: `192.168.${100 + Math.floor(i / 200)}.${1 + (i % 200)}`, remotePort: 500,
    remoteCidrs: [`10.${100 + i}.0.0/16`], natTraversal: false, backend: { 'cert-cn': `gw.r${i}` },
  }));
  const charonCpu = async (d: IpsecDriver): Promise<number> => {
    const pid = await d.charon?.pid();
    const f = (await import('node:fs')).readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime in ms (USER_HZ 100)
  };
  const measure = async (what: string, f: () => Promise<unknown>): Promise<void> => {
    const c0 = process.cpuUsage();
    const k0 = await charonCpu(dz);
    const t0 = performance.now();
    await f();
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    const k1 = await charonCpu(dz);
    console.log(`100 cables, ${what}: ${wall.toFixed(0)} ms wall, driver CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, charon CPU ${k1 - k0} ms`);
  };
  await measure('set() (100 load-conn)', () => dz.set(many));
  await measure('the same set() again', () => dz.set(many));
  await measure('connections()', () => dz.connections());
  await measure('set([]) (100 unload-conn)', () => dz.set([]));
  const rUnder = await rtt(a, b.underlayIp, a.underlayIp);
  const rCable = await rtt(a, b.cidrIp, a.cidrIp);
  console.log(`ping RTT (50 × 20 ms): underlay ${rUnder.toFixed(3)} ms, IPsec cable ${rCable.toFixed(3)} ms, ratio ${(rCable / rUnder).toFixed(1)}`);
} finally {
  await tidy();
}
