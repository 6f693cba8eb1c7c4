import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { systemClock, sleep, messageOf, type Clock, type Logger } from '../core/index.ts';

/**
 * Active/passive by a Kubernetes Lease, the way client-go's leader election does it:
 * the holder renews `renewTime` every `retryMs`; a candidate takes the Lease over when
 * it has seen no change to it for `leaseMs` by its own clock (never trusting the
 * holder's clock); a holder that cannot renew within `renewDeadlineMs` stands down
 * before anyone may take over (renewDeadline < lease duration).
 */
export interface LeaseRecord {
  readonly holder: string;
  readonly renewTime: string;
  readonly transitions: number;
}

export type ElectionAction = 'create' | 'renew' | 'takeover' | 'follow';

export interface Observation {
  /** The record as last seen, and when (local ms) it last changed. */
  readonly record: LeaseRecord | undefined;
  readonly changedAt: number;
}

/** Pure: what to do with the Lease as it is now. */
export function electionStep(seen: Observation, current: LeaseRecord | undefined, me: string, now: number, leaseMs: number): { action: ElectionAction; seen: Observation } {
  if (current === undefined) return { action: 'create', seen: { record: undefined, changedAt: now } };
  const changed = seen.record === undefined || seen.record.holder !== current.holder || seen.record.renewTime !== current.renewTime;
  const next: Observation = changed ? { record: current, changedAt: now } : seen;
  if (current.holder === me) return { action: 'renew', seen: next };
  if (current.holder === '' || now - next.changedAt >= leaseMs) return { action: 'takeover', seen: next };
  return { action: 'follow', seen: next };
}

export interface LeaderOptions {
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
  readonly clock?: Clock;
  readonly logger: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

const micro = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

function recordOf(l: V1Lease): LeaseRecord {
  const rt = l.spec?.renewTime as unknown;
  return {
    holder: l.spec?.holderIdentity ?? '',
    renewTime: rt instanceof Date ? rt.toISOString() : String(rt ?? ''),
    transitions: l.spec?.leaseTransitions ?? 0,
  };
}

export class LeaderElector {
  readonly #o: LeaderOptions;
  readonly #api: CoordinationV1Api;
  readonly #clock: Clock;
  #seen: Observation = { record: undefined, changedAt: 0 };
  #leading = false;
  #lastRenew = 0;
  #stopped = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: LeaderOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#clock = options.clock ?? systemClock;
  }

  get leading(): boolean {
    return this.#leading;
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
    if (!release) {
      this.#leading = false;
      return;
    }
    if (this.#leading) {
      await this.#write('release').catch((e: unknown) => this.#o.logger.warn({ err: messageOf(e) }, 'could not release the lease'));
    }
    this.#setLeading(false);
  }

  async #run(): Promise<void> {
    const leaseMs = this.#o.leaseMs ?? 2000;
    const deadline = this.#o.renewDeadlineMs ?? 1500;
    const retry = this.#o.retryMs ?? 500;
    while (!this.#stopped.signal.aborted) {
      try {
        await this.#tryOnce(leaseMs);
      } catch (err) {
        this.#o.logger.debug({ err: messageOf(err) }, 'lease attempt failed');
      }
      if (this.#leading && this.#clock.now() - this.#lastRenew > deadline) {
        this.#o.logger.warn('could not renew the lease in time; standing down');
        this.#setLeading(false);
      }
      await sleep(this.#clock, retry, this.#stopped.signal).catch(() => {});
    }
  }

  async #tryOnce(leaseMs: number): Promise<void> {
    let lease: V1Lease | undefined;
    try {
      lease = await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
    const now = this.#clock.now();
    const step = electionStep(this.#seen, lease === undefined ? undefined : recordOf(lease), this.#o.identity, now, leaseMs);
    this.#seen = step.seen;
    if (step.action === 'follow') {
      this.#setLeading(false);
      return;
    }
    await this.#write(step.action, lease, leaseMs);
    this.#lastRenew = this.#clock.now();
    this.#setLeading(true);
  }

  async #write(action: ElectionAction | 'release', lease?: V1Lease, leaseMs = 2000): Promise<void> {
    const now = new Date(this.#clock.now());
    const prior = lease === undefined ? undefined : recordOf(lease);
    const spec = {
      holderIdentity: action === 'release' ? '' : this.#o.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(leaseMs / 1000)),
      renewTime: micro(now) as unknown as Date,
      ...(action === 'create' || action === 'takeover' ? { acquireTime: micro(now) as unknown as Date, leaseTransitions: (prior?.transitions ?? -1) + 1 } : {}),
    };
    if (action === 'create') {
      await this.#api.createNamespacedLease({ namespace: this.#o.namespace, body: { metadata: { name: this.#o.name, namespace: this.#o.namespace }, spec } });
      return;
    }
    const current = lease ?? (await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace }));
    // replace with the resourceVersion we read: a concurrent writer makes this a 409, not a split brain
    await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: { ...current, spec: { ...current.spec, ...spec } } });
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#o.logger.info({ identity: this.#o.identity }, leading ? 'became the active gateway' : 'stood down');
    if (leading) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }
}
