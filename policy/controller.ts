import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesObject, type V1ConfigMap } from '@kubernetes/client-node';
import { messageOf, systemClock, type Clock, type Logger, type Service } from '../core/index.ts';
import { CoalescingQueue, asList, createInformer, startSyncLoop, type CachedInformer, type SyncLoop } from '../core/k8s.ts';
import { BrokerCache, validateIdentitySet, validatePolicyRecord, validatePolicySpec, validatePolicyStatus, type BrokerClient, type Cluster, type IdentitySet, type Policy, type PolicyStatusRecord } from '../core/broker-api/index.ts';
import { publishedClusterLabels, receivedClusterLabels, type ClusterPropertyLike } from './cluster-labels.ts';
import { AUTHORS_ANNOTATION, resolve, type PolicyInput } from './evaluate.ts';
import { identitySets, type NamespaceLike, type PodLike } from './identities.ts';
import { enforcement, nodeReport, type NodeReport } from './node-status.ts';
import { clusterEntries, receiverStatus, statusRecord } from './status.ts';
import { GROUP, PLURAL, VERSION } from './ops.ts';
import { STATE_LABEL, canonicalJson, stateConfigMaps, type ConfigMapLike } from './state.ts';

/**
 * The policy controller: one per cluster, the only policy part with a broker credential.
 *
 * - Publishes this cluster's ClusterSetNetworkPolicies (valid ones; an invalid one gets
 *   its error in the status and is not published — withdrawn if it was) and its pods'
 *   identities, one IDENTITY record per namespace; withdraws what no longer exists.
 * - Mirrors the clusterset's state from the broker (clusters, every policy, remote
 *   identities — each record validated first) into ConfigMaps of its namespace for the
 *   node agents (state.ts). While the broker is unreachable the cache serves its last
 *   state, so the ConfigMaps and the enforcement keep theirs; changes made meanwhile are
 *   published and mirrored once it returns.
 * - Publishes this cluster's labels — its ClusterProperty objects (cluster-labels.ts) — in
 *   its Cluster record (registered by the gateway, whose registrations keep them), so
 *   cluster selectors match them; takes every member's labels validated (a hostile
 *   member's are untrusted input).
 * - Works out how this cluster receives every policy: Accepted (with its namespaces, and
 *   enforced on N of M nodes: M the schedulable nodes, N those whose PolicyAgent report
 *   holds the policy at its current generation — node-status.ts), NotApplicable or Error
 *   (the message says what to fix). Another cluster's policy: published to the broker as a
 *   POLICY_STATUS record for its author. Its own policies: written in their status, one
 *   entry per cluster — its own, and every member's record about them (status.ts).
 * - Its own policies reach its own agents as validated here, without waiting for the
 *   broker's copy (one round trip less; the status says when the broker lacks one).
 *
 * Invariants: nothing is written before the informers and the broker cache have synced;
 * writes happen only when the value differs (no new broker revision, no apiserver
 * update for an unchanged object); one reconcile at a time, events coalesced.
 */
export interface PolicyControllerConfig {
  readonly cluster: string;
  readonly namespace: string;
  readonly resyncMs: number;
}

export interface PolicyControllerDeps {
  readonly kubeConfig: KubeConfig;
  readonly broker: BrokerClient;
  readonly logger: Logger;
  readonly clock?: Clock;
}

const AGENT_PLURAL = 'policyagents';
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
type NodeLike = KubernetesObject & { spec?: { unschedulable?: boolean } };
const PROPERTY = { group: 'about.k8s.io', version: 'v1alpha1', plural: 'clusterproperties' } as const;

type Cr = KubernetesObject & { spec?: unknown; status?: unknown; metadata?: { generation?: number } };

