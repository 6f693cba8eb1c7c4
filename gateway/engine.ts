import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Backoff, Serial, SystemRunner, WorkQueue, messageOf, sleep, systemClock, type Clock, type CommandRunner, type Logger, type TimerHandle } from '../core/index.ts';
import { BrokerCache, EndpointKeeper, type BrokerClient, type Change, type Cluster, type Endpoint } from '../core/broker-api/index.ts';
import type { CableDriver, CableSpec, LocalEndpoint } from './cable/driver.ts';
import { desiredCables, guessVerdict, newestEndpoints, publicAddressOf, type RemoteCluster, type RemoteEndpoint } from './desired.ts';
import { HealthProber, startResponder, statusWriteDue, type ProbeTarget } from './health.ts';
import { LeaderElector } from './leader.ts';
import type { GatewayMetrics } from './metrics.ts';
import { NatDiscovery } from './nat-discovery.ts';
import { NAT_PROBE_PORT_NAME, NatProbe } from './nat-probe.ts';
import { holdVanished } from './grace.ts';
import { pathMtu } from './path-mtu.ts';
import { writeGatewayStatus } from './resource.ts';
import { gatewayStatus } from './status.ts';
import { clusterShapeProblem, displayable, endpointShapeProblem, healthProblem, screenCables } from './screen.ts';
import { localAddresses, resolveHost } from './addresses.ts';

/**
 * The gateway engine. Every gateway-capable node runs one; a Kubernetes Lease makes
 * one of them active. The active one registers its cluster, keeps its Endpoint
 * published at the broker (under a broker lease), watches the remote clusters and
 * endpoints, and reconciles one cable per remote cluster through its CableDriver;
 * it probes every cable's health and every gateway writes its `Gateway` status (and
 * feeds the same status to its Prometheus metrics).
 *
 * NAT discovery: every gateway answers NAT probes on its private address (the port is
 * published as `nat-probe`); the active one probes each remote endpoint that publishes
 * one when it appears or its addresses change, and every `natReprobeMs` while its
 * cable is in error. A cable is first set from desiredCables' guess, so the first
 * packet never waits for a probe; a verdict that changes the choice (or shows this
 * gateway behind NAT) reconciles again.
 *
 * Becoming active: the broker cache starts at once, the driver's init and the cluster's
 * registration run side by side and are retried with backoff until they succeed (or
 * the Lease is lost), then the Endpoint is published; cables are set as soon as the
 * cache has synced. A full reconcile also runs every `resyncMs`, which repairs what
 * the OS lost (a wireguard-go that died, a route someone deleted).
 *
 * Invariants: the driver's preflight runs at start, so a missing program is an error
 * before anything changes; cables are set only from a synced broker cache (never from an empty
 * one at start), so a restart adopts what exists; the broker being unreachable
 * changes nothing that works (the cache keeps its last state, and a cable whose
 * endpoint vanished while its cluster is still registered is held for
 * `endpointGraceMs`, so a broker back from a long outage does not make cables flap;
 * a cluster that left loses its cables at once); probe verdicts are
 * kept only for the current endpoint of a current remote cluster; losing the Lease
 * withdraws the endpoint, stops setting cables and forgets the verdicts, and removes the
 * cables once a read shows another holder or one lease after (taking the Lease back before
 * that adopts them: a stand-down over one slow write costs no cable); stop() (a process
 * restart) leaves cables, endpoint and Lease to expire or be adopted.
 */
export interface GatewayConfig {
  readonly clusterId: string;
  readonly hostname: string;
  readonly privateIp: string;
  /** Configured public address, or '' (then the broker's observed source address is used). */
  readonly publicIp: string;
  readonly port: number;
  readonly podCidrs: readonly string[];
  readonly serviceCidrs: readonly string[];
  /** The address remote gateways probe through the cable ('' = no health probes). */
  readonly healthCheckIp: string;
  readonly healthPort: number;
  /** Between health probes; a cable is dead after LOST_TO_FAIL probes in a row go unanswered. */
  readonly healthIntervalMs: number;
  /** The Gateway status is written this often (default 1000 ms), and at once when a cable dies or comes back. */
  readonly statusIntervalMs?: number;
  readonly forceNatTraversal: boolean;
  /** UDP port of the NAT probe responder on the private address; 0 = no NAT probes. */
  readonly natProbePort: number;
  /** How often a remote whose cable is in error is probed again (default 30 s). */
  readonly natReprobeMs?: number;
  readonly namespace: string;
  readonly leaseName: string;
  readonly leaseMs: number;
  readonly renewDeadlineMs: number;
  /** The longest a slow apiserver stretches the lease to (leader.ts); default 15 000. */
  readonly maxLeaseMs?: number;
  readonly retryMs: number;
  readonly endpointTtlS: number;
  /** Full reconcile period (default 5000 ms). */
  readonly resyncMs?: number;
  /** How long a cable outlives its vanished endpoint while the cluster is registered (default 2 × endpoint TTL). */
  readonly endpointGraceMs?: number;
}

