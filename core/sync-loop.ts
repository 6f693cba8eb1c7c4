import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { CachedInformer } from './informer.ts';
import { WorkQueue } from './workqueue.ts';

/**
 * The loop of a controller that reconciles one whole state (not object by object): every
 * event and every resync enqueue the one key "sync", so a burst of events is one
 * reconcile; reconciles start only once every informer (and every extra `synced`
 * promise, e.g. a broker cache) has synced, and run one at a time. A failing reconcile is
 * retried with the queue's backoff.
 */
export class CoalescingQueue extends WorkQueue<string> {
  override add(_key: string): void {
    super.add('sync');
  }
}

/** A typed list call's result as the informer's list type. */
export const asList = <T extends KubernetesObject>(o: unknown): KubernetesListObject<T> => o as KubernetesListObject<T>;

export interface SyncLoop {
  /** True once everything has synced (reconciles run from then on). */
  readonly synced: () => boolean;
  stop(): Promise<void>;
}

export async function startSyncLoop(
  queue: CoalescingQueue,
  informers: readonly CachedInformer<unknown>[],
  reconcile: () => Promise<void>,
  options: { logger: Logger; resyncMs: number; alsoSynced?: readonly Promise<void>[] },
): Promise<SyncLoop> {
  let synced = false;
  for (const i of informers) await i.start();
  const working = queue.run(async () => {
    if (synced) await reconcile();
  }, { workers: 1, logger: options.logger });
  void Promise.all([...informers.map((i) => i.synced), ...(options.alsoSynced ?? [])]).then(() => {
    synced = true;
    queue.add('sync');
  }, () => {});
  const resync = setInterval(() => queue.add('sync'), options.resyncMs);
  return {
    synced: () => synced,
    async stop() {
      clearInterval(resync);
      for (const i of informers) await i.stop();
      queue.shutDown();
      await working;
    },
  };
}
