import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { test as uvuTest } from 'uvu';
import { IsthmusError, createCA, issueCertificate, type CertAndKey, type Logger, createLogger } from '../core/index.ts';
import { createClustersetCA, issueFor, writeIssued, type ClustersetCA, type Identity } from '../certs/index.ts';

let pkiMemo: { ca: ClustersetCA; issued: Map<string, CertAndKey> } | undefined;
import { BrokerCache, BrokerClient, BrokerServer, type BrokerClientOptions, type Change, type BrokerServerOptions, type TlsMaterial } from '../broker/index.ts';

/**
 * Real etcd (the Debian etcd-server binary), real mTLS, a real broker: the pieces the
 * broker e2e tests share. Everything lives in one temp dir and every process runs in
 * its own process group; `cleanup()` kills them all and removes the dir.
 */
export { uvuTest as test };

// Last resort: if the test process exits without cleanup, kill the process groups it started.
const allPids = new Set<number>();
const allDirs = new Set<string>();
function killAll(): void {
  for (const pid of allPids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const dir of allDirs) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', killAll);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
  });
}

export const ETCD_BIN = process.env['ISTHMUS_ETCD'] ?? '/usr/bin/etcd';

export function requireEtcd(): void {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`${ETCD_BIN} is missing: the broker e2e tests need real etcd; install it with \`apt-get install -y etcd-server\` (or run ./setup)`);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Thrown by an `eventually` check to stop waiting at once: what it waits for cannot happen. */
export class GaveUp extends Error {}

