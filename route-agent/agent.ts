import { messageOf, systemClock, type Clock, type CommandRunner, type Logger, type Service } from '../core/index.ts';
import { NodeStatusWriter, type KubeRest } from '../core/kube-lite.ts';
import { LiteInformer, type LiteObject } from '../core/kube-lite-informer.ts';
import { CoalescingQueue } from '../core/sync-loop.ts'; // not via k8s.ts, which loads client-node
import { clusterInputs, nodeIp, type GatewayLike, type LeaseLike, type NodeLike, type RouteAgentLike } from './contract.ts';
import { desiredRoutes, tunnelIp, TUNNEL_DEV, type Desired, type Mode } from './desired.ts';
import type { PacketFilter } from './filter.ts';
import type { RouteAgentMetrics } from './metrics.ts';
import { ChangeMonitor, ipWatch } from './monitor.ts';
import { RouteTable } from './routes.ts';
import { routeAgentStatus, type RouteAgentStatus } from './status.ts';
import { TUNNEL_PORT, Tunnel } from './tunnel.ts';

/**
 * The route agent: one per node. It watches, in its own cluster only, the gateway Lease,
 * the Gateway resources, the Nodes and the other RouteAgents (see contract.ts), computes
 * the node's routes and filter rules with desiredRoutes, and applies them through its
 * three OS seams (Tunnel, RouteTable, PacketFilter), each idempotent. It reconciles on
 * every change of those resources, on every kernel change to its tables, rules, device or
 * nftables table (monitor.ts: a deleted route is repaired at once), and every `resyncMs`
 * (the safety net, and the only repair of iptables chains).
 *
 * Invariants: nothing is applied before every informer has synced, so a restarted agent
 * adopts what exists and re-creates nothing that is right; stop() leaves the data path
 * as it is (only cleanupNode, `isthmus route-agent --cleanup`, removes it); one reconcile runs at a time, and a burst of
 * events coalesces into one.
 */
export type ModeChoice = Mode | 'auto';

export interface RouteAgentConfig {
  readonly nodeName: string;
  readonly namespace: string;
  readonly leaseName: string;
  readonly localCidrs: readonly string[];
  readonly mode: ModeChoice;
  readonly table: number;
  readonly pref: number;
  readonly resyncMs: number;
}

export interface RouteAgentDeps {
  /** The local apiserver (a small client: the agent runs on every node; core/kube-lite.ts). */
  readonly kube: KubeRest;
  readonly runner: CommandRunner;
  readonly filter: PacketFilter;
  readonly logger: Logger;
  readonly metrics?: RouteAgentMetrics;
  readonly clock?: Clock;
}

/**
 * Removes every route, rule, chain and device a route agent with this table and
 * preference made on this node (of each given filter backend), and nothing else; safe
 * when there is nothing. Needs no apiserver.
 */
export async function cleanupNode(runner: CommandRunner, filters: readonly PacketFilter[], table: number, pref: number): Promise<void> {
  await new RouteTable(runner, [table, table + 1], [pref - 3, pref - 2, pref]).cleanup();
  for (const f of filters) await f.cleanup();
  await new Tunnel(runner).cleanup();
}

/**
 * A burst of events is one reconcile of the whole node (CoalescingQueue). FORCE (the
 * kernel monitors, the resync, the first sync) makes the next reconcile read and repair the
 * OS; other keys (informer events) only when the inputs the node's routes depend on changed —
 * the Gateway status changes with every health probe, its subnets almost never.
 */
const FORCE = 'force';
class Coalescing extends CoalescingQueue {
  #forced = false;
  override add(key: string): void {
    if (key === FORCE) this.#forced = true;
    super.add(key);
  }

  /** Whether a FORCE came since the last call. */
  takeForced(): boolean {
    const f = this.#forced;
    this.#forced = false;
    return f;
  }
}

export class RouteAgent implements Service {
  readonly name = 'route-agent';
  readonly #c: RouteAgentConfig;
  readonly #d: RouteAgentDeps;
  readonly #clock: Clock;
  readonly #queue = new Coalescing({ backoff: { baseMs: 200, maxMs: 5000 } });
  readonly #routes: RouteTable;
  readonly #tunnel: Tunnel;
  #informers: { lease: LiteInformer<LeaseLike>; nodes: LiteInformer<NodeLike>; gateways: LiteInformer<GatewayLike>; agents: LiteInformer<RouteAgentLike> } | undefined;
  #working: Promise<void> | undefined;
  #resync: ReturnType<typeof setInterval> | undefined;
  #monitor: ChangeMonitor | undefined;
  #synced = false;
  readonly #status: NodeStatusWriter;
  #lastGateway: string | undefined;
  /** The inputs of the last reconcile that had no error ('' after one that had). */
  #lastInputs = '';
  #onLink = new Map<string, { onLink: boolean; via: string }>();

