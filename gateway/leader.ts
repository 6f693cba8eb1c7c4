import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { systemClock, sleep, messageOf, type Clock, type Logger, type TimerHandle } from '../core/index.ts';

/**
 * Active/passive by a Kubernetes Lease, the way client-go's leader election does it:
 * the holder renews `renewTime` every `retryMs`; a candidate takes the Lease over when
 * it has seen no change to it for `leaseMs` by its own clock (never trusting the
 * holder's clock); a holder that cannot renew within `renewDeadlineMs` stands down
 * before anyone may take over (renewDeadline < lease duration).
 *
 * The holder's deadline runs from the start of its last successful write (the apiserver
 * stored it after that, and a candidate saw it later still) and is kept by a timer, not
 * checked after each attempt: a renewal that hangs past the deadline does not keep the
 * holder active while a candidate takes over (no two active gateways).
 *
 * Attempts start every `retryMs` (start to start: a slow apiserver eats into the pause,
 * not the cadence). The holder renews with one replace of the Lease as its last write
 * returned it (no read first: half the round trips, so a loaded apiserver costs it its
 * lease later); when that fails (a 409: someone else wrote it) it reads the Lease again.
 *
 * A slow apiserver stretches the lease instead of making the holder flap (a 2-core machine at
 * load 20 answered writes in over 1.5 s; the holder stood down and took the Lease back every
 * few seconds, each time tearing its cables down): the holder times its calls, and when 4 × the
 * slowest of the last minute exceeds the configured lease in whole seconds, it writes that as
 * `leaseDurationSeconds` (at most `maxLeaseMs`) and scales its renew deadline with it. A
 * candidate waits the written duration when it is longer than the configured lease rounded up
 * to whole seconds (what an unstretched holder writes), else the configured lease, so holder
 * and candidate agree on every lease the holder wrote. Failover then takes longer while the
 * apiserver is slow, and is back to `leaseMs` a minute after it answers quickly again (a
 * lease that shrank at once made the next slow call a stand-down).
 */
export interface LeaseRecord {
  readonly holder: string;
  readonly renewTime: string;
  readonly transitions: number;
  /** leaseDurationSeconds in ms, when the Lease states it. */
  readonly durationMs?: number;
}

const wholeSeconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000)) * 1000;

/**
 * Pure: the lease a holder writes when the slowest of its recent apiserver calls took
 * `slowestMs`. Back-to-back renewals of L ms each need a renew deadline over 2L; stretched,
 * the deadline (renewDeadline/lease of it, 3/4 by default) is at least 3L. With the defaults
 * (2 s, 1.5 s) the stretch begins at L > 500 ms, before a holder would flap (L ≥ 750 ms).
 */
export function stretchedLeaseMs(leaseMs: number, slowestMs: number, maxLeaseMs: number): number {
  const want = Math.min(wholeSeconds(maxLeaseMs), wholeSeconds(4 * slowestMs));
  return want > wholeSeconds(leaseMs) ? want : leaseMs;
}

/** Pure: how long a candidate waits without a change before taking over the lease `record` describes. */
export function candidateWaitMs(record: LeaseRecord, leaseMs: number, maxLeaseMs: number): number {
  const stated = record.durationMs ?? 0;
  return stated > wholeSeconds(leaseMs) ? Math.min(stated, wholeSeconds(maxLeaseMs)) : leaseMs;
}

export type ElectionAction = 'create' | 'renew' | 'takeover' | 'follow';

export interface Observation {
  /** The record as last seen, and when (local ms) it last changed. */
  readonly record: LeaseRecord | undefined;
  readonly changedAt: number;
}

export const DEFAULT_MAX_LEASE_MS = 15_000;
/** How long a slow call keeps the lease stretched. */
export const LATENCY_MEMORY_MS = 60_000;

/** Pure: what to do with the Lease as it is now. */
export function electionStep(seen: Observation, current: LeaseRecord | undefined, me: string, now: number, leaseMs: number, maxLeaseMs = DEFAULT_MAX_LEASE_MS): { action: ElectionAction; seen: Observation } {
  if (current === undefined) return { action: 'create', seen: { record: undefined, changedAt: now } };
  const changed = seen.record === undefined || seen.record.holder !== current.holder || seen.record.renewTime !== current.renewTime;
  const next: Observation = changed ? { record: current, changedAt: now } : seen;
  if (current.holder === me) return { action: 'renew', seen: next };
  if (current.holder === '' || now - next.changedAt >= candidateWaitMs(current, leaseMs, maxLeaseMs)) return { action: 'takeover', seen: next };
  return { action: 'follow', seen: next };
}

/** The Lease calls the elector makes (leaseApiOf: over the apiserver). */
export interface LeaseApi {
  /** undefined: there is no Lease. */
  read(): Promise<V1Lease | undefined>;
  create(body: V1Lease): Promise<V1Lease>;
  /** Fails (409) when `body`'s resourceVersion is not the current one. */
  replace(body: V1Lease): Promise<V1Lease>;
}

