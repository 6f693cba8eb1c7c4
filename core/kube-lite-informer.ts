import type { Logger } from 'pino';
import { Backoff } from './backoff.ts';
import { messageOf } from './errors.ts';
import { KubeRequestError, type KubeRest } from './kube-lite.ts';

/**
 * List + watch of one collection over KubeRest, into a cache, for node agents (kube-lite.ts
 * says why not client-node). Like k8s.ts's informers:
 * - lists are read in pages of LIST_PAGE objects; `slim` keeps only what the reader needs;
 * - `synced` resolves once the first list is in the cache (it never rejects: stopped before
 *   that, it stays pending); `onChange(key)` is called after
 *   every change to the cache (key `ns/name`, or `name` for cluster-scoped objects, or what
 *   `keyOf` says) and, after each list, for every object listed or gone;
 * - a watch the server ends is resumed from the last resourceVersion (bookmarks asked for);
 *   one that is too old (410 Gone, or an ERROR event) is replaced by a new list, after which
 *   objects gone meanwhile are removed; a failed request is retried after a backoff that
 *   resets when a watch is accepted;
 * - stop() aborts the watch and ends the loop; the cache keeps what it had.
 */
export interface LiteObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface LiteInformerOptions {
  /** Collection path, e.g. `/api/v1/nodes` or `/apis/isthmus.dev/v1alpha1/namespaces/x/gateways`. */
  readonly path: string;
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  /** Names the informer in logs. */
  readonly name: string;
  readonly onChange: (key: string) => void;
  readonly logger: Logger;
  /** The key onChange is called with (default `ns/name`), e.g. the Service an EndpointSlice belongs to. */
  /** `undefined`: the change is not reported. */
  readonly keyOf?: (o: LiteObject) => string | undefined;
  /** Groups objects for byIndex, e.g. EndpointSlices by their Service (`undefined`: in no group). */
  readonly index?: (o: LiteObject) => string | undefined;
  /**
   * What the cache keeps of each object (default: all of it): the fields the reader needs,
   * so that managedFields and the like do not stay in memory. keyOf and index see the result.
   */
  readonly slim?: (o: LiteObject) => LiteObject;
}

/** `namespace/name` → its parts (`name` alone: cluster-scoped). */
export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Objects per list request (the apiserver pages with `continue`). */
const LIST_PAGE = 500;

const keyOf = (o: LiteObject): string => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : o.metadata?.name ?? '');

export class LiteInformer<T extends LiteObject> {
  readonly #rest: KubeRest;
  readonly #o: LiteInformerOptions;
  readonly #items = new Map<string, T>();
  readonly #index = new Map<string, Set<string>>();
  readonly #abort = new AbortController();
  readonly #backoff = new Backoff({ baseMs: 500, maxMs: 30_000 });
  #markSynced: () => void = () => {};
  #loop: Promise<void> | undefined;
  readonly synced: Promise<void>;

  constructor(rest: KubeRest, options: LiteInformerOptions) {
    this.#rest = rest;
    this.#o = options;
    this.synced = new Promise((resolve) => {
      this.#markSynced = resolve;
    });
  }

  get(namespace: string, name: string): T | undefined {
    return this.#items.get(namespace === '' ? name : `${namespace}/${name}`);
  }

  /** The objects whose `index` is `key`. */
  byIndex(key: string): T[] {
    return [...(this.#index.get(key) ?? [])].flatMap((k) => this.#items.get(k) ?? []);
  }

  list(namespace?: string): T[] {
    return [...this.#items.values()].filter((o) => namespace === undefined || o.metadata?.namespace === namespace);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  #query(extra: Record<string, string>): string {
    const q = new URLSearchParams({
      ...(this.#o.fieldSelector === undefined ? {} : { fieldSelector: this.#o.fieldSelector }),
      ...(this.#o.labelSelector === undefined ? {} : { labelSelector: this.#o.labelSelector }), ...extra,
    });
    return `${this.#o.path}?${q.toString()}`;
  }

  async #run(): Promise<void> {
    let rv: string | undefined;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        if (rv === undefined) rv = await this.#list();
        let gone = false;
        await this.#rest.watch(this.#query({ watch: 'true', resourceVersion: rv, allowWatchBookmarks: 'true', timeoutSeconds: '300' }), (e) => {
          this.#backoff.reset();
          const o = e.object as T;
          const next = o.metadata?.resourceVersion;
          if (e.type === 'ERROR') {
            gone = true; // 410 Gone or another watch error: start again from a list
            return;
          }
          if (next !== undefined) rv = next;
          if (e.type === 'BOOKMARK') return;
          const changed = e.type === 'DELETED' ? this.#delete(keyOf(o)) : this.#put(o);
          for (const k of changed) this.#o.onChange(k);
        }, signal);
        if (gone) rv = undefined;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof KubeRequestError && err.status === 410) rv = undefined;
        const delay = this.#backoff.next();
        this.#o.logger.warn({ informer: this.#o.name, err: messageOf(err), retryInMs: delay }, 'list/watch failed; retrying');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
        });
      }
    }
  }

  /** Replaces the cache with a fresh list; returns its resourceVersion. */
  async #list(): Promise<string> {
    // in pages, so a large collection is never one answer in memory
    const fresh = new Set<string>();
    const changed = new Set<string>();
    let cont = '';
    let rv = '0';
    do {
      const page = await this.#rest.json<{ metadata?: { resourceVersion?: string; continue?: string }; items?: T[] }>('GET', this.#query({ limit: String(LIST_PAGE), ...(cont === '' ? {} : { continue: cont }) }));
      for (const o of page.items ?? []) {
        for (const c of this.#put(o)) changed.add(c);
        fresh.add(keyOf(o));
      }
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?.continue ?? '';
    } while (cont !== '');
    for (const k of [...this.#items.keys()].filter((x) => !fresh.has(x))) for (const c of this.#delete(k)) changed.add(c);
    this.#markSynced();
    for (const k of changed) this.#o.onChange(k);
    return rv;
  }

  /** Stores `o`; returns the keys to report (its old one too when its key or index changed). */
  #put(raw: T): string[] {
    const o = (this.#o.slim === undefined ? raw : this.#o.slim(raw)) as T;
    const k = keyOf(o);
    const old = this.#items.get(k);
    const gone = old === undefined ? [] : this.#delete(k);
    this.#items.set(k, o);
    const i = this.#o.index?.(o);
    if (i !== undefined) this.#index.set(i, (this.#index.get(i) ?? new Set<string>()).add(k));
    return [...new Set([...gone, ...this.#reportKey(o)])];
  }

  /** Forgets the object at `k`; returns the key to report ([] when there was none). */
  #delete(k: string): string[] {
    const old = this.#items.get(k);
    if (old === undefined) return [];
    this.#items.delete(k);
    const i = this.#o.index?.(old);
    const set = i === undefined ? undefined : this.#index.get(i);
    set?.delete(k);
    if (i !== undefined && set?.size === 0) this.#index.delete(i);
    return this.#reportKey(old);
  }

  #reportKey(o: T): string[] {
    const k = this.#o.keyOf === undefined ? keyOf(o) : this.#o.keyOf(o);
    return k === undefined ? [] : [k];
  }
}
