import { ErrorCodes, IsthmusError, systemClock, type Clock } from '../core/index.ts';

/**
 * Per-cluster limits: what one member — compromised or misconfigured — may hold at
 * the broker, so it cannot fill etcd (NOSPACE stops writes for everyone), freeze the
 * watch with one huge revision, or take the broker's memory. Every refusal is
 * RESOURCE_EXHAUSTED with context.limit naming the limit, and a message saying which
 * and how to get under it.
 *
 * Record and byte usage comes from the broker's cache of etcd (`usage`), so a replica
 * that lags by a few revisions may let one write too many through: the per-record size
 * limit bounds that overshoot. The write rate is a token bucket per identity, kept by
 * each replica; watch streams are counted per identity by each replica.
 */
export interface QuotaLimits {
  /** Exports, endpoints, policies and identity sets of one cluster (default 5 000). */
  maxRecords: number;
  /** Bytes of one cluster's records as stored (default 32 MiB). */
  maxBytes: number;
  /** Endpoints (each with its lease) of one cluster (default 16). */
  maxEndpoints: number;
  /** Bytes of one record as stored (default 256 KiB). */
  maxRecordBytes: number;
  /** Sustained writes per second of one identity (default 100). */
  writesPerSecond: number;
  /** Writes one identity may make in a burst (default 1 000). */
  writeBurst: number;
  /** Open Watch streams of one identity on one replica (default 8). */
  maxWatches: number;
}

export const DEFAULT_QUOTAS: Readonly<QuotaLimits> = Object.freeze({
  maxRecords: 5_000,
  maxBytes: 32 * 1024 * 1024,
  maxEndpoints: 16,
  maxRecordBytes: 256 * 1024,
  writesPerSecond: 100,
  writeBurst: 1_000,
  maxWatches: 8,
});

/** Parses "a=1,b=2.5" where every name is a key of `known` (a CLI option such as --quotas); INVALID_CONFIG naming what is wrong. */
export function parseNamedNumbers<K extends string>(text: string, known: Readonly<Record<K, number>>, flag: string): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const [k, v] = part.split('=');
    if (k === undefined || !(k in known) || v === undefined || !/^\d+(\.\d+)?$/.test(v)) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `${flag}: ${JSON.stringify(part)} is not NAME=NUMBER with NAME one of ${Object.keys(known).join(', ')}`);
    }
    out[k as K] = Number(v);
  }
  return out;
}

/** Parses "maxRecords=100,writesPerSecond=50" (the CLI's --quotas). */
export function parseQuotas(text: string): Partial<QuotaLimits> {
  return quotaLimits(parseNamedNumbers(text, DEFAULT_QUOTAS, '--quotas'));
}

/** The limits with defaults filled in; INVALID_CONFIG for a value that is not a positive number. */
export function quotaLimits(given: Partial<QuotaLimits> = {}): QuotaLimits {
  const out = { ...DEFAULT_QUOTAS, ...given };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `broker quota ${k} must be a positive number, got ${String(v)}`);
  }
  return out;
}

export interface Usage {
  records: number;
  bytes: number;
  endpoints: number;
}

export type LimitName = keyof QuotaLimits;

function exhausted(limit: LimitName, message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.RESOURCE_EXHAUSTED, message, { context: { limit, reason: `quota:${limit}` } });
}

export class Quotas {
  readonly limits: QuotaLimits;
  readonly #usage: (clusterId: string) => Usage;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #watches = new Map<string, number>();
  readonly #onRefuse: (who: string, limit: LimitName) => void;

  constructor(limits: QuotaLimits, usage: (clusterId: string) => Usage, options: { clock?: Clock; onRefuse?: (who: string, limit: LimitName) => void } = {}) {
    this.limits = limits;
    this.#usage = usage;
    this.#clock = options.clock ?? systemClock;
    this.#onRefuse = options.onRefuse ?? (() => undefined);
  }

  #refuse(who: string, limit: LimitName, message: string): never {
    this.#onRefuse(who, limit);
    throw exhausted(limit, message);
  }

  /** Takes one write from `who`'s bucket, or refuses (limit writesPerSecond). */
  takeWrite(who: string): void {
    const now = this.#clock.now();
    const b = this.#buckets.get(who) ?? { tokens: this.limits.writeBurst, at: now };
    b.tokens = Math.min(this.limits.writeBurst, b.tokens + ((now - b.at) / 1000) * this.limits.writesPerSecond);
    b.at = now;
    if (b.tokens < 1) {
      this.#buckets.set(who, b);
      this.#refuse(who, 'writesPerSecond', `${who} writes faster than ${this.limits.writesPerSecond}/s (burst ${this.limits.writeBurst}): slow down and retry in a second`);
    }
    b.tokens -= 1;
    this.#buckets.set(who, b);
    if (this.#buckets.size > 100_000) this.#buckets.clear();
  }

  /**
   * Refuses a record of `bytes` for `clusterId` that would take it over a limit.
   * `replaces` is the size of the record it overwrites (0 for a new one).
   */
  checkRecord(clusterId: string, kind: 'ENDPOINT' | 'EXPORT' | 'POLICY' | 'IDENTITY' | 'POLICY_STATUS', bytes: number, replaces: number | undefined): void {
    if (bytes > this.limits.maxRecordBytes) {
      this.#refuse(clusterId, 'maxRecordBytes', `this ${kind.toLowerCase()} record is ${bytes} bytes; the limit maxRecordBytes is ${this.limits.maxRecordBytes}: ${kind === 'IDENTITY' ? 'it holds too many pods for one namespace' : kind === 'POLICY' ? 'write a smaller policy' : kind === 'POLICY_STATUS' ? 'send a shorter message' : 'export fewer endpoints or annotations'}`);
    }
    const u = this.#usage(clusterId);
    const isNew = replaces === undefined;
    if (isNew && u.records + 1 > this.limits.maxRecords) {
      this.#refuse(clusterId, 'maxRecords', `cluster ${clusterId} holds ${u.records} records; the limit maxRecords is ${this.limits.maxRecords}: withdraw unused exports or policies`);
    }
    if (isNew && kind === 'ENDPOINT' && u.endpoints + 1 > this.limits.maxEndpoints) {
      this.#refuse(clusterId, 'maxEndpoints', `cluster ${clusterId} holds ${u.endpoints} endpoints; the limit maxEndpoints is ${this.limits.maxEndpoints}: withdraw unused ones`);
    }
    if (u.bytes - (replaces ?? 0) + bytes > this.limits.maxBytes) {
      this.#refuse(clusterId, 'maxBytes', `cluster ${clusterId} would hold ${u.bytes - (replaces ?? 0) + bytes} bytes of records; the limit maxBytes is ${this.limits.maxBytes}: withdraw unused exports or policies`);
    }
  }

  /** Counts one more Watch of `who`; returns its release (idempotent), or refuses (limit maxWatches). */
  openWatch(who: string): () => void {
    const n = this.#watches.get(who) ?? 0;
    if (n >= this.limits.maxWatches) this.#refuse(who, 'maxWatches', `${who} already has ${n} open watches on this broker; the limit maxWatches is ${this.limits.maxWatches}: close the ones it no longer reads`);
    this.#watches.set(who, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#watches.get(who) ?? 1) - 1;
      if (left <= 0) this.#watches.delete(who);
      else this.#watches.set(who, left);
    };
  }
}
