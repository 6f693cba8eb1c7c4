import { messageOf, systemClock, type Clock, type CommandRunner, type Logger, type Service } from '../core/index.ts';
import { NodeStatusWriter, type KubeRest } from '../core/kube-lite.ts';
import { LiteInformer, type LiteObject } from '../core/kube-lite-informer.ts';
import { CoalescingQueue } from '../core/sync-loop.ts'; // not via k8s.ts, which loads client-node
import { AuditLog } from './audit.ts';
import { compile, type LocalPod, type Ruleset } from './compile.ts';
import { cutRemoteFlows } from './conntrack.ts';
import { AUTHORS_ANNOTATION, resolve, type SourcePod } from './evaluate.ts';
import { live, podIps, type NamespaceLike, type PodLike } from './identities.ts';
import type { PolicyMetrics } from './metrics.ts';
import { policyNodeStatus, type PolicyNodeStatus } from './node-status.ts';
import type { PolicyTable } from './table.ts';
import { STATE_LABEL, readState, remoteCidrs, type ConfigMapLike, type IdentityMemo } from './state.ts';

/**
 * The policy agent: one per node (a container in the route agent's pod). It governs the
 * flows that end in this node's pods (a gateway node forwards the others untouched to the
 * node that governs them, so each flow is enforced and audited once). It reads the
 * clusterset's policy state that the controller mirrors into its namespace (state.ts;
 * validated again here), this cluster's pods and namespaces, compiles the node's ruleset
 * (compile.ts) and applies it (NftPolicyTable, idempotent); every `auditMs` it reads the
 * audit sets and writes the audit log (audit.ts). After each apply it reports, in the node's
 * PolicyAgent resource, the policies (key and generation) its ruleset enforces, or the
 * error (node-status.ts). It talks to Kubernetes through kube-lite
 * (no client-node: it runs on every node) and watches only the pods of its own node.
 *
 * Invariants: nothing is applied before every informer has synced (a restarted agent
 * adopts the table in the kernel when the digest matches); stop() leaves the table as it
 * is — enforcement keeps its last state while the agent, the controller or the broker is
 * away; only `isthmus policy agent --cleanup` removes it.
 */
export interface PolicyAgentConfig {
  readonly cluster: string;
  /** This node: only its pods are destinations here (each flow is enforced and logged once, where it ends). */
  readonly nodeName: string;
  readonly namespace: string;
  readonly resyncMs: number;
  readonly auditMs: number;
  readonly auditSeconds: number;
  /** After a change, make every flow from a remote cluster meet the new rules (conntrack.ts). */
  readonly cutFlows: boolean;
}

export interface PolicyAgentDeps {
  readonly kube: KubeRest;
  readonly table: PolicyTable;
  readonly runner: CommandRunner;
  readonly audit: AuditLog;
  readonly logger: Logger;
  readonly metrics?: PolicyMetrics;
  readonly clock?: Clock;
}

export class PolicyAgent implements Service {
  readonly name = 'policy-agent';
  readonly #c: PolicyAgentConfig;
  readonly #d: PolicyAgentDeps;
  readonly #clock: Clock;
  readonly #queue = new CoalescingQueue({ backoff: { baseMs: 200, maxMs: 5000 } });
  #informers: { configMaps: LiteInformer<ConfigMapLike & LiteObject>; pods: LiteInformer<PodLike & LiteObject>; namespaces: LiteInformer<NamespaceLike & LiteObject> } | undefined;
  #synced = false;
  #working: Promise<void> | undefined;
  #resync: ReturnType<typeof setInterval> | undefined;
  #auditTimer: ReturnType<typeof setInterval> | undefined;
  #ruleset: Ruleset | undefined;
  #lookups: { remote: Map<string, SourcePod>; local: Map<string, LocalPod> } = { remote: new Map(), local: new Map() };
  #lastProblems = '';
  /** The policies of the ruleset in the kernel. */
  #applied: { policy: string; generation: number }[] = [];
  readonly #status: NodeStatusWriter;
  #auditing = false;
  readonly #memo: IdentityMemo = new Map();

  constructor(config: PolicyAgentConfig, deps: PolicyAgentDeps) {
    this.#c = config;
    this.#d = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#status = new NodeStatusWriter(deps.kube, { plural: 'policyagents', kind: 'PolicyAgent', namespace: config.namespace, node: config.nodeName });
  }

  get ready(): boolean {
    return this.#synced;
  }