/** Polls `check` until it returns a value (not undefined) or `ms` pass. */
export async function eventually<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 10_000, every = 50): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof GaveUp) throw err;
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`);
    await sleepMs(every);
  }
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  proc: ChildProcess | undefined;
}

export class Lab {
  readonly dir: string;
  readonly members: EtcdMember[] = [];
  readonly logger: Logger;
  #procs = new Set<ChildProcess>();
  #brokers = new Set<BrokerServer>();
  #clients = new Set<BrokerClient>();
  #etcdClients = new Set<Etcd3>();
  ca!: ClustersetCA;
  pki!: string;

  private constructor(dir: string) {
    this.dir = dir;
    this.logger = createLogger({ component: 'broker-test', level: process.env['ISTHMUS_LOG_LEVEL'] ?? 'silent' });
  }

  static async create(): Promise<Lab> {
    requireEtcd();
    const lab = new Lab(await mkdtemp(join(tmpdir(), 'isthmus-broker-e2e-')));
    allDirs.add(lab.dir);
    return lab;
  }

  get etcdHosts(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /**
   * Starts an etcd cluster of `size` members and waits until it serves. A port that freePort
   * found free can be taken (by another process's outgoing connection) before etcd binds it:
   * a member that exits with "address already in use" is started again, all members on fresh
   * ports, up to 3 times; any other early exit or a timeout fails with the members' log tails.
   */
  async startEtcd(size = 1): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const ports = [];
      for (let i = 0; i < size * 2; i++) ports.push(await freePort());
      const fresh: EtcdMember[] = [];
      for (let i = 0; i < size; i++) {
        fresh.push({ name: `m${i}`, clientUrl: `http://127.0.0.1:${ports[2 * i]}`, peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`, proc: undefined });
      }
      this.members.splice(0, this.members.length, ...fresh);
      for (const m of this.members) this.#spawnMember(m, 'new');
      try {
        await this.waitEtcdReady();
        return;
      } catch (err) {
        const logs = await this.#etcdLogs();
        const bindRace = /address already in use/.test(logs);
        for (const m of this.members) await this.killMember(m);
        for (const m of this.members) await rm(join(this.dir, `${m.name}.etcd`), { recursive: true, force: true });
        if (!bindRace || attempt === 3) throw new Error(`${String(err instanceof Error ? err.message : err)}; etcd's log:\n${logs}`);
        for (const m of this.members) await rm(join(this.dir, `${m.name}.log`), { force: true });
      }
    }
  }

  /** The last lines of every member's log. */
  async #etcdLogs(): Promise<string> {
    const out: string[] = [];
    for (const m of this.members) {
      const text = await readFile(join(this.dir, `${m.name}.log`), 'utf8').catch(() => '');
      out.push(...text.trimEnd().split('\n').slice(-8).map((l) => `${m.name}: ${l.slice(0, 400)}`));
    }
    return out.join('\n');
  }

  #spawnMember(m: EtcdMember, state: 'new' | 'existing'): void {
    const cluster = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    const log = openSync(join(this.dir, `${m.name}.log`), 'a');
    const proc = spawn(ETCD_BIN, [
      '--name', m.name, '--data-dir', join(this.dir, `${m.name}.etcd`),
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', cluster, '--initial-cluster-state', state, '--initial-cluster-token', 'isthmus-test',
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--logger', 'zap', '--log-level', 'warn',
    ], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    proc.on('error', () => undefined);
    this.#procs.add(proc);
    if (proc.pid !== undefined) allPids.add(proc.pid);
    proc.on('exit', () => {
      this.#procs.delete(proc);
      if (proc.pid !== undefined) allPids.delete(proc.pid);
    });
    m.proc = proc;
  }

  /** A raw etcd client (for compaction, inspection). */
  etcd(hosts: string[] = this.etcdHosts): Etcd3 {
    const c = new Etcd3({ hosts, dialTimeout: 1_000 });
    this.#etcdClients.add(c);
    return c;
  }

  /** Waits until `hosts` serve; fails at once when a member that should serve them has exited. */
  async waitEtcdReady(hosts: string[] = this.etcdHosts): Promise<void> {
    const serving = this.members.filter((m) => hosts.includes(m.clientUrl));
    // a fresh client per attempt: etcd3's circuit breaker would otherwise hold off 5 s after 3 failures
    await eventually('etcd to serve', async () => {
      const gone = serving.find((m) => m.proc === undefined || m.proc.exitCode !== null || m.proc.signalCode !== null);
      if (gone !== undefined) throw new GaveUp(`etcd member ${gone.name} exited before it served`);
      const c = new Etcd3({ hosts, dialTimeout: 500 });
      try {
        await c.get('/isthmus-test/ready').string();
        return true;
      } finally {
        c.close();
      }
    }, 20_000, 50);
  }

  /** SIGKILLs a member. */
  async killMember(m: EtcdMember): Promise<void> {
    const p = m.proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
    await exited;
    m.proc = undefined;
  }

  restartMember(m: EtcdMember): void {
    this.#spawnMember(m, 'existing');
  }

  /** The member that is the raft leader now. */
  async leader(): Promise<EtcdMember> {
    for (const m of this.members) {
      if (m.proc === undefined) continue;
      const c = this.etcd([m.clientUrl]);
      try {
        const st = await c.maintenance.status();
        if (st.leader === st.header.member_id) return m;
      } catch {
        // not answering
      } finally {
        c.close();
        this.#etcdClients.delete(c);
      }
    }
    throw new Error('no etcd member reports itself leader');
  }

  /** A clusterset CA, the broker's server certificate and cluster/admin client certificates. */
  async makePki(clusters: readonly string[] = ['c1', 'c2', 'c3']): Promise<void> {
    this.pki = join(this.dir, 'pki');
    // RSA keys take a while: one set per test process, shared by its labs
    pkiMemo ??= { ca: createClustersetCA({ validDays: 30 }), issued: new Map() };
    const memo = pkiMemo;
    this.ca = memo.ca;
    const issue = (name: string, identity: Identity): CertAndKey => {
      let got = memo.issued.get(name);
      if (got === undefined) {
        got = issueFor(memo.ca, identity, { validDays: 30 });
        memo.issued.set(name, got);
      }
      return got;
    };
    await writeIssued(join(this.pki, 'broker'), issue('broker', { role: 'broker', sans: ['127.0.0.1', 'localhost'] }), this.ca);
    await writeIssued(join(this.pki, 'admin'), issue('admin', { role: 'admin' }), this.ca);
    for (const c of clusters) await writeIssued(join(this.pki, c), issue(c, { role: 'cluster', clusterId: c }), this.ca);
  }

  /** TLS material of an identity made by makePki (or any CertAndKey). */
  async tls(name: string): Promise<TlsMaterial> {
    const d = join(this.pki, name);
    return { caPem: await readFile(join(d, 'ca.crt'), 'utf8'), certPem: await readFile(join(d, 'tls.crt'), 'utf8'), keyPem: await readFile(join(d, 'tls.key'), 'utf8') };
  }

  tlsOf(cert: CertAndKey): TlsMaterial {
    return { caPem: this.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem };
  }

  /** A certificate for cluster `id` from a CA the broker does not trust. */
  foreignCert(id: string): CertAndKey {
    const foreign = createCA({ commonName: 'isthmus-clusterset-ca', validDays: 30 });
    return issueCertificate({ ca: foreign, commonName: id, organizations: ['isthmus:cluster'], usages: ['client'], validDays: 30 });
  }

  /** A certificate for cluster `id` from the right CA that expired yesterday. */
  expiredCert(id: string): CertAndKey {
    return issueFor(this.ca, { role: 'cluster', clusterId: id }, { validDays: 1, notBefore: new Date(Date.now() - 2 * 86_400_000) });
  }

  async startBroker(options: Partial<BrokerServerOptions> = {}): Promise<BrokerServer> {
    const b = new BrokerServer({
      etcdHosts: this.etcdHosts, listen: '127.0.0.1:0', tlsDir: join(this.pki, 'broker'), logger: this.logger, ...options,
    });
    this.#brokers.add(b);
    await b.start();
    return b;
  }

  async stopBroker(b: BrokerServer): Promise<void> {
    await b.stop();
    this.#brokers.delete(b);
  }

  client(port: number, tls: TlsMaterial | (() => Promise<TlsMaterial>), extra: { retryForMs?: number } = {}): BrokerClient {
    const c = new BrokerClient({
      address: `127.0.0.1:${port}`, credentials: typeof tls === 'function' ? tls : () => tls, logger: this.logger,
      backoff: { baseMs: 50, maxMs: 500 }, ...extra,
    });
    this.#clients.add(c);
    return c;
  }

  /** A client of broker address(es) as the parts get them: host:port, a comma list or an array. */
  clientAt(address: string | readonly string[], tls: TlsMaterial, extra: Partial<BrokerClientOptions> = {}): BrokerClient {
    const c = new BrokerClient({ address, credentials: () => tls, logger: this.logger, backoff: { baseMs: 50, maxMs: 500 }, ...extra });
    this.#clients.add(c);
    return c;
  }

  async cleanup(): Promise<void> {
    for (const c of this.#clients) c.close();
    for (const b of this.#brokers) await b.stop().catch(() => undefined);
    for (const c of this.#etcdClients) c.close();
    for (const p of this.#procs) {
      if (p.pid !== undefined && p.exitCode === null) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await Promise.all([...this.#procs].map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    await rm(this.dir, { recursive: true, force: true });
    allDirs.delete(this.dir);
  }
}

/** A started cache of EXPORT records read through `client` (short backoff), and every change it reported. */
export function watchingExports(client: BrokerClient): { cache: BrokerCache; seen: Change[] } {
  const cache = new BrokerCache(client, { kinds: ['EXPORT'], backoff: { baseMs: 50, maxMs: 500 } });
  const seen: Change[] = [];
  cache.onChange((ch) => seen.push(ch));
  cache.start();
  return { cache, seen };
}

/** The IsthmusError `p` rejects with; throws when it resolves (or rejects with something else). */
export async function refusal(p: Promise<unknown>): Promise<IsthmusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof IsthmusError) return err;
    throw err;
  }
  throw new Error('expected a refusal, the call succeeded');
}

/** Runs `fn` with a fresh lab and always cleans up. */
export async function withLab(fn: (lab: Lab) => Promise<void>): Promise<void> {
  const lab = await Lab.create();
  try {
    await fn(lab);
  } finally {
    await lab.cleanup();
  }
}

