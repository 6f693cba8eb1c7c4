import type { V1EndpointSlice } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Service } from '../../core/lifecycle.ts';
import { WorkQueue } from '../../core/workqueue.ts';
import { LiteInformer, splitKey, type LiteObject } from '../../core/kube-lite-informer.ts';
import type { KubeRest } from '../../core/kube-lite.ts';
import { LABEL_SERVICE_NAME, MCS_GROUP, MCS_VERSION, type ServiceImport } from '../types.ts';
import { dnsService, mcsSliceServiceKey } from './from-k8s.ts';
import type { ZoneIndex } from './zone.ts';

/**
 * Keeps the zone index equal to the cluster's ServiceImports and MCS EndpointSlices:
 * two informers enqueue "namespace/service" keys; one worker rebuilds that Service's
 * names from the caches. Queries never touch the API. `synced` resolves once both
 * initial lists are indexed (the server can start answering before: names appear as
 * they are indexed). It runs in every cluster next to CoreDNS, so it uses core's small
 * client (kube-lite) rather than @kubernetes/client-node.
 */
export class ZoneKeeper implements Service {
  readonly name = 'dns-index';
  readonly #zone: ZoneIndex;
  readonly #queue = new WorkQueue<string>();
  readonly #imports: LiteInformer<ServiceImport & LiteObject>;
  readonly #slices: LiteInformer<V1EndpointSlice & LiteObject>;
  readonly #logger: Logger;
  #running: Promise<void> | undefined;

  constructor(kube: KubeRest, zone: ZoneIndex, logger: Logger) {
    this.#zone = zone;
    this.#logger = logger;
    const onChange = (key: string): void => this.#queue.add(key);
    this.#imports = new LiteInformer(kube, { path: `/apis/${MCS_GROUP}/${MCS_VERSION}/serviceimports`, logger, name: 'serviceimports', onChange });
    this.#slices = new LiteInformer(kube, {
      path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: LABEL_SERVICE_NAME, logger, name: 'mcs-endpointslices', onChange,
      keyOf: (o) => mcsSliceServiceKey(o as V1EndpointSlice), index: (o) => mcsSliceServiceKey(o as V1EndpointSlice),
    });
  }

  get synced(): Promise<void> {
    return Promise.all([this.#imports.synced, this.#slices.synced]).then(() => undefined);
  }

  async start(): Promise<void> {
    this.#imports.start();
    this.#slices.start();
    this.#running = this.#queue.run(async (key) => this.#reconcile(key), { workers: 1, logger: this.#logger });
  }

  #reconcile(key: string): void {
    const { namespace, name } = splitKey(key);
    this.#zone.set(key, dnsService(this.#imports.get(namespace, name), this.#slices.byIndex(key)));
  }

  async stop(): Promise<void> {
    this.#queue.shutDown();
    await Promise.allSettled([this.#imports.stop(), this.#slices.stop()]);
    await this.#running;
  }
}
