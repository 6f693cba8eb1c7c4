import type { Logger } from 'pino';
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';
import type { WorkQueue } from './workqueue.ts';

/**
 * Informers over @kubernetes/client-node v2, the way controllers here use them: the
 * informer fills a cache and only enqueues keys; workers reconcile from the cache.
 *
 * What client-node's ListWatch (2.0.x) does, and what this file adds:
 * - Its start() resolves once the watch request has been answered (or once the list
 *   failed, having emitted 'error'): "started", not "synced". Here `synced` resolves
 *   when the first list has been applied to the cache, right before the first watch.
 * - Its 'connect' fires at the start of every attempt, before listing, so it says
 *   nothing about success. Here a "connect" is a watch the server accepted (HTTP 200).
 * - After an 'error' it stays stopped. Here InformerSupervisor starts it again after a
 *   backoff that grows with each error and resets after a successful connect. A restart
 *   resumes the watch from the last resourceVersion; when that is too old (410) the
 *   ListWatch relists and emits 'delete' for objects gone meanwhile, so no key is missed.
 */

/** What InformerSupervisor needs of an informer. 'connect' must mean "connected and working". */
export interface InformerLike {
  on(event: 'connect' | 'error', cb: (err?: unknown) => void): void;
  off(event: 'connect' | 'error', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SupervisorOptions {
  /** Default systemClock. */
  clock?: Clock;
  /** Restart delays (default baseMs 1000, maxMs 30 000). */
  backoff?: BackoffOptions;
  logger?: Logger;
  /** Names the informer in logs. */
  name?: string;
}

/**
 * Keeps an informer running: on 'error' (or a rejected start()) it schedules one
 * restart after backoff.next(); errors while a restart is pending are not counted
 * again. 'connect' resets the backoff. stop() cancels a pending restart, stops the
 * informer and ignores every later event. start() and stop() are each called once.
 */
export class InformerSupervisor {
  readonly #informer: InformerLike;
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #logger: Logger | undefined;
  readonly #name: string;
  #pending: TimerHandle | undefined;
  #stopped = false;
  #restarts = 0;
  readonly #onError = (err?: unknown): void => this.#failed(err);
  readonly #onConnect = (): void => this.#backoff.reset();

  constructor(informer: InformerLike, options: SupervisorOptions = {}) {
    this.#informer = informer;
    this.#clock = options.clock ?? systemClock;
    this.#backoff = new Backoff({ baseMs: 1000, maxMs: 30_000, ...options.backoff });
    this.#logger = options.logger;
    this.#name = options.name ?? 'informer';
  }

  /** Number of restarts so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** True while a restart is scheduled. */
  get restartPending(): boolean {
    return this.#pending !== undefined;
  }

  /** Starts the informer. A failed first attempt is retried like any error; this never rejects for it. */
  async start(): Promise<void> {
    this.#informer.on('error', this.#onError);
    this.#informer.on('connect', this.#onConnect);
    await this.#attempt();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#pending !== undefined) this.#clock.clearTimeout(this.#pending);
    this.#pending = undefined;
    this.#informer.off('error', this.#onError);
    this.#informer.off('connect', this.#onConnect);
    await this.#informer.stop();
  }

  async #attempt(): Promise<void> {
    try {
      await this.#informer.start();
    } catch (err) {
      this.#failed(err);
    }
  }

  #failed(err: unknown): void {
    if (this.#stopped || this.#pending !== undefined) return;
    const delay = this.#backoff.next();
    this.#logger?.warn({ informer: this.#name, err: messageOf(err), retryInMs: delay }, 'informer failed; restarting');
    this.#pending = this.#clock.setTimeout(() => {
      this.#pending = undefined;
      if (this.#stopped) return;
      this.#restarts++;
      void this.#attempt();
    }, delay);
  }
}

/** The work-queue key of an object: "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? '';
  const ns = obj.metadata?.namespace ?? '';
  return ns === '' ? name : `${ns}/${name}`;
}

export { splitKey } from './kube-lite-informer.ts';

/** client-node's Watch.watch signature: the transport under the informer. */
export type WatchFn = Watch['watch'];

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** Watch path, e.g. "/api/v1/services" or "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/ns/serviceexports". */
  path: string;
  /** Lists the same objects the path watches (the typed API's list call). */
  list: () => Promise<KubernetesListObject<T>>;
  /** Every add, update and delete enqueues keyOf(obj) here; nothing else is done with the event. */
  queue: WorkQueue<string>;
  /**
   * The queue key of an object (default objectKey), e.g. the owning Service's
   * "namespace/name" for an EndpointSlice; undefined enqueues nothing.
   */
  keyOf?: (obj: T) => string | undefined;
  /**
   * A secondary index (e.g. "namespace/service" of an EndpointSlice): cache.byIndex(v)
   * lists the cached objects whose index value is v, without scanning the cache.
   */
  index?: (obj: T) => string | undefined;
  labelSelector?: string;
  fieldSelector?: string;
  clock?: Clock;
  /** Restart backoff (default baseMs 1000, maxMs 30 000). */
  backoff?: BackoffOptions;
  logger?: Logger;
  /** Names the informer in logs (default: path). */
  name?: string;
  /** Replaces the HTTP watch, for tests (default: client-node's Watch on kubeConfig). */
  watch?: WatchFn;
}

export interface ObjectCacheView<T> {
  /** The object, or undefined; namespace '' for cluster-scoped objects. */
  get(namespace: string, name: string): T | undefined;
  /** Every object, or those of one namespace. */
  list(namespace?: string): readonly T[];
  /** The objects whose `index` value is `value` (empty without an `index` option). */
  byIndex(value: string): readonly T[];
}

