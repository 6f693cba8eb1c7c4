import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import {
  ErrorCodes, IsthmusError, Serial, messageOf, silentLogger, type CommandRunner, type Logger,
} from '../core/index.ts';
import { apiserverSpec, controllerManagerSpec, etcdSpec, kubeProxySpec, type ComponentSpec } from './controlplane.ts';
import { dnsManifests } from './dns.ts';
import { healthy, probe, waitUntil, type ProbeTls } from './health.ts';
import { entryFromFiles, renderKubeconfig } from './kubeconfig.ts';
import { loadRecords } from './kubelet/records.ts';
import { HOST_PATHS_LOG, removeHostPaths, removeMountpoints, removeResolvConf } from './kubelet/runtime.ts';
import { deleteNetns, wireNatRouter, wireNode, wireWan, wireWanEgress } from './network.ts';
import { createClusterPki, type ClusterPki } from './pki.ts';
import { WAN_BRIDGE, WAN_CIDR, WAN_HOST_IP, planSandbox, type SandboxOptions } from './plan.ts';
import { binariesIn, requireBinaries, requireCidrsFree, requirePortsFree, requireProxyMode, requireRoot, type Binaries } from './preflight.ts';
import { findByMarker, isOurs, spawnDetached, stopProcesses } from './process.ts';
import { kubeconfigPath, readState, writeState, type ClusterState, type ProcessRecord, type SandboxState } from './state.ts';
import { etcdBinary, kubeBinDir, pins, projectRoot } from './versions.ts';

export interface UpOptions extends SandboxOptions {
  /** Seconds to wait for each component to become ready (default 120). */
  readonly readyTimeoutS: number;
}

export interface ComponentStatus {
  readonly name: string;
  readonly pid: number;
  readonly running: boolean;
  readonly healthy: boolean;
}

export interface ClusterStatus {
  readonly name: string;
  readonly server: string;
  readonly podCidr: string;
  readonly serviceCidr: string;
  readonly components: readonly ComponentStatus[];
  readonly healthy: boolean;
}

export interface UpResult {
  /** False when a healthy sandbox was already up and nothing changed. */
  readonly created: boolean;
  readonly state: SandboxState;
}

export interface SandboxDeps {
  readonly dir: string;
  readonly runner: CommandRunner;
  readonly logger?: Logger;
  /** Binary locations (default: what ./setup installs). */
  readonly binaries?: Binaries;
}

/**
 * The sandbox lifecycle. Invariants: everything `up` creates is recorded in
 * state.json before the next thing is created; `down` removes everything that
 * is recorded, plus any process whose command line mentions this sandbox's
 * cluster folder (so a crash between creating and recording leaks nothing),
 * and works when some or all of it is already gone.
 */
export class Sandbox {
  readonly dir: string;
  readonly #runner: CommandRunner;
  readonly #log: Logger;
  readonly #bins: Binaries;
  /** state.json writes, one at a time (clusters start in parallel). */
  readonly #saving = new Serial();

  constructor(deps: SandboxDeps) {
    this.dir = deps.dir;
    this.#runner = deps.runner;
    this.#log = deps.logger ?? silentLogger();
    this.#bins = deps.binaries ?? binariesIn(kubeBinDir(), etcdBinary());
  }

  /** Every process the sandbox starts has this in its command line. */
  get marker(): string {
    return join(this.dir, 'clusters') + '/';
  }

  clusterDir(name: string): string {
    return join(this.dir, 'clusters', name);
  }