export interface GatewayDeps {
  readonly kubeConfig: KubeConfig;
  readonly broker: BrokerClient;
  readonly driver: CableDriver;
  /** Driver secrets (private key, certificates): given to the driver only. */
  readonly secrets: Readonly<Record<string, string>>;
  /** Public driver data published in the Endpoint (wireguard public-key, ipsec cert-cn). */
  readonly backend: Readonly<Record<string, string>>;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly metrics?: GatewayMetrics;
  /** Reads the OS's routes for the cables' path MTU (default: the system's). */
  readonly runner?: CommandRunner;
  /** This node's interface addresses (default: os.networkInterfaces()); remote CIDRs may not contain them. */
  readonly localAddresses?: () => readonly string[];
}

/**
 * Unanswered probes in a row that mark a cable dead. With the default 500 ms interval a
 * cut is known 1.5–2 s after it happens (the third lost probe is counted on the tick after
 * it was sent), and only a silence longer than 1 s (two intervals) can mark a working
 * cable dead; an answer slower than one interval counts as lost.
 */
const LOST_TO_FAIL = 3;

export class GatewayEngine {
  readonly name = 'gateway';
  readonly #c: GatewayConfig;
  readonly #d: GatewayDeps;
  readonly #clock: Clock;
  readonly #leader: LeaderElector;
  readonly #objects: CustomObjectsApi;
  readonly #queue = new WorkQueue<string>({ backoff: { baseMs: 200, maxMs: 5000 } });
  readonly #revisions = new Map<string, number>();
  #active = false;
  #cache: BrokerCache | undefined;
  #keeper: EndpointKeeper | undefined;
  #observedIp = '';
  #desired: CableSpec[] = [];
  #vanishedSince = new Map<string, number>();
  /** What the Lease last decided, set at once (the transitions follow in order). */
  #wantActive = false;
  /** Aborted when the Lease is lost: ends the retries of a bring-up in progress. */
  #activation = new AbortController();
  /** Where to probe each cable: the remote gateway's health-check address, set with the cables. */
  #targets: ProbeTarget[] = [];
  #failed = new Map<string, string>();
  /** Remote clusters whose CIDRs the screening refused: they are not published to the route agents. */
  #refused = new Set<string>();
  /** Path MTU per remote cluster, keyed by the CIDR it was measured for. */
  #mtus = new Map<string, { cidr: string; mtu: number }>();
  /** The broker's addresses, resolved when this gateway becomes active. */
  #brokerAddresses: readonly string[] = [];
  #prober: HealthProber | undefined;
  #responder: Awaited<ReturnType<typeof startResponder>> | undefined;
  #natProbe: NatProbe | undefined;
  #nat: NatDiscovery | undefined;
  #started = false;
  #synced = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** When the status was last written, and the dead cables it said. */
  #lastStatus: { at: number; dead: string } | undefined;
  #resync: ReturnType<typeof setInterval> | undefined;
  #failure: string | undefined;
  #working: Promise<void> | undefined;
  /** The timer that removes a stood-down gateway's cables (#deactivate). */
  #kept: TimerHandle | undefined;
  /** Becoming active and standing down run one at a time, in the order the Lease decided. */
  readonly #transitions = new Serial();