export interface CachedInformer<T> {
  readonly cache: ObjectCacheView<T>;
  /**
   * Resolves once the first list has been applied to the cache (every object in it
   * enqueued). Rejects with ABORTED if stopped before that.
   */
  readonly synced: Promise<void>;
  /** Starts listing and watching; resolves when started, not synced. Call once. */
  start(): Promise<void>;
  /** Stops for good: no restart, no further events. */
  stop(): Promise<void>;
}

interface WatchHooks {
  closed(): boolean;
  beforeWatch(): void;
  connected(): void;
}

/** Calls the hooks around each watch ListWatch opens, and opens none once closed. */
class HookedWatch extends Watch {
  readonly #inner: WatchFn | undefined;
  readonly #hooks: WatchHooks;

  constructor(kc: KubeConfig, inner: WatchFn | undefined, hooks: WatchHooks) {
    super(kc);
    this.#inner = inner;
    this.#hooks = hooks;
  }

  override async watch(...args: Parameters<WatchFn>): Promise<AbortController> {
    const [path, query, callback, done] = args;
    // ListWatch may open a watch after a reconnect delay even when stopped.
    if (this.#hooks.closed()) return new AbortController();
    this.#hooks.beforeWatch();
    let ended = false;
    const onDone = (err: unknown): void => {
      ended = true;
      done(err);
    };
    try {
      const controller = await (this.#inner ?? super.watch.bind(this))(path, query, callback, onDone);
      // Stopped while connecting: ListWatch has nothing to abort yet, so abort here.
      if (this.#hooks.closed()) controller.abort();
      else if (!ended) this.#hooks.connected();
      return controller;
    } catch (err) {
      // e.g. credentials failing before the request: report through done, never reject.
      if (!ended) onDone(err);
      return new AbortController();
    }
  }
}

export function createInformer<T extends KubernetesObject>(options: InformerOptions<T>): CachedInformer<T> {
  const clock = options.clock ?? systemClock;
  const name = options.name ?? options.path;
  let closed = false;
  let resolveSynced!: () => void;
  let rejectSynced!: (err: unknown) => void;
  const synced = new Promise<void>((resolve, reject) => {
    resolveSynced = resolve;
    rejectSynced = reject;
  });
  synced.catch(() => {}); // rejected only when stopped early; never an unhandled rejection
  let isSynced = false;
  const connectCbs = new Set<(err?: unknown) => void>();

  // ListWatch's own reconnect delay, on our clock; stop() cuts pending delays short.
  const delays = new Map<TimerHandle, () => void>();
  const delayFn = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve();
      const handle = clock.setTimeout(() => {
        delays.delete(handle);
        resolve();
      }, ms);
      delays.set(handle, resolve);
    });

  const watch = new HookedWatch(options.kubeConfig, options.watch, {
    closed: () => closed,
    beforeWatch: () => {
      if (isSynced) return;
      isSynced = true;
      resolveSynced();
    },
    connected: () => {
      for (const cb of connectCbs) cb();
    },
  });
  const lw = new ListWatch<T>(options.path, watch, options.list, false, options.labelSelector, options.fieldSelector, {
    delayFn,
  });
  const keyOf = options.keyOf ?? objectKey;
  // Secondary index: value → (object key → object), and object key → its value.
  const indexed = new Map<string, Map<string, T>>();
  const indexOf = new Map<string, string>();
  const unindex = (k: string): void => {
    const old = indexOf.get(k);
    if (old === undefined) return;
    indexOf.delete(k);
    const set = indexed.get(old);
    set?.delete(k);
    if (set?.size === 0) indexed.delete(old);
  };
  const reindex = (obj: T, deleted: boolean): void => {
    if (options.index === undefined) return;
    const k = objectKey(obj);
    unindex(k);
    const v = deleted ? undefined : options.index(obj);
    if (v === undefined) return;
    indexOf.set(k, v);
    let set = indexed.get(v);
    if (set === undefined) indexed.set(v, (set = new Map()));
    set.set(k, obj);
  };
  const handler = (deleted: boolean) => (obj: T): void => {
    if (!obj.metadata?.name) return;
    reindex(obj, deleted);
    const key = keyOf(obj);
    if (key !== undefined) options.queue.add(key);
  };
  lw.on('add', handler(false));
  lw.on('update', handler(false));
  lw.on('delete', handler(true));

  const adapter: InformerLike = {
    on(event, cb) {
      if (event === 'connect') connectCbs.add(cb);
      else lw.on('error', cb);
    },
    off(event, cb) {
      if (event === 'connect') connectCbs.delete(cb);
      else lw.off('error', cb);
    },
    start: () => lw.start(),
    stop: () => lw.stop(),
  };
  const supervisorOptions: SupervisorOptions = { clock, name };
  if (options.backoff !== undefined) supervisorOptions.backoff = options.backoff;
  if (options.logger !== undefined) supervisorOptions.logger = options.logger;
  const supervisor = new InformerSupervisor(adapter, supervisorOptions);

  return {
    cache: {
      get: (namespace, objName) => lw.get(objName, namespace === '' ? undefined : namespace),
      list: (namespace) => lw.list(namespace),
      byIndex: (value) => [...(indexed.get(value)?.values() ?? [])],
    },
    synced,
    start: () => supervisor.start(),
    async stop() {
      if (closed) return;
      closed = true;
      if (!isSynced) rejectSynced(new IsthmusError(ErrorCodes.ABORTED, `informer ${name} stopped before its first list completed`));
      for (const [handle, resolve] of delays) {
        clock.clearTimeout(handle);
        resolve();
      }
      delays.clear();
      await supervisor.stop();
    },
  };
}