  async start(): Promise<void> {
    await this.#d.table.preflight();
    const ns = encodeURIComponent(this.#c.namespace);
    const informer = <T extends LiteObject>(name: string, path: string, selectors: { labelSelector?: string; fieldSelector?: string }): LiteInformer<T> => new LiteInformer<T>(this.#d.kube, {
      name, path, ...selectors, logger: this.#d.logger, onChange: (key) => this.#queue.add(key),
    });
    const informers = {
      configMaps: informer<ConfigMapLike & LiteObject>('configmaps', `/api/v1/namespaces/${ns}/configmaps`, { labelSelector: STATE_LABEL }),
      pods: informer<PodLike & LiteObject>('pods', '/api/v1/pods', { fieldSelector: `spec.nodeName=${this.#c.nodeName}` }),
      namespaces: informer<NamespaceLike & LiteObject>('namespaces', '/api/v1/namespaces', {}),
    };
    this.#informers = informers;
    for (const i of Object.values(informers)) i.start();
    this.#working = this.#queue.run(async () => {
      if (this.#synced) await this.#reconcile();
    }, { workers: 1, logger: this.#d.logger });
    void Promise.all(Object.values(informers).map((i) => i.synced)).then(() => {
      this.#synced = true;
      this.#queue.add('sync');
    }, () => {});
    this.#resync = setInterval(() => this.#queue.add('sync'), this.#c.resyncMs);
    this.#auditTimer = setInterval(() => void this.#audit(), this.#c.auditMs);
  }

  async stop(): Promise<void> {
    if (this.#auditTimer !== undefined) clearInterval(this.#auditTimer);
    if (this.#resync !== undefined) clearInterval(this.#resync);
    for (const i of Object.values(this.#informers ?? {})) await i.stop();
    this.#queue.shutDown();
    await this.#working;
  }

  async #reconcile(): Promise<void> {
    const inf = this.#informers;
    if (inf === undefined) return;
    const started = this.#clock.now();
    const own = this.#c.cluster;
    const state = readState(own, inf.configMaps.list(), this.#memo);
    const problems = state.problems.join('\n');
    if (problems !== this.#lastProblems) {
      for (const p of state.problems) this.#d.logger.warn({ problem: p }, 'policy state record refused');
      this.#lastProblems = problems;
    }
    const namespaces = inf.namespaces.list().map((n) => {
      const authors = n.metadata?.annotations?.[AUTHORS_ANNOTATION];
      return { name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {}, authors: authors?.split(',').map((s) => s.trim()).filter((s) => s !== '') };
    });
    const resolved = resolve({ cluster: own, clusterLabels: new Map(state.clusters.map((c) => [c.cluster_id, c.labels])), namespaces, policies: state.policies });
    const localPods: LocalPod[] = inf.pods.list().filter((p) => live(p) && p.spec?.nodeName === this.#c.nodeName).flatMap((p) => podIps(p).map((ip) => ({
      ip, namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', labels: p.metadata?.labels ?? {},
    })));
    const cidrs = remoteCidrs(own, state.clusters);
    const ruleset = compile({ resolved, remoteCidrs: cidrs, localPods, remotePods: state.remotePods, auditSeconds: this.#c.auditSeconds });
    const applied = state.policies.filter((p) => resolved.status.get(p.key)?.state === 'Accepted').map((p) => ({ policy: p.key, generation: p.generation ?? 0 }));
    try {
      const outcome = await this.#d.table.set(ruleset);
      this.#ruleset = ruleset;
      this.#lookups = { remote: new Map(state.remotePods.map((p) => [p.ip, p.source])), local: new Map(localPods.map((p) => [p.ip, p])) };
      this.#d.metrics?.applied('ok', (this.#clock.now() - started) / 1000, ruleset.rules, ruleset.elements, state.problems.length);
      this.#applied = applied;
      await this.#report(policyNodeStatus({ filter: this.#d.table.name, digest: ruleset.digest, applied }));
      if (outcome !== 'unchanged') {
        const cut = this.#c.cutFlows ? await cutRemoteFlows(this.#d.runner, cidrs) : 0;
        this.#d.logger.info({ digest: ruleset.digest, outcome, rules: ruleset.rules, elements: ruleset.elements, policies: state.policies.length, ...(this.#c.cutFlows ? { flowsRechecked: cut } : {}) }, 'policy ruleset applied');
      }
    } catch (err) {
      this.#d.metrics?.applied('failed', 0, ruleset.rules, ruleset.elements, state.problems.length);
      await this.#report(policyNodeStatus({ filter: this.#d.table.name, digest: this.#ruleset?.digest ?? '', applied: this.#applied, error: messageOf(err) }));
      throw err; // the queue retries with backoff
    }
  }

  /** The node's PolicyAgent status, written when it changed; a failed write is logged and tried again at the next reconcile. */
  async #report(status: PolicyNodeStatus): Promise<void> {
    try {
      await this.#status.write(status);
    } catch (err) {
      this.#d.logger.warn({ err: messageOf(err) }, 'PolicyAgent status not written');
    }
  }

  async #audit(): Promise<void> {
    const r = this.#ruleset;
    if (r === undefined || this.#auditing) return;
    this.#auditing = true;
    try {
      const before = this.#d.audit.suppressed;
      this.#d.audit.observe(await this.#d.table.readAudit(r.audit.keys()), r.audit, this.#lookups.remote, this.#lookups.local);
      this.#d.metrics?.suppressed(this.#d.audit.suppressed - before);
    } catch (err) {
      this.#d.logger.warn({ err: messageOf(err) }, 'audit sets not read');
    } finally {
      this.#auditing = false;
    }
  }
}
