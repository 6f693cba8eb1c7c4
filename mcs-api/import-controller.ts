import type { V1EndpointSlice, V1Namespace, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { WorkQueue, messageOf, type Service } from '../core/index.ts';
import { LiteInformer, splitKey, type LiteObject } from '../core/kube-lite-informer.ts';
import type { KubeRest } from '../core/kube-lite.ts';
import type { ExportIndex } from './export-index.ts';
import { unhealthyClusters, type GatewayView } from './health.ts';
import { desiredDerivedService, desiredServiceImport, desiredSlices, projectService, projectServiceImport, projectSlice } from './import-objects.ts';
import { apiCode, isAlreadyExists, isNotFound } from './kube-errors.ts';
import type { McsMetrics } from './metrics.ts';
import { derivedServiceName, mergeExports, type ImportSpec } from './merge.ts';
import { OwnWrites } from './own-writes.ts';
import { slimGateway, slimNamespace, slimService, slimServiceImport, slimSlice } from './slim.ts';
import { LABEL_DERIVED_FROM, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MANAGED_BY, MCS_GROUP, MCS_VERSION, type ServiceImport } from './types.ts';

/**
 * The import side, in every cluster (exporters too): the broker's Export records of a
 * Service become, in each namespace of that name that exists here, a ServiceImport, a
 * derived ClusterIP Service (ClusterSetIP only) and EndpointSlices per source cluster;
 * all deleted when the last export goes.
 *
 * - Keys are "namespace/name". ExportIndex changes, and informer events on the objects
 *   we own (ServiceImports, MCS EndpointSlices, derived Services), enqueue the key, so
 *   a hand edit is put back by the next reconcile; a new Namespace enqueues its keys. In
 *   a namespace being deleted nothing is written (the apiserver would refuse it).
 * - Health: the local Gateway resources are watched; when the set of unhealthy clusters
 *   changes, the keys those clusters export are enqueued, and their endpoints are
 *   written not ready (ready again when the cable reconnects).
 * - Writes go add before delete: slices are created or updated (in parallel) before
 *   stale ones go. The ServiceImport's status is a merge patch (ours alone), compared
 *   with what we last wrote while the cache has not caught up with it (own-writes.ts).
 * - Informers are core's kube-lite ones (no client-node in this process); their caches
 *   keep only the fields reconcile reads (slim.ts).
 */
export interface ImportControllerOptions {
  kube: KubeRest;
  clusterId: string;
  exports: ExportIndex;
  logger: Logger;
  /** Namespace of the Gateway resources (default isthmus-system). */
  gatewayNamespace?: string;
  /**
   * Resolves when `exports` holds the broker's full list (BrokerCache.synced). No import is
   * reconciled before: an empty index would read as "every export gone" and delete them.
   */
  exportsSynced: Promise<void>;
  metrics?: McsMetrics;
  /** Keys reconciled in parallel (default 16). */
  workers?: number;
}

const siPath = (ns: string): string => `/apis/${MCS_GROUP}/${MCS_VERSION}/namespaces/${ns}/serviceimports`;
const svcPath = (ns: string): string => `/api/v1/namespaces/${ns}/services`;
const slicePath = (ns: string): string => `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`;
type Labelled = LiteObject & { metadata?: { labels?: Record<string, string> } };

export class ImportController implements Service {
  readonly name = 'mcs-import';
  readonly #o: ImportControllerOptions;
  readonly #queue = new WorkQueue<string>();
  readonly #side = new WorkQueue<string>();
  /** ServiceImport status clusters we wrote that the cache may not show yet. */
  readonly #statusWritten = new OwnWrites<NonNullable<NonNullable<ServiceImport['status']>['clusters']>>();
  readonly #imports: LiteInformer<ServiceImport & LiteObject>;
  readonly #slices: LiteInformer<V1EndpointSlice & LiteObject>;
  readonly #derived: LiteInformer<V1Service & LiteObject>;
  readonly #namespaces: LiteInformer<V1Namespace & LiteObject>;
  readonly #gateways: LiteInformer<GatewayView & LiteObject>;
  #unhealthy = new Set<string>();
  #running: Promise<void>[] = [];
  #unfollow: (() => void) | undefined;

  constructor(options: ImportControllerOptions) {
    this.#o = options;
    const { kube, logger } = options;
    const onChange = (key: string): void => this.#queue.add(key);
    this.#imports = new LiteInformer(kube, { path: `/apis/${MCS_GROUP}/${MCS_VERSION}/serviceimports`, logger, name: 'serviceimports', onChange, slim: (o) => slimServiceImport(o) });
    const importOf = (s: Labelled): string | undefined => {
      const n = s.metadata?.labels?.[LABEL_SERVICE_NAME];
      return n === undefined || s.metadata?.namespace === undefined ? undefined : `${s.metadata.namespace}/${n}`;
    };
    this.#slices = new LiteInformer(kube, {
      path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY}`, logger, name: 'mcs-endpointslices',
      onChange, keyOf: importOf, index: importOf, slim: (o) => slimSlice(o as V1EndpointSlice),
    });
    const derivedOf = (s: Labelled): string | undefined => {
      const n = s.metadata?.labels?.[LABEL_DERIVED_FROM];
      return n === undefined || s.metadata?.namespace === undefined ? undefined : `${s.metadata.namespace}/${n}`;
    };
    this.#derived = new LiteInformer(kube, {
      path: '/api/v1/services', labelSelector: LABEL_DERIVED_FROM, logger, name: 'derived-services', onChange, keyOf: derivedOf, slim: (o) => slimService(o),
    });
    this.#namespaces = new LiteInformer(kube, {
      path: '/api/v1/namespaces', logger, name: 'namespaces', onChange: (key) => this.#side.add(key), keyOf: (n) => `ns:${n.metadata?.name ?? ''}`, slim: (o) => slimNamespace(o),
    });
    const gwNs = options.gatewayNamespace ?? 'isthmus-system';
    this.#gateways = new LiteInformer(kube, {
      path: `/apis/isthmus.dev/v1alpha1/namespaces/${gwNs}/gateways`, logger, name: 'gateways', onChange: (key) => this.#side.add(key), keyOf: () => 'health', slim: (o) => slimGateway(o),
    });
  }

  /** The informers of objects we own have listed once (the Gateway informer is not waited for: without its CRD, health is unknown, not fatal). */
  get synced(): Promise<void> {
    return Promise.all([this.#imports.synced, this.#slices.synced, this.#derived.synced, this.#namespaces.synced]).then(() => undefined);
  }

  /** Clusters whose endpoints are marked not ready now. */
  get unhealthy(): ReadonlySet<string> {
    return this.#unhealthy;
  }

  async start(): Promise<void> {
    this.#unfollow = this.#o.exports.onChange((key) => this.#queue.add(key));
    for (const i of [this.#imports, this.#slices, this.#derived, this.#namespaces, this.#gateways]) i.start();
    await this.synced;
    // not awaited by start(): a broker away at start delays imports, never the process
    this.#running.push(this.#o.exportsSynced.then(() => this.#run()));
  }

  #run(): Promise<void> {
    if (this.#queue.shuttingDown) return Promise.resolve();
    this.#refreshHealth();
    for (const key of this.#o.exports.serviceKeys()) this.#queue.add(key);
    for (const si of this.#imports.list()) this.#queue.add(`${si.metadata?.namespace ?? ''}/${si.metadata?.name ?? ''}`);
    return Promise.all([
      this.#side.run(async (key) => this.#sideEvent(key), { workers: 1, logger: this.#o.logger }),
      this.#queue.run(async (key) => this.#reconcileOrRetry(key), { workers: this.#o.workers ?? 16, logger: this.#o.logger }),
    ]).then(() => undefined);
  }

  async #sideEvent(key: string): Promise<void> {
    if (key === 'health') {
      this.#refreshHealth();
      return;
    }
    const ns = key.slice(3);
    for (const k of this.#o.exports.serviceKeys()) if (splitKey(k).namespace === ns) this.#queue.add(k);
  }

  #refreshHealth(): void {
    const clusters = new Set<string>();
    for (const k of this.#o.exports.serviceKeys()) for (const x of this.#o.exports.records(k)) clusters.add(x.cluster_id);
    const next = unhealthyClusters(this.#gateways.list(), [...clusters], this.#o.clusterId);
    const changed = new Set([...next].filter((c) => !this.#unhealthy.has(c)).concat([...this.#unhealthy].filter((c) => !next.has(c))));
    this.#unhealthy = next;
    this.#o.metrics?.setUnhealthy([...clusters].filter((c) => c !== this.#o.clusterId), next);
    if (changed.size === 0) return;
    this.#o.logger.info({ unhealthy: [...next], changed: [...changed] }, 'cluster health changed');
    for (const k of this.#o.exports.serviceKeys()) if (this.#o.exports.records(k).some((x) => changed.has(x.cluster_id))) this.#queue.add(k);
  }

  async #reconcileOrRetry(key: string): Promise<void> {
    try {
      await this.reconcile(key);
      this.#queue.forget(key);
      this.#o.metrics?.reconciles.inc({ side: 'import', result: 'ok' });
    } catch (err) {
      this.#o.metrics?.reconciles.inc({ side: 'import', result: 'error' });
      // 409: our cache was behind the API (a write of ours not seen yet): routine, retried
      if (apiCode(err) === 409) this.#o.logger.debug({ service: key, err: messageOf(err) }, 'import reconcile raced a change; retrying');
      else this.#o.logger.warn({ service: key, err: messageOf(err) }, 'import reconcile failed; retrying');
      this.#queue.addRateLimited(key);
    }
  }

  async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    // no namespace, or one being deleted: nothing can be made in it (what is there goes with it)
    const ns = this.#namespaces.get('', namespace);
    if (ns === undefined || ns.metadata?.deletionTimestamp !== undefined) return;
    const records = this.#o.exports.records(key);
    // health from the Gateway cache now (a cluster first seen in these records counts too)
    const unhealthy = unhealthyClusters(this.#gateways.list(), records.map((x) => x.cluster_id), this.#o.clusterId);
    const merged = mergeExports(records, { unhealthy });
    const spec = merged.serviceImport;
    if (spec === undefined) {
      await this.#removeAll(namespace, name);
      return;
    }
    const derived = spec.type === 'ClusterSetIP' ? await this.#ensureDerived(spec) : undefined;
    if (spec.type !== 'ClusterSetIP') await this.#deleteDerived(namespace, name);
    const si = await this.#ensureImport(spec, derived);
    const uid = si.metadata?.uid;
    const want = desiredSlices(spec, merged.slicesByCluster, uid === undefined ? undefined : { name, uid });
    const have = new Map(this.#slices.byIndex(key).map((s) => [s.metadata?.name ?? '', s]));
    const kube = this.#o.kube;
    await Promise.all(want.map(async (w) => {
      const sliceName = w.metadata?.name ?? '';
      const cur = have.get(sliceName);
      have.delete(sliceName);
      if (cur === undefined) await kube.json('POST', slicePath(namespace), w);
      else if (projectSlice(cur) !== projectSlice(w)) {
        await kube.json('PUT', `${slicePath(namespace)}/${sliceName}`, { ...w, metadata: { ...w.metadata, resourceVersion: cur.metadata?.resourceVersion } });
      }
    }));
    await Promise.all([...have.keys()].map((stale) => this.#ignoreMissing(kube.json('DELETE', `${slicePath(namespace)}/${stale}`))));
  }

  async #ignoreMissing(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async #ensureDerived(spec: ImportSpec): Promise<{ ips: string[]; ipFamilies: string[] }> {
    const want = desiredDerivedService(spec);
    const name = want.metadata?.name ?? '';
    let cur = this.#derived.get(spec.namespace, name);
    if (cur === undefined) {
      try {
        cur = await this.#o.kube.json<V1Service>('POST', svcPath(spec.namespace), want);
      } catch (err) {
        // The cache may lag behind our own create: read it back.
        if (!isAlreadyExists(err)) throw err;
        cur = await this.#o.kube.json<V1Service>('GET', `${svcPath(spec.namespace)}/${name}`);
      }
    } else if (projectService(cur) !== projectService(want)) {
      const body: V1Service = {
        ...want,
        metadata: { ...want.metadata, resourceVersion: cur.metadata?.resourceVersion },
        // clusterIPs and families are the API server's and immutable: keep them.
        spec: { ...want.spec, clusterIP: cur.spec?.clusterIP, clusterIPs: cur.spec?.clusterIPs, ipFamilies: cur.spec?.ipFamilies, ipFamilyPolicy: cur.spec?.ipFamilyPolicy },
      } as V1Service;
      cur = await this.#o.kube.json<V1Service>('PUT', `${svcPath(spec.namespace)}/${name}`, body);
    }
    return { ips: cur.spec?.clusterIPs ?? (cur.spec?.clusterIP === undefined ? [] : [cur.spec.clusterIP]), ipFamilies: cur.spec?.ipFamilies ?? spec.ipFamilies };
  }

  async #deleteDerived(namespace: string, name: string): Promise<void> {
    const dn = derivedServiceName(name);
    if (this.#derived.get(namespace, dn) !== undefined) await this.#ignoreMissing(this.#o.kube.json('DELETE', `${svcPath(namespace)}/${dn}`));
  }

  async #ensureImport(spec: ImportSpec, derived: { ips: string[]; ipFamilies: string[] } | undefined): Promise<ServiceImport> {
    const want = desiredServiceImport(spec, derived);
    const path = siPath(spec.namespace);
    let cur = this.#imports.get(spec.namespace, spec.name);
    if (cur === undefined) {
      try {
        cur = await this.#o.kube.json<ServiceImport>('POST', path, want);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        cur = await this.#o.kube.json<ServiceImport>('GET', `${path}/${spec.name}`);
      }
    } else if (projectServiceImport(cur) !== projectServiceImport(want)) {
      const body = { ...want, metadata: { ...want.metadata, resourceVersion: cur.metadata?.resourceVersion } };
      cur = await this.#o.kube.json<ServiceImport>('PUT', `${path}/${spec.name}`, body);
    }
    const clusters = spec.clusters.map((cluster) => ({ cluster }));
    const key = `${spec.namespace}/${spec.name}`;
    const shown = this.#statusWritten.newer(key, cur.metadata?.resourceVersion) ?? cur.status?.clusters ?? [];
    if (JSON.stringify(shown) !== JSON.stringify(clusters)) {
      cur = await this.#o.kube.json<ServiceImport>('PATCH', `${path}/${spec.name}/status`, { status: { clusters } }, 'application/merge-patch+json');
      this.#statusWritten.remember(key, cur.metadata?.resourceVersion, cur.status?.clusters ?? clusters);
    }
    return cur;
  }

  async #removeAll(namespace: string, name: string): Promise<void> {
    this.#statusWritten.forget(`${namespace}/${name}`);
    for (const s of this.#slices.byIndex(`${namespace}/${name}`)) await this.#ignoreMissing(this.#o.kube.json('DELETE', `${slicePath(namespace)}/${s.metadata?.name ?? ''}`));
    await this.#deleteDerived(namespace, name);
    if (this.#imports.get(namespace, name) !== undefined) await this.#ignoreMissing(this.#o.kube.json('DELETE', `${siPath(namespace)}/${name}`));
  }

  async stop(): Promise<void> {
    this.#unfollow?.();
    this.#queue.shutDown();
    this.#side.shutDown();
    await Promise.allSettled([this.#imports.stop(), this.#slices.stop(), this.#derived.stop(), this.#namespaces.stop(), this.#gateways.stop()]);
    await Promise.allSettled(this.#running);
  }
}
