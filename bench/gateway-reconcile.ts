// Benchmark (root): what one gateway reconcile costs with 100 remote clusters, per cable driver.
// A reconcile is what the engine runs (gateway/engine.ts): desiredCables(...) over the remote
// endpoints and clusters, then driver.set(desired). Per driver, in a network namespace of its
// own (`bgr-<random>-<driver>`), with the driver built by gateway/drivers.ts (setupDriver; ipsec
// with a gateway certificate issued by certs/), it measures, over --rounds rounds:
//   1. 0 → 100 cables, 2. the same 100 again (no change), 3. one remote's address changed,
//   4. 100 → 0;
// wall time; CPU of this process (process.cpuUsage); CPU of the commands the driver ran (this
// process's reaped children: cutime + cstime of /proc/self/stat, which covers `ip`, `bridge`,
// `wg` and their kernel work); CPU of the driver's daemon (wireguard-go or charon, from
// /proc/<pid>/stat, read 200 ms after set() returned); the commands run and how many of them
// modify state (a wrapper around the CommandRunner), and for ipsec the VICI requests.
// Also desiredCables alone (pure) in µs per call, and what one short command costs through
// `ip netns exec` and with `ip -n`.
//
// The remote gateways are at 10.250.1.1-100, on-link through a veth pair whose both ends sit in
// the namespace: nothing leaves it, and no cable comes up (this is the control-plane cost).
//
// usage: node bench/gateway-reconcile.ts [--driver wireguard|vxlan|ipsec] [--rounds 5] [--iterations 20000]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { createClustersetCA, issueFor, writeIssued } from '../certs/index.ts';
import { NetnsRunner, SystemRunner, silentLogger, wireguardKeyPair } from '../core/index.ts';
import type { CableDriverName, CableSpec } from '../gateway/cable/driver.ts';
import { ViciClient } from '../gateway/cable/vici.ts';
import { desiredCables, type LocalView, type RemoteCluster, type RemoteEndpoint } from '../gateway/desired.ts';
import { DRIVER_NAMES, setupDriver } from '../gateway/drivers.ts';
import { RecordingRunner, isReadOnly } from './cables.ts';
import { arg, numberArg } from './lib/args.ts';

const REMOTES = 100;
/** Sorts after every remote id (r000…r099): the ipsec side that responds, so nothing is initiated while measuring. */
const LOCAL_ID = 'zz-local';
const LOCAL_IP = '10.250.0.1';
const PORT: Readonly<Record<CableDriverName, number>> = { wireguard: 51820, vxlan: 4789, ipsec: 500 };
const TAG = `bgr-${randomBytes(3).toString('hex')}`;
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const system = new SystemRunner();

// ---- the namespace, removed whatever ends the run ----

interface Lab {
  readonly ns: string;
  readonly dir: string;
}

const live = new Set<Lab>();

