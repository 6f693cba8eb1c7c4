import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, type KubeConfig, type V1Container, type V1Node, type V1Pod, type V1ContainerState, type V1ContainerStateTerminated, type V1PodCondition, type V1Probe } from '@kubernetes/client-node';
import { Serial, WorkQueue, messageOf, type CommandRunner, type Logger } from '../../core/index.ts';
import { createInformer, splitKey, type CachedInformer } from '../../core/k8s.ts';
import { clusterDnsIp } from '../dns.ts';
import { replaceRoute, unwirePod, wirePod } from '../network.ts';
import type { NodePlan } from '../plan.ts';
import type { ClusterState } from '../state.ts';
import { KubeletApi, type ContainerView } from './api.ts';
import { runsNothing } from './containers.ts';
import { containerState, initPolicy, podHostname, podPhase, restartBackoffMs, restarts, terminatedState } from './status.ts';
import { allocateIp } from './ipam.ts';
import { heartbeat, registerNode, renewLease } from './node.ts';
import { kubeletServingFiles } from '../pki.ts';
import { loadRecords, podDir, removeRecord, saveRecord, type ContainerExit, type ContainerRecord, type PodRecord } from './records.ts';
import { HOST_PATHS_LOG, containerFiles, containerPid, ensureMountpoint, envFor, keepPreviousLog, probeOnce, readExit, removeResolvConf, resolvConf, shimAlive, startContainer, stopContainer, writeResolvConf } from './runtime.ts';
import { prepareVolumes, unsupportedVolume } from './volumes.ts';
import { antiAffinityBlocked } from './affinity.ts';

/**
 * The sandbox kubelet for one cluster: registers the cluster's nodes and keeps
 * them Ready, schedules unbound pods, and for each pod on its nodes makes a
 * network namespace wired to its node, an address from the node's pod CIDR, the
 * pod's volumes and processes; it reports status, restarts exited processes with
 * backoff, and removes everything when the pod goes.
 *
 * Invariants: a pod's record is saved before anything is made for it, so a
 * restarted kubelet adopts what exists (never makes a second namespace or
 * address for a pod); reconcile(key) is idempotent and reads the informer
 * cache, never the event.
 */
export interface KubeletOptions {
  readonly cluster: ClusterState;
  readonly kubeConfig: KubeConfig;
  readonly runner: CommandRunner;
  readonly logger: Logger;
  readonly corednsBinary: string;
}

const RESYNC_MS = 1000;
const HEARTBEAT_MS = 10_000;
const STATUS_MS = 30_000;

export class SandboxKubelet {
  readonly #o: KubeletOptions;
  readonly #api: CoreV1Api;
  readonly #leases: CoordinationV1Api;
  readonly #queue = new WorkQueue<string>({ backoff: { baseMs: 200, maxMs: 10_000 } });
  readonly #nodes: ReadonlyMap<string, NodePlan>;
  readonly #records = new Map<string, PodRecord>();
  readonly #warned = new Set<string>();
  /** Bindings made but maybe not yet in the cache: pod uid → node. */
  readonly #bound = new Map<string, string>();
  /** Readiness by pod uid/container: the last result and when it was taken. */
  readonly #readiness = new Map<string, { ok: boolean; at: number }>();
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #dnsIp: string;
  #pods!: CachedInformer<V1Pod>;
  #nodeInformer!: CachedInformer<V1Node>;
  #running: Promise<void> | undefined;
  readonly #scheduling = new Serial();
  #lastStatus = 0;
  #kubeletApi: KubeletApi | undefined;

  constructor(options: KubeletOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#leases = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#nodes = new Map(options.cluster.nodes.map((n) => [n.name, n]));
    this.#dnsIp = clusterDnsIp(options.cluster.serviceCidr);
  }