  constructor(config: GatewayConfig, deps: GatewayDeps) {
    this.#c = config;
    this.#d = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#objects = deps.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#leader = new LeaderElector({
      kubeConfig: deps.kubeConfig, namespace: config.namespace, name: config.leaseName, identity: config.hostname,
      leaseMs: config.leaseMs, renewDeadlineMs: config.renewDeadlineMs, retryMs: config.retryMs, clock: this.#clock, logger: deps.logger,
      ...(config.maxLeaseMs === undefined ? {} : { maxLeaseMs: config.maxLeaseMs }),
      onStartedLeading: () => this.#switch(true),
      onStoppedLeading: () => this.#switch(false),
      onOtherHolder: () => this.#cleanupNow(),
    });
  }

  get active(): boolean {
    return this.#active;
  }

  /** For /readyz: started and, when active, the broker cache has synced. */
  get ready(): boolean {
    return this.#started && (!this.#active || this.#synced);
  }

  get local(): LocalEndpoint {
    return { clusterId: this.#c.clusterId, privateIp: this.#c.privateIp, port: this.#c.port, cidrs: [...this.#c.podCidrs, ...this.#c.serviceCidrs], secrets: this.#d.secrets };
  }

  async start(): Promise<void> {
    await this.#d.driver.preflight();
    if (this.#c.healthCheckIp !== '') {
      this.#responder = await startResponder(this.#c.healthCheckIp, this.#c.healthPort).catch((err: unknown) => {
        this.#d.logger.warn({ err: messageOf(err), ip: this.#c.healthCheckIp }, 'health responder not started; remote probes of this gateway will fail');
        return undefined;
      });
      this.#prober = await HealthProber.open(this.#c.healthPort, this.#clock);
    }
    if (this.#c.natProbePort !== 0) {
      const { clusterId, privateIp, natProbePort } = this.#c;
      const natProbe = await NatProbe.open({ address: privateIp, port: natProbePort, clusterId, clock: this.#clock, logger: this.#d.logger }).catch((err: unknown) => {
        this.#d.logger.warn({ err: messageOf(err), ip: privateIp, port: natProbePort }, 'NAT probe responder not started; this gateway neither probes nor publishes a nat-probe port');
        return undefined;
      });
      this.#natProbe = natProbe;
      if (natProbe !== undefined) {
        this.#nat = new NatDiscovery({
          probe: (t) => natProbe.probe(t), onChange: () => this.#queue.add('cables'), clock: this.#clock, logger: this.#d.logger,
          ...(this.#c.natReprobeMs === undefined ? {} : { reprobeMs: this.#c.natReprobeMs }),
        });
      }
    }
    this.#working = this.#queue.run(() => this.#reconcile(), { workers: 1, logger: this.#d.logger });
    this.#timer = setInterval(() => void this.#tick(), this.#c.healthIntervalMs);
    this.#resync = setInterval(() => this.#queue.add('cables'), this.#c.resyncMs ?? 5000);
    this.#leader.start();
    this.#started = true;
  }

  /** A process stop: cables, endpoint and Lease stay (a restarted gateway adopts them); a stood-down gateway's kept cables go. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#resync !== undefined) clearInterval(this.#resync);
    await this.#leader.stop(false);
    this.#cleanupNow();
    await this.#transitions.idle();
    await this.#keeper?.stop(false);
    await this.#cache?.stop();
    this.#queue.shutDown();
    await this.#working;
    this.#prober?.close();
    this.#responder?.close();
    this.#natProbe?.close();
  }

  #switch(active: boolean): void {
    this.#wantActive = active;
    if (active) this.#activation = new AbortController();
    else this.#activation.abort();
    this.#transitions.run(() => (active ? this.#activate() : this.#deactivate())).catch((err: unknown) => {
      this.#failure = messageOf(err);
      this.#d.logger.error({ err: this.#failure }, active ? 'could not become active' : 'could not stand down cleanly');
    });
  }

  async #activate(): Promise<void> {
    if (this.#kept !== undefined) {
      this.#clock.clearTimeout(this.#kept);
      this.#kept = undefined;
      this.#d.logger.info('took the Lease back: the cables it kept are adopted');
    }
    this.#active = true;
    this.#failure = undefined;
    void Promise.all(this.#d.broker.addresses.map(resolveHost)).then((ips) => {
      this.#brokerAddresses = [...new Set(ips.flat())];
      this.#queue.add('cables');
    });
    const cache = new BrokerCache(this.#d.broker, { kinds: ['CLUSTER', 'ENDPOINT'], logger: this.#d.logger });
    cache.onChange((ch: Change) => {
      if (ch.kind === 'ENDPOINT') {
        if (ch.type === 'deleted') this.#revisions.delete(ch.key);
        else this.#revisions.set(ch.key, ch.revision);
      }
      this.#queue.add('cables');
    });
    this.#cache = cache;
    cache.start();
    const ready = await Promise.all([
      this.#untilDone('initialize the cable driver', () => this.#d.driver.init(this.local)),
      this.#untilDone('register the cluster at the broker', () => this.#d.broker.registerCluster({
        cluster_id: this.#c.clusterId, pod_cidrs: [...this.#c.podCidrs], service_cidrs: [...this.#c.serviceCidrs],
      })),
    ]);
    if (ready.includes(false)) return; // the Lease was lost meanwhile; the stand-down follows
    this.#failure = undefined;
    this.#keeper = new EndpointKeeper(this.#d.broker, {
      cluster_id: this.#c.clusterId,
      hostname: this.#c.hostname,
      private_ip: this.#c.privateIp,
      public_ip: this.#c.publicIp,
      ports: [
        { name: 'cable', port: this.#c.port, protocol: 'UDP' },
        ...(this.#natProbe === undefined ? [] : [{ name: NAT_PROBE_PORT_NAME, port: this.#natProbe.port, protocol: 'UDP' }]),
      ],
      cable_driver: this.#d.driver.name,
      backend_config: { ...this.#d.backend },
      health_check_ip: this.#c.healthCheckIp,
    }, {
      ttlSeconds: this.#c.endpointTtlS,
      logger: this.#d.logger,
      onPublished: (r) => {
        if (r.observedSourceIp !== this.#observedIp) {
          this.#observedIp = r.observedSourceIp;
          this.#queue.add('cables');
        }
      },
    });
    this.#keeper.start();
    // a Lease lost while the broker is away must not wait for the cache: the stand-down is queued behind this
    const signal = this.#activation.signal;
    const lost = new Promise<false>((resolve) => (signal.aborted ? resolve(false) : signal.addEventListener('abort', () => resolve(false), { once: true })));
    if (!(await Promise.race([cache.synced.then(() => true), lost]))) return;
    this.#synced = true;
    this.#queue.add('cables');
  }

  /** Runs `step` until it succeeds (true) or the Lease is lost (false), with backoff; the last failure shows in the status. */
  async #untilDone(what: string, step: () => Promise<unknown>): Promise<boolean> {
    const backoff = new Backoff({ baseMs: 500, maxMs: 10_000 });
    while (this.#wantActive) {
      try {
        await step();
        return true;
      } catch (err) {
        this.#failure = `could not ${what}: ${messageOf(err)}`;
        const delay = backoff.next();
        this.#d.logger.warn({ err: messageOf(err), retryInMs: delay }, `could not ${what}; retrying`);
        await sleep(this.#clock, delay, this.#activation.signal).catch(() => {});
      }
    }
    return false;
  }

  async #deactivate(): Promise<void> {
    this.#active = false;
    this.#synced = false;
    this.#nat?.clear();
    await this.#keeper?.stop(true);
    this.#keeper = undefined;
    await this.#cache?.stop();
    this.#cache = undefined;
    this.#revisions.clear();
    this.#desired = [];
    this.#vanishedSince = new Map();
    this.#targets = [];
    this.#failed = new Map();
    this.#refused = new Set();
    this.#mtus = new Map();
    // The cables stay for one lease (as last written), unless a read shows another holder first
    // (#cleanupNow): a holder that stood down over one slow write mostly takes the Lease back
    // within a second, and re-creating every cable cost its clients seconds each time. No one
    // else routes through them meanwhile: the route agents follow the new holder, and the other
    // clusters the Endpoint it publishes.
    if (this.#kept !== undefined) this.#clock.clearTimeout(this.#kept);
    this.#kept = undefined;
    if (this.#leader.heldByOther) {
      await this.#d.driver.cleanup();
      return;
    }
    const keepMs = this.#leader.writtenLeaseMs;
    this.#d.logger.info({ keepMs }, 'the cables stay a moment, in case this gateway takes the Lease back');
    this.#kept = this.#clock.setTimeout(() => this.#cleanupNow(), keepMs);
  }

  /** Removes the cables a stood-down gateway kept (see #deactivate), at once; nothing when none are kept. */
  #cleanupNow(): void {
    if (this.#kept === undefined) return;
    this.#clock.clearTimeout(this.#kept);
    this.#kept = undefined;
    this.#transitions.run(async () => {
      if (this.#wantActive) return; // taken back meanwhile: #activate adopts them
      await this.#d.driver.cleanup();
      this.#d.logger.info('cables removed');
    }).catch((err: unknown) => {
      this.#failure = messageOf(err);
      this.#d.logger.error({ err: this.#failure }, 'could not remove the cables');
    });
  }

  /** This gateway is behind NAT: the broker saw it at another address (none configured), or a NAT probe did. */
  #behindNat(): boolean {
    const byBroker = this.#c.publicIp === '' && this.#observedIp !== '' && this.#observedIp !== this.#c.privateIp;
    return byBroker || this.#nat?.natAddress !== undefined;
  }

  /** The cables for the broker's current state (the cache must have synced). */
  async #reconcile(): Promise<void> {
    const cache = this.#cache;
    if (!this.#active || !this.#synced || cache === undefined) return;
    const startedAt = this.#clock.now();
    try {
      await this.#reconcileFrom(cache);
      this.#d.metrics?.reconciled('ok', (this.#clock.now() - startedAt) / 1000);
    } catch (err) {
      this.#d.metrics?.reconciled('failed', (this.#clock.now() - startedAt) / 1000);
      throw err;
    }
  }

  async #reconcileFrom(cache: BrokerCache): Promise<void> {
    const shapeless = (what: string, key: string, problem: string | undefined): boolean => {
      if (problem !== undefined) this.#d.logger.warn({ key, problem }, `${what} record from the broker skipped: not of the expected shape`);
      return problem !== undefined;
    };
    const endpoints: (RemoteEndpoint & { healthCheckIp: string })[] = cache.keys('ENDPOINT').flatMap((key) => {
      const e = cache.get('ENDPOINT', key) as Endpoint | undefined;
      if (e === undefined || shapeless('endpoint', key, endpointShapeProblem(e))) return [];
      return [{
        clusterId: e.cluster_id, hostname: e.hostname, privateIp: e.private_ip, publicIp: e.public_ip, observedIp: e.observed_source_ip,
        port: e.ports.find((p) => p.name === 'cable')?.port ?? e.ports[0]?.port ?? 0,
        natProbePort: e.ports.find((p) => p.name === NAT_PROBE_PORT_NAME && p.protocol === 'UDP')?.port ?? 0, driver: e.cable_driver, backend: e.backend_config,
        revision: this.#revisions.get(key) ?? 0, healthCheckIp: e.health_check_ip,
      }];
    });
    const clusters = new Map<string, RemoteCluster>(
      cache.list('CLUSTER').filter((c: Cluster) => !shapeless('cluster', String(c.cluster_id), clusterShapeProblem(c)))
        .map((c: Cluster) => [c.cluster_id, { clusterId: c.cluster_id, cidrs: c.global_cidr !== '' ? [c.global_cidr] : [...c.pod_cidrs, ...c.service_cidrs] }]),
    );
    const local = { clusterId: this.#c.clusterId, driver: this.#d.driver.name };
    // the newest endpoint of each cluster, as desiredCables chooses it
    const chosen = newestEndpoints(local, endpoints);
    this.#nat?.update(chosen.flatMap((e) => (e.natProbePort === undefined || e.natProbePort === 0 ? [] : [{
      cluster: e.clusterId, privateIp: e.privateIp, publicIp: publicAddressOf(e), port: e.natProbePort, guess: guessVerdict(e),
    }])));
    const view = { ...local, behindNat: this.#behindNat(), forceNatTraversal: this.#c.forceNatTraversal };
    const held = holdVanished(this.#desired, desiredCables(view, endpoints, clusters, this.#nat?.verdicts(), this.#nat?.seenBehindNatBy()), new Set(clusters.keys()),
      this.#vanishedSince, this.#clock.now(), this.#c.endpointGraceMs ?? 2000 * this.#c.endpointTtlS);
    this.#vanishedSince = held.vanishedSince;
    const desired = held.cables;
    // receivers check again what the broker relays: a refused cable is not set (its status says why)
    const own = [this.#c.privateIp, this.#c.publicIp, this.#observedIp, this.#c.healthCheckIp, ...(this.#d.localAddresses ?? localAddresses)()].filter((a) => a !== '');
    const screened = screenCables(desired, { ownAddresses: own, brokerAddresses: this.#brokerAddresses });
    const result = await this.#d.driver.set(screened.accepted);
    const refused = new Set(screened.refused.map((r) => r.remoteCluster));
    this.#refused = new Set(screened.refused.filter((r) => r.badCidrs === true).map((r) => r.remoteCluster));
    this.#desired = desired.map((d) => (refused.has(d.remoteCluster) ? displayable(d) : d));
    const healthIps = new Map(chosen.map((e) => [e.clusterId, e.healthCheckIp]));
    this.#targets = screened.accepted.flatMap((d) => {
      const address = healthIps.get(d.remoteCluster) ?? '';
      if (address === '') return [];
      const bad = healthProblem(address, d.remoteCidrs);
      if (bad !== undefined) {
        this.#d.logger.warn({ remote: d.remoteCluster, reason: bad }, 'health-check address refused; the cable is not probed');
        return [];
      }
      return [{ cluster: d.remoteCluster, address }];
    });
    const failed = [...screened.refused, ...result.failed];
    this.#failed = new Map(failed.map((f) => [f.remoteCluster, f.reason]));
    for (const f of failed) this.#d.logger.warn({ remote: f.remoteCluster, reason: f.reason }, 'cable not applied');
    await this.#measureMtus(desired);
  }

  /** The path MTU of each applied cable, measured once per remote CIDR, again each time until a route through the cable gives it (the route agents publish it to every node). */
  async #measureMtus(desired: readonly CableSpec[]): Promise<void> {
    const runner = this.#d.runner ?? new SystemRunner();
    const next = new Map<string, { cidr: string; mtu: number }>();
    for (const d of desired) {
      const cidr = d.remoteCidrs[0];
      if (cidr === undefined || this.#failed.has(d.remoteCluster)) continue;
      const have = this.#mtus.get(d.remoteCluster);
      if (have?.cidr === cidr) {
        next.set(d.remoteCluster, have);
        continue;
      }
      const mtu = await pathMtu(runner, { remoteCidr: cidr, underlayIp: this.#c.privateIp, driver: this.#d.driver.name, routeDevice: this.#d.driver.routeDevice() }).catch(() => undefined);
      if (mtu !== undefined) next.set(d.remoteCluster, { cidr, mtu });
    }
    this.#mtus = next;
  }

  /** Health probes, then the Gateway status. */
  async #tick(): Promise<void> {
    try {
      this.#prober?.tick(this.#active ? this.#targets : [], this.#d.logger);
      const dead = this.#desired.filter((d) => this.#prober?.window(d.remoteCluster).lostLast(LOST_TO_FAIL) ?? false).map((d) => d.remoteCluster).sort().join(',');
      const now = this.#clock.now();
      if (!statusWriteDue(this.#lastStatus, now, dead, this.#c.statusIntervalMs ?? 1000)) return;
      await this.#writeStatus();
      this.#lastStatus = { at: now, dead };
    } catch (err) {
      this.#d.logger.debug({ err: messageOf(err) }, 'status not written');
    }
  }

  async #writeStatus(): Promise<void> {
    const cables = this.#active ? await this.#d.driver.connections() : [];
    const health = new Map(
      this.#desired.map((d) => {
        const w = this.#prober?.window(d.remoteCluster);
        return [d.remoteCluster, { ...(w?.stats() ?? { lastMs: undefined, minMs: undefined, avgMs: undefined, maxMs: undefined, stddevMs: undefined, loss: 0, sent: 0 }), dead: w?.lostLast(LOST_TO_FAIL) ?? false }];
      }),
    );
    const natAddress = this.#nat?.natAddress;
    const impl = this.#d.driver.implementationInfo();
    const status = gatewayStatus({
      active: this.#active,
      local: {
        clusterID: this.#c.clusterId, hostname: this.#c.hostname, privateIP: this.#c.privateIp,
        publicIP: this.#c.publicIp !== '' ? this.#c.publicIp : this.#observedIp !== '' ? this.#observedIp : natAddress ?? '',
        behindNAT: this.#behindNat(), natSeenByProbe: natAddress !== undefined,
        cableDriver: this.#d.driver.name, port: this.#c.port,
        ...(impl === undefined ? {} : { cableImplementation: impl }),
      },
      desired: this.#desired,
      failed: this.#failed,
      refused: this.#refused,
      cables,
      health,
      nat: this.#active ? (this.#nat?.states() ?? new Map()) : new Map(),
      mtus: new Map([...this.#mtus].map(([k, v]) => [k, v.mtu])),
      ...(this.#failure === undefined ? {} : { failure: this.#failure }),
    });
    this.#d.metrics?.updateFromStatus(status);
    if (this.#active) this.#nat?.reprobe(status.connections.filter((c) => c.status === 'error').map((c) => c.cluster));
    await writeGatewayStatus(this.#objects, this.#c.namespace, this.#c.hostname, status);
  }
}
