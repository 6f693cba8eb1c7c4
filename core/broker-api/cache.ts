import { Backoff, ErrorCodes, IsthmusError, messageOf, sleep, type BackoffOptions, type Logger } from '../index.ts';
import type { Clock } from '../index.ts';
import type { WatchHandlers } from './client.ts';
import type { AnyRecord, BrokerEvent, Kind, RecordOf } from './types.ts';

/**
 * A local, always-available copy of some kinds of broker records.
 *
 * List, then watch from the list's revision; on a broken stream resume from the last
 * revision received; when the broker says the revision is gone (compacted, too old,
 * from the future) list again and sweep: records missing from the new list are
 * reported deleted. Each change reaches the handlers exactly once (events at or below
 * the applied revision are dropped; a relist reports only real differences). While the
 * broker is unreachable the cache keeps serving its last state.
 *
 * Handlers must be quick and must not throw; they typically enqueue a key.
 */
export type ChangeType = 'added' | 'updated' | 'deleted';

export interface Change {
  readonly type: ChangeType;
  readonly kind: Kind;
  readonly key: string;
  readonly record: AnyRecord;
  /** The revision of the change (for a sweep: the revision of the list that noticed it). */
  readonly revision: number;
}

interface Item {
  readonly record: AnyRecord;
  readonly revision: number;
}

/** What the cache needs from a BrokerClient (which implements it). */
export interface CacheSource {
  readonly clock: Clock;
  readonly logger: Logger;
  list(kinds: readonly Kind[]): Promise<{ revision: number; events: BrokerEvent[] }>;
  watch(kinds: readonly Kind[], fromRevision: number, handlers: WatchHandlers): Promise<() => void>;
  markStale(): void;
}

export interface BrokerCacheOptions {
  kinds: readonly Kind[];
  logger?: Logger;
  /** Retry pacing while the broker is unreachable (default 200 ms doubling to 5 s; reset on success). */
  backoff?: BackoffOptions;
}

export class BrokerCache {
  readonly #client: CacheSource;
  readonly #kinds: readonly Kind[];
  readonly #logger: Logger;
  readonly #backoff: Backoff;
  readonly #items = new Map<Kind, Map<string, Item>>();
  readonly #handlers = new Set<(c: Change) => void>();
  #revision = 0;
  #connected = false;
  #stopped = false;
  #cancel: (() => void) | undefined;
  #wakeStop: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #resolveSynced!: () => void;
  /** Resolves after the first complete list has been applied. */
  readonly synced: Promise<void>;
  #relists = 0;
  #resumes = 0;
  /** When the current outage began (clock ms), undefined while the broker answers. */
  #unreachableSince: number | undefined;