  get #clusterDir(): string {
    return this.#o.cluster.dir;
  }

  async start(): Promise<void> {
    for (const r of await loadRecords(this.#clusterDir)) this.#records.set(r.uid, r);
    for (const n of this.#nodes.values()) await registerNode(this.#api, n, this.#o.cluster.name);
    await this.#renewLeases();
    const podQueue = this.#queue;
    const nodeQueue = new WorkQueue<string>();
    this.#pods = createInformer<V1Pod>({
      kubeConfig: this.#o.kubeConfig, path: '/api/v1/pods', list: () => this.#api.listPodForAllNamespaces(), queue: podQueue, logger: this.#o.logger, name: 'pods',
    });
    this.#nodeInformer = createInformer<V1Node>({
      kubeConfig: this.#o.kubeConfig, path: '/api/v1/nodes', list: () => this.#api.listNode(), queue: nodeQueue, logger: this.#o.logger, name: 'nodes',
    });
    await this.#pods.start();
    await this.#nodeInformer.start();
    await Promise.all([this.#pods.synced, this.#nodeInformer.synced]);
    // node changes (a podCIDR assigned) re-route the nodes and retry every pod
    void nodeQueue.run(async () => {
      await this.#routeNodes();
      this.#enqueueAll();
    }, { workers: 1 });
    nodeQueue.add('nodes');
    for (const r of this.#records.values()) this.#queue.add(`${r.namespace}/${r.name}`);
    this.#running = this.#queue.run((key) => this.#reconcile(key), { workers: 2, logger: this.#o.logger });
    this.#timers.push(setInterval(() => this.#enqueueAll(), RESYNC_MS));
    this.#timers.push(setInterval(() => void this.#renewLeases().catch((e: unknown) => this.#o.logger.warn({ err: messageOf(e) }, 'lease renewal failed')), HEARTBEAT_MS));
    this.#kubeletApi = new KubeletApi({
      clusterDir: this.#clusterDir,
      caFile: join(this.#clusterDir, 'pki', 'ca.crt'),
      nodes: [...this.#nodes.values()].map((n) => ({ name: n.name, ip: n.ip, netns: n.netns, certFile: kubeletServingFiles(this.#clusterDir, n.name).cert, keyFile: kubeletServingFiles(this.#clusterDir, n.name).key })),
      lookup: { container: (node, ns, pod, container) => this.#containerView(node, ns, pod, container) },
      logger: this.#o.logger,
    });
    await this.#kubeletApi.start();
    this.#o.logger.info({ nodes: [...this.#nodes.keys()], adopted: this.#records.size }, 'sandbox kubelet started');
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    await this.#kubeletApi?.stop();
    this.#queue.shutDown();
    await Promise.allSettled([this.#pods.stop(), this.#nodeInformer.stop()]);
    await this.#running;
  }

  #enqueueAll(): void {
    for (const p of this.#pods.cache.list()) this.#queue.add(`${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`);
    for (const r of this.#records.values()) this.#queue.add(`${r.namespace}/${r.name}`);
  }

  async #renewLeases(): Promise<void> {
    const now = new Date();
    for (const n of this.#nodes.keys()) await renewLease(this.#leases, n, now);
    if (now.getTime() - this.#lastStatus >= STATUS_MS && this.#nodeInformer !== undefined) {
      this.#lastStatus = now.getTime();
      for (const n of this.#nodes.values()) {
        const node = this.#nodeInformer.cache.get('', n.name);
        // a conflict (someone else wrote the node) is fine: the lease is the heartbeat, status is refreshed next round
        if (node !== undefined) await heartbeat(this.#api, node, n, now).catch((e: unknown) => this.#o.logger.debug({ node: n.name, err: messageOf(e) }, 'node status not written'));
      }
    }
  }

  /** Each node routes every other node's pod CIDR to that node. */
  async #routeNodes(): Promise<void> {
    const cidrs = new Map<string, string>();
    for (const n of this.#nodeInformer.cache.list()) {
      const cidr = n.spec?.podCIDR;
      const plan = this.#nodes.get(n.metadata?.name ?? '');
      if (cidr !== undefined && plan !== undefined) cidrs.set(plan.name, cidr);
    }
    for (const n of this.#nodes.values()) {
      for (const [other, cidr] of cidrs) {
        const o = this.#nodes.get(other);
        if (other !== n.name && o !== undefined) await replaceRoute(this.#o.runner, n.netns, [cidr, 'via', o.ip, 'dev', 'eth0']);
      }
    }
  }

  async #reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.#pods.cache.get(namespace, name);
    const uid = pod?.metadata?.uid;
    for (const r of [...this.#records.values()]) {
      if (r.namespace === namespace && r.name === name && r.uid !== uid) await this.#teardown(r);
    }
    if (pod === undefined || uid === undefined) return;
    const nodeName = pod.spec?.nodeName;
    if (nodeName === undefined || nodeName === '') {
      if (pod.metadata?.deletionTimestamp === undefined) await this.#schedule(pod);
      return;
    }
    const node = this.#nodes.get(nodeName);
    if (node === undefined) return;
    const record = this.#records.get(uid);
    if (pod.metadata?.deletionTimestamp !== undefined) {
      if (record !== undefined) await this.#teardown(record, (pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000);
      // grace 0 goes in the body: client-node drops a 0 query parameter as if it were unset
      await this.#api.deleteNamespacedPod({ name, namespace, body: { gracePeriodSeconds: 0, preconditions: { uid } } }).catch((err: unknown) => {
        if ((err as { code?: number }).code !== 404) throw err;
      });
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const r = record ?? (await this.#create(pod, node));
    if (r === undefined) return;
    await this.#keepRunning(pod, r, node);
    await this.#reportStatus(pod, r, node);
  }

  /** One binding at a time, so each decision sees the ones before it. */
  #schedule(pod: V1Pod): Promise<void> {
    return this.#scheduling.run(() => this.#scheduleOne(pod));
  }

  async #scheduleOne(pod: V1Pod): Promise<void> {
    if (this.#bound.has(pod.metadata?.uid ?? '')) return; // bound already; the cache has not caught up
    if ((pod.spec?.schedulerName ?? 'default-scheduler') !== 'default-scheduler') return;
    const selector = pod.spec?.nodeSelector ?? {};
    const load = new Map<string, number>();
    const placed = new Map(this.#bound);
    for (const p of this.#pods.cache.list()) {
      const n = p.spec?.nodeName;
      const uid = p.metadata?.uid ?? '';
      if (n !== undefined && n !== '') placed.set(uid, n);
      else if (!this.#bound.has(uid)) placed.delete(uid);
      if (n !== undefined && n !== '') this.#bound.delete(uid);
    }
    for (const n of placed.values()) load.set(n, (load.get(n) ?? 0) + 1);
    const blocked = antiAffinityBlocked(pod, this.#pods.cache.list().flatMap((p) => {
      const n = placed.get(p.metadata?.uid ?? '');
      return n === undefined ? [] : [{ pod: p, node: n }];
    }));
    const candidates = [...this.#nodes.values()].filter((n) => {
      const obj = this.#nodeInformer.cache.get('', n.name);
      if (obj === undefined || obj.spec?.unschedulable === true || blocked.has(n.name)) return false;
      const labels = obj.metadata?.labels ?? {};
      return Object.entries(selector).every(([k, v]) => labels[k] === v);
    });
    candidates.sort((a, b) => (load.get(a.name) ?? 0) - (load.get(b.name) ?? 0) || a.name.localeCompare(b.name));
    const target = candidates[0];
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    if (target === undefined) {
      await this.#event(pod, 'FailedScheduling', `no node of ${this.#o.cluster.name} matches nodeSelector ${JSON.stringify(selector)}${blocked.size > 0 ? `, is schedulable and free of the pods its anti-affinity excludes (on ${[...blocked].join(', ')})` : ' and is schedulable'}`);
      return;
    }
    await this.#api.createNamespacedPodBinding({ name, namespace: ns, body: { metadata: { name, namespace: ns }, target: { kind: 'Node', name: target.name } } });
    this.#bound.set(pod.metadata?.uid ?? '', target.name);
    this.#o.logger.debug({ pod: `${ns}/${name}`, node: target.name }, 'scheduled');
  }

  async #create(pod: V1Pod, node: NodePlan): Promise<PodRecord | undefined> {
    const uid = pod.metadata?.uid ?? '';
    const bad = unsupportedVolume(pod);
    if (bad !== undefined) {
      await this.#event(pod, 'FailedMount', `volume ${bad} is a type the isthmus sandbox cannot provide (it has configMap, secret, emptyDir, projected and hostPath)`);
      return undefined;
    }
    const hostNetwork = pod.spec?.hostNetwork === true;
    let ip = node.ip;
    if (!hostNetwork) {
      const podCidr = this.#nodeInformer.cache.get('', node.name)?.spec?.podCIDR;
      if (podCidr === undefined) return undefined; // the controller-manager has not assigned it yet; the node event retries
      const used = new Set([...this.#records.values()].filter((r) => r.node === node.name && !r.hostNetwork).map((r) => r.ip));
      const free = allocateIp(podCidr, used);
      if (free === undefined) {
        await this.#event(pod, 'FailedCreatePodSandBox', `pod CIDR ${podCidr} of node ${node.name} is exhausted (${used.size} addresses in use); the pod stays Pending until one is freed`);
        return undefined;
      }
      ip = free;
    }
    const record: PodRecord = {
      uid,
      namespace: pod.metadata?.namespace ?? 'default',
      name: pod.metadata?.name ?? '',
      node: node.name,
      nodeNetns: node.netns,
      netns: hostNetwork ? node.netns : `isb-${this.#o.cluster.name}-${uid.slice(0, 8)}`,
      hostNetwork,
      ...(hostNetwork ? {} : { nodeVeth: `vp${uid.replace(/-/g, '').slice(0, 11)}` }),
      ip,
      createdAt: new Date().toISOString(),
      containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, kind: runsNothing(c) ? 'none' : 'process', restarts: 0 })),
      // an init container the sandbox runs nothing for has completed
      initContainers: (pod.spec?.initContainers ?? []).map((c) => (runsNothing(c)
        ? { name: c.name, kind: 'none', restarts: 0, terminated: { at: new Date().toISOString(), code: 0, reason: 'Completed' } }
        : { name: c.name, kind: 'process', restarts: 0 })),
      createdMountpoints: [],
    };
    this.#records.set(uid, record);
    await saveRecord(this.#clusterDir, record);
    if (!hostNetwork && record.nodeVeth !== undefined) {
      await wirePod(this.#o.runner, { nodeNetns: node.netns, podNetns: record.netns, nodeVeth: record.nodeVeth, ip });
      const conf = resolvConf(pod, this.#dnsIp);
      if (conf !== undefined) await writeResolvConf(record.netns, conf);
    }
    this.#o.logger.info({ pod: `${record.namespace}/${record.name}`, node: node.name, ip }, 'pod sandbox created');
    for (const c of pod.spec?.containers ?? []) {
      if (runsNothing(c)) await this.#event(pod, 'NoProcess', `image ${c.image ?? ''} of container ${c.name} is not one the isthmus sandbox knows and the container has no command: it counts as Running with no process behind it (give it a command to run one)`);
    }
    return record;
  }

  async #keepRunning(pod: V1Pod, r: PodRecord, node: NodePlan): Promise<void> {
    let changed = false;
    let volumes: Map<string, string> | undefined;
    const dir = podDir(this.#clusterDir, r.uid);
    const policy = pod.spec?.restartPolicy ?? 'Always';
    const prepare = async (): Promise<Map<string, string>> =>
      (volumes ??= await prepareVolumes({ api: this.#api, pod, nodeIp: node.ip, podIp: r.ip, createHostDir: (p) => ensureMountpoint(p, false, join(this.#clusterDir, HOST_PATHS_LOG)) }, dir));
    // init containers first, one at a time, each to a successful exit (a failed one is restarted unless the pod's policy is Never)
    for (const c of r.initContainers ?? []) {
      const spec = pod.spec?.initContainers?.find((x) => x.name === c.name);
      if (c.terminated === undefined && spec !== undefined) changed = (await this.#runContainer(pod, r, c, spec, initPolicy(policy), node, prepare)) || changed;
      if (c.terminated?.code !== 0) {
        if (changed) await saveRecord(this.#clusterDir, r);
        return;
      }
    }
    for (const c of r.containers) {
      const spec = pod.spec?.containers.find((x) => x.name === c.name);
      if (c.kind !== 'process' || c.terminated !== undefined || spec === undefined) continue;
      changed = (await this.#runContainer(pod, r, c, spec, policy, node, prepare)) || changed;
    }
    if (changed) await saveRecord(this.#clusterDir, r);
  }

  /** Keeps one container going: notes how its last run ended, starts it (again) when due. True when its record changed. */
  async #runContainer(pod: V1Pod, r: PodRecord, c: ContainerRecord, spec: V1Container, policy: string, node: NodePlan, prepare: () => Promise<Map<string, string>>): Promise<boolean> {
    const dir = podDir(this.#clusterDir, r.uid);
    if (c.pid !== undefined && shimAlive(c.pid, dir)) return false;
    let changed = false;
    if (c.pid !== undefined) {
      const exit = await readExit(dir, c.name);
      delete c.pid;
      const code = exit?.code ?? 137;
      this.#ended(r, c, { at: exit?.finishedAt ?? new Date().toISOString(), code, reason: code === 0 ? 'Completed' : 'Error' }, policy);
      changed = true;
      if (c.terminated !== undefined) return true;
    }
    if (c.notBefore !== undefined && Date.now() < c.notBefore) return changed;
    const volumes = await prepare();
    const hostname = r.hostNetwork ? undefined : podHostname(pod);
    const ctx = {
      pod, container: spec, netns: r.netns, podDir: dir, volumes, podIp: r.ip, nodeIp: node.ip,
      cluster: this.#o.cluster.name, apiServiceIp: this.#o.cluster.apiServiceIp, corednsBinary: this.#o.corednsBinary,
      mountpointLog: join(this.#clusterDir, 'mountpoints'), ...(hostname === undefined ? {} : { hostname }),
    };
    const env = await envFor(ctx, (ns, name, key, kind) => this.#lookup(ns, name, key, kind), (ns, name, kind) => this.#whole(ns, name, kind));
    if (hostname !== undefined) env['HOSTNAME'] = hostname;
    if (c.lastExit !== undefined) await keepPreviousLog(dir, c.name); // a restart: the ended run's log becomes --previous
    const started = await startContainer(ctx, env);
    c.startedAt = new Date().toISOString();
    delete c.notBefore;
    if (started !== undefined && 'missing' in started) {
      const message = `${started.missing}: no such program on this machine (exit 127): the isthmus sandbox runs containers with the machine's own programs; install it (./setup installs those of the images it knows) or change the container's command`;
      await this.#event(pod, 'Failed', `container ${c.name}: ${message}`);
      this.#ended(r, c, { at: new Date().toISOString(), code: 127, reason: 'StartError', message }, policy);
    } else if (started !== undefined) {
      c.pid = started.pid;
    }
    return true;
  }

  /** A container's run ended: restart it later (restartPolicy) or keep it terminated. */
  #ended(r: PodRecord, c: ContainerRecord, exit: ContainerExit, policy: string): void {
    const full: ContainerExit = { ...exit, ...(c.startedAt === undefined ? {} : { startedAt: c.startedAt }) };
    if (!restarts(policy, exit.code)) {
      c.terminated = full;
      this.#o.logger.info({ pod: `${r.namespace}/${r.name}`, container: c.name, code: exit.code }, 'container exited; restartPolicy keeps it terminated');
      return;
    }
    c.lastExit = full;
    c.restarts++;
    c.notBefore = Date.now() + restartBackoffMs(c.restarts);
    this.#o.logger.warn({ pod: `${r.namespace}/${r.name}`, container: c.name, code: exit.code, restarts: c.restarts }, 'container exited; restarting with backoff');
  }

  /** The kubelet API's view of a container on `node`, or a message for a 404. */
  #containerView(node: string, ns: string, name: string, container: string | undefined): ContainerView | string {
    const r = [...this.#records.values()].find((x) => x.namespace === ns && x.name === name && x.node === node);
    if (r === undefined) return `pod ${ns}/${name} is not running on node ${node}`;
    let c: ContainerRecord | undefined;
    if (container === undefined || container === '') {
      if (r.containers.length !== 1) return `a container name must be specified for pod ${name}, choose one of: [${r.containers.map((x) => x.name).join(' ')}]`;
      c = r.containers[0];
    } else {
      c = r.containers.find((x) => x.name === container) ?? r.initContainers?.find((x) => x.name === container);
    }
    if (c === undefined) return `container ${container ?? ''} is not valid for pod ${name}`;
    const dir = podDir(this.#clusterDir, r.uid);
    const pod = this.#pods.cache.get(ns, name);
    const running = c.kind === 'none' || (c.terminated === undefined && c.pid !== undefined && shimAlive(c.pid, dir));
    const pid = running && c.kind === 'process' ? containerPid(dir, c.name) : undefined;
    const files = containerFiles(dir, c.name);
    return {
      podUid: r.uid, netns: r.netns, running, empty: c.kind === 'none', logPath: files.log,
      ...(r.hostNetwork || pod === undefined ? {} : { hostname: podHostname(pod) }),
      // --previous is the run in lastState: still in the current file while the container waits to restart
      previousLogPath: c.lastExit === undefined ? '' : running ? (existsSync(files.previousLog) ? files.previousLog : '') : files.log,
      ...(pid === undefined ? {} : { pid }),
    };
  }

  async #lookup(ns: string, name: string, key: string, kind: 'secret' | 'configMap'): Promise<string | undefined> {
    if (kind === 'configMap') return (await this.#api.readNamespacedConfigMap({ name, namespace: ns })).data?.[key];
    const v = (await this.#api.readNamespacedSecret({ name, namespace: ns })).data?.[key];
    return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
  }

  async #whole(ns: string, name: string, kind: 'secret' | 'configMap'): Promise<Record<string, string> | undefined> {
    if (kind === 'configMap') return (await this.#api.readNamespacedConfigMap({ name, namespace: ns })).data;
    const data = (await this.#api.readNamespacedSecret({ name, namespace: ns })).data;
    return data === undefined ? undefined : Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  async #reportStatus(pod: V1Pod, r: PodRecord, node: NodePlan): Promise<void> {
    const now = new Date();
    const dir = podDir(this.#clusterDir, r.uid);
    const statusOf = async (c: ContainerRecord, spec: V1Container | undefined, init: boolean): Promise<{ name: string; image: string; imageID: string; containerID: string | undefined; ready: boolean; started: boolean; restartCount: number; state: V1ContainerState; lastState?: { terminated: V1ContainerStateTerminated } }> => {
      const running = c.kind === 'none' ? !init : c.terminated === undefined && c.pid !== undefined && shimAlive(c.pid, dir);
      // a completed init container counts as ready, as a kubelet reports it
      const ready = init ? c.terminated?.code === 0 : running && (await this.#ready(r, c.name, spec?.readinessProbe));
      const startedAt = c.startedAt === undefined ? now : new Date(c.startedAt);
      return {
        name: c.name,
        image: spec?.image ?? '',
        imageID: '',
        containerID: c.pid === undefined ? undefined : `isthmus://${c.pid}`,
        ready,
        started: running,
        restartCount: c.restarts,
        state: containerState(c, running, startedAt),
        ...(c.lastExit === undefined ? {} : { lastState: { terminated: terminatedState(c.lastExit) } }),
      };
    };
    const statuses = [];
    for (const c of r.containers) statuses.push(await statusOf(c, pod.spec?.containers.find((x) => x.name === c.name), false));
    const initStatuses = [];
    for (const c of r.initContainers ?? []) initStatuses.push(await statusOf(c, pod.spec?.initContainers?.find((x) => x.name === c.name), true));
    const inits = r.initContainers ?? [];
    const initialized = inits.every((c) => c.terminated?.code === 0);
    const phase = podPhase(r.containers, inits);
    const done = phase === 'Succeeded' || phase === 'Failed';
    const ready = phase === 'Running' && statuses.every((s) => s.ready);
    const prior = pod.status;
    const shape = (list: readonly { name: string; ready: boolean; restartCount: number; containerID?: string | undefined; state?: object }[]): string =>
      JSON.stringify(list.map((s) => [s.name, s.ready, s.restartCount, s.containerID, Object.keys(s.state ?? {})[0]]));
    const same =
      prior?.phase === phase && prior.podIP === r.ip &&
      (prior.conditions ?? []).some((c) => c.type === 'Ready' && c.status === (ready ? 'True' : 'False')) &&
      shape(prior.containerStatuses ?? []) === shape(statuses) && shape(prior.initContainerStatuses ?? []) === shape(initStatuses);
    if (same) return;
    const created = new Date(r.createdAt);
    const cond = (type: string, ok: boolean): V1PodCondition => {
      const old = prior?.conditions?.find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      return { type, status, lastTransitionTime: old?.status === status ? (old.lastTransitionTime ?? now) : now, ...(done && !ok ? { reason: 'PodCompleted' } : {}) };
    };
    const status = {
      ...prior,
      phase,
      hostIP: node.ip,
      hostIPs: [{ ip: node.ip }],
      podIP: r.ip,
      podIPs: [{ ip: r.ip }],
      startTime: prior?.startTime ?? created,
      conditions: [cond('PodReadyToStartContainers', !done), cond('PodScheduled', true), cond('Initialized', initialized), cond('ContainersReady', ready), cond('Ready', ready)],
      containerStatuses: statuses.map(({ containerID, ...s }) => (containerID === undefined ? s : { ...s, containerID })),
      ...(initStatuses.length === 0 ? {} : { initContainerStatuses: initStatuses.map(({ containerID, ...s }) => (containerID === undefined ? s : { ...s, containerID })) }),
    };
    try {
      await this.#api.replaceNamespacedPodStatus({ name: r.name, namespace: r.namespace, body: { ...pod, status } });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return;
      throw err;
    }
  }

  /** Runs the readiness probe when due: every second until it passes, then every periodSeconds. */
  async #ready(r: PodRecord, container: string, probe: V1Probe | undefined): Promise<boolean> {
    if (probe === undefined) return true;
    const key = `${r.uid}/${container}`;
    const last = this.#readiness.get(key);
    const period = last?.ok === true ? (probe.periodSeconds ?? 10) * 1000 : 1000;
    if (last !== undefined && Date.now() - last.at < period) return last.ok;
    const ok = await probeOnce(this.#o.runner, r.netns, probe, r.ip);
    this.#readiness.set(key, { ok, at: Date.now() });
    return ok;
  }

  async #teardown(r: PodRecord, graceMs = 5000): Promise<void> {
    const dir = podDir(this.#clusterDir, r.uid);
    await Promise.all([...(r.initContainers ?? []), ...r.containers].map((c) => (c.pid === undefined ? undefined : stopContainer(c.pid, dir, Math.min(graceMs, 10_000)))));
    if (!r.hostNetwork && r.nodeVeth !== undefined) {
      await unwirePod(this.#o.runner, { nodeNetns: r.nodeNetns, podNetns: r.netns, nodeVeth: r.nodeVeth, ip: r.ip });
      await removeResolvConf(r.netns);
    }
    await removeRecord(this.#clusterDir, r.uid);
    this.#records.delete(r.uid);
    for (const c of r.containers) this.#readiness.delete(`${r.uid}/${c.name}`);
    this.#o.logger.info({ pod: `${r.namespace}/${r.name}` }, 'pod sandbox removed');
  }

  async #event(pod: V1Pod, reason: string, message: string): Promise<void> {
    const ns = pod.metadata?.namespace ?? 'default';
    const key = `${pod.metadata?.uid ?? ''}/${reason}/${message}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#o.logger.warn({ pod: `${ns}/${pod.metadata?.name ?? ''}`, reason }, message);
    const now = new Date();
    await this.#api.createNamespacedEvent({
      namespace: ns,
      body: {
        metadata: { generateName: `${pod.metadata?.name ?? 'pod'}.`, namespace: ns },
        involvedObject: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata?.name ?? '', namespace: ns, uid: pod.metadata?.uid ?? '' },
        reason,
        message,
        type: 'Warning',
        source: { component: 'isthmus-sandbox-kubelet' },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}

