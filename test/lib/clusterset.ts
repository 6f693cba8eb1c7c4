import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EndpointKeeper, type Cluster, type Endpoint, type EndpointInput } from '../../core/broker-api/index.ts';
import { etcdKey } from '../../broker/keys.ts';
import { createLogger } from '../../core/index.ts';
import { brokerClientFromDir } from '../../cli/broker-client.ts';
import { projectRoot, type SandboxState } from '../../sandbox/index.ts';
import { eventually, isthmus, kubectl, type Run } from './cli.ts';
import { inNetns } from './netns.ts';

/**
 * An e2e clusterset on the sandbox, with real parts only: `sandbox up` (real
 * apiservers for the Lease and the Gateway status), the clusterset's PKI from
 * `isthmus certs`, a real etcd and `isthmus broker` on the host's wan address, and
 * `isthmus gateway` processes in the gateway nodes' namespaces. Every process it starts
 * runs in its own process group, is logged to `<dir>/<name>.log`, and is killed by
 * close(), which also takes the sandbox down and removes the folder.
 *
 * Each gateway node gets a "health address": the first address of its pod CIDR, on lo.
 * Until the route agent exists, traffic between clusters is sent between those.
 */
export type DriverName = 'wireguard' | 'ipsec' | 'vxlan';

export interface GatewayObj {
  status?: {
    haStatus?: string;
    summary?: string;
    statusFailure?: string;
    connections?: { cluster: string; status: string; statusMessage?: string; endpoint?: string; usingIP?: string; rtt?: { avgMs?: number }; natTraversal?: boolean; natDiscovery?: string }[];
    localEndpoint?: { behindNAT?: boolean; publicIP?: string };
  };
}

export interface RouteAgentObj {
  status?: {
    gateway?: string; mode?: string; filter?: string; routes?: number; summary?: string;
    remotes?: { cluster: string; cidrs: string[]; via: string; mode: string; mtu?: number }[];
    refused?: { cluster: string; reason: string }[];
    errors?: string[];
  };
}

export type RouteAgentProc = GatewayProc;

export interface GatewayProc {
  readonly cluster: string;
  readonly node: string;
  readonly netns: string;
  readonly proc: ChildProcess;
}

export interface ClustersetOptions {
  readonly clusters: number;
  readonly gateways: number;
  readonly nat: readonly string[];
  readonly portBase: number;
  /** Nodes per cluster (default: max(2, gateways)). */
  readonly nodes?: number;
  /** kube-proxy's mode (default iptables). */
  readonly proxyMode?: 'iptables' | 'nftables';
  /** kube-proxy's minimum time between rule syncs in ms (default kube-proxy's, 1 s). */
  readonly proxyMinSyncMs?: number;
  /** The broker's per-cluster quotas (its --quotas; default the broker's). */
  readonly brokerQuotas?: string;
}

/** Each route agent serves its metrics on its node address. */
export const ROUTE_AGENT_METRICS_PORT = 9465;

/** The clusters of a 3-cluster clusterset, and the others of one of them. */
export const CLUSTERS: readonly string[] = ['c1', 'c2', 'c3'];
export const others = (c: string): string[] => CLUSTERS.filter((x) => x !== c);

/** Gateway options for a Lease that outlives a process restart, so the restarted process stays the active one. */
export const LONG_LEASE: readonly string[] = ['--lease-ms', '15000', '--renew-deadline-ms', '10000'];