  async up(options: UpOptions): Promise<UpResult> {
    requireRoot('isthmus sandbox up');
    const existing = await readState(this.dir);
    if (existing !== undefined) {
      const status = await this.statusOf(existing);
      if (existing.phase === 'up' && status.every((c) => c.healthy)) return { created: false, state: existing };
      const sick = status.filter((c) => !c.healthy).map((c) => c.name);
      throw new IsthmusError(
        ErrorCodes.ALREADY_EXISTS,
        `a sandbox already exists in ${this.dir} (phase ${existing.phase}${sick.length > 0 ? `, unhealthy: ${sick.join(', ')}` : ''}); run \`isthmus sandbox down\` first`,
      );
    }
    const plans = planSandbox(options);
    await requireBinaries(this.#bins);
    requireProxyMode(options.proxyMode ?? 'iptables');
    await requirePortsFree(plans);
    await requireCidrsFree(plans, this.#runner);

    const state: SandboxState = {
      version: 1,
      createdAt: new Date().toISOString(),
      phase: 'starting',
      kubernetesVersion: pins().kubernetes,
      clusters: plans.map((p) => ({ ...p, dir: this.clusterDir(p.name), server: `https://${p.hostIp}:${p.ports.apiserver}` })),
      processes: [],
      netns: [],
      interfaces: [],
    };
    await this.#save(state);
    try {
      await this.#wanBridge(state);
      await Promise.all(state.clusters.map((c) => this.#startCluster(state, c, options.readyTimeoutS * 1000)));
      await this.#writeKubeconfig(state);
      state.phase = 'up';
      await this.#save(state);
    } catch (err) {
      this.#log.error({ err: messageOf(err) }, 'sandbox up failed; cleaning up');
      await this.down().catch((e: unknown) => this.#log.error({ err: messageOf(e) }, 'cleanup after failed up'));
      throw err;
    }
    return { created: true, state };
  }

  async #startCluster(state: SandboxState, c: ClusterState, timeoutMs: number): Promise<void> {
    await mkdir(join(c.dir, 'logs'), { recursive: true, mode: 0o700 });
    await this.#bridge(state, c);
    const pki = await createClusterPki(c, c.dir);
    const admin = { ca: pki.caCert, cert: pki.clients.admin.cert, key: pki.clients.admin.key };

    const etcd = await this.#start(state, c, this.#bins.etcd, etcdSpec(c, c.dir));
    await waitUntil(`${c.name} etcd`, () => healthy(`http://127.0.0.1:${c.ports.etcdClient}/health`), {
      timeoutMs, log: etcd.log, stillAlive: () => isOurs(etcd.pid, this.marker),
    });

    const api = await this.#start(state, c, this.#bins.kubeApiserver, apiserverSpec(c, c.dir, pki));
    await waitUntil(`${c.name} kube-apiserver`, () => healthy(`${c.server}/readyz`, admin), {
      timeoutMs, log: api.log, stillAlive: () => isOurs(api.pid, this.marker),
    });

    const kcmConfig = await this.#componentKubeconfig(c, pki, 'controller-manager');
    const kcm = await this.#start(state, c, this.#bins.kubeControllerManager, controllerManagerSpec(c, c.dir, pki, kcmConfig));
    await waitUntil(`${c.name} kube-controller-manager`, () => healthy(`https://127.0.0.1:${c.ports.controllerManager}/healthz`, { insecure: true }), {
      timeoutMs, log: kcm.log, stillAlive: () => isOurs(kcm.pid, this.marker),
    });
    this.#log.info({ cluster: c.name, server: c.server }, 'control plane ready');

    await this.#startNodes(state, c, pki, timeoutMs);
    this.#log.info({ cluster: c.name, nodes: c.nodes.length }, 'nodes and cluster DNS ready');
  }

  async #wanBridge(state: SandboxState): Promise<void> {
    state.interfaces.push(WAN_BRIDGE);
    await this.#save(state);
    await this.#runner.run('ip', ['link', 'add', WAN_BRIDGE, 'type', 'bridge']);
    await this.#runner.run('ip', ['addr', 'add', `${WAN_HOST_IP}/${WAN_CIDR.split('/')[1] ?? '24'}`, 'dev', WAN_BRIDGE]);
    await this.#runner.run('ip', ['link', 'set', WAN_BRIDGE, 'up']);
  }

  /** Node namespaces, the gateway nodes' wan links (and NAT router), the sandbox kubelet, kube-proxy on every node, CoreDNS. */
  async #startNodes(state: SandboxState, c: ClusterState, pki: ClusterPki, timeoutMs: number): Promise<void> {
    const prefix = c.nodeCidr.split('/')[1] ?? '24';
    for (const n of c.nodes) {
      state.netns.push(n.netns);
      state.interfaces.push(n.hostVeth);
      await this.#save(state);
      await wireNode(this.#runner, { netns: n.netns, hostVeth: n.hostVeth, bridge: c.bridge, address: `${n.ip}/${prefix}`, gateway: c.hostIp, podCidr: c.podCidr });
    }
    const wanPrefix = WAN_CIDR.split('/')[1] ?? '24';
    const nat = c.wan.nat;
    if (nat !== undefined) {
      state.interfaces.push(c.wan.hostVeth);
      state.netns.push(nat.netns);
      await this.#save(state);
      await wireNatRouter(this.#runner, { netns: nat.netns, wanBridge: WAN_BRIDGE, hostVeth: c.wan.hostVeth, wanAddress: `${c.wan.ip}/${wanPrefix}`, routerInside: nat.routerInside });
    }
    for (const n of c.nodes) {
      if (n.wan === undefined) continue;
      if (nat === undefined) {
        state.interfaces.push(n.wan.peerVeth);
        await this.#save(state);
      }
      const [routerIp, insidePrefix] = (nat?.routerInside ?? '').split('/');
      await wireWan(this.#runner, {
        netns: n.netns, peerVeth: n.wan.peerVeth, wanBridge: WAN_BRIDGE,
        address: `${n.wan.ip}/${nat === undefined ? wanPrefix : insidePrefix ?? '24'}`,
        ...(nat === undefined ? {} : { nat: { netns: nat.netns, routerIp: routerIp ?? '', wanCidr: WAN_CIDR } }),
      });
    }
    const gw = c.nodes.find((n) => n.wan !== undefined);
    if (gw !== undefined) {
      await wireWanEgress(this.#runner, {
        gatewayNetns: gw.netns, gatewayIp: gw.ip, otherWanNetns: c.nodes.filter((n) => n.wan !== undefined && n !== gw).map((n) => n.netns),
        otherNetns: c.nodes.filter((n) => n.wan === undefined).map((n) => n.netns), podCidr: c.podCidr, nodeCidr: c.nodeCidr, wanCidr: WAN_CIDR,
      });
    }
    await this.#componentKubeconfig(c, pki, 'kubelet');
    const kubelet = await this.#start(state, c, process.execPath, {
      name: 'sandbox-kubelet', args: ['--no-warnings', join(projectRoot(), 'cli', 'main.ts'), 'sandbox', 'kubelet', '--cluster-dir', c.dir],
    });
    const admin = { ca: pki.caCert, cert: pki.clients.admin.cert, key: pki.clients.admin.key };
    await waitUntil(`${c.name} nodes`, () => this.#nodesReady(c, admin), { timeoutMs, log: kubelet.log, stillAlive: () => isOurs(kubelet.pid, this.marker) });

    const proxyConfig = await this.#componentKubeconfig(c, pki, 'kube-proxy');
    for (const n of c.nodes) {
      await this.#start(state, c, 'ip', kubeProxySpec(c, n, proxyConfig, this.#bins.kubeProxy), `kube-proxy-${n.name}`);
    }
    await this.#runner.run(this.#bins.kubectl, ['--kubeconfig', join(c.dir, 'kubelet.kubeconfig'), 'apply', '-f', '-'], {
      input: JSON.stringify(dnsManifests({ serviceCidr: c.serviceCidr })),
    });
    await waitUntil(`${c.name} cluster DNS`, () => this.#dnsReady(c, admin), { timeoutMs, log: kubelet.log, stillAlive: () => isOurs(kubelet.pid, this.marker) });
  }

