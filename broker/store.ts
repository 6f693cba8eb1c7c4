import type { CallOptions } from '@grpc/grpc-js';
import type { Etcd3, ICompare, IKeyValue, IRequestOp } from 'etcd3';
import {
  Backoff, ErrorCodes, IsthmusError, cidrsOverlap, findOverlap, formatCidr, isIsthmusError, messageOf, parseCidr, sleep, subnets,
  systemClock, type Clock, type Logger,
} from '../core/index.ts';
import {
  GLOBAL_CIDR_DIR, GLOBAL_POOL_KEY, START_MARKER_KEY, clusterKey, clusterRecordsPrefix, endpointKey, exportKey, globalCidrKey, identityKey, policyKey, policyStatusKey, kindPrefix, prefixEnd,
} from './keys.ts';
import type { Cluster, Endpoint, Export, IdentitySet, Policy, PolicyStatusRecord } from '../core/broker-api/types.ts';

/**
 * Every write the broker makes to etcd, each one transaction that checks what it
 * relies on (so replicas sharing one etcd never race), retried across etcd member
 * failures and leader elections for up to `retryForMs`. Callers validate and
 * authorize first; the store checks cross-record rules (overlap, allocation,
 * registration).
 */
export interface StoreOptions {
  /** Global addressing: the pool clusters get their global CIDR from (e.g. 242.0.0.0/8). */
  globalCidrPool?: string;
  /** Prefix length of each cluster's global CIDR (default 16). */
  globalCidrPrefix?: number;
  /** How long to retry an etcd operation through member failures (default 15 000 ms). */
  retryForMs?: number;
  /**
   * Largest etcd response the client takes, and the largest record: range pages hold at
   * most max/record keys so that no page goes over (default: 2 000 keys per page).
   */
  pageBytes?: { max: number; record: number };
  /** Value bytes deleted in one revision when a cluster is removed (default 2 MiB). */
  deleteBatchBytes?: number;
  /** Deadline of one etcd request attempt (default 2 000 ms). */
  attemptTimeoutMs?: number;
  logger: Logger;
  clock?: Clock;
}

const CAS_ATTEMPTS = 50;
/** A cluster's records are deleted at most this many keys / value bytes per revision. */
const DELETE_BATCH_KEYS = 64;

/** backend_config fields that name a cable's identity: no two clusters may publish the same value. */
/**
 * gRPC options of every etcd client of the broker: pinged while a call is open (etcd allows
 * one ping per 5 s), so a connection that died without a word (etcd's pod gone, a NAT entry
 * lost) fails its calls and breaks the hub's watch within 15 s, and the next use reconnects.
 */
export const ETCD_KEEPALIVE = { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 } as const;

export const IDENTITY_FIELDS: readonly string[] = ['public-key', 'cert-cn'];

/** The pool of global CIDRs when global addressing is on and no pool is given. */
export const DEFAULT_GLOBAL_CIDR_POOL = '242.0.0.0/8';

function b(s: string): Buffer {
  return Buffer.from(s);
}

function rev(s: string | undefined): number {
  return Number(s ?? 0);
}

/** etcd errors that say nothing about the request itself: try again (maybe on another member). */
export function isTransientEtcdError(err: unknown): boolean {
  if (isIsthmusError(err)) return false;
  const name = err instanceof Error ? err.constructor.name : '';
  if (name === 'ClientClosedError') return false;
  const msg = messageOf(err);
  if (/compacted|future rev|requested lease not found|lease not found|duplicate key|too many operations|request is too large/i.test(msg)) return false;
  return /Unavailable|DeadlineExceeded|Unknown|Internal|Cancelled|Aborted|ClientRuntime|BrokenCircuit|GRPCGeneric/.test(name) ||
    /no leader|leader changed|timed out|timeout|unavailable|connect|ECONNREFUSED|ECONNRESET|connection closed|not ready|stopped|No connection|Circuit|too many requests/i.test(msg);
}