/** Each gateway serves its metrics on its node address (reachable from the host over the cluster bridge). */
export const METRICS_PORT = 9464;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function must(r: Run, what: string): void {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`);
}

export class Clusterset {
  readonly dir = mkdtempSync('/tmp/isthmus-cs-');
  readonly sandboxDir = join(this.dir, 'sandbox');
  readonly env = { ISTHMUS_SANDBOX_DIR: this.sandboxDir };
  readonly kubeconfig = join(this.sandboxDir, 'kubeconfig');
  readonly #cli = join(projectRoot(), 'cli', 'main.ts');
  readonly #procs: ChildProcess[] = [];
  readonly #healthIps = new Map<string, string>();
  #broker: ChildProcess | undefined;
  #brokerQuotas: string | undefined;
  #etcd = '';
  #brokerPort = 0;
  #state: SandboxState | undefined;

  path(p: string): string {
    return join(this.dir, p);
  }

  get state(): SandboxState {
    this.#state ??= JSON.parse(readFileSync(join(this.sandboxDir, 'state.json'), 'utf8')) as SandboxState;
    return this.#state;
  }

  get broker(): string {
    return `172.29.0.1:${this.#brokerPort}`;
  }

  /** The sandbox, the PKI, etcd, the broker, the Gateway CRD and the isthmus-system namespace. */
  async up(o: ClustersetOptions): Promise<void> {
    must(await isthmus(['sandbox', 'up', '--clusters', String(o.clusters), '--nodes', String(o.nodes ?? Math.max(2, o.gateways)), '--gateways', String(o.gateways),
      ...(o.nat.length > 0 ? ['--nat', o.nat.join(',')] : []), '--port-base', String(o.portBase), ...(o.proxyMode === undefined ? [] : ['--proxy-mode', o.proxyMode]),
      ...(o.proxyMinSyncMs === undefined ? [] : ['--proxy-min-sync', String(o.proxyMinSyncMs)])], this.env), 'sandbox up');
    must(await isthmus(['certs', 'ca', 'create', '--out', this.path('ca')]), 'certs ca create');
    must(await isthmus(['certs', 'issue', '--ca', this.path('ca'), '--server', '--san', '172.29.0.1', '--out', this.path('broker')]), 'broker certificate');
    for (const c of this.state.clusters) {
      must(await isthmus(['certs', 'issue', '--ca', this.path('ca'), '--cluster', c.name, '--out', this.path(c.name)]), `${c.name} certificate`);
    }
    const etcdPort = await freePort();
    this.#start('etcd', '/usr/bin/etcd', ['--data-dir', this.path('etcd'), '--listen-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`, '--listen-peer-urls', `http://127.0.0.1:${await freePort()}`, '--log-level', 'warn']);
    this.#brokerPort = await freePort();
    this.#etcd = `http://127.0.0.1:${etcdPort}`;
    this.#brokerQuotas = o.brokerQuotas;
    this.startBroker();
    const deploy = join(projectRoot(), 'deploy');
    for (const c of this.state.clusters) {
      for (const f of ['crds/gateways.isthmus.dev.json', 'crds/routeagents.isthmus.dev.json', 'namespace.yaml', 'gateway/rbac.yaml', 'route-agent/rbac.yaml']) {
        await this.kubectl(c.name, ['apply', '-f', join(deploy, f)]);
      }
    }
    for (const c of this.state.clusters) {
      await this.kubectl(c.name, ['wait', '--for=condition=Established', 'crd/gateways.isthmus.dev', 'crd/routeagents.isthmus.dev', '--timeout=30s']);
      await this.#serviceAccountKubeconfig(c.name, c.server, join(c.dir, 'kubelet.kubeconfig'), 'isthmus-gateway', `gateway-${c.name}.kubeconfig`);
      await this.#serviceAccountKubeconfig(c.name, c.server, join(c.dir, 'kubelet.kubeconfig'), 'isthmus-route-agent', `route-agent-${c.name}.kubeconfig`);
    }
  }

  /**
   * A kubeconfig with a token of a ServiceAccount of deploy/ (gateway/rbac.yaml,
   * route-agent/rbac.yaml): the parts run with exactly the rights the manifests give them.
   */
  async #serviceAccountKubeconfig(cluster: string, server: string, admin: string, account: string, file: string): Promise<void> {
    const token = (await this.kubectl(cluster, ['-n', 'isthmus-system', 'create', 'token', account, '--duration', '24h'])).trim();
    const ca = (JSON.parse(readFileSync(admin, 'utf8')) as { clusters: { cluster: { 'certificate-authority-data': string } }[] }).clusters[0]?.cluster['certificate-authority-data'];
    const config = {
      apiVersion: 'v1', kind: 'Config', 'current-context': 'gateway',
      clusters: [{ name: cluster, cluster: { server, 'certificate-authority-data': ca } }],
      users: [{ name: account, user: { token } }],
      contexts: [{ name: 'gateway', context: { cluster, user: account, namespace: 'isthmus-system' } }],
    };
    writeFileSync(this.path(file), JSON.stringify(config), { mode: 0o600 });
  }

  /** `isthmus route-agent` on node `index` of `cluster` (its own process group, log route-agent-<node>.log). */
  startRouteAgent(cluster: string, index: number, extra: readonly string[] = []): RouteAgentProc {
    const c = this.state.clusters.find((x) => x.name === cluster);
    const n = this.node(cluster, index);
    if (c === undefined) throw new Error(`no cluster ${cluster}`);
    const proc = this.#start(`route-agent-${n.name}`, 'ip', ['netns', 'exec', n.netns, process.execPath, '--no-warnings', this.#cli, 'route-agent',
      '--cluster', cluster, '--node', n.name, '--pod-cidrs', c.podCidr, '--service-cidrs', c.serviceCidr,
      '--kubeconfig', this.path(`route-agent-${cluster}.kubeconfig`), '--metrics', `${n.ip}:${ROUTE_AGENT_METRICS_PORT}`, '--resync-ms', '2000', ...extra]);
    return { cluster, node: n.name, netns: n.netns, proc };
  }

  /**
   * The policy parts of `cluster` (issue 14): the ClusterSetNetworkPolicy and PolicyAgent CRDs and
   * deploy/policy/rbac.yaml applied, `isthmus policy controller` on the host (it holds the
   * cluster's broker certificate) and `isthmus policy agent` in every node's namespace
   * (audit log policy-audit-<node>.jsonl), each with its ServiceAccount's token.
   */
  async startPolicy(cluster: string, extra: readonly string[] = []): Promise<{ controller: ChildProcess; agents: ChildProcess[] }> {
    const c = this.state.clusters.find((x) => x.name === cluster);
    if (c === undefined) throw new Error(`no cluster ${cluster}`);
    const deploy = join(projectRoot(), 'deploy');
    await this.kubectl(cluster, ['apply', '-f', join(deploy, 'crds/clustersetnetworkpolicies.isthmus.dev.json'), '-f', join(deploy, 'crds/policyagents.isthmus.dev.json'),
      '-f', join(deploy, 'crds/clusterproperties.about.k8s.io.json'), '-f', join(deploy, 'policy/rbac.yaml'), '-f', join(deploy, 'policy/cluster-properties-rbac.yaml')]);
    await this.kubectl(cluster, ['wait', '--for=condition=Established', 'crd/clustersetnetworkpolicies.isthmus.dev', 'crd/policyagents.isthmus.dev', 'crd/clusterproperties.about.k8s.io', '--timeout=30s']);
    const admin = join(c.dir, 'kubelet.kubeconfig');
    await this.#serviceAccountKubeconfig(cluster, c.server, admin, 'isthmus-policy-controller', `policy-controller-${cluster}.kubeconfig`);
    await this.#serviceAccountKubeconfig(cluster, c.server, admin, 'isthmus-policy-agent', `policy-agent-${cluster}.kubeconfig`);
    const controller = this.#start(`policy-controller-${cluster}`, process.execPath, ['--no-warnings', this.#cli, 'policy', 'controller', '--cluster', cluster,
      '--broker', this.broker, '--broker-tls-dir', this.path(cluster), '--kubeconfig', this.path(`policy-controller-${cluster}.kubeconfig`), '--resync-ms', '2000', ...extra]);
    const agents = c.nodes.map((n) => this.#start(`policy-agent-${n.name}`, 'ip', ['netns', 'exec', n.netns, process.execPath, '--no-warnings', this.#cli, 'policy', 'agent',
      '--cluster', cluster, '--node', n.name, '--kubeconfig', this.path(`policy-agent-${cluster}.kubeconfig`), '--audit-log', this.path(`policy-audit-${n.name}.jsonl`), '--audit-ms', '500', '--resync-ms', '2000']));
    return { controller, agents };
  }

  /** A node's RouteAgent resource. */
  async routeAgent(cluster: string, node: string): Promise<RouteAgentObj | undefined> {
    return JSON.parse(await this.kubectl(cluster, ['-n', 'isthmus-system', 'get', 'routeagents.isthmus.dev', node, '-o', 'json'])) as RouteAgentObj;
  }

  startBroker(): void {
    this.#broker = this.#start('broker', process.execPath, ['--no-warnings', this.#cli, 'broker', '--etcd', this.#etcd, '--listen', this.broker, '--tls-dir', this.path('broker'),
      ...(this.#brokerQuotas === undefined ? [] : ['--quotas', this.#brokerQuotas])]);
  }

  stopBroker(): void {
    if (this.#broker !== undefined) kill(this.#broker, 'SIGKILL', true);
    this.#broker = undefined;
  }

  kubectl(context: string, args: readonly string[]): Promise<string> {
    return kubectl(this.kubeconfig, context, args);
  }

  node(cluster: string, index: number): SandboxState['clusters'][number]['nodes'][number] {
    const n = this.state.clusters.find((c) => c.name === cluster)?.nodes[index];
    if (n === undefined) throw new Error(`no node ${index} in ${cluster}`);
    return n;
  }

  /** The first address of the node's pod CIDR (put on its lo by startGateway). */
  async healthIp(cluster: string, index: number): Promise<string> {
    const name = this.node(cluster, index).name;
    let ip = this.#healthIps.get(name);
    if (ip === undefined) {
      const podCidr = (await this.kubectl(cluster, ['get', 'node', name, '-o', 'jsonpath={.spec.podCIDR}'])).trim();
      ip = podCidr.replace(/\.0\/\d+$/, '.1');
      this.#healthIps.set(name, ip);
    }
    return ip;
  }

  /** `isthmus gateway` on gateway node `index` of `cluster`. */
  async startGateway(cluster: string, index: number, driver: DriverName, extra: readonly string[] = []): Promise<GatewayProc> {
    const c = this.state.clusters.find((x) => x.name === cluster);
    const n = this.node(cluster, index);
    if (c === undefined || n.wan === undefined) throw new Error(`${n.name} is not a gateway node`);
    const healthIp = await this.healthIp(cluster, index);
    execFileSync('ip', ['-n', n.netns, 'addr', 'replace', `${healthIp}/32`, 'dev', 'lo']);
    const tls = driver === 'ipsec' ? ['--tls-dir', await this.#gatewayCert(cluster, n.name)] : [];
    const proc = this.#start(`gateway-${n.name}`, 'ip', ['netns', 'exec', n.netns, process.execPath, '--no-warnings', this.#cli, 'gateway',
      '--cluster', cluster, '--hostname', n.name, '--broker', this.broker, '--broker-tls-dir', this.path(cluster),
      '--driver', driver, '--private-ip', n.wan.ip, '--pod-cidrs', c.podCidr, '--service-cidrs', c.serviceCidr,
      '--health-check-ip', healthIp, '--kubeconfig', this.path(`gateway-${cluster}.kubeconfig`), '--state-dir', this.path(`state-${n.name}`),
      '--metrics', `${n.ip}:${METRICS_PORT}`, ...(driver === 'wireguard' ? ['--private-sockets'] : []), ...tls, ...extra]);
    return { cluster, node: n.name, netns: n.netns, proc };
  }

  async #gatewayCert(cluster: string, node: string): Promise<string> {
    const out = this.path(`gw-cert-${node}`);
    must(await isthmus(['certs', 'issue', '--ca', this.path('ca'), '--gateway', node, '--cluster', cluster, '--out', out]), `${node} gateway certificate`);
    return out;
  }

  /**
   * A remote cluster that only exists at the broker: its Cluster record and an Endpoint
   * (kept published) as a misconfigured gateway would send them. leave() unregisters it.
   */
  /** `cidrs`: its pod and service CIDR. */
  async fakeRemote(id: string, cidrs: readonly [string, string], endpoint: Omit<EndpointInput, 'cluster_id'>): Promise<{ leave(): Promise<void> }> {
    must(await isthmus(['certs', 'issue', '--ca', this.path('ca'), '--cluster', id, '--out', this.path(id)]), `${id} certificate`);
    const client = brokerClientFromDir(this.broker, this.path(id), createLogger({ component: 'test', cluster: id, level: 'warn' }));
    await client.registerCluster({ cluster_id: id, pod_cidrs: [cidrs[0]], service_cidrs: [cidrs[1]] });
    const keeper = new EndpointKeeper(client, { ...endpoint, cluster_id: id }, { ttlSeconds: 30 });
    keeper.start();
    await keeper.published;
    return {
      async leave() {
        await keeper.stop(false);
        await client.unregisterCluster(id);
        client.close();
      },
    };
  }

  /**
   * A remote cluster written straight into the broker's etcd, past every check of the
   * broker: what a compromised or broken broker would relay. Receivers must refuse what
   * is bad in it on their own. leave() deletes the records.
   */
  async forgeRemote(cluster: Partial<Cluster> & { cluster_id: string }, endpoint: Omit<EndpointInput, 'cluster_id'>): Promise<{ leave(): Promise<void> }> {
    const etcd = new Etcd3({ hosts: [this.#etcd] });
    const id = cluster.cluster_id;
    const full: Cluster = { pod_cidrs: [], service_cidrs: [], labels: {}, global_cidr: '', ...cluster };
    const ep: Endpoint = { public_ip: '', ports: [], backend_config: {}, health_check_ip: '', observed_source_ip: '', ...endpoint, cluster_id: id };
    await etcd.put(etcdKey('CLUSTER', id)).value(JSON.stringify(full));
    await etcd.put(etcdKey('ENDPOINT', `${id}/${ep.hostname}`)).value(JSON.stringify(ep));
    return {
      async leave() {
        await etcd.delete().key(etcdKey('ENDPOINT', `${id}/${ep.hostname}`));
        await etcd.delete().key(etcdKey('CLUSTER', id));
        etcd.close();
      },
    };
  }

  /** A record as the broker stores it in etcd (kind dir + key, e.g. 'ENDPOINT', 'c2/c2-n1'), or undefined. */
  async storedRecord(kind: 'CLUSTER' | 'ENDPOINT' | 'EXPORT', key: string): Promise<Record<string, unknown> | undefined> {
    const etcd = new Etcd3({ hosts: [this.#etcd] });
    try {
      const v = await etcd.get(etcdKey(kind, key)).string();
      return v === null ? undefined : (JSON.parse(v) as Record<string, unknown>);
    } finally {
      etcd.close();
    }
  }

  /** The Prometheus text a gateway serves. */
  async metrics(cluster: string, index: number): Promise<string> {
    const res = await fetch(`http://${this.node(cluster, index).ip}:${METRICS_PORT}/metrics`);
    if (!res.ok) throw new Error(`metrics of ${cluster} node ${index}: HTTP ${res.status}`);
    return res.text();
  }

  async gateway(cluster: string, name: string): Promise<GatewayObj | undefined> {
    return JSON.parse(await this.kubectl(cluster, ['-n', 'isthmus-system', 'get', 'gateways.isthmus.dev', name, '-o', 'json'])) as GatewayObj;
  }

  /** Waits until `name`'s Gateway is active with exactly `remotes` connections, all connected with an RTT. */
  async connected(cluster: string, name: string, remotes: readonly string[], timeoutMs = 90_000): Promise<GatewayObj> {
    return eventually(`${name}: active, connected to ${remotes.join(', ')}`, async () => {
      const o = await this.gateway(cluster, name).catch(() => undefined);
      const conns = o?.status?.connections ?? [];
      const ok = o?.status?.haStatus === 'active' && conns.length === remotes.length
        && remotes.every((r) => conns.some((x) => x.cluster === r && x.status === 'connected' && x.rtt?.avgMs !== undefined));
      return ok ? o : undefined;
    }, timeoutMs);
  }

  /** Throws with ping's output unless two pings between the two nodes' health addresses are answered. */
  async pingOk(from: readonly [string, number], to: readonly [string, number]): Promise<void> {
    const r = await this.ping(from, to, 2);
    if (r.code !== 0) throw new Error(`ping ${from.join(' node ')} → ${to.join(' node ')}: ${r.stdout} ${r.stderr}`);
  }

  /**
   * Restarts a gateway process: SIGTERM, `whileDown` (e.g. check the data plane works
   * without it), start again with the same options, and wait until it is active again.
   */
  async restartGateway(g: GatewayProc, driver: DriverName, extra: readonly string[], whileDown: () => Promise<void>): Promise<GatewayProc> {
    kill(g.proc, 'SIGTERM');
    await exited(g.proc);
    await whileDown();
    const index = this.state.clusters.find((c) => c.name === g.cluster)?.nodes.findIndex((n) => n.name === g.node) ?? -1;
    const activations = (): number => this.log(`gateway-${g.node}`).split('\n').filter((l) => l.includes('became the active gateway')).length;
    const before = activations();
    const next = await this.startGateway(g.cluster, index, driver, extra);
    await eventually(`${g.node} active again`, async () => (activations() > before ? true : undefined));
    return next;
  }

  /**
   * Publishes a bad remote cluster c9 (see fakeRemote; forgeRemote with via 'etcd'), waits until `cluster`'s gateway `name`
   * reports its cable in error and returns that connection's message and the other
   * connections' states; c9 leaves again before this returns.
   */
  async badRemote(cluster: string, name: string, endpoint: Omit<EndpointInput, 'cluster_id'>, via: 'broker' | 'etcd' = 'broker'): Promise<{ message: string; others: Record<string, string> }> {
    const fake = via === 'broker'
      ? await this.fakeRemote('c9', ['10.9.0.0/16', '10.109.0.0/16'], endpoint)
      : await this.forgeRemote({ cluster_id: 'c9', pod_cidrs: ['10.9.0.0/16'], service_cidrs: ['10.109.0.0/16'] }, endpoint);
    try {
      const g = await eventually(`${name} reports c9 in error`, async () => {
        const o = await this.gateway(cluster, name);
        return o?.status?.connections?.find((x) => x.cluster === 'c9')?.status === 'error' ? o : undefined;
      });
      const conns = g.status?.connections ?? [];
      return {
        message: conns.find((x) => x.cluster === 'c9')?.statusMessage ?? '',
        others: Object.fromEntries(conns.filter((x) => x.cluster !== 'c9').map((x) => [x.cluster, x.status])),
      };
    } finally {
      await fake.leave();
    }
  }

  /** One ping between two gateway nodes' health addresses (through the cable between their clusters). */
  async ping(from: readonly [string, number], to: readonly [string, number], count = 1): Promise<Run> {
    const src = await this.healthIp(from[0], from[1]);
    const dst = await this.healthIp(to[0], to[1]);
    return inNetns(this.node(from[0], from[1]).netns, 'ping', ['-n', '-c', String(count), '-W', '1', '-I', src, dst]);
  }

  /** Starts a process of the test (logged to `<name>.log`, killed by close()). */
  startProcess(name: string, command: string, args: readonly string[]): ChildProcess {
    return this.#start(name, command, args);
  }

  #start(name: string, command: string, args: readonly string[]): ChildProcess {
    const log = openSync(this.path(`${name}.log`), 'a');
    const p = spawn(command, args, { stdio: ['ignore', log, log], detached: true });
    this.#procs.push(p);
    return p;
  }

  log(name: string): string {
    try {
      return readFileSync(this.path(`${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  async close(): Promise<void> {
    for (const p of this.#procs) kill(p, 'SIGKILL', true);
    await isthmus(['sandbox', 'down'], this.env);
    if (process.env['ISTHMUS_KEEP_TEST_DIR'] === undefined) execFileSync('rm', ['-rf', this.dir]);
    else process.stdout.write(`  kept ${this.dir} (ISTHMUS_KEEP_TEST_DIR)\n`);
  }
}

/** Signals a started process (or its whole group); no error when it is gone. */
export function kill(p: ChildProcess, signal: NodeJS.Signals, group = false): void {
  try {
    process.kill(group ? -(p.pid ?? 0) : (p.pid ?? 0), signal);
  } catch {
    /* gone */
  }
}

/** Resolves when the process has exited. */
export function exited(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => (p.exitCode !== null || p.signalCode !== null ? resolve() : p.once('exit', () => resolve())));
}