  async #nodesReady(c: ClusterState, tls: ProbeTls): Promise<boolean> {
    const r = await probe(`${c.server}/api/v1/nodes`, tls).catch(() => undefined);
    if (r?.status !== 200) return false;
    const nodes = (JSON.parse(r.body) as { items: V1Node[] }).items;
    return c.nodes.every((n) => {
      const o = nodes.find((x) => x.metadata?.name === n.name);
      return o?.spec?.podCIDR !== undefined && (o.status?.conditions ?? []).some((k) => k.type === 'Ready' && k.status === 'True');
    });
  }

  async #dnsReady(c: ClusterState, tls: ProbeTls): Promise<boolean> {
    const r = await probe(`${c.server}/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns`, tls).catch(() => undefined);
    if (r?.status !== 200) return false;
    const pods = (JSON.parse(r.body) as { items: V1Pod[] }).items;
    return pods.length > 0 && pods.every((p) => (p.status?.conditions ?? []).some((k) => k.type === 'Ready' && k.status === 'True'));
  }

  /** The cluster's node segment: a bridge with the host's address on it. */
  async #bridge(state: SandboxState, c: ClusterState): Promise<void> {
    state.interfaces.push(c.bridge);
    await this.#save(state);
    const prefix = c.nodeCidr.split('/')[1] ?? '24';
    await this.#runner.run('ip', ['link', 'add', c.bridge, 'type', 'bridge']);
    await this.#runner.run('ip', ['addr', 'add', `${c.hostIp}/${prefix}`, 'dev', c.bridge]);
    await this.#runner.run('ip', ['link', 'set', c.bridge, 'up']);
  }

  async #start(state: SandboxState, c: ClusterState, binary: string, spec: ComponentSpec, name: string = spec.name): Promise<ProcessRecord> {
    const log = join(c.dir, 'logs', `${name}.log`);
    const { pid } = spawnDetached(binary, spec.args, log, spec.env === undefined ? undefined : { ...spec.env });
    const record: ProcessRecord = { name: `${c.name}/${name}`, pid, command: binary, log };
    state.processes.push(record);
    await this.#save(state);
    this.#log.debug({ cluster: c.name, component: spec.name, pid }, 'started');
    return record;
  }

  async #componentKubeconfig(c: ClusterState, pki: ClusterPki, client: 'controller-manager' | 'kube-proxy' | 'kubelet'): Promise<string> {
    const path = join(c.dir, `${client}.kubeconfig`);
    const files = pki.clients[client];
    await writeFile(path, renderKubeconfig([entryFromFiles(c.name, c.server, { ca: pki.caCert, ...files })]), { mode: 0o600 });
    return path;
  }

  async #writeKubeconfig(state: SandboxState): Promise<void> {
    const entries = state.clusters.map((c) =>
      entryFromFiles(c.name, c.server, { ca: join(c.dir, 'pki', 'ca.crt'), cert: join(c.dir, 'pki', 'admin.crt'), key: join(c.dir, 'pki', 'admin.key') }),
    );
    await writeFile(kubeconfigPath(this.dir), renderKubeconfig(entries), { mode: 0o600 });
  }

  #save(state: SandboxState): Promise<void> {
    return this.#saving.run(() => writeState(this.dir, state));
  }

  async status(): Promise<readonly ClusterStatus[] | undefined> {
    const state = await readState(this.dir);
    return state === undefined ? undefined : this.statusOf(state);
  }

  async statusOf(state: SandboxState): Promise<readonly ClusterStatus[]> {
    return Promise.all(
      state.clusters.map(async (c) => {
        const tls = { ca: join(c.dir, 'pki', 'ca.crt'), cert: join(c.dir, 'pki', 'admin.crt'), key: join(c.dir, 'pki', 'admin.key') };
        const probes: Record<string, () => Promise<boolean>> = {
          etcd: () => healthy(`http://127.0.0.1:${c.ports.etcdClient}/health`),
          'kube-apiserver': () => healthy(`${c.server}/readyz`, tls),
          'kube-controller-manager': () => healthy(`https://127.0.0.1:${c.ports.controllerManager}/healthz`, { insecure: true }),
        };
        const components = await Promise.all(
          state.processes
            .filter((p) => p.name.startsWith(`${c.name}/`))
            .map(async (p) => {
              const name = p.name.slice(c.name.length + 1);
              const running = isOurs(p.pid, this.marker);
              const check = probes[name];
              return { name, pid: p.pid, running, healthy: running && (check === undefined || (await check())) };
            }),
        );
        return {
          name: c.name,
          server: c.server,
          podCidr: c.podCidr,
          serviceCidr: c.serviceCidr,
          components,
          healthy: Object.keys(probes).every((k) => components.some((x) => x.name === k)) && components.every((x) => x.healthy),
        };
      }),
    );
  }

  /**
   * Stops every sandbox process and removes every namespace, interface and file
   * it made. Returns false when there was nothing to remove.
   */
  async down(): Promise<boolean> {
    requireRoot('isthmus sandbox down');
    const state = await readState(this.dir).catch(() => undefined);
    const recorded = state?.processes.map((p) => p.pid) ?? [];
    const stray = await findByMarker(this.marker);
    const pids = [...new Set([...recorded, ...stray])];
    const found = state !== undefined || pids.length > 0;
    await stopProcesses(pids, this.marker);
    for (const c of state?.clusters ?? []) {
      for (const r of await loadRecords(c.dir)) {
        if (!r.hostNetwork) await deleteNetns(this.#runner, r.netns);
        await removeResolvConf(r.netns);
      }
      await removeMountpoints(join(c.dir, 'mountpoints'));
      await removeHostPaths(join(c.dir, HOST_PATHS_LOG));
    }
    for (const ns of state?.netns ?? []) await deleteNetns(this.#runner, ns);
    for (const link of state?.interfaces ?? []) await this.#runner.run('ip', ['link', 'delete', link], { allowFailure: true });
    await rm(this.dir, { recursive: true, force: true });
    return found;
  }
}