export class PolicyController implements Service {
  readonly name = 'policy-controller';
  readonly #c: PolicyControllerConfig;
  readonly #d: PolicyControllerDeps;
  readonly #queue = new CoalescingQueue({ backoff: { baseMs: 200, maxMs: 5000 } });
  readonly #objects: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #cache: BrokerCache;
  #informers: Record<'policies' | 'pods' | 'namespaces' | 'configMaps' | 'agents' | 'nodes' | 'properties', CachedInformer<KubernetesObject>> | undefined;
  #loop: SyncLoop | undefined;
  readonly #statusWritten = new Map<string, string>();
  /** Statuses to write (policy key → its text), and whether the writer runs. */
  readonly #statusDue = new Map<string, { ns: string; name: string; text: string }>();
  #statusWriter = false;
  /** What was logged last about the labels (skipped properties, refused label sets), so each is said once. */
  #labelNotes = '';

  constructor(config: PolicyControllerConfig, deps: PolicyControllerDeps) {
    this.#c = config;
    this.#d = deps;
    this.#objects = deps.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#core = deps.kubeConfig.makeApiClient(CoreV1Api);
    this.#cache = new BrokerCache(deps.broker, { kinds: ['CLUSTER', 'POLICY', 'IDENTITY', 'POLICY_STATUS'], logger: deps.logger });
  }

  get ready(): boolean {
    return this.#loop?.synced() ?? false;
  }

