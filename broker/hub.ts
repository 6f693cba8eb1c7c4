import type { Etcd3, IDuplexStream, IKeyValue, IWatchRequest, IWatchResponse } from 'etcd3';
import { Backoff, ErrorCodes, IsthmusError, messageOf, sleep, systemClock, type Clock, type Logger } from '../core/index.ts';
import { PREFIX, clusterOfKey, kindPrefix, parseEtcdKey, prefixEnd } from './keys.ts';
import { eventMessage, methods } from '../core/broker-api/proto.ts';
import type { BrokerStore } from './store.ts';
import { KINDS, type AnyRecord, type BrokerEvent, type Kind } from '../core/broker-api/types.ts';

/**
 * The broker replica's one etcd watch, fanned out to every client Watch.
 *
 * - A cache of every record (what List serves) and a replay window: the events of
 *   the last `windowEvents` changes, so a client that resumes from a recent revision
 *   (also after this replica restarted: the hub backfills `backfillRevisions` on start)
 *   gets exactly the changes it missed, each once.
 * - Events of one etcd revision are always sent together; each batch is encoded once
 *   per kind filter and the same bytes are written to every watcher with that filter.
 * - A revision older than the window is refused (reason "compacted" when etcd no
 *   longer has it, else "too-old"); the client lists again.
 * - When the etcd watch breaks it resumes from the next revision; if etcd compacted
 *   past it, the hub lists again and ends every client watch with "compacted".
 */
export interface HubOptions {
  logger: Logger;
  clock?: Clock;
  /** Events kept for replay (default 20 000). */
  windowEvents?: number;
  /** History read back from etcd at start for clients resuming after a restart (default 5 000 revisions). */
  backfillRevisions?: number;
  /** Progress (revision only) sent to idle watchers this often (default 5 000 ms). */
  progressIntervalMs?: number;
  /** How long start() waits for the watch to catch up (default 60 000 ms). */
  startTimeoutMs?: number;
}

export interface Subscriber {
  readonly kinds: ReadonlySet<Kind>;
  /** Writes encoded WatchResponse bytes. */
  send(bytes: Buffer): void;
  /** Ends the watch, with an error status when given. */
  close(err?: IsthmusError): void;
}

interface Batch {
  readonly revision: number;
  readonly events: readonly BrokerEvent[];
  /** Approximate encoded size (the stored values). */
  readonly bytes: number;
  readonly encoded: Map<number, Buffer | null>;
}

interface Entry {
  readonly event: BrokerEvent;
  /** Size of the stored value. */
  readonly bytes: number;
}

/** What one cluster holds (endpoints, exports, policies, identity sets; its cluster record is not counted). */
export interface ClusterUsage {
  records: number;
  bytes: number;
  endpoints: number;
}

interface Sub {
  readonly subscriber: Subscriber;
  readonly mask: number;
  lastSent: number;
}

function maskOf(kinds: ReadonlySet<Kind>): number {
  let m = 0;
  KINDS.forEach((k, i) => {
    if (kinds.has(k)) m |= 1 << i;
  });
  return m;
}

function kindBit(k: Kind): number {
  return 1 << KINDS.indexOf(k);
}

/** One WatchResponse holding the events of `batches` that match `mask`, or null when none do. */
function encodeMany(batches: readonly Batch[], mask: number, revision: number): Buffer | null {
  const events: object[] = [];
  for (const b of batches) for (const e of b.events) if ((mask & kindBit(e.kind)) !== 0) events.push(eventMessage(e));
  return events.length === 0 ? null : methods.Watch.responseSerialize({ events, revision: String(revision) });
}

/** Throws unless `event` can be encoded as the API's Event message (field types as the proto says). */
function encodable(event: BrokerEvent): void {
  methods.Watch.responseSerialize({ events: [eventMessage(event)], revision: '0' });
}