export class BrokerStore {
  readonly #etcd: Etcd3;
  readonly #pool: string | undefined;
  readonly #prefix: number;
  readonly #retryForMs: number;
  readonly #attemptMs: number;
  readonly #deleteBatchBytes: number;
  readonly #pageKeys: number;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #closed = false;

  constructor(etcd: Etcd3, options: StoreOptions) {
    this.#etcd = etcd;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#retryForMs = options.retryForMs ?? 15_000;
    this.#attemptMs = options.attemptTimeoutMs ?? 2_000;
    this.#deleteBatchBytes = options.deleteBatchBytes ?? 2 * 1024 * 1024;
    const pb = options.pageBytes;
    this.#pageKeys = pb === undefined ? 2000 : Math.max(1, Math.min(2000, Math.floor(pb.max / (pb.record + 1024))));
    this.#prefix = options.globalCidrPrefix ?? 16;
    if (options.globalCidrPool !== undefined) {
      const pool = parseCidr(options.globalCidrPool);
      subnets(pool, this.#prefix); // throws INVALID_ARGUMENT when the prefix does not fit the pool
      this.#pool = formatCidr(pool);
    }
  }

  /** Stops retrying: pending and later operations fail at once (the broker is stopping). */
  close(): void {
    this.#closed = true;
  }

  /** True when etcd answers one read within `timeoutMs` (no retries: for readiness probes). */
  async ping(timeoutMs: number): Promise<boolean> {
    try {
      await this.#etcd.kv.range({ key: b(GLOBAL_POOL_KEY), keys_only: true }, { deadline: Date.now() + timeoutMs });
      return true;
    } catch {
      return false;
    }
  }

  get globalCidrPool(): string | undefined {
    return this.#pool;
  }

  /** Runs `op`, retrying transient etcd failures with backoff for up to retryForMs. */
  async retry<T>(what: string, op: (options: CallOptions) => Promise<T>): Promise<T> {
    const deadline = this.#clock.now() + this.#retryForMs;
    const backoff = new Backoff({ baseMs: 50, maxMs: 1000 });
    for (;;) {
      try {
        // a deadline per attempt: a proposal stranded on a dead leader would otherwise wait
        // out etcd's own request timeout (5 s + 2 election timeouts)
        return await op({ deadline: Date.now() + this.#attemptMs });
      } catch (err) {
        if (!isTransientEtcdError(err)) throw err;
        if (this.#closed) throw new IsthmusError(ErrorCodes.UNAVAILABLE, `the broker is shutting down (${what} not done): retry against another replica`, { cause: err });
        if (this.#clock.now() >= deadline) {
          // the etcd error stays in the broker's log: callers are members, not operators
          this.#logger.warn({ what, err: messageOf(err) }, 'etcd did not answer');
          throw new IsthmusError(ErrorCodes.UNAVAILABLE, `the broker's store did not answer ${what} for ${this.#retryForMs / 1000}s: retry later (operators: check that a quorum of etcd members is up)`, { cause: err });
        }
        this.#logger.debug({ what, err: messageOf(err) }, 'etcd operation failed; retrying');
        await sleep(this.#clock, backoff.next());
      }
    }
  }

  /**
   * Records the global CIDR pool in etcd on first start, and refuses to start when
   * another replica was started with a different pool (or none).
   */
  async init(): Promise<void> {
    const mine = this.#pool === undefined ? 'none' : `${this.#pool} /${this.#prefix}`;
    await this.retry('init', async (o) => {
      const res = await this.#etcd.kv.txn({
        compare: [{ key: b(GLOBAL_POOL_KEY), target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: b(GLOBAL_POOL_KEY), value: b(mine) } }],
        failure: [{ request_range: { key: b(GLOBAL_POOL_KEY) } }],
      }, o);
      if (res.succeeded) return;
      const stored = res.responses[0]?.response_range.kvs[0]?.value.toString() ?? '';
      if (stored !== mine) {
        const [pool, prefix] = stored.split(' ');
        throw new IsthmusError(ErrorCodes.INVALID_CONFIG, mine === 'none'
          ? `this clusterset uses global addressing from ${pool ?? ''} (${prefix ?? ''} per cluster); start every broker replica with --global-cidr-pool ${pool ?? ''} --global-cidr-prefix ${(prefix ?? '').slice(1)}`
          : `this clusterset was started ${stored === 'none' ? 'without global addressing' : `with global addressing from ${pool ?? ''} (${prefix ?? ''} per cluster)`}; start every broker replica with the same settings`);
      }
    });
  }

  /** Writes the start marker (see KEYS.md) and returns its revision. */
  async writeStartMarker(): Promise<number> {
    const value = b(JSON.stringify({ pid: process.pid, at: new Date(this.#clock.now()).toISOString() }));
    const res = await this.retry('start marker', (o) => this.#etcd.kv.put({ key: b(START_MARKER_KEY), value }, o));
    return rev(res.header.revision);
  }

  /** The current etcd revision. */
  async currentRevision(): Promise<number> {
    const res = await this.retry('revision', (o) => this.#etcd.kv.range({ key: b(GLOBAL_POOL_KEY), keys_only: true }, o));
    return rev(res.header.revision);
  }

  /**
   * Every key under `prefix` at one revision (the current one when 0), fetched in
   * pages of `pageSize`. Throws COMPACTED when that revision was compacted.
   */
  async range(prefix: string, revision = 0, pageSize = this.#pageKeys): Promise<{ revision: number; kvs: IKeyValue[] }> {
    const end = prefixEnd(prefix);
    const kvs: IKeyValue[] = [];
    let size = pageSize;
    let at = revision;
    let from = b(prefix);
    for (;;) {
      const res = await this.retry('range', async (o) => {
        for (;;) {
          try {
            return await this.#etcd.kv.range({ key: from, range_end: end, limit: size, revision: at }, o);
          } catch (err) {
            if (/compacted/i.test(messageOf(err))) throw new IsthmusError(ErrorCodes.COMPACTED, `revision ${at} was compacted`, { cause: err, context: { reason: 'compacted' } });
            // a page of large records above the client's receive limit: smaller pages
            if (size > 1 && /larger than max/i.test(messageOf(err))) size = Math.ceil(size / 4);
            else throw err;
          }
        }
      });
      if (at === 0) at = rev(res.header.revision);
      kvs.push(...res.kvs);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) return { revision: at, kvs };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async #clusters(): Promise<{ revision: number; clusters: Map<string, { cluster: Cluster; modRevision: number }> }> {
    const { revision, kvs } = await this.range(kindPrefix('CLUSTER'));
    const clusters = new Map<string, { cluster: Cluster; modRevision: number }>();
    for (const kv of kvs) {
      const cluster = JSON.parse(kv.value.toString()) as Cluster;
      clusters.set(cluster.cluster_id, { cluster, modRevision: rev(kv.mod_revision) });
    }
    return { revision, clusters };
  }

  /** True when the cluster is registered. */
  async clusterExists(clusterId: string): Promise<boolean> {
    const res = await this.retry('get cluster', (o) => this.#etcd.kv.range({ key: b(clusterKey(clusterId)), count_only: true }, o));
    return Number(res.count) > 0;
  }

  async #requireCluster(clusterId: string): Promise<void> {
    if (!(await this.clusterExists(clusterId))) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${clusterId} is not registered: register it (RegisterCluster) before publishing its records`);
    }
  }

  /**
   * Creates or updates a cluster; one registered without labels keeps the labels it has.
   * Without global addressing, refuses CIDRs that overlap
   * another cluster's; with it, allocates (or keeps) the cluster's global CIDR. Atomic:
   * the transaction fails and is retried if any cluster changed since it was read.
   */
  async registerCluster(input: Cluster): Promise<{ cluster: Cluster; revision: number }> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { revision, clusters } = await this.#clusters();
      const existing = clusters.get(input.cluster_id);
      // a registration without labels keeps the cluster's (the gateway registers CIDRs, the policy
      // controller publishes the labels, always with at least cluster.clusterset.k8s.io)
      const labels = Object.keys(input.labels).length === 0 && existing !== undefined ? existing.cluster.labels : input.labels;
      const cluster: Cluster = { ...input, labels, global_cidr: '' };
      const ops: IRequestOp[] = [];
      const compare: ICompare[] = [
        // no cluster was created or changed since we read them
        { key: b(kindPrefix('CLUSTER')), range_end: prefixEnd(kindPrefix('CLUSTER')), target: 'Mod', result: 'Less', mod_revision: revision + 1 },
      ];
      if (this.#pool === undefined) {
        const mine = [...cluster.pod_cidrs, ...cluster.service_cidrs];
        for (const [id, other] of clusters) {
          if (id === cluster.cluster_id) continue;
          const hit = findOverlap(mine, [...other.cluster.pod_cidrs, ...other.cluster.service_cidrs]);
          if (hit !== undefined) {
            throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${cluster.cluster_id}: CIDR ${hit[0]} overlaps ${hit[1]} of cluster ${id}; choose non-overlapping CIDRs or run the clusterset with global addressing`, {
              context: { otherCluster: id, cidr: hit[0], otherCidr: hit[1] },
            });
          }
        }
      } else {
        const allocations = await this.range(GLOBAL_CIDR_DIR, revision);
        const taken = new Map(allocations.kvs.map((kv) => [kv.key.toString().slice(GLOBAL_CIDR_DIR.length).replace('_', '/'), kv.value.toString()]));
        const kept = existing?.cluster.global_cidr;
        if (kept !== undefined && kept !== '' && taken.get(kept) === cluster.cluster_id) {
          cluster.global_cidr = kept;
        } else {
          const free = this.#firstFree(taken);
          if (free === undefined) {
            throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the global CIDR pool ${this.#pool} has no free /${this.#prefix} left (${taken.size} allocated): remove unused clusters or use a larger pool`);
          }
          cluster.global_cidr = free;
          compare.push({ key: b(globalCidrKey(free)), target: 'Create', result: 'Equal', create_revision: 0 });
          ops.push({ request_put: { key: b(globalCidrKey(free)), value: b(cluster.cluster_id) } });
        }
      }
      const value = JSON.stringify(cluster);
      if (existing !== undefined && JSON.stringify(existing.cluster) === value) return { cluster, revision: existing.modRevision };
      ops.push({ request_put: { key: b(clusterKey(cluster.cluster_id)), value: b(value) } });
      const res = await this.retry('register cluster', (o) => this.#etcd.kv.txn({ compare, success: ops }, o));
      if (res.succeeded) {
        this.#logger.info({ clusterId: cluster.cluster_id, globalCidr: cluster.global_cidr || undefined }, existing === undefined ? 'cluster registered' : 'cluster updated');
        return { cluster, revision: rev(res.header.revision) };
      }
      // another registration won the race: read again and re-check
    }
    throw new IsthmusError(ErrorCodes.UNAVAILABLE, `registering ${input.cluster_id} kept conflicting with concurrent registrations; try again`);
  }

  #firstFree(taken: ReadonlyMap<string, string>): string | undefined {
    if (this.#pool === undefined) return undefined;
    const used = [...taken.keys()].map(parseCidr);
    for (const s of subnets(parseCidr(this.#pool), this.#prefix)) {
      if (!used.some((u) => cidrsOverlap(u, s))) return formatCidr(s);
    }
    return undefined;
  }

  /**
   * Deletes a cluster and its global CIDR allocation in one transaction (from then on
   * none of its records can be written: every write checks the cluster exists), then
   * its endpoints and exports in batches of at most DELETE_BATCH_KEYS keys and
   * `deleteBatchBytes` bytes, so no revision — and no watch message — grows with the
   * cluster's size. Only records older than the removal are deleted (a cluster that
   * registers again at once keeps its new ones). Idempotent: calling it again after an
   * interruption finishes the sweep. The revision returned is the last deletion's.
   */
  async unregisterCluster(clusterId: string): Promise<{ revision: number; existed: boolean }> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const res0 = await this.retry('get cluster', (o) => this.#etcd.kv.range({ key: b(clusterKey(clusterId)) }, o));
      const kv = res0.kvs[0];
      const ops: IRequestOp[] = [{ request_delete_range: { key: b(clusterKey(clusterId)) } }];
      const compare: ICompare[] = [{ key: b(clusterKey(clusterId)), target: 'Mod', result: 'Equal', mod_revision: kv?.mod_revision ?? 0 }];
      const global = kv === undefined ? '' : (JSON.parse(kv.value.toString()) as Cluster).global_cidr;
      if (global !== '') {
        compare.push({ key: b(globalCidrKey(global)), target: 'Value', result: 'Equal', value: b(clusterId) });
        ops.push({ request_delete_range: { key: b(globalCidrKey(global)) } });
      }
      const res = await this.retry('unregister cluster', (o) => this.#etcd.kv.txn({ compare, success: ops }, o));
      if (!res.succeeded) continue;
      const removedAt = rev(res.header.revision);
      let last = removedAt;
      for (const kind of ['EXPORT', 'ENDPOINT', 'POLICY', 'IDENTITY', 'POLICY_STATUS'] as const) last = Math.max(last, await this.#sweep(clusterRecordsPrefix(kind, clusterId), removedAt));
      if (kv !== undefined) this.#logger.info({ clusterId, released: global || undefined }, 'cluster removed');
      return { revision: last, existed: kv !== undefined };
    }
    throw new IsthmusError(ErrorCodes.UNAVAILABLE, `removing ${clusterId} kept conflicting with concurrent changes; try again`);
  }

  /** Deletes the keys under `prefix` last modified before `before`, in bounded batches; returns the last revision. */
  async #sweep(prefix: string, before: number): Promise<number> {
    const end = prefixEnd(prefix);
    let from = b(prefix);
    let last = 0;
    for (;;) {
      const page = await this.retry('range', (o) => this.#etcd.kv.range({ key: from, range_end: end, limit: DELETE_BATCH_KEYS }, o));
      const batch: IKeyValue[] = [];
      let bytes = 0;
      for (const kv of page.kvs) {
        if (rev(kv.mod_revision) >= before) continue;
        if (batch.length > 0 && bytes + kv.value.length > this.#deleteBatchBytes) break;
        batch.push(kv);
        bytes += kv.value.length;
      }
      const lastRead = batch.length > 0 ? batch[batch.length - 1] : page.kvs[page.kvs.length - 1];
      if (batch.length > 0) {
        const res = await this.retry('delete records', (o) => this.#etcd.kv.txn({
          compare: batch.map((kv) => ({ key: kv.key, target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision })),
          success: batch.map((kv) => ({ request_delete_range: { key: kv.key } })),
        }, o));
        if (!res.succeeded) continue; // one changed meanwhile: read this page again
        last = rev(res.header.revision);
        for (const kv of batch) await this.#revoke(kv.lease);
      }
      if (lastRead === undefined || (!page.more && lastRead === page.kvs[page.kvs.length - 1])) return last;
      from = Buffer.concat([lastRead.key, Buffer.from([0])]);
    }
  }

  async #revoke(lease: string): Promise<void> {
    if (lease === '0' || lease === '') return;
    try {
      await this.retry('revoke lease', (o) => this.#etcd.leaseClient.leaseRevoke({ ID: lease }, o));
    } catch (err) {
      this.#logger.debug({ err: messageOf(err) }, 'lease already gone');
    }
  }

  /**
   * Puts the endpoint under a new lease of `ttl` seconds; the previous lease of that key
   * is revoked. Refuses (ALREADY_EXISTS) a cable identity — WireGuard `public-key`,
   * IPsec `cert-cn` — that an endpoint of another cluster holds: the check and the
   * write are one transaction over every endpoint, so two replicas cannot both let one
   * through. `maxEndpoints` bounds the cluster's endpoints (and so its leases).
   */
  async publishEndpoint(endpoint: Endpoint, ttl: number, maxEndpoints = Number.POSITIVE_INFINITY): Promise<{ leaseId: string; revision: number }> {
    await this.#requireCluster(endpoint.cluster_id);
    const key = endpointKey(endpoint.cluster_id, endpoint.hostname);
    const grant = await this.retry('grant lease', (o) => this.#etcd.leaseClient.leaseGrant({ TTL: ttl }, o));
    try {
      for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        const all = await this.range(kindPrefix('ENDPOINT'));
        let mine = 0;
        let before: IKeyValue | undefined;
        for (const kv of all.kvs) {
          if (kv.key.toString() === key) {
            before = kv;
            continue;
          }
          const other = JSON.parse(kv.value.toString()) as Endpoint;
          if (other.cluster_id === endpoint.cluster_id) {
            mine++;
            continue;
          }
          for (const field of IDENTITY_FIELDS) {
            const v = endpoint.backend_config[field];
            if (v !== undefined && v !== '' && other.backend_config[field] === v) {
              throw new IsthmusError(ErrorCodes.ALREADY_EXISTS, `backend_config ${field} ${JSON.stringify(v)} is already published by cluster ${other.cluster_id}: every gateway needs its own key/identity (generate a new one)`, {
                context: { otherCluster: other.cluster_id, field },
              });
            }
          }
        }
        if (mine + 1 > maxEndpoints) {
          throw new IsthmusError(ErrorCodes.RESOURCE_EXHAUSTED, `cluster ${endpoint.cluster_id} already has ${mine} endpoints; the limit maxEndpoints is ${maxEndpoints}: withdraw unused ones`, {
            context: { limit: 'maxEndpoints' },
          });
        }
        const res = await this.retry('publish endpoint', (o) =>
          this.#etcd.kv.txn({
            compare: [
              { key: b(clusterKey(endpoint.cluster_id)), target: 'Create', result: 'Greater', create_revision: 0 },
              { key: b(kindPrefix('ENDPOINT')), range_end: prefixEnd(kindPrefix('ENDPOINT')), target: 'Mod', result: 'Less', mod_revision: all.revision + 1 },
            ],
            success: [{ request_put: { key: b(key), value: b(JSON.stringify(endpoint)), lease: grant.ID } }],
          }, o),
        );
        if (res.succeeded) {
          const old = before?.lease;
          if (old !== undefined && old !== grant.ID) await this.#revoke(old);
          return { leaseId: grant.ID, revision: rev(res.header.revision) };
        }
        await this.#requireCluster(endpoint.cluster_id); // removed meanwhile, or another endpoint changed: read again
      }
      throw new IsthmusError(ErrorCodes.UNAVAILABLE, `publishing ${key} kept conflicting with concurrent changes; try again`);
    } catch (err) {
      await this.#revoke(grant.ID);
      throw err;
    }
  }

  /** Keeps an endpoint's lease alive; NOT_FOUND when the endpoint or its lease is gone. */
  async renewEndpoint(clusterId: string, hostname: string, leaseId: string): Promise<number> {
    const res = await this.retry('get endpoint', (o) => this.#etcd.kv.range({ key: b(endpointKey(clusterId, hostname)) }, o));
    const kv = res.kvs[0];
    if (kv === undefined || kv.lease !== leaseId) {
      throw new IsthmusError(ErrorCodes.NOT_FOUND, `endpoint ${clusterId}/${hostname} with lease ${leaseId} is gone (its lease expired or it was replaced): publish it again`);
    }
    const ttl = await this.retry('keep lease alive', (o) => this.#keepAliveOnce(leaseId, o));
    if (ttl <= 0) throw new IsthmusError(ErrorCodes.NOT_FOUND, `the lease of endpoint ${clusterId}/${hostname} expired: publish it again`);
    return ttl;
  }

  async #keepAliveOnce(leaseId: string, options: CallOptions): Promise<number> {
    const stream = await this.#etcd.leaseClient.leaseKeepAlive(options);
    try {
      return await new Promise<number>((resolve, reject) => {
        stream.on('data', (r: { TTL: string }) => resolve(Number(r.TTL)));
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('lease keep-alive stream ended')));
        stream.write({ ID: leaseId });
      });
    } finally {
      stream.end();
      stream.cancel?.();
    }
  }

  async withdrawEndpoint(clusterId: string, hostname: string): Promise<{ revision: number; existed: boolean }> {
    const key = endpointKey(clusterId, hostname);
    const res = await this.retry('withdraw endpoint', (o) => this.#etcd.kv.deleteRange({ key: b(key), prev_kv: true }, o));
    const prev = res.prev_kvs[0];
    if (prev !== undefined) await this.#revoke(prev.lease);
    return { revision: rev(res.header.revision), existed: prev !== undefined };
  }

  /** Puts an export; a no-op (no new revision) when it is unchanged. */
  async publishExport(x: Export): Promise<{ revision: number }> {
    return this.#putOwned(exportKey(x.cluster_id, x.namespace, x.name), x.cluster_id, JSON.stringify(x), 'exports');
  }

  /** Puts a policy; a no-op (no new revision) when it is unchanged. */
  async publishPolicy(p: Policy): Promise<{ revision: number }> {
    return this.#putOwned(policyKey(p.cluster_id, p.namespace, p.name), p.cluster_id, JSON.stringify(p), 'policies');
  }

  /** Puts a policy status of the receiving cluster; a no-op (no new revision) when it is unchanged. */
  async publishPolicyStatus(s: PolicyStatusRecord): Promise<{ revision: number }> {
    return this.#putOwned(policyStatusKey(s.cluster_id, s.policy_cluster, s.namespace, s.name), s.cluster_id, JSON.stringify(s), 'policy statuses');
  }

  /**
   * Puts an identity set, only while the cluster record is still the one at
   * `clusterRevision` (whose pod CIDRs the set was checked against).
   */
  async publishIdentities(set: IdentitySet, clusterRevision: number): Promise<{ revision: number }> {
    return this.#putOwned(identityKey(set.cluster_id, set.namespace), set.cluster_id, JSON.stringify(set), 'identities', clusterRevision);
  }

  /**
   * Puts a record of `clusterId` while its cluster record exists (and, when
   * `clusterRevision` is given, is unchanged since); a no-op when the value is the same.
   */
  async #putOwned(key: string, clusterId: string, json: string, what: string, clusterRevision?: number): Promise<{ revision: number }> {
    const value = b(json);
    const cluster: ICompare = clusterRevision === undefined
      ? { key: b(clusterKey(clusterId)), target: 'Create', result: 'Greater', create_revision: 0 }
      : { key: b(clusterKey(clusterId)), target: 'Mod', result: 'Equal', mod_revision: clusterRevision };
    const res = await this.retry(`publish ${what}`, (o) =>
      this.#etcd.kv.txn({
        compare: [cluster],
        success: [{ request_txn: {
          compare: [{ key: b(key), target: 'Value', result: 'Equal', value }],
          success: [{ request_range: { key: b(key), keys_only: true } }],
          failure: [{ request_put: { key: b(key), value } }],
        } }],
      }, o),
    );
    if (!res.succeeded) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, clusterRevision === undefined
        ? `cluster ${clusterId} is not registered: register it (RegisterCluster) before publishing its ${what}`
        : `cluster ${clusterId} changed or is gone while its ${what} were checked: publish them again`);
    }
    const inner = res.responses[0]?.response_txn;
    const unchanged = inner?.succeeded === true ? inner.responses[0]?.response_range.kvs[0]?.mod_revision : undefined;
    return { revision: unchanged === undefined ? rev(res.header.revision) : rev(unchanged) };
  }

  /** Deletes one record of a cluster (policy or identity set, by its etcd key). */
  async withdrawRecord(key: string, what: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.retry(`withdraw ${what}`, (o) => this.#etcd.kv.deleteRange({ key: b(key) }, o));
    return { revision: rev(res.header.revision), existed: Number(res.deleted) > 0 };
  }

  async withdrawExport(clusterId: string, namespace: string, name: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.retry('withdraw export', (o) => this.#etcd.kv.deleteRange({ key: b(exportKey(clusterId, namespace, name)) }, o));
    return { revision: rev(res.header.revision), existed: Number(res.deleted) > 0 };
  }
}
