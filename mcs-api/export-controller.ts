import { createHash } from 'node:crypto';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { WorkQueue, messageOf, type Clock, type Service } from '../core/index.ts';
import { LiteInformer, splitKey, type LiteObject } from '../core/kube-lite-informer.ts';
import type { KubeRest } from '../core/kube-lite.ts';
import type { Export } from '../core/broker-api/index.ts';
import { isQuotaRefusal } from '../core/broker-api/status.ts';
import { exportConditions, sameConditions, type Publication } from './conditions.ts';
import { buildExport, sameExport } from './export-record.ts';
import type { ExportIndex } from './export-index.ts';
import { apiCode } from './kube-errors.ts';
import type { McsMetrics } from './metrics.ts';
import { mergeExports } from './merge.ts';
import { OwnWrites } from './own-writes.ts';
import { slimService, slimServiceExport, slimSlice } from './slim.ts';
import { LABEL_DERIVED_FROM, LABEL_K8S_SERVICE_NAME, LABEL_SERVICE_NAME, MCS_GROUP, MCS_VERSION, type ServiceExport } from './types.ts';

/**
 * The export side: every ServiceExport of this cluster becomes an Export record at the
 * broker, with its Service's ready pod endpoints, and gets the conditions Valid, Ready
 * and Conflict.
 *
 * - Informers (core's kube-lite: no client-node in this process) on ServiceExports,
 *   Services (not our derived ones) and the Services' own EndpointSlices (not MCS ones)
 *   only enqueue "namespace/name"; reconcile reads the caches, which keep only the
 *   fields it needs (slim.ts).
 * - EndpointSlice events are coalesced: they go through a second queue that re-adds
 *   the key to the main one after `coalesceMs` (one timer per key), so a rolling update
 *   becomes a few broker writes, not one per pod event; and a record equal to the one
 *   last published is not sent again.
 * - A ServiceExport gone (or its Service becoming invalid) withdraws the record.
 * - Conflict is computed from every cluster's record at the broker (ExportIndex), so
 *   every exporting cluster reaches the same verdict.
 * - A broker write that fails marks Ready=False/Failed and retries with backoff; one refused
 *   on this cluster's quota is retried once a minute instead (retrying sooner changes
 *   nothing, and thousands of refused exports must not become a retry storm), and sooner,
 *   oldest first, one for each export of this cluster withdrawn meanwhile.
 * - The conditions are written with a merge patch of the status (no resourceVersion:
 *   they are ours alone), and only when they say something new — compared with what we
 *   last wrote while the cache has not caught up with it (own-writes.ts).
 */
/** How long an export refused on quota waits before it is tried again (absent a withdrawal). */
const QUOTA_RETRY_MS = 60_000;

export interface Publisher {
  publishExport(x: Export): Promise<unknown>;
  withdrawExport(clusterId: string, namespace: string, name: string): Promise<unknown>;
}

export interface ExportControllerOptions {
  kube: KubeRest;
  clusterId: string;
  broker: Publisher;
  exports: ExportIndex;
  logger: Logger;
  /** Default 250 ms. */
  coalesceMs?: number;
  /** Keys reconciled in parallel (default 16). */
  workers?: number;
  metrics?: McsMetrics;
  clock?: Clock;
}

const SE_PATH = `/apis/${MCS_GROUP}/${MCS_VERSION}`;
const hash = (s: string): string => createHash('sha1').update(s).digest('base64');

export class ExportController implements Service {
  readonly name = 'mcs-export';
  readonly #o: ExportControllerOptions;
  readonly #queue: WorkQueue<string>;
  readonly #sliceEvents: WorkQueue<string>;
  readonly #serviceExports: LiteInformer<ServiceExport & LiteObject>;
  readonly #services: LiteInformer<V1Service & LiteObject>;
  readonly #slices: LiteInformer<V1EndpointSlice & LiteObject>;
  /** Key → a hash of the record last published (JSON), so an unchanged record is not sent again. */
  readonly #published = new Map<string, string>();
  /** Conditions we wrote that the ServiceExport cache may not show yet. */
  readonly #written = new OwnWrites<NonNullable<NonNullable<ServiceExport['status']>['conditions']>>();
  /** Keys the broker refused on quota, oldest first. */
  readonly #overQuota = new Set<string>();
  #running: Promise<void>[] = [];
  #unfollow: (() => void) | undefined;

