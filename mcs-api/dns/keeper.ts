import { CustomObjectsApi, DiscoveryV1Api, type KubeConfig, type KubernetesListObject, type V1EndpointSlice } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { WorkQueue, type Service } from '../../core/index.ts';
import { createInformer, splitKey, type CachedInformer } from '../../core/k8s.ts';
import { LABEL_SERVICE_NAME, MCS_GROUP, MCS_VERSION, type ServiceImport } from '../types.ts';
import { dnsService, mcsSliceServiceKey } from './from-k8s.ts';
import type { ZoneIndex } from './zone.ts';

/**
 * Keeps the zone index equal to the cluster's ServiceImports and MCS EndpointSlices:
 * two informers enqueue "namespace/service" keys; one worker rebuilds that Service's
 * names from the caches. Queries never touch the API. `synced` resolves once both
 * initial lists are indexed (the server can start answering before: names appear as
 * they are indexed).
 */
export class ZoneKeeper implements Service {
  readonly name = 'dns-index';
  readonly #zone: ZoneIndex;
  readonly #queue = new WorkQueue<string>();
  readonly #imports: CachedInformer<ServiceImport>;
  readonly #slices: CachedInformer<V1EndpointSlice>;
  readonly #logger: Logger;
  #running: Promise<void> | undefined;

  constructor(kubeConfig: KubeConfig, zone: ZoneIndex, logger: Logger) {
    this.#zone = zone;
    this.#logger = logger;
    const objects = kubeConfig.makeApiClient(CustomObjectsApi);
    const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
    this.#imports = createInformer<ServiceImport>({
      kubeConfig, path: `/apis/${MCS_GROUP}/${MCS_VERSION}/serviceimports`, queue: this.#queue, logger, name: 'serviceimports',
      list: async () => (await objects.listClusterCustomObject({ group: MCS_GROUP, version: MCS_VERSION, plural: 'serviceimports' })) as KubernetesListObject<ServiceImport>,
    });
    this.#slices = createInformer<V1EndpointSlice>({
      kubeConfig, path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: LABEL_SERVICE_NAME, queue: this.#queue, logger, name: 'mcs-endpointslices',
      list: () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: LABEL_SERVICE_NAME }),
      keyOf: mcsSliceServiceKey, index: mcsSliceServiceKey,
    });
  }

  get synced(): Promise<void> {
    return Promise.all([this.#imports.synced, this.#slices.synced]).then(() => undefined);
  }

  async start(): Promise<void> {
    await this.#imports.start();
    await this.#slices.start();
    this.#running = this.#queue.run(async (key) => this.#reconcile(key), { workers: 1, logger: this.#logger });
  }

  #reconcile(key: string): void {
    const { namespace, name } = splitKey(key);
    this.#zone.set(key, dnsService(this.#imports.cache.get(namespace, name), this.#slices.cache.byIndex(key)));
  }

  async stop(): Promise<void> {
    this.#queue.shutDown();
    await Promise.allSettled([this.#imports.stop(), this.#slices.stop()]);
    await this.#running;
  }
}