  async start(): Promise<void> {
    const kc = this.#d.kubeConfig;
    const ns = this.#c.namespace;
    const common = { kubeConfig: kc, queue: this.#queue, logger: this.#d.logger, clock: this.#d.clock ?? systemClock };
    const informers = {
      policies: createInformer<KubernetesObject>({
        ...common, name: PLURAL, path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
        list: async () => asList(await this.#objects.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })),
      }),
      pods: createInformer<KubernetesObject>({ ...common, name: 'pods', path: '/api/v1/pods', list: async () => asList(await this.#core.listPodForAllNamespaces()) }),
      namespaces: createInformer<KubernetesObject>({ ...common, name: 'namespaces', path: '/api/v1/namespaces', list: async () => asList(await this.#core.listNamespace()) }),
      configMaps: createInformer<KubernetesObject>({
        ...common, name: 'configmaps', path: `/api/v1/namespaces/${ns}/configmaps`, labelSelector: STATE_LABEL,
        list: async () => asList(await this.#core.listNamespacedConfigMap({ namespace: ns, labelSelector: STATE_LABEL })),
      }),
      agents: createInformer<KubernetesObject>({
        ...common, name: AGENT_PLURAL, path: `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${AGENT_PLURAL}`,
        // without the PolicyAgent CRD (an older install) every node counts as not reporting; the rest works
        list: async () => asList(await this.#objects.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: AGENT_PLURAL }).catch((err: unknown) => {
          if ((err as { code?: number }).code === 404) return { items: [] };
          throw err;
        })),
      }),
      nodes: createInformer<KubernetesObject>({ ...common, name: 'nodes', path: '/api/v1/nodes', list: async () => asList(await this.#core.listNode()) }),
      // the CRD clusterproperties.about.k8s.io must exist (join installs it)
      properties: createInformer<KubernetesObject>({
        ...common, name: 'clusterproperties', path: `/apis/${PROPERTY.group}/${PROPERTY.version}/${PROPERTY.plural}`,
        list: async () => asList(await this.#objects.listClusterCustomObject(PROPERTY)),
      }),
    };
    this.#informers = informers;
    this.#cache.onChange(() => this.#queue.add('sync'));
    this.#cache.start();
    this.#loop = await startSyncLoop(this.#queue, Object.values(informers), () => this.#reconcile(), { logger: this.#d.logger, resyncMs: this.#c.resyncMs, alsoSynced: [this.#cache.synced] });
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
    this.#statusDue.clear();
    await this.#cache.stop();
  }

  async #reconcile(): Promise<void> {
    const inf = this.#informers;
    if (inf === undefined) return;
    const own = this.#c.cluster;
    const log = this.#d.logger;
    const namespaces = inf.namespaces.cache.list() as NamespaceLike[];
    // 1. this cluster's policies
    const errors = new Map<string, string>();
    const desired = new Map<string, Policy>();
    for (const o of inf.policies.cache.list() as Cr[]) {
      const ns = o.metadata?.namespace ?? '';
      const name = o.metadata?.name ?? '';
      const key = `${own}/${ns}/${name}`;
      try {
        const spec = validatePolicySpec(o.spec);
        desired.set(key, { cluster_id: own, namespace: ns, name, spec: JSON.stringify(spec), generation: (o.metadata?.generation ?? 0) % 2 ** 32 });
      } catch (err) {
        errors.set(key, messageOf(err));
      }
    }
    await this.#sync('POLICY', desired, (p) => this.#d.broker.publishPolicy(p), (key) => {
      const [, ns = '', name = ''] = key.split('/');
      return this.#d.broker.withdrawPolicy(own, ns, name);
    });
    // 2. this cluster's identities
    const sets = new Map(identitySets(own, inf.pods.cache.list() as PodLike[], namespaces).map((s) => [`${own}/${s.namespace}`, s]));
    await this.#sync('IDENTITY', sets, (s) => this.#d.broker.publishIdentities(s), (key) => this.#d.broker.withdrawIdentities(own, key.split('/')[1] ?? ''));
    // 3. this cluster's labels, once the gateway has registered it; every member's labels validated
    const notes = [...await this.#publishLabels(inf.properties.cache.list() as ClusterPropertyLike[])];
    const clusters = this.#cache.list('CLUSTER').map((c) => {
      const r = receivedClusterLabels(c.cluster_id, c.labels);
      if (r.problem !== undefined) notes.push(`labels of ${c.cluster_id} refused: ${r.problem}`);
      return { ...c, labels: { ...r.labels } };
    });
    // 4. the clusterset's state for the node agents
    const cidrsOf = new Map(clusters.map((c) => [c.cluster_id, c.pod_cidrs]));
    // this cluster's own policies go to its agents as validated here, not after the broker's echo
    // (one round trip less for the cluster that authored them); the broker's copies of them are skipped
    const refusedHere = new Map<string, { policy: Policy; error: string }>();
    const policies = [...desired.values(), ...this.#cache.list('POLICY').filter((p) => p.cluster_id !== own).flatMap((p) => {
      try {
        return [validatePolicyRecord(p).record];
      } catch (err) {
        const key = `${p.cluster_id}/${p.namespace}/${p.name}`;
        if (refusedHere.size < 1000) refusedHere.set(key, { policy: p, error: `refused by ${own}: ${messageOf(err)}` });
        log.warn({ policy: key, err: messageOf(err) }, 'broker policy record refused');
        return [];
      }
    })];
    const identities = this.#cache.list('IDENTITY').flatMap((s) => {
      try {
        return [validateIdentitySet(s, cidrsOf.get(s.cluster_id) ?? [])];
      } catch (err) {
        log.warn({ identities: `${s.cluster_id}/${s.namespace}`, err: messageOf(err) }, 'broker identity record refused');
        return [];
      }
    });
    await this.#mirror(stateConfigMaps(own, clusters, policies, identities), inf.configMaps.cache.list() as ConfigMapLike[]);
    // 5. status of the local policies, as this cluster receives them, and on how many of its nodes they are enforced
    const nodes = (inf.nodes.cache.list() as NodeLike[]).filter((n) => n.spec?.unschedulable !== true).map((n) => n.metadata?.name ?? '');
    const reports = inf.agents.cache.list().flatMap((o) => nodeReport(o) ?? []);
    const atBroker = (key: string): boolean => canonicalJson(this.#cache.get('POLICY', key)) === canonicalJson(desired.get(key));
    const refused = await this.#statuses(inf.policies.cache.list() as Cr[], errors, { clusters, policies, refusedHere, namespaces, atBroker }, { nodes, reports });
    this.#note([...notes, ...refused]);
  }

  /**
   * Re-registers this cluster with the labels of its ClusterProperties when its record at
   * the broker has others; returns the properties left out, and why.
   */
  async #publishLabels(properties: readonly ClusterPropertyLike[]): Promise<readonly string[]> {
    const own = this.#c.cluster;
    const record = this.#cache.get('CLUSTER', own);
    const { labels, skipped } = publishedClusterLabels(own, properties);
    if (record === undefined || canonicalJson(record.labels) === canonicalJson(labels)) return skipped;
    try {
      await this.#d.broker.registerCluster({ cluster_id: own, pod_cidrs: record.pod_cidrs, service_cidrs: record.service_cidrs, labels: { ...labels } });
      this.#d.logger.info({ labels }, 'cluster labels published');
    } catch (err) {
      this.#d.logger.warn({ err: messageOf(err) }, 'cluster labels not published (retried at the next resync)');
    }
    return skipped;
  }

  /** Logs the label notes when they differ from the last reconcile's (each problem said once, again if it comes back). */
  #note(lines: readonly string[]): void {
    const text = lines.join('\n');
    if (this.#labelNotes === text) return;
    this.#labelNotes = text;
    for (const l of lines) this.#d.logger.warn(l);
  }

  /** Publishes what differs from the broker's copy, withdraws this cluster's records not desired. */
  async #sync<T extends Policy | IdentitySet | PolicyStatusRecord>(kind: 'POLICY' | 'IDENTITY' | 'POLICY_STATUS', desired: ReadonlyMap<string, T>, publish: (r: T) => Promise<unknown>, withdraw: (key: string) => Promise<unknown>): Promise<void> {
    const own = this.#c.cluster;
    for (const [key, rec] of desired) {
      const have = this.#cache.get(kind, key);
      if (have !== undefined && canonicalJson(have) === canonicalJson(rec)) continue;
      try {
        await publish(rec);
        this.#d.logger.info({ kind, record: key }, 'published');
      } catch (err) {
        this.#d.logger.warn({ kind, record: key, err: messageOf(err) }, 'not published (retried at the next resync)');
      }
    }
    for (const key of this.#cache.keys(kind)) {
      if (!key.startsWith(`${own}/`) || desired.has(key)) continue;
      try {
        await withdraw(key);
        this.#d.logger.info({ kind, record: key }, 'withdrawn');
      } catch (err) {
        this.#d.logger.warn({ kind, record: key, err: messageOf(err) }, 'not withdrawn (retried at the next resync)');
      }
    }
  }

  async #mirror(want: ReturnType<typeof stateConfigMaps>, have: readonly ConfigMapLike[]): Promise<void> {
    const ns = this.#c.namespace;
    for (const [name, { kind, data }] of want) {
      const cur = have.find((c) => c.metadata?.name === name);
      if (cur !== undefined && JSON.stringify(cur.data ?? {}) === JSON.stringify(data)) continue;
      const body: V1ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns, labels: { [STATE_LABEL]: kind } }, data };
      try {
        if (cur === undefined) await this.#core.createNamespacedConfigMap({ namespace: ns, body });
        else await this.#core.replaceNamespacedConfigMap({ namespace: ns, name, body });
      } catch (err) {
        this.#d.logger.warn({ configMap: name, err: messageOf(err) }, 'state not written (retried at the next resync)');
      }
    }
    for (const c of have) {
      const name = c.metadata?.name ?? '';
      if (want.has(name)) continue;
      await this.#core.deleteNamespacedConfigMap({ namespace: ns, name }).catch((err: unknown) => this.#d.logger.warn({ configMap: name, err: messageOf(err) }, 'stale state not deleted'));
    }
  }

  /**
   * Statuses: how this cluster receives every policy — another cluster's to the broker
   * (POLICY_STATUS), its own into their status with the other members' records. Returns
   * the records of others left out, with why.
   */
  async #statuses(crs: readonly Cr[], errors: ReadonlyMap<string, string>,
    set: { clusters: readonly Cluster[]; policies: readonly Policy[]; refusedHere: ReadonlyMap<string, { policy: Policy; error: string }>; namespaces: readonly NamespaceLike[]; atBroker: (key: string) => boolean },
    fleet: { nodes: readonly string[]; reports: readonly NodeReport[] }): Promise<string[]> {
    const own = this.#c.cluster;
    const inputs: PolicyInput[] = set.policies.flatMap((p) => {
      try {
        return [{ key: `${p.cluster_id}/${p.namespace}/${p.name}`, cluster: p.cluster_id, namespace: p.namespace, name: p.name, spec: validatePolicySpec(JSON.parse(p.spec)) }];
      } catch {
        return [];
      }
    });
    const resolved = resolve({
      cluster: own,
      clusterLabels: new Map(set.clusters.map((c) => [c.cluster_id, c.labels])),
      namespaces: set.namespaces.map((n) => {
        const authors = n.metadata?.annotations?.[AUTHORS_ANNOTATION];
        return { name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {}, authors: authors?.split(',').map((s) => s.trim()).filter((s) => s !== '') };
      }),
      policies: inputs,
    });
    const entryOf = (key: string, generation: number, error: string | undefined) =>
      receiverStatus(own, generation, error, resolved.status.get(key), enforcement(key, generation, fleet.nodes, fleet.reports));
    // 1. the other clusters' policies, as this cluster receives them, for their authors
    const mine = new Map<string, PolicyStatusRecord>();
    const report = (p: Policy, error: string | undefined): void => {
      const key = `${p.cluster_id}/${p.namespace}/${p.name}`;
      const rec = statusRecord({ cluster: p.cluster_id, namespace: p.namespace, name: p.name }, entryOf(key, typeof p.generation === 'number' ? p.generation : 0, error));
      try {
        mine.set(`${own}/${key}`, validatePolicyStatus(rec)); // a refused record may not even name a policy the broker would take a status for
      } catch {
        // nothing to report it under
      }
    };
    for (const p of set.policies) if (p.cluster_id !== own) report(p, undefined);
    for (const { policy, error } of set.refusedHere.values()) report(policy, error);
    await this.#sync('POLICY_STATUS', mine, (r) => this.#d.broker.publishPolicyStatus(r), (key) => {
      const [, author = '', ns = '', name = ''] = key.split('/');
      return this.#d.broker.withdrawPolicyStatus(own, author, ns, name);
    });
    // 2. this cluster's policies: its own entry and the members' records about them
    const members = new Set(set.clusters.map((c) => c.cluster_id));
    const byPolicy = new Map<string, unknown[]>();
    for (const r of this.#cache.list('POLICY_STATUS')) {
      const k = `${r.policy_cluster}/${r.namespace}/${r.name}`;
      if (r.policy_cluster === own) byPolicy.set(k, [...byPolicy.get(k) ?? [], r]);
    }
    const refused: string[] = [];
    for (const o of crs) {
      const ns = o.metadata?.namespace ?? '';
      const name = o.metadata?.name ?? '';
      const key = `${own}/${ns}/${name}`;
      const generation = (o.metadata?.generation ?? 0) % 2 ** 32;
      const error = errors.get(key);
      const here = entryOf(key, generation, error);
      const ownEntry = error === undefined && !set.atBroker(key) ? { ...here, message: `${here.message}; not at the broker yet, so no other cluster has it` } : here;
      const { entries, refused: left } = clusterEntries(ownEntry, { cluster: own, namespace: ns, name, generation }, error === undefined ? byPolicy.get(key) ?? [] : [], members);
      refused.push(...left);
      const text = JSON.stringify(entries);
      if (this.#statusWritten.get(key) !== text) this.#statusDue.set(key, { ns, name, text });
    }
    void this.#writeStatuses();
    return refused;
  }

  /**
   * Writes the statuses due, one merge patch of the status subresource each, apart from
   * reconcile (which must not wait on them: a policy change is published and mirrored first);
   * one writer at a time, the latest status of a policy wins. A failed write is retried by the
   * next reconcile (its text was not recorded as written).
   */
  async #writeStatuses(): Promise<void> {
    if (this.#statusWriter) return;
    this.#statusWriter = true;
    try {
      for (let next = this.#statusDue.entries().next(); next.done !== true; next = this.#statusDue.entries().next()) {
        const [key, { ns, name, text }] = next.value;
        this.#statusDue.delete(key);
        if (this.#statusWritten.get(key) === text) continue;
        try {
          await this.#objects.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name, body: { status: { clusters: JSON.parse(text) as unknown } } }, MERGE_PATCH);
          this.#statusWritten.set(key, text);
        } catch (err) {
          this.#d.logger.warn({ policy: key, err: messageOf(err) }, 'status not written (retried at the next reconcile)');
        }
      }
    } finally {
      this.#statusWriter = false;
    }
  }
}