  constructor(client: CacheSource, options: BrokerCacheOptions) {
    this.#client = client;
    this.#kinds = [...options.kinds];
    this.#logger = options.logger ?? client.logger;
    this.#backoff = new Backoff({ baseMs: 200, maxMs: 5_000, ...options.backoff });
    for (const k of this.#kinds) this.#items.set(k, new Map());
    this.synced = new Promise((resolve) => {
      this.#resolveSynced = resolve;
    });
  }

  /** The revision every change up to which has been applied. */
  get revision(): number {
    return this.#revision;
  }

  /** True while a watch stream is open. */
  get connected(): boolean {
    return this.#connected;
  }

  /** How many times the cache listed (1 at start, +1 per compaction or too-old resume). */
  get relists(): number {
    return this.#relists;
  }

  /** How many times a broken watch was resumed from its revision without a list. */
  get resumes(): number {
    return this.#resumes;
  }

  onChange(handler: (c: Change) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  get<K extends Kind>(kind: K, key: string): RecordOf[K] | undefined {
    return this.#items.get(kind)?.get(key)?.record as RecordOf[K] | undefined;
  }

  list<K extends Kind>(kind: K): RecordOf[K][] {
    return [...(this.#items.get(kind)?.values() ?? [])].map((i) => i.record as RecordOf[K]);
  }

  keys(kind: Kind): string[] {
    return [...(this.#items.get(kind)?.keys() ?? [])];
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancel?.();
    this.#wakeStop?.();
    await this.#loop;
  }

  #emit(change: Change): void {
    for (const h of this.#handlers) {
      try {
        h(change);
      } catch (err) {
        this.#logger.error({ err: messageOf(err), key: change.key }, 'broker cache handler threw');
      }
    }
  }

  #applyEvent(e: BrokerEvent): void {
    const items = this.#items.get(e.kind);
    if (items === undefined) return;
    const had = items.get(e.key);
    if (e.type === 'DELETE') {
      if (had === undefined) return;
      items.delete(e.key);
      this.#emit({ type: 'deleted', kind: e.kind, key: e.key, record: had.record, revision: e.revision });
      return;
    }
    items.set(e.key, { record: e.record, revision: e.revision });
    this.#emit({ type: had === undefined ? 'added' : 'updated', kind: e.kind, key: e.key, record: e.record, revision: e.revision });
  }

  #applyList(revision: number, events: readonly BrokerEvent[]): void {
    const seen = new Map<Kind, Set<string>>();
    for (const k of this.#kinds) seen.set(k, new Set());
    for (const e of events) {
      seen.get(e.kind)?.add(e.key);
      const had = this.#items.get(e.kind)?.get(e.key);
      if (had !== undefined && had.revision === e.revision) continue;
      this.#applyEvent(e);
    }
    for (const [kind, items] of this.#items) {
      const keep = seen.get(kind) ?? new Set<string>();
      for (const [key, item] of items) {
        if (keep.has(key)) continue;
        items.delete(key);
        this.#emit({ type: 'deleted', kind, key, record: item.record, revision });
      }
    }
    this.#revision = revision;
  }

  async #run(): Promise<void> {
    const backoff = this.#backoff;
    let needList = true;
    while (!this.#stopped) {
      try {
        if (needList) {
          const { revision, events } = await this.#client.list(this.#kinds);
          if (this.#stopped) return;
          this.#applyList(revision, events);
          this.#reachable();
          this.#relists++;
          backoff.reset();
          needList = false;
          this.#resolveSynced();
        }
        const err = await this.#watchUntilEnd();
        if (err === undefined) continue; // clean end (broker shutting down): resume
        throw err;
      } catch (err) {
        if (this.#stopped) return;
        if (err instanceof IsthmusError && err.code === ErrorCodes.COMPACTED) {
          this.#logger.info({ revision: this.#revision, reason: err.context['reason'] }, 'broker cannot resume the watch; listing again');
          needList = true;
        } else if (err instanceof IsthmusError && err.code === ErrorCodes.INVALID_ARGUMENT && err.context['reason'] === 'future-revision') {
          needList = true;
        } else if (isTooLargeForUs(err)) {
          // a message above our receive limit would fail again on every resume: skip it by listing
          this.#logger.warn({ revision: this.#revision, err: messageOf(err) }, 'a watch message was too large to take; listing again');
          needList = true;
        } else {
          // once per outage at warn (the retries every few seconds at debug), so a broker that
          // cannot be reached is seen in the logs without flooding them
          if (this.#unreachableSince === undefined) {
            this.#unreachableSince = this.#client.clock.now();
            this.#logger.warn({ err: messageOf(err), revision: this.#revision }, 'broker unreachable; serving the last state and retrying');
          } else this.#logger.debug({ err: messageOf(err) }, 'broker still unreachable');
          this.#client.markStale();
        }
        await this.#pause(backoff.next());
      }
    }
  }

  #reachable(): void {
    if (this.#unreachableSince === undefined) return;
    this.#logger.info({ unreachableForMs: this.#client.clock.now() - this.#unreachableSince, revision: this.#revision }, 'broker reachable again');
    this.#unreachableSince = undefined;
  }

  async #pause(ms: number): Promise<void> {
    await Promise.race([
      sleep(this.#client.clock, ms),
      new Promise<void>((resolve) => {
        this.#wakeStop = resolve;
      }),
    ]);
  }

  /** Watches from revision+1 until the stream ends; resolves with the error that ended it. */
  async #watchUntilEnd(): Promise<IsthmusError | undefined> {
    let firstData = true;
    return new Promise<IsthmusError | undefined>((resolve, reject) => {
      this.#client.watch(this.#kinds, this.#revision + 1, {
        onEvents: (events, revision) => {
          if (firstData) {
            firstData = false;
            this.#connected = true;
            this.#backoff.reset();
            this.#reachable();
          }
          const applied = this.#revision;
          for (const e of events) if (e.revision > applied) this.#applyEvent(e);
          this.#revision = Math.max(applied, revision, ...events.map((e) => e.revision));
        },
        onEnd: (err) => {
          this.#connected = false;
          this.#cancel = undefined;
          if (err === undefined || err.code !== ErrorCodes.COMPACTED) this.#resumes++;
          resolve(err);
        },
      }).then((cancel) => {
        this.#cancel = cancel;
        this.#connected = true;
        if (this.#stopped) cancel();
      }, reject);
    });
  }
}

/** This client refused a message above its receive limit (grpc-js RESOURCE_EXHAUSTED, no broker trailer). */
export function isTooLargeForUs(err: unknown): boolean {
  return err instanceof IsthmusError && err.code !== ErrorCodes.RESOURCE_EXHAUSTED && err.context['grpcCode'] === 8 && /larger than max/i.test(err.message);
}