  constructor(config: RouteAgentConfig, deps: RouteAgentDeps) {
    this.#c = config;
    this.#d = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#routes = new RouteTable(deps.runner, [config.table, config.table + 1], [config.pref - 3, config.pref - 2, config.pref]);
    this.#tunnel = new Tunnel(deps.runner);
    this.#status = new NodeStatusWriter(deps.kube, { plural: 'routeagents', kind: 'RouteAgent', namespace: config.namespace, node: config.nodeName });
  }

  get ready(): boolean {
    return this.#synced;
  }

  async start(): Promise<void> {
    await this.#d.filter.preflight();
    const ns = this.#c.namespace;
    const informer = <T extends LiteObject>(name: string, path: string, fieldSelector?: string): LiteInformer<T> => new LiteInformer<T>(this.#d.kube, {
      name, path, ...(fieldSelector === undefined ? {} : { fieldSelector }), logger: this.#d.logger, onChange: (key) => this.#queue.add(key),
    });
    const informers = {
      lease: informer<LeaseLike>('lease', `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, `metadata.name=${this.#c.leaseName}`),
      nodes: informer<NodeLike>('nodes', '/api/v1/nodes'),
      gateways: informer<GatewayLike>('gateways', `/apis/isthmus.dev/v1alpha1/namespaces/${ns}/gateways`),
      agents: informer<RouteAgentLike>('routeagents', `/apis/isthmus.dev/v1alpha1/namespaces/${ns}/routeagents`),
    };
    this.#informers = informers;
    for (const i of Object.values(informers)) i.start();
    this.#working = this.#queue.run(() => this.#reconcile(), { workers: 1, logger: this.#d.logger });
    const filterWatch = this.#d.filter.watch;
    this.#monitor = new ChangeMonitor([ipWatch([this.#c.table, this.#c.table + 1], TUNNEL_DEV), ...(filterWatch === undefined ? [] : [filterWatch])],
      () => this.#queue.add(FORCE), this.#d.logger);
    void Promise.all(Object.values(informers).map((i) => i.synced)).then(async () => {
      this.#synced = true;
      this.#queue.add(FORCE);
      await this.#monitor?.start();
    }, () => {});
    this.#resync = setInterval(() => this.#queue.add(FORCE), this.#c.resyncMs);
  }

  /** A process stop: the routes and rules stay for the next process to adopt. */
  async stop(): Promise<void> {
    if (this.#resync !== undefined) clearInterval(this.#resync);
    await this.#monitor?.stop();
    for (const i of Object.values(this.#informers ?? {})) await i.stop();
    this.#queue.shutDown();
    await this.#working;
  }

  async #addresses(): Promise<string[]> {
    const r = await this.#d.runner.run('ip', ['-j', 'addr', 'show'], { allowFailure: true });
    if (r.code !== 0) return [];
    return (JSON.parse(r.stdout || '[]') as { ifname?: string; addr_info?: { local?: string; family?: string }[] }[])
      .filter((l) => l.ifname !== TUNNEL_DEV)
      .flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.local !== undefined && !a.local.startsWith('127.')).map((a) => a.local ?? ''));
  }

  /** auto: direct when the gateway node is on-link from here, else vxlan. */
  async #mode(gatewayIp: string | undefined): Promise<{ mode: Mode; reason: string }> {
    if (this.#c.mode !== 'auto') return { mode: this.#c.mode, reason: `--mode ${this.#c.mode}` };
    if (gatewayIp === undefined) return { mode: 'direct', reason: 'no gateway known yet' };
    let seen = this.#onLink.get(gatewayIp);
    if (seen === undefined) {
      const r = await this.#d.runner.run('ip', ['-j', 'route', 'get', gatewayIp], { allowFailure: true });
      const route = (r.code === 0 ? (JSON.parse(r.stdout || '[]') as { gateway?: string }[]) : [])[0];
      seen = { onLink: route !== undefined && route.gateway === undefined, via: route?.gateway ?? '' };
      this.#onLink.set(gatewayIp, seen);
    }
    return seen.onLink
      ? { mode: 'direct', reason: `auto: the gateway node ${gatewayIp} is on-link` }
      : { mode: 'vxlan', reason: `auto: the gateway node ${gatewayIp} is behind a router (${seen.via || 'no route'}): tunnelled over VXLAN port ${TUNNEL_PORT}` };
  }

  async #reconcile(): Promise<void> {
    const inf = this.#informers;
    if (!this.#synced || inf === undefined) return;
    const startedAt = this.#clock.now();
    const ns = this.#c.namespace;
    const inputs = clusterInputs(inf.lease.get(ns, this.#c.leaseName), inf.gateways.list(ns), inf.nodes.list(), inf.agents.list(ns));
    const me = inf.nodes.get('', this.#c.nodeName);
    const myIp = nodeIp(me) ?? '';
    const forced = this.#queue.takeForced();
    const inputsText = JSON.stringify({ inputs, myIp, podCidr: me?.spec?.podCIDR });
    if (!forced && inputsText === this.#lastInputs) return;
    const errors: string[] = [];
    if (myIp === '') errors.push(`node ${this.#c.nodeName} has no InternalIP in its Node status`);
    if (inputs.gateway?.name !== this.#lastGateway) {
      if (this.#lastGateway !== undefined) this.#d.metrics?.gatewayChanged();
      this.#d.logger.info({ gateway: inputs.gateway?.name ?? '', ...(inputs.note === undefined ? {} : { note: inputs.note }) }, 'active gateway node');
      this.#lastGateway = inputs.gateway?.name;
    }
    const isGateway = inputs.gateway?.name === this.#c.nodeName;
    const mode = await this.#mode(isGateway ? undefined : inputs.gateway?.ip);
    const desired: Desired = desiredRoutes({
      node: { name: this.#c.nodeName, ip: myIp, addresses: await this.#addresses() },
      localCidrs: this.#c.localCidrs,
      gateway: inputs.gateway,
      mode: mode.mode,
      remotes: inputs.remotes,
      vxlanPeers: inputs.vxlanPeers,
      table: this.#c.table,
      pref: this.#c.pref,
    });
    let changes = 0;
    const step = async (what: string, fn: () => Promise<number>): Promise<void> => {
      try {
        changes += await fn();
      } catch (err) {
        errors.push(`${what}: ${messageOf(err)}`);
      }
    };
    await step('tunnel', () => this.#tunnel.set(desired.tunnel));
    await step('routes', async () => {
      const r = await this.#routes.set(desired.routes, desired.rules, this.#c.pref);
      errors.push(...r.failed);
      return r.changes;
    });
    await step(this.#d.filter.name, async () => ((await this.#d.filter.set(desired.filter)) ? 1 : 0));
    if (!isGateway && mode.mode === 'vxlan' && inputs.gateway !== undefined && desired.routes.length > 0) {
      const ping = await this.#d.runner.run('ping', ['-n', '-q', '-c', '1', '-W', '1', '-I', TUNNEL_DEV, tunnelIp(inputs.gateway.ip)], { allowFailure: true }).catch(() => ({ code: 1 }));
      if (ping.code !== 0) errors.push(`the gateway node ${inputs.gateway.name} does not answer through the VXLAN tunnel: check that UDP port ${TUNNEL_PORT} between the nodes is open`);
    }
    if (changes > 0) this.#d.logger.info({ changes, routes: desired.routes.length, gateway: inputs.gateway?.name ?? '' }, 'routes applied');
    for (const e of errors) this.#d.logger.warn({ err: e }, 'reconcile error');
    this.#d.metrics?.reconciled(errors.length === 0 ? 'ok' : 'failed', (this.#clock.now() - startedAt) / 1000, changes);
    const status = routeAgentStatus({
      nodeIp: myIp, podCidr: me?.spec?.podCIDR ?? '', gateway: inputs.gateway?.name ?? '', isGateway, mode: mode.mode,
      modeReason: mode.reason, filter: this.#d.filter.name, desired, errors: [...(inputs.note === undefined ? [] : [inputs.note]), ...errors],
    });
    this.#d.metrics?.update(status);
    this.#lastInputs = errors.length === 0 ? inputsText : '';
    await this.#publish(status);
  }

  async #publish(status: RouteAgentStatus): Promise<void> {
    try {
      await this.#status.write(status);
    } catch (err) {
      this.#d.logger.warn({ err: messageOf(err) }, 'RouteAgent status not written');
    }
  }
}