function nsPids(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kills every process in the namespace (wireguard-go, charon), deletes it and the lab's folder. Synchronous: also runs at 'exit'. */
function destroy(lab: Lab): void {
  for (const pid of nsPids(lab.ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', lab.ns], { stdio: 'ignore' });
  } catch {
    // never made, or already gone
  }
  rmSync(lab.dir, { recursive: true, force: true });
  live.delete(lab);
}

process.once('exit', () => {
  for (const lab of [...live]) destroy(lab);
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

/** The gateway's namespace: LOCAL_IP/16 on gw0, a veth whose peer sink0 is in the same namespace. */
async function createLab(name: string): Promise<Lab> {
  const lab: Lab = { ns: `${TAG}-${name}`, dir: mkdtempSync(`/tmp/${TAG}-`) };
  live.add(lab);
  try {
    await system.run('ip', ['netns', 'add', lab.ns]);
    for (const args of [
      ['link', 'set', 'lo', 'up'],
      ['link', 'add', 'gw0', 'type', 'veth', 'peer', 'name', 'sink0'],
      ['addr', 'add', `${LOCAL_IP}/16`, 'dev', 'gw0'],
      ['link', 'set', 'gw0', 'up'],
      ['link', 'set', 'sink0', 'up'],
    ]) await system.run('ip', ['-n', lab.ns, ...args]);
  } catch (err) {
    destroy(lab);
    throw err;
  }
  return lab;
}

// ---- what the broker would say: 100 remote clusters, one endpoint each ----

function remoteId(i: number): string {
  return `r${String(i).padStart(3, '0')}`;
}

function remoteEndpoints(driver: CableDriverName): RemoteEndpoint[] {
  return Array.from({ length: REMOTES }, (_, i): RemoteEndpoint => {
    const id = remoteId(i);
    const backend = driver === 'wireguard' ? { 'public-key': wireguardKeyPair().publicKey } : driver === 'vxlan' ? { vni: '100' } : { 'cert-cn': `gw.${id}` };
    return { clusterId: id, hostname: `gw-${id}`, privateIp: `10.250.1.${String(i + 1)}`, publicIp: '', observedIp: '', port: PORT[driver], driver, backend, revision: i + 1 };
  });
}

/** Pods and services of remote i: 10.(100+i).0.0/17 and 10.(100+i).128.0/17. */
function remoteClusters(): Map<string, RemoteCluster> {
  return new Map(Array.from({ length: REMOTES }, (_, i) => [remoteId(i), { clusterId: remoteId(i), cidrs: [`10.${String(100 + i)}.0.0/17`, `10.${String(100 + i)}.128.0/17`] }]));
}

/** The endpoints with remote k moved to 10.250.2.(k+1) (a newer revision). */
function withMoved(eps: readonly RemoteEndpoint[], k: number): RemoteEndpoint[] {
  return eps.map((e, i) => (i === k ? { ...e, privateIp: `10.250.2.${String(k + 1)}`, revision: e.revision + 1000 } : e));
}

// ---- measuring ----

/** ms of CPU from /proc/<pid>/stat: utime+stime (fields 14, 15) or, for 'children', cutime+cstime (16, 17) of this process. */
function procCpuMs(pid: number | 'children'): number {
  try {
    const stat = readFileSync(`/proc/${pid === 'children' ? 'self' : String(pid)}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    const [a, b] = pid === 'children' ? [f[13], f[14]] : [f[11], f[12]];
    return ((Number(a) + Number(b)) * 1000) / HZ;
  } catch {
    return NaN; // the process is gone
  }
}

// every VICI request (stream() goes through request() too), for the ipsec driver's figures
const viciLog: string[] = [];
const viciRequest = ViciClient.prototype.request;
ViciClient.prototype.request = function (this: ViciClient, ...args: Parameters<ViciClient['request']>) {
  viciLog.push(args[0]);
  return viciRequest.apply(this, args);
};
const viciReadOnly = (command: string): boolean => /^(list-|get-|version$|stats$)/.test(command);

interface Sample {
  readonly wall: number;
  readonly nodeCpu: number;
  readonly childCpu: number;
  readonly daemonCpu: number;
  readonly commands: number;
  readonly modifying: number;
  readonly vici: number;
  readonly viciModifying: number;
}

const OPERATIONS = ['0 → 100 cables', '100 → same 100 (no change)', 'one endpoint moved', '100 → 0'] as const;
type Operation = (typeof OPERATIONS)[number];

/** "a ×3, b ×1" */
function tally(xs: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ×${String(n)}`).join(', ');
}
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function benchDriver(name: CableDriverName, rounds: number): Promise<void> {
  const lab = await createLab(name);
  const rec = new RecordingRunner(new NetnsRunner(system, lab.ns));
  let cleanup: (() => Promise<void>) | undefined;
  try {
    const stateDir = join(lab.dir, 'state');
    let tlsDir: string | undefined;
    if (name === 'ipsec') {
      const ca = createClustersetCA({ validDays: 1 });
      tlsDir = join(lab.dir, 'tls');
      await writeIssued(tlsDir, issueFor(ca, { role: 'gateway', clusterId: LOCAL_ID, gateway: 'gw' }, { validDays: 1 }), ca);
    }
    // private WireGuard sockets as in the sandbox: a real node would not share /var/run/wireguard with other tests
    const setup = setupDriver({ name, runner: rec, logger: silentLogger(), stateDir, privateSockets: true, ...(tlsDir === undefined ? {} : { tlsDir }) });
    const driver = setup.driver;
    cleanup = () => driver.cleanup();
    const t0 = performance.now();
    await driver.init({ clusterId: LOCAL_ID, privateIp: LOCAL_IP, port: PORT[name], cidrs: ['10.99.0.0/16'], secrets: setup.secrets });
    const initMs = performance.now() - t0;
    const daemons = nsPids(lab.ns);
    const impl = `, ${driver.implementationInfo() ?? '?'}`;
    console.log(`\n${name}${impl}: init() ${initMs.toFixed(0)} ms; daemon pids in the namespace: ${daemons.join(', ') || 'none'}`);

    const local: LocalView = { clusterId: LOCAL_ID, driver: name, behindNat: false, forceNatTraversal: false };
    const base = remoteEndpoints(name);
    const clusters = remoteClusters();
    const daemonCpu = (): number => daemons.reduce((s, pid) => s + procCpuMs(pid), 0);

    /** One reconcile as the engine runs it: desiredCables, then set(). */
    const reconcile = async (eps: readonly RemoteEndpoint[], expect: number): Promise<Sample> => {
      const [lines0, vici0, d0, k0] = [rec.lines.length, viciLog.length, daemonCpu(), procCpuMs('children')];
      const c0 = process.cpuUsage();
      const t = performance.now();
      const desired: CableSpec[] = desiredCables(local, eps, clusters);
      const result = await driver.set(desired);
      const wall = performance.now() - t;
      const cpu = process.cpuUsage(c0);
      const k1 = procCpuMs('children');
      const lines = rec.lines.slice(lines0);
      const vici = viciLog.slice(vici0);
      await sleep(200); // let the daemon finish what set() started (charon's supervisor wakes on a change)
      if (desired.length !== expect) throw new Error(`desiredCables gave ${String(desired.length)} cables, expected ${String(expect)}`);
      if (result.failed.length > 0) throw new Error(`${name}: ${String(result.failed.length)} cables failed, first: ${JSON.stringify(result.failed[0])}`);
      return {
        wall, nodeCpu: (cpu.user + cpu.system) / 1000, childCpu: k1 - k0, daemonCpu: daemonCpu() - d0,
        commands: lines.length, modifying: lines.filter((l) => !isReadOnly(l)).length,
        vici: vici.length, viciModifying: vici.filter((c) => !viciReadOnly(c)).length,
      };
    };

    const samples = new Map<Operation, Sample[]>(OPERATIONS.map((op) => [op, []]));
    const add = (op: Operation, s: Sample): void => void samples.get(op)?.push(s);
    const noChangeLines: string[] = [];
    const firstVici = viciLog.length;
    for (let r = 0; r < rounds; r++) {
      add('0 → 100 cables', await reconcile(base, REMOTES));
      if (r === 0 && name === 'ipsec') console.log(`ipsec: VICI requests of the first 0 → 100: ${tally(viciLog.slice(firstVici))}`);
      const n0 = rec.lines.length;
      add('100 → same 100 (no change)', await reconcile(base, REMOTES));
      if (r === 0) noChangeLines.push(...rec.lines.slice(n0));
      add('one endpoint moved', await reconcile(withMoved(base, r), REMOTES));
      add('100 → 0', await reconcile([], 0));
    }
    const initiated = viciLog.filter((c) => c === 'initiate').length;

    const range = (xs: readonly number[]): string => (Math.min(...xs) === Math.max(...xs) ? String(xs[0]) : `${String(Math.min(...xs))}–${String(Math.max(...xs))}`);
    const mm = (xs: readonly number[]): string => `${median(xs).toFixed(0)} / ${Math.max(...xs).toFixed(0)}`;
    console.log(`${name}: ${String(rounds)} rounds; ms as median / max; commands as run (of which modifying)${name === 'ipsec' ? '; VICI requests likewise' : ''}`);
    console.log(`| operation | wall ms | node CPU ms | commands' CPU ms | ${name === 'ipsec' ? 'charon' : name === 'wireguard' ? 'wireguard-go' : 'daemon'} CPU ms | commands (modifying) |${name === 'ipsec' ? ' VICI requests (modifying) |' : ''}`);
    console.log(`|---|---|---|---|---|---|${name === 'ipsec' ? '---|' : ''}`);
    for (const [op, ss] of samples) {
      const col = (f: (s: Sample) => number): number[] => ss.map(f);
      const daemon = daemons.length === 0 ? '–' : mm(col((s) => s.daemonCpu));
      const vici = name === 'ipsec' ? ` ${range(col((s) => s.vici))} (${range(col((s) => s.viciModifying))}) |` : '';
      console.log(`| ${op} | ${mm(col((s) => s.wall))} | ${mm(col((s) => s.nodeCpu))} | ${mm(col((s) => s.childCpu))} | ${daemon} | ${range(col((s) => s.commands))} (${range(col((s) => s.modifying))}) |${vici}`);
    }
    console.log(`${name}: commands of the first no-change reconcile: ${noChangeLines.length === 0 ? 'none' : noChangeLines.map((l) => l.replace(/^unshare -m sh -c .* isthmus-wg-sock \S+ /, '')).join('; ')}`);
    if (name === 'ipsec') console.log(`ipsec: initiate requests during the run: ${String(initiated)}`);
  } finally {
    await cleanup?.().catch((err: unknown) => console.error(`${name}: cleanup failed: ${String(err)}`));
    destroy(lab);
  }
}

/** Cost of one short command: `ip -j link show dev lo` in the namespace, through `ip netns exec` (as the drivers here run) and with `ip -n` (setns only). */
async function benchCommand(lab: Lab, count: number): Promise<void> {
  const runner = new NetnsRunner(system, lab.ns);
  const ways: [string, () => Promise<unknown>][] = [
    ['ip netns exec NS ip -j link show dev lo', () => runner.run('ip', ['-j', 'link', 'show', 'dev', 'lo'])],
    ['ip -n NS -j link show dev lo', () => system.run('ip', ['-n', lab.ns, '-j', 'link', 'show', 'dev', 'lo'])],
  ];
  for (const [what, run] of ways) {
    const [c0, k0, t0] = [process.cpuUsage(), procCpuMs('children'), performance.now()];
    for (let i = 0; i < count; i++) await run();
    const [wall, cpu, child] = [performance.now() - t0, process.cpuUsage(c0), procCpuMs('children') - k0];
    console.log(`one command, ${what}, ${String(count)} in a row: ${(wall / count).toFixed(1)} ms wall, node CPU ${((cpu.user + cpu.system) / 1000 / count).toFixed(1)} ms, command CPU ${(child / count).toFixed(1)} ms each`);
  }
}

function benchDesired(iterations: number): void {
  const local: LocalView = { clusterId: LOCAL_ID, driver: 'wireguard', behindNat: false, forceNatTraversal: false };
  const eps = remoteEndpoints('wireguard');
  const clusters = remoteClusters();
  let sink = 0;
  for (let i = 0; i < Math.min(2000, iterations); i++) sink += desiredCables(local, eps, clusters).length; // warm-up
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) sink += desiredCables(local, eps, clusters).length;
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  if (sink !== (iterations + Math.min(2000, iterations)) * REMOTES) throw new Error('desiredCables gave the wrong number of cables');
  console.log(`desiredCables alone, ${String(REMOTES)} endpoints + ${String(REMOTES)} clusters, ${String(iterations)} calls after a warm-up: ${((wall * 1000) / iterations).toFixed(1)} µs per call wall, ${((cpu.user + cpu.system) / iterations).toFixed(1)} µs CPU`);
}

if (import.meta.main) {
  const only = arg('driver', '');
  const rounds = numberArg('rounds', 5);
  const iterations = numberArg('iterations', 20_000);
  if (only !== '' && !DRIVER_NAMES.includes(only as CableDriverName)) throw new Error(`--driver ${only}: one of ${DRIVER_NAMES.join(', ')}`);
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? '?';
  const cores = cpuinfo.split('\n').filter((l) => l.startsWith('processor')).length;
  console.log(`${new Date().toISOString()}: ${model}, ${String(cores)} cores, Linux ${release()}, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  benchDesired(iterations);
  const calibration = await createLab('cmd');
  try {
    await benchCommand(calibration, 100);
  } finally {
    destroy(calibration);
  }
  for (const name of ['wireguard', 'vxlan', 'ipsec'] as const) {
    if (only === '' || only === name) await benchDriver(name, rounds);
  }
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(TAG));
  console.log(`\nleft behind: ${left.length === 0 ? `no ${TAG}-* namespace` : left.join(', ')}; load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