  constructor(options: ExportControllerOptions) {
    this.#o = options;
    const { kube, logger } = options;
    const clock = options.clock;
    this.#queue = new WorkQueue<string>(clock === undefined ? {} : { clock });
    this.#sliceEvents = new WorkQueue<string>(clock === undefined ? {} : { clock });
    const onChange = (key: string): void => this.#queue.add(key);
    this.#serviceExports = new LiteInformer(kube, { path: `${SE_PATH}/serviceexports`, logger, name: 'serviceexports', onChange, slim: (o) => slimServiceExport(o) });
    // our derived Services are never exported
    this.#services = new LiteInformer(kube, { path: '/api/v1/services', labelSelector: `!${LABEL_DERIVED_FROM}`, logger, name: 'services', onChange, slim: (o) => slimService(o) });
    // The Services' own slices: labelled with their Service, not imported by us.
    const serviceOf = (s: LiteObject & { metadata?: { labels?: Record<string, string> } }): string | undefined => {
      const svc = s.metadata?.labels?.[LABEL_K8S_SERVICE_NAME];
      return svc === undefined || s.metadata?.namespace === undefined ? undefined : `${s.metadata.namespace}/${svc}`;
    };
    this.#slices = new LiteInformer(kube, {
      path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: `${LABEL_K8S_SERVICE_NAME},!${LABEL_SERVICE_NAME}`, logger, name: 'endpointslices',
      onChange: (key) => this.#sliceEvents.add(key), keyOf: serviceOf, index: serviceOf, slim: (o) => slimSlice(o as V1EndpointSlice),
    });
  }

  /** Resolves when every informer has listed once. */
  get synced(): Promise<void> {
    return Promise.all([this.#serviceExports.synced, this.#services.synced, this.#slices.synced]).then(() => undefined);
  }

  async start(): Promise<void> {
    this.#unfollow = this.#o.exports.onChange((key) => this.#queue.add(key));
    this.#serviceExports.start();
    this.#services.start();
    this.#slices.start();
    await this.synced;
    // Records of ours the broker holds without a ServiceExport are withdrawn by reconcile.
    for (const key of this.#o.exports.serviceKeys()) if (this.#o.exports.record(key, this.#o.clusterId) !== undefined) this.#queue.add(key);
    const coalesceMs = this.#o.coalesceMs ?? 250;
    this.#running.push(this.#sliceEvents.run(async (key) => this.#queue.addAfter(key, coalesceMs), { workers: 1 }));
    this.#running.push(this.#queue.run(async (key) => this.#reconcileOrRetry(key), { workers: this.#o.workers ?? 16, logger: this.#o.logger }));
  }

  async #reconcileOrRetry(key: string): Promise<void> {
    try {
      await this.reconcile(key);
      this.#overQuota.delete(key);
      this.#queue.forget(key);
      this.#o.metrics?.reconciles.inc({ side: 'export', result: 'ok' });
    } catch (err) {
      this.#o.metrics?.reconciles.inc({ side: 'export', result: 'error' });
      if (isQuotaRefusal(err)) {
        if (!this.#overQuota.has(key)) this.#o.logger.warn({ service: key, err: messageOf(err) }, 'export refused on this cluster\'s quota; retried once a minute');
        this.#overQuota.delete(key);
        this.#overQuota.add(key);
        this.#queue.forget(key);
        this.#queue.addAfter(key, QUOTA_RETRY_MS);
        return;
      }
      // 409: our cache was behind the API (a write of ours not seen yet): routine, retried
      if (apiCode(err) === 409) this.#o.logger.debug({ service: key, err: messageOf(err) }, 'export reconcile raced a change; retrying');
      else this.#o.logger.warn({ service: key, err: messageOf(err) }, 'export reconcile failed; retrying');
      this.#queue.addRateLimited(key);
    }
  }

  /** Brings the broker record and the ServiceExport status of `key` in line with the caches. */
  async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const { clusterId, broker, exports } = this.#o;
    const se = this.#serviceExports.get(namespace, name);
    const atBroker = exports.record(key, clusterId);
    if (se === undefined) {
      this.#written.forget(key);
      if (atBroker !== undefined || this.#published.has(key)) {
        await broker.withdrawExport(clusterId, namespace, name);
        this.#o.logger.info({ service: key }, 'export withdrawn');
        this.#roomMade();
      }
      this.#published.delete(key);
      return;
    }
    const built = buildExport(clusterId, se, this.#services.get(namespace, name), this.#slices.byIndex(key));
    let publication: Publication = { state: 'pending' };
    let failure: unknown;
    if (built.record === undefined) {
      if (atBroker !== undefined || this.#published.has(key)) {
        await broker.withdrawExport(clusterId, namespace, name);
        this.#roomMade();
      }
      this.#published.delete(key);
    } else {
      const json = hash(JSON.stringify(built.record));
      if (this.#published.get(key) === json || sameExport(atBroker, built.record)) {
        publication = { state: 'exported' };
      } else {
        try {
          await broker.publishExport(built.record);
          this.#o.metrics?.publishes.inc();
          this.#published.set(key, json);
          publication = { state: 'exported' };
          this.#o.logger.info({ service: key, endpoints: built.record.endpoints.length }, 'export published');
        } catch (err) {
          publication = { state: 'failed', message: `publishing to the broker failed: ${messageOf(err)}` };
          failure = err;
        }
      }
    }
    const others = exports.records(key).filter((x) => x.cluster_id !== clusterId);
    const conflicts = built.record === undefined ? undefined : mergeExports([...others, built.record]).conflicts;
    // what we wrote last, while the cache has not seen it yet (else a repeat write, a new lastTransitionTime)
    const previous = this.#written.newer(key, se.metadata?.resourceVersion) ?? se.status?.conditions ?? [];
    const conditions = exportConditions({ validity: built.validity, publication, conflicts, generation: se.metadata?.generation ?? 0, now: new Date(), previous });
    if (!sameConditions(previous, conditions)) {
      const after = await this.#o.kube.json<ServiceExport>('PATCH', `${SE_PATH}/namespaces/${namespace}/serviceexports/${name}/status`, { status: { conditions } }, 'application/merge-patch+json');
      this.#written.remember(key, after.metadata?.resourceVersion, after.status?.conditions ?? conditions);
    }
    if (failure !== undefined) throw failure;
  }

  /** A withdrawn export made room under the quota: the oldest refused one tries now. */
  #roomMade(): void {
    const next = this.#overQuota.values().next();
    if (next.done === true) return;
    this.#overQuota.delete(next.value);
    this.#queue.add(next.value);
  }

  async stop(): Promise<void> {
    this.#unfollow?.();
    this.#queue.shutDown();
    this.#sliceEvents.shutDown();
    await Promise.allSettled([this.#serviceExports.stop(), this.#services.stop(), this.#slices.stop()]);
    await Promise.allSettled(this.#running);
  }
}