export function leaseApiOf(kubeConfig: KubeConfig, namespace: string, name: string): LeaseApi {
  const api = kubeConfig.makeApiClient(CoordinationV1Api);
  return {
    read: async () => {
      try {
        return await api.readNamespacedLease({ name, namespace });
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    create: (body) => api.createNamespacedLease({ namespace, body }),
    replace: (body) => api.replaceNamespacedLease({ name, namespace, body }),
  };
}

export interface LeaderOptions {
  /** How the Lease is read and written (tests); default leaseApiOf(kubeConfig, namespace, name). */
  readonly leaseApi?: LeaseApi;
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  /** Default 2000. */
  readonly leaseMs?: number;
  /** Default 1500; must be < leaseMs. */
  readonly renewDeadlineMs?: number;
  /** Default 500. */
  readonly retryMs?: number;
  /** The longest a slow apiserver stretches the lease to; default 15 000 (client-go's lease). */
  readonly maxLeaseMs?: number;
  /** How long a slow call keeps the lease stretched; default LATENCY_MEMORY_MS. */
  readonly latencyMemoryMs?: number;
  readonly clock?: Clock;
  readonly logger: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  /** A read showed the Lease held by another identity (called on every such read). */
  onOtherHolder?(holder: string): void;
}

const micro = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

function recordOf(l: V1Lease): LeaseRecord {
  const rt = l.spec?.renewTime as unknown;
  return {
    holder: l.spec?.holderIdentity ?? '',
    renewTime: rt instanceof Date ? rt.toISOString() : String(rt ?? ''),
    transitions: l.spec?.leaseTransitions ?? 0,
    durationMs: (l.spec?.leaseDurationSeconds ?? 0) * 1000,
  };
}

export class LeaderElector {
  readonly #o: LeaderOptions;
  readonly #api: LeaseApi;
  readonly #clock: Clock;
  #seen: Observation = { record: undefined, changedAt: 0 };
  #leading = false;
  /** When our last successful write of the Lease started (clock ms). */
  #lastRenew = 0;
  /** The lease our last successful write stated (ms): the renew deadline scales with it. */
  #writtenLeaseMs = 0;
  /** Our apiserver calls of the last minute: when each ended and how long it took (ms), oldest first. */
  readonly #latencies: { at: number; ms: number }[] = [];
  #watchdog: TimerHandle | undefined;
  /** The Lease as our last write returned it, while we hold it: the next renewal replaces it as is. */
  #held: V1Lease | undefined;
  #stopped = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: LeaderOptions) {
    this.#o = options;
    this.#api = options.leaseApi ?? leaseApiOf(options.kubeConfig, options.namespace, options.name);
    this.#clock = options.clock ?? systemClock;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** Whether the Lease, as last read, is held by another identity. */
  get heldByOther(): boolean {
    const holder = this.#seen.record?.holder ?? '';
    return holder !== '' && holder !== this.#o.identity;
  }

  /** The lease our last successful write stated (ms); the configured lease before any. */
  get writtenLeaseMs(): number {
    return this.#writtenLeaseMs === 0 ? this.#o.leaseMs ?? 2000 : this.#writtenLeaseMs;
  }

  start(): void {
    this.#loop = this.#run();
  }

  /**
   * Stops. With `release`, a leader clears the Lease's holder so a standby takes over at
   * once, and onStoppedLeading runs. Without it (a process restart), onStoppedLeading does
   * not run: what leading built stays, and the Lease stays ours until it expires, so the
   * restarted process renews it and adopts.
   */
  async stop(release = true): Promise<void> {
    this.#stopped.abort();
    await this.#loop;
    if (this.#watchdog !== undefined) this.#clock.clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    if (!release) {
      this.#leading = false;
      return;
    }
    if (this.#leading) {
      await this.#api.read().then((l) => this.#write('release', l)).catch((e: unknown) => this.#o.logger.warn({ err: messageOf(e) }, 'could not release the lease'));
    }
    this.#setLeading(false);
  }

  async #run(): Promise<void> {
    const leaseMs = this.#o.leaseMs ?? 2000;
    const retry = this.#o.retryMs ?? 500;
    while (!this.#stopped.signal.aborted) {
      const began = this.#clock.now();
      try {
        await this.#tryOnce(this.#leaseToWrite(leaseMs));
      } catch (err) {
        this.#held = undefined; // read it again next time
        this.#o.logger.debug({ err: messageOf(err) }, 'lease attempt failed');
      }
      const pause = Math.max(0, retry - (this.#clock.now() - began));
      await sleep(this.#clock, pause, this.#stopped.signal).catch(() => {});
    }
  }

  async #tryOnce(leaseMs: number): Promise<void> {
    if (this.#leading && this.#held !== undefined) {
      const started = this.#clock.now();
      await this.#write('renew', this.#held, leaseMs);
      this.#renewed(started, leaseMs);
      return;
    }
    const lease = await this.#timed(() => this.#api.read());
    const now = this.#clock.now();
    const step = electionStep(this.#seen, lease === undefined ? undefined : recordOf(lease), this.#o.identity, now, this.#o.leaseMs ?? 2000, this.#maxLeaseMs());
    this.#seen = step.seen;
    if (step.action === 'follow') {
      this.#setLeading(false);
      const holder = lease?.spec?.holderIdentity ?? '';
      if (holder !== '' && holder !== this.#o.identity) this.#o.onOtherHolder?.(holder);
      return;
    }
    const started = this.#clock.now();
    await this.#write(step.action, lease, leaseMs);
    this.#renewed(started, leaseMs);
    this.#setLeading(true);
  }

  #maxLeaseMs(): number {
    return Math.max(this.#o.leaseMs ?? 2000, this.#o.maxLeaseMs ?? DEFAULT_MAX_LEASE_MS);
  }

  /** The lease to state in our next write (stretchedLeaseMs); a change is logged. */
  #leaseToWrite(leaseMs: number): number {
    const now = this.#clock.now();
    while ((this.#latencies[0]?.at ?? now) < now - (this.#o.latencyMemoryMs ?? LATENCY_MEMORY_MS)) this.#latencies.shift();
    const slowest = Math.max(0, ...this.#latencies.map((l) => l.ms));
    const next = stretchedLeaseMs(leaseMs, slowest, this.#maxLeaseMs());
    const before = this.#writtenLeaseMs === 0 ? leaseMs : this.#writtenLeaseMs;
    if (next !== before && this.#leading) {
      this.#o.logger.info({ leaseMs: next, slowestCallMs: slowest }, next > leaseMs
        ? 'the apiserver answers slowly: lease stretched (a failover takes up to this long)'
        : 'the apiserver answers quickly again: lease back to its configured length');
    }
    return next;
  }

  /** Runs one apiserver call and keeps how long it took, failed or not. */
  async #timed<T>(call: () => Promise<T>): Promise<T> {
    const started = this.#clock.now();
    try {
      return await call();
    } finally {
      const at = this.#clock.now();
      this.#latencies.push({ at, ms: at - started });
      if (this.#latencies.length > 1000) this.#latencies.shift();
    }
  }

  /**
   * A write that started at `started`, stating a lease of `writtenMs`, succeeded: the deadline
   * runs from there (the watchdog stands down at its end), scaled with the lease written.
   */
  #renewed(started: number, writtenMs: number): void {
    this.#lastRenew = Math.max(this.#lastRenew, started);
    this.#writtenLeaseMs = writtenMs;
    this.#arm((this.#o.renewDeadlineMs ?? 1500) * writtenMs / (this.#o.leaseMs ?? 2000));
  }

  /**
   * The watchdog: stands down `deadline` ms after #lastRenew unless a renewal came first. A
   * timer may fire a millisecond before the wall clock says it is due: it then waits again
   * (it once returned, and a holder whose renewal hung never stood down).
   */
  #arm(deadline: number): void {
    if (this.#watchdog !== undefined) this.#clock.clearTimeout(this.#watchdog);
    this.#watchdog = this.#clock.setTimeout(() => {
      this.#watchdog = undefined;
      if (!this.#leading) return;
      if (this.#clock.now() - this.#lastRenew < deadline) {
        this.#arm(deadline);
        return;
      }
      this.#o.logger.warn('could not renew the lease in time; standing down');
      this.#held = undefined; // a renewal still in flight does not make us active again: the next attempt reads first
      this.#setLeading(false);
    }, Math.max(1, this.#lastRenew + deadline - this.#clock.now()));
  }

  /** Writes the Lease (`lease`: as read, or as our last write returned it) and keeps what came back while we hold it. */
  async #write(action: ElectionAction | 'release', lease: V1Lease | undefined, leaseMs = 2000): Promise<void> {
    const now = new Date(this.#clock.now());
    const prior = lease === undefined ? undefined : recordOf(lease);
    const spec = {
      holderIdentity: action === 'release' ? '' : this.#o.identity,
      leaseDurationSeconds: wholeSeconds(leaseMs) / 1000,
      renewTime: micro(now) as unknown as Date,
      ...(action === 'create' || action === 'takeover' ? { acquireTime: micro(now) as unknown as Date, leaseTransitions: (prior?.transitions ?? -1) + 1 } : {}),
    };
    this.#held = undefined;
    if (action === 'create' || lease === undefined) {
      if (action === 'release') return;
      this.#held = await this.#timed(() => this.#api.create({ metadata: { name: this.#o.name, namespace: this.#o.namespace }, spec }));
      return;
    }
    // replace with the resourceVersion we read (or wrote): a concurrent writer makes this a 409, not a split brain
    const written = await this.#timed(() => this.#api.replace({ ...lease, spec: { ...lease.spec, ...spec } }));
    if (action !== 'release') this.#held = written;
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#o.logger.info({ identity: this.#o.identity }, leading ? 'became the active gateway' : 'stood down');
    if (leading) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }
}