/** The etcd watch delivered a message above the client's receive limit. */
export function isTooLarge(err: unknown): boolean {
  return /larger than max|RESOURCE_EXHAUSTED|ResourceExhausted/i.test(`${err instanceof Error ? err.constructor.name : ''} ${messageOf(err)}`);
}

/** Target size of one WatchResponse: batches flushed together are split at this size. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

function num(s: string | undefined): number {
  return Number(s ?? 0);
}

export class WatchHub {
  readonly #etcd: Etcd3;
  readonly #store: BrokerStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #windowEvents: number;
  readonly #backfill: number;
  readonly #progressMs: number;
  readonly #startTimeoutMs: number;
  /** Current records by etcd key. */
  #cache = new Map<string, Entry>();
  #usage = new Map<string, ClusterUsage>();
  #ring: Batch[] = [];
  #ringEvents = 0;
  /** Every change with revision ≥ windowStart is in the ring. */
  #windowStart = 1;
  /** Every change up to this revision is in the cache (and ring, from windowStart). */
  #revision = 0;
  /** The revision the cache was listed at; events up to it only go to the ring. */
  #listedAt = 0;
  #subs = new Set<Sub>();
  #stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #progressTimer: ReturnType<typeof setInterval> | undefined;
  #waiters: { revision: number; resolve: () => void }[] = [];
  #pending: Batch[] = [];
  #flushScheduled = false;
  /** The next revision the etcd watch must deliver (where a broken watch resumes). */
  #next = 1;
  #caughtUp: (() => void) | undefined;
  /** Start-up is complete once the watch has delivered this revision (the start marker's). */
  #caughtUpAt = Number.POSITIVE_INFINITY;

  constructor(etcd: Etcd3, store: BrokerStore, options: HubOptions) {
    this.#etcd = etcd;
    this.#store = store;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#windowEvents = options.windowEvents ?? 20_000;
    this.#backfill = options.backfillRevisions ?? 5_000;
    this.#progressMs = options.progressIntervalMs ?? 5_000;
    this.#startTimeoutMs = options.startTimeoutMs ?? 60_000;
  }

  /** Every change up to this revision has been applied. */
  get revision(): number {
    return this.#revision;
  }

  get windowStart(): number {
    return this.#windowStart;
  }

  get watchers(): number {
    return this.#subs.size;
  }

  get size(): number {
    return this.#cache.size;
  }

  /** Lists, starts the etcd watch (with backfill) and resolves once caught up. */
  async start(): Promise<void> {
    await this.#relist();
    const caughtUp = new Promise<void>((resolve) => {
      this.#caughtUp = resolve;
    });
    const from = Math.max(1, this.#listedAt + 1 - this.#backfill);
    this.#windowStart = from;
    this.#next = from;
    this.#loop = this.#run();
    // A write after the list: once the watch delivers its revision, every change up to
    // it has been delivered too (watch events arrive in order). Requested progress
    // notifications cannot tell this: etcd before 3.4.24 may send them ahead of events.
    this.#caughtUpAt = await this.#store.writeStartMarker();
    this.#advance(0);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        caughtUp,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new IsthmusError(ErrorCodes.UNAVAILABLE, `the broker's etcd watch did not catch up with revision ${this.#caughtUpAt} within ${this.#startTimeoutMs / 1000} s (at ${this.#next - 1}): check etcd's health and load`)), this.#startTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    this.#progressTimer = setInterval(() => this.#sendProgress(), this.#progressMs);
    this.#progressTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#progressTimer !== undefined) clearInterval(this.#progressTimer);
    this.#stream?.cancel();
    for (const s of this.#subs) s.subscriber.close(new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker is shutting down: reconnect and resume'));
    this.#subs.clear();
    this.#caughtUp?.();
    for (const w of this.#waiters) w.resolve();
    // the loop may be waiting on an etcd that is gone: do not let that hold up the shutdown
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#loop?.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, 1_000)))]);
    clearTimeout(timer);
  }

  async #relist(): Promise<void> {
    const { revision, kvs } = await this.#store.range(PREFIX);
    const cache = new Map<string, Entry>();
    this.#usage = new Map();
    for (const kv of kvs) {
      const event = this.#toEvent('PUT', kv, undefined);
      if (event !== undefined) {
        const entry = { event, bytes: kv.value.length };
        cache.set(kv.key.toString(), entry);
        this.#count(entry, 1);
      }
    }
    this.#cache = cache;
    this.#listedAt = revision;
    this.#revision = revision;
  }

  #toEvent(type: 'PUT' | 'DELETE', kv: IKeyValue, prev: IKeyValue | undefined): BrokerEvent | undefined {
    const etcdKey = kv.key.toString();
    const parsed = parseEtcdKey(etcdKey);
    if (parsed === undefined) return undefined;
    const source = type === 'PUT' ? kv : prev;
    let record: AnyRecord | undefined;
    if (source !== undefined && source.value.length > 0) {
      try {
        record = JSON.parse(source.value.toString()) as AnyRecord;
        encodable({ type, kind: parsed.kind, key: parsed.key, revision: 0, record });
      } catch (err) {
        // written around the broker (or by a bug): one such record must not fail every List
        // and stall the watch on its revision; a deletion still goes through
        this.#logger.error({ key: etcdKey, err: messageOf(err) }, 'record in etcd is not JSON of the API\'s shape; skipped');
        if (type === 'PUT') return undefined;
        record = undefined;
      }
    }
    record ??= this.#cache.get(etcdKey)?.event.record ?? ({ cluster_id: clusterOfKey(parsed.key) } as AnyRecord);
    return { type, kind: parsed.kind, key: parsed.key, revision: num(kv.mod_revision), record };
  }

  #count(entry: Entry, sign: 1 | -1): void {
    const { kind, record } = entry.event;
    if (kind === 'CLUSTER') return;
    const id = record.cluster_id;
    const u = this.#usage.get(id) ?? { records: 0, bytes: 0, endpoints: 0 };
    u.records += sign;
    u.bytes += sign * entry.bytes;
    if (kind === 'ENDPOINT') u.endpoints += sign;
    if (u.records <= 0) this.#usage.delete(id);
    else this.#usage.set(id, u);
  }

  /** What `clusterId` holds now, as far as this replica has applied. */
  usage(clusterId: string): ClusterUsage {
    return { ...(this.#usage.get(clusterId) ?? { records: 0, bytes: 0, endpoints: 0 }) };
  }

  /** Every cluster's usage (for metrics). */
  usages(): ReadonlyMap<string, ClusterUsage> {
    return this.#usage;
  }

  /** The record at an etcd key and the revision it was last changed at, as this replica has applied. */
  recordAt(etcdKey: string): { record: AnyRecord; revision: number } | undefined {
    const e = this.#cache.get(etcdKey);
    return e === undefined ? undefined : { record: e.event.record, revision: e.event.revision };
  }

  /** Stored size of the record of `kind` at `key`, or undefined when there is none. */
  recordBytes(etcdKey: string): number | undefined {
    return this.#cache.get(etcdKey)?.bytes;
  }

  async #run(): Promise<void> {
    const backoff = new Backoff({ baseMs: 100, maxMs: 5_000 });
    while (!this.#stopped) {
      try {
        await this.#watchOnce(backoff);
      } catch (err) {
        if (this.#stopped) return;
        const compacted = err instanceof IsthmusError && err.code === ErrorCodes.COMPACTED;
        // a revision bigger than the broker takes cannot be replayed, only skipped by listing
        // again, as after a compaction: retrying would fail forever
        if (compacted || isTooLarge(err)) {
          const compactedTo = compacted ? Number(err.context['compactRevision'] ?? 0) : undefined;
          if (this.#caughtUp !== undefined && this.#next <= this.#listedAt) {
            // the backfill ran into it: replay only what can still be replayed
            this.#logger.warn({ from: this.#next, compactedTo, err: messageOf(err) }, 'backfill cut short');
            this.#next = compactedTo === undefined ? this.#listedAt + 1 : Math.max(compactedTo, this.#next);
            this.#windowStart = this.#next;
            continue;
          }
          this.#logger.warn({ from: this.#next, compactedTo, err: messageOf(err) }, compacted ? 'etcd compacted past the watch position; listing again' : 'an etcd revision is too large to take; listing again');
          try {
            await this.#reset();
          } catch (e) {
            this.#logger.warn({ err: messageOf(e) }, 'relist failed; retrying');
            await sleep(this.#clock, backoff.next());
          }
          continue;
        }
        this.#logger.warn({ from: this.#next, err: messageOf(err) }, 'etcd watch broke; resuming');
        await sleep(this.#clock, backoff.next());
      }
    }
  }

  async #reset(): Promise<void> {
    await this.#relist();
    this.#ring = [];
    this.#ringEvents = 0;
    this.#windowStart = this.#revision + 1;
    this.#next = this.#revision + 1;
    for (const s of this.#subs) {
      s.subscriber.close(new IsthmusError(ErrorCodes.COMPACTED, 'the broker lost its place in etcd history (compacted): list again', { context: { reason: 'compacted' } }));
    }
    this.#subs.clear();
    this.#wake();
  }

  /** One etcd watch stream from #next, until it breaks (it always ends with an error). */
  async #watchOnce(backoff: Backoff): Promise<void> {
    const stream = await this.#etcd.watchClient.watch();
    this.#stream = stream;
    const from = this.#next;
    try {
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (res: IWatchResponse) => {
          try {
            if (res.created && !res.canceled) {
              backoff.reset();
              return;
            }
            if (res.canceled) {
              if (num(res.compact_revision) > 0) {
                reject(new IsthmusError(ErrorCodes.COMPACTED, `etcd compacted revision ${this.#next}`, { context: { compactRevision: num(res.compact_revision) } }));
              } else {
                reject(new Error(`etcd cancelled the watch: ${res.cancel_reason}`));
              }
              return;
            }
            if (res.events.length === 0) {
              // timed progress notification (we never request one: see start()): every
              // change up to header.revision has been sent
              this.#next = Math.max(this.#next, num(res.header.revision) + 1);
              this.#advance(num(res.header.revision));
              return;
            }
            this.#apply(res);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        stream.on('error', (err: Error) => reject(err));
        stream.on('end', () => reject(new Error('etcd watch stream ended')));
        stream.write({ create_request: { key: Buffer.from(PREFIX), range_end: prefixEnd(PREFIX), start_revision: from, prev_kv: true, progress_notify: true } });
      });
    } finally {
      this.#stream = undefined;
      stream.cancel();
    }
  }

  /** Applies one etcd watch response (whole revisions) and queues it for the watchers. */
  #apply(res: IWatchResponse): void {
    const byRevision = new Map<number, BrokerEvent[]>();
    const sizes = new Map<number, number>();
    let max = 0;
    for (const ev of res.events) {
      const r = num(ev.kv.mod_revision);
      if (r < this.#next) continue; // already applied (never expected: the watch resumes at #next)
      max = Math.max(max, r);
      const event = this.#toEvent(ev.type === 'Delete' ? 'DELETE' : 'PUT', ev.kv, ev.prev_kv ?? undefined);
      if (event === undefined) continue;
      if (r > this.#listedAt) {
        const etcdKey = ev.kv.key.toString();
        const old = this.#cache.get(etcdKey);
        if (old !== undefined) this.#count(old, -1);
        if (event.type === 'DELETE') this.#cache.delete(etcdKey);
        else {
          const entry = { event, bytes: ev.kv.value.length };
          this.#cache.set(etcdKey, entry);
          this.#count(entry, 1);
        }
      }
      const list = byRevision.get(r) ?? [];
      list.push(event);
      byRevision.set(r, list);
      sizes.set(r, (sizes.get(r) ?? 0) + 200 + Math.max(ev.kv.value.length, ev.prev_kv?.value.length ?? 0));
    }
    for (const [revision, events] of byRevision) this.#pushBatch({ revision, events, bytes: sizes.get(revision) ?? 0, encoded: new Map() });
    if (max > 0) {
      this.#next = max + 1;
      this.#advance(max);
    }
  }

  #pushBatch(batch: Batch): void {
    this.#ring.push(batch);
    this.#ringEvents += batch.events.length;
    while (this.#ringEvents > this.#windowEvents && this.#ring.length > 1) {
      const old = this.#ring.shift() as Batch;
      this.#ringEvents -= old.events.length;
      this.#windowStart = old.revision + 1;
    }
    if (batch.revision <= this.#listedAt) return; // backfill: history only, clients of this replica cannot have seen it live
    this.#pending.push(batch);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  /**
   * Sends the batches that arrived in this turn of the event loop as one message per
   * watcher (fewer writes when the broker is busy), encoded once per kind filter.
   */
  #flush(): void {
    this.#flushScheduled = false;
    const pending = this.#pending;
    this.#pending = [];
    if (this.#stopped) return;
    // one message holds whole revisions up to MAX_MESSAGE_BYTES (a single larger revision goes alone)
    let chunk: Batch[] = [];
    let bytes = 0;
    for (const b of pending) {
      if (chunk.length > 0 && bytes + b.bytes > MAX_MESSAGE_BYTES) {
        this.#flushChunk(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(b);
      bytes += b.bytes;
    }
    this.#flushChunk(chunk);
  }

  #flushChunk(batches: readonly Batch[]): void {
    const first = batches[0]?.revision;
    const last = batches[batches.length - 1]?.revision;
    if (first === undefined || last === undefined || this.#stopped) return;
    const shared = new Map<number, Buffer | null>();
    for (const s of this.#subs) {
      if (s.lastSent >= last) continue;
      let bytes: Buffer | null | undefined;
      if (s.lastSent < first) {
        bytes = shared.get(s.mask);
        if (bytes === undefined) {
          bytes = encodeMany(batches, s.mask, last);
          shared.set(s.mask, bytes);
        }
      } else {
        bytes = encodeMany(batches.filter((b) => b.revision > s.lastSent), s.mask, last);
      }
      s.lastSent = last;
      if (bytes !== null) s.subscriber.send(bytes);
    }
  }

  #encode(batch: Batch, mask: number): Buffer | null {
    let bytes = batch.encoded.get(mask);
    if (bytes === undefined) {
      const events = batch.events.filter((e) => (mask & kindBit(e.kind)) !== 0);
      bytes = events.length === 0 ? null : methods.Watch.responseSerialize({ events: events.map(eventMessage), revision: String(batch.revision) });
      batch.encoded.set(mask, bytes);
    }
    return bytes;
  }

  #advance(revision: number): void {
    if (revision > this.#revision) this.#revision = revision;
    if (this.#caughtUp !== undefined && this.#next > this.#caughtUpAt) {
      const done = this.#caughtUp;
      this.#caughtUp = undefined;
      done();
    }
    this.#wake();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const still: { revision: number; resolve: () => void }[] = [];
    for (const w of this.#waiters) {
      if (this.#revision >= w.revision || this.#stopped) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }

  #sendProgress(): void {
    // with batches still waiting for their flush, "all sent up to #revision" would be a lie
    if (this.#subs.size === 0 || this.#pending.length > 0) return;
    const bytes = methods.Watch.responseSerialize({ events: [], revision: String(this.#revision) });
    for (const s of this.#subs) {
      if (s.lastSent < this.#revision) {
        s.lastSent = this.#revision;
        s.subscriber.send(bytes);
      }
    }
  }

  /**
   * Resolves once every change up to etcd's current revision is in the cache, so a
   * List from the cache is as fresh as a read from etcd. Throws UNAVAILABLE after
   * `timeoutMs` (for instance when something outside the broker's prefix writes to
   * the same etcd, which moves the revision without events for the hub).
   */
  async waitFresh(timeoutMs = 2_000): Promise<void> {
    const target = await this.#store.currentRevision();
    if (this.#revision >= target) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#waiters.push({ revision: target, resolve });
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new IsthmusError(ErrorCodes.UNAVAILABLE, `the broker's view of etcd lags (at ${this.#revision}, etcd at ${target})`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The current records of `kinds` read straight from etcd at one revision: what List
   * serves when the cache cannot be shown to be fresh.
   */
  async readThrough(kinds: ReadonlySet<Kind>): Promise<{ revision: number; events: BrokerEvent[] }> {
    let revision = 0;
    const events: BrokerEvent[] = [];
    for (const kind of kinds) {
      const res = await this.#store.range(kindPrefix(kind), revision);
      revision = res.revision;
      for (const kv of res.kvs) {
        const e = this.#toEvent('PUT', kv, undefined);
        if (e !== undefined) events.push(e);
      }
    }
    return { revision, events };
  }

  /** The current records of `kinds`, at `revision`. */
  snapshot(kinds: ReadonlySet<Kind>): { revision: number; events: BrokerEvent[] } {
    const events: BrokerEvent[] = [];
    for (const { event } of this.#cache.values()) if (kinds.has(event.kind)) events.push(event);
    return { revision: this.#revision, events };
  }

  /**
   * Starts sending changes of `subscriber.kinds` from `fromRevision` (0: from now).
   * Throws COMPACTED (reason compacted/too-old) when the revision is older than the
   * window and INVALID_ARGUMENT (reason future-revision) when etcd has not reached it.
   * Returns an unsubscribe function.
   */
  async subscribe(subscriber: Subscriber, fromRevision: number): Promise<() => void> {
    if (this.#stopped) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker is shutting down: reconnect');
    let from = fromRevision === 0 ? this.#revision + 1 : fromRevision;
    if (from > this.#revision + 1) {
      const current = await this.#store.currentRevision();
      if (from > current + 1) {
        throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `revision ${from} is in the future (etcd is at ${current}): resume from a revision this clusterset gave you, or list again`, {
          context: { reason: 'future-revision' },
        });
      }
    }
    if (from < this.#windowStart) {
      let compacted = false;
      try {
        await this.#store.range(`${PREFIX}config/`, from);
      } catch (err) {
        if (err instanceof IsthmusError && err.code === ErrorCodes.COMPACTED) compacted = true;
        else throw err;
      }
      throw new IsthmusError(
        ErrorCodes.COMPACTED,
        compacted
          ? `revision ${from} was compacted in etcd: list again and watch from the list's revision`
          : `revision ${from} is older than this broker's replay window (from ${this.#windowStart}): list again and watch from the list's revision`,
        { context: { reason: compacted ? 'compacted' : 'too-old' } },
      );
    }
    // the await above may have let the window move on
    if (from < this.#windowStart) return this.subscribe(subscriber, from);
    from = Math.max(from, 1);
    const sub: Sub = { subscriber, mask: maskOf(subscriber.kinds), lastSent: from - 1 };
    for (const batch of this.#ring) {
      if (batch.revision < from || batch.revision > this.#revision) continue;
      const bytes = this.#encode(batch, sub.mask);
      sub.lastSent = batch.revision;
      if (bytes !== null) subscriber.send(bytes);
    }
    this.#subs.add(sub);
    return () => {
      this.#subs.delete(sub);
    };
  }
}
