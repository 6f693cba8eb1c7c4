import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';

/**
 * A deduplicating, rate-limited work queue of keys (in the spirit of client-go's
 * workqueue). Informer handlers add keys such as "namespace/name"; workers take a key,
 * reconcile it from the cache and report back with done().
 *
 * Keys are compared like Map keys (SameValueZero), so use primitives (never undefined).
 *
 * Invariants:
 * - A key is waiting in the queue at most once: adding a key that is already waiting
 *   does nothing, so a key added N times before a worker takes it is processed once.
 * - A key is handed to at most one worker at a time: from get() until done(key) it is
 *   "processing", and get() never hands out a processing key. Adding a key while it is
 *   processing marks it dirty; done() then puts it back, so it is processed again once.
 * - Keys are handed out in the order they became ready (first added, first served).
 * - addAfter() keeps one timer per key, the earliest: a later deadline for a key that
 *   is already waiting on a timer does nothing. The timer then add()s the key.
 * - addRateLimited() waits max(per-key exponential backoff, overall token bucket);
 *   each call counts one more failure for the key until forget(key).
 * - After shutDown(): add/addAfter/addRateLimited do nothing, pending timers are
 *   cancelled, keys not yet handed out are dropped, get() resolves undefined; keys
 *   already processing may still call done(). run() resolves once every handler it
 *   started has settled.
 */
export interface WorkQueueOptions {
  /** Default systemClock. */
  clock?: Clock;
  /** Per-key backoff for addRateLimited (defaults of core/backoff.ts: 200 ms doubling to 30 s). */
  backoff?: BackoffOptions;
  /**
   * Overall token bucket for addRateLimited: `perSecond` tokens a second, at most
   * `burst` (default ceil(perSecond)) saved up. Default: no overall limit.
   */
  rateLimit?: { perSecond: number; burst?: number };
}

export interface WorkQueueRunOptions {
  /** Number of keys processed in parallel (default 1). */
  workers?: number;
  /** Aborting it shuts the queue down. */
  signal?: AbortSignal;
  /** Failed handlers are logged here at warn level. */
  logger?: Logger;
}

export class WorkQueue<K extends {} = string> {
  readonly #clock: Clock;
  readonly #backoffOptions: BackoffOptions;
  readonly #bucket: TokenBucket | undefined;
  /** Keys ready to be handed out, in order; queue[head..] are live. */
  #queue: K[] = [];
  #head = 0;
  /** Keys that need processing: every key in #queue, plus processing keys added again. */
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #delayed = new Map<K, { at: number; handle: TimerHandle }>();
  readonly #failures = new Map<K, Backoff>();
  readonly #getters: ((key: K | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#backoffOptions = options.backoff ?? {};
    if (options.rateLimit !== undefined) {
      const { perSecond, burst = Math.ceil(perSecond) } = options.rateLimit;
      if (!(perSecond > 0) || !(burst >= 1)) {
        throw new IsthmusError(
          ErrorCodes.INVALID_ARGUMENT,
          `work queue rate limit needs perSecond > 0 and burst >= 1, got ${String(perSecond)} and ${String(burst)}`,
        );
      }
      this.#bucket = new TokenBucket(this.#clock, perSecond, burst);
    }
  }

  /** Number of keys ready and waiting for a worker (not counting timers or processing keys). */
  get len(): number {
    return this.#queue.length - this.#head;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Marks `key` as needing processing (see the invariants above). */
  add(key: K): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#dispatch();
  }

  /** add(key) after `ms`; ms <= 0 adds at once. */
  addAfter(key: K, ms: number): void {
    if (this.#shuttingDown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const at = this.#clock.now() + ms;
    const existing = this.#delayed.get(key);
    if (existing !== undefined) {
      if (existing.at <= at) return;
      this.#clock.clearTimeout(existing.handle);
    }
    const handle = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { at, handle });
  }

  /** Adds `key` after its backoff delay (and the token bucket's); counts one more failure. */
  addRateLimited(key: K): void {
    if (this.#shuttingDown) return;
    let backoff = this.#failures.get(key);
    if (backoff === undefined) {
      backoff = new Backoff(this.#backoffOptions);
      this.#failures.set(key, backoff);
    }
    const delay = Math.max(backoff.next(), this.#bucket?.reserve() ?? 0);
    this.addAfter(key, delay);
  }

  /** Clears the failure count of `key` (call after it was processed successfully). */
  forget(key: K): void {
    this.#failures.delete(key);
  }

  /** Failures counted for `key` since the last forget(). */
  numRequeues(key: K): number {
    return this.#failures.get(key)?.attempts ?? 0;
  }

  /**
   * The next key, marked processing; waits while the queue is empty. Resolves
   * undefined once the queue is shut down. The caller must call done(key).
   */
  get(): Promise<K | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#getters.push(resolve);
      this.#dispatch();
    });
  }

  /** Ends processing of `key`; if it was added meanwhile it is queued again. */
  done(key: K): void {
    if (!this.#processing.delete(key)) return;
    if (this.#dirty.has(key) && !this.#shuttingDown) {
      this.#queue.push(key);
      this.#dispatch();
    }
  }

  /** Stops accepting keys, cancels timers, drops waiting keys and wakes every get() with undefined. */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { handle } of this.#delayed.values()) this.#clock.clearTimeout(handle);
    this.#delayed.clear();
    for (const key of this.#queue.slice(this.#head)) this.#dirty.delete(key);
    this.#queue = [];
    this.#head = 0;
    for (const resolve of this.#getters.splice(0)) resolve(undefined);
  }

  /**
   * Runs `workers` loops that take keys and call `handler`: on success the key is
   * forgotten, on failure it is re-added with addRateLimited. One key never runs in
   * two handlers at once. Resolves after shutDown() (or `signal` aborting) once every
   * started handler has settled.
   */
  async run(handler: (key: K) => Promise<void>, options: WorkQueueRunOptions = {}): Promise<void> {
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `work queue workers must be an integer >= 1, got ${String(workers)}`);
    }
    const { signal, logger } = options;
    const onAbort = (): void => this.shutDown();
    if (signal?.aborted) this.shutDown();
    signal?.addEventListener('abort', onAbort, { once: true });
    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await this.get();
        if (key === undefined) return;
        try {
          await handler(key);
          this.forget(key);
        } catch (err) {
          this.addRateLimited(key);
          logger?.warn({ item: String(key), err: messageOf(err), retries: this.numRequeues(key) }, 'work item failed; will retry');
        } finally {
          this.done(key);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: workers }, worker));
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  #dispatch(): void {
    while (this.#getters.length > 0 && this.#head < this.#queue.length) {
      const key = this.#queue[this.#head] as K;
      this.#head++;
      this.#dirty.delete(key);
      this.#processing.add(key);
      this.#getters.shift()?.(key);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** Reservation-style token bucket: each call takes a token, now or in the future. */
class TokenBucket {
  readonly #clock: Clock;
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  constructor(clock: Clock, perSecond: number, burst: number) {
    this.#clock = clock;
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  /** Takes one token; returns how many ms until it is available (0: now). */
  reserve(): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#perMs);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens / this.#perMs);
  }
}
