import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Client, credentials as grpcCredentials, status, type ClientReadableStream } from '@grpc/grpc-js';
import {
  Backoff, ClustersetRoles, ErrorCodes, IsthmusError, isIsthmusError, messageOf, silentLogger, sleep, systemClock, type BackoffOptions, type Clock, type Logger,
} from '../index.ts';
import { brokerTargets, formatBrokerAddress, parseBrokerAddresses } from './address.ts';
import { SERVICE_NAME, eventFromMessage, methods, toKinds, toRevision, type MethodName } from './proto.ts';
import { fromServiceError } from './status.ts';
import type { BrokerEvent, Cluster, Endpoint, Export, IdentitySet, Kind, Policy, PolicyStatusRecord } from './types.ts';

/**
 * The client every part uses to talk to the broker. Unary calls are retried through
 * broker outages (UNAVAILABLE, DEADLINE_EXCEEDED) with backoff for up to `retryForMs`;
 * any other status is final and comes back as an IsthmusError with the matching code.
 * Credentials are read again whenever the connection fails, so renewed certificates
 * are picked up without a restart. Given several broker addresses, it uses whichever
 * answers and moves to another when that one fails (brokerTargets, address.ts).
 */
/** An Error unless the server certificate's subject O= names the broker role. */
export function brokerRoleProblem(cert: Pick<PeerCertificate, 'subject'>): Error | undefined {
  const o = cert.subject?.O as string | string[] | undefined;
  const orgs = o === undefined ? [] : Array.isArray(o) ? o : [o];
  if (orgs.length === 1 && orgs[0] === ClustersetRoles.broker) return undefined;
  return new Error(`the server's certificate is not a broker's (O=${orgs.join(',') || 'none'}, expected ${ClustersetRoles.broker}): check --broker points at the broker`);
}

export interface TlsMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface BrokerClientOptions {
  /**
   * host:port of the broker (or of a load balancer in front of its replicas), or several:
   * a comma list or an array (every node address of its NodePort). Checked at construction
   * (INVALID_ARGUMENT).
   */
  address: string | readonly string[];
  credentials: () => TlsMaterial | Promise<TlsMaterial>;
  /** TLS name to check the broker certificate against when it differs from the (first) dialled host. */
  serverName?: string;
  logger?: Logger;
  clock?: Clock;
  backoff?: BackoffOptions;
  /** Deadline of one unary call attempt (default 10 000 ms). */
  callTimeoutMs?: number;
  /** How long a unary call is retried while the broker is unreachable (default 30 000 ms; 0: no retry). */
  retryForMs?: number;
}

export interface PublishEndpointResult {
  readonly leaseId: string;
  readonly ttlSeconds: number;
  readonly observedSourceIp: string;
  readonly revision: number;
}

export interface WatchHandlers {
  /** Events of one or more whole revisions, and the revision up to which all was sent. */
  onEvents(events: BrokerEvent[], revision: number): void;
  /** The stream ended: with an error (IsthmusError; COMPACTED means list again) or cleanly. */
  onEnd(err: IsthmusError | undefined): void;
}

const RETRYABLE: ReadonlySet<number> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

export type ClusterInput = Omit<Cluster, 'global_cidr' | 'labels'> & { labels?: Record<string, string> };
export type EndpointInput = Omit<Endpoint, 'observed_source_ip' | 'ports' | 'backend_config' | 'public_ip' | 'health_check_ip'> &
  Partial<Pick<Endpoint, 'ports' | 'backend_config' | 'public_ip' | 'health_check_ip'>>;
export type ExportInput = Pick<Export, 'cluster_id' | 'namespace' | 'name'> & Partial<Export>;

export class BrokerClient {
  readonly #options: BrokerClientOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #addresses: readonly string[];
  readonly #targets: readonly string[];
  /** Which of #targets the channel dials. */
  #target = 0;
  #client: Client | undefined;
  #certPem = '';
  #stale = true;
  #reconnect = false;
  #closed = false;

  constructor(options: BrokerClientOptions) {
    this.#options = options;
    const addresses = parseBrokerAddresses(options.address);
    this.#addresses = addresses.map(formatBrokerAddress);
    this.#targets = brokerTargets(addresses);
    this.#logger = options.logger ?? silentLogger();
    this.#clock = options.clock ?? systemClock;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** The host:port addresses this client dials, separated by commas. */
  get address(): string {
    return this.#addresses.join(',');
  }

  /** Each host:port address this client dials, in order. */
  get addresses(): readonly string[] {
    return this.#addresses;
  }

  /** The gRPC target the channel dials now (one of brokerTargets). */
  get target(): string {
    return this.#targets[this.#target] ?? '';
  }

  get logger(): Logger {
    return this.#logger;
  }

  /** Marks the connection suspect: the next call re-reads credentials (and reconnects if they changed). */
  markStale(): void {
    this.#stale = true;
  }

  /**
   * A TLS connection the broker did not authorize stays unauthorized: after
   * UNAUTHENTICATED the next call opens a new one (the broker may have loaded a new CA
   * bundle, or we may have new credentials by then).
   */
  #noteFailure(err: unknown, client: Client | undefined): void {
    this.#stale = true;
    const code = (err as { code?: unknown }).code;
    if (code === status.UNAUTHENTICATED) this.#reconnect = true;
    // several targets (IPv4 and IPv6 addresses, DNS names): an unreachable one hands over to
    // the next; within a target, the channel's pick_first moves between addresses itself
    if (this.#targets.length > 1 && typeof code === 'number' && RETRYABLE.has(code) && client !== undefined && client === this.#client) {
      const from = this.target;
      this.#target = (this.#target + 1) % this.#targets.length;
      this.#reconnect = true;
      this.#logger.info({ from, to: this.target, err: messageOf(err) }, 'broker unreachable; trying its next address');
    }
  }

  async #channel(): Promise<Client> {
    if (this.#closed) throw new IsthmusError(ErrorCodes.ABORTED, 'the broker client is closed');
    if (this.#client !== undefined && !this.#stale) return this.#client;
    const tls = await this.#options.credentials();
    this.#stale = false;
    if (this.#client !== undefined && tls.certPem === this.#certPem && !this.#reconnect) return this.#client;
    this.#reconnect = false;
    const old = this.#client;
    const creds = grpcCredentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem), {
      // the name check of TLS, then the role: another member's (or a gateway's) certificate from the same CA is no broker
      checkServerIdentity: (host, cert) => checkServerIdentity(host, cert) ?? brokerRoleProblem(cert),
    });
    this.#client = new Client(this.target, creds, {
      // the broker sends whole revisions of bounded size (records ≤ its maxRecordBytes, a
      // cluster's removal in batches); a larger message makes the cache list again
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': 20_000,
      'grpc.keepalive_timeout_ms': 10_000,
      // a broker address that failed is tried again after 0.2 s, backing off to 5 s at most;
      // meanwhile pick_first uses the next address of the target, in the order given
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5_000,
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ pick_first: {} }] }),
      ...(this.#options.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': this.#options.serverName, 'grpc.default_authority': this.#options.serverName }),
    });
    this.#certPem = tls.certPem;
    old?.close();
    return this.#client;
  }

  close(): void {
    this.#closed = true;
    this.#client?.close();
    this.#client = undefined;
  }

  async #once(method: MethodName, request: object): Promise<Record<string, unknown>> {
    const client = await this.#channel();
    const m = methods[method];
    const deadline = new Date(Date.now() + (this.#options.callTimeoutMs ?? 10_000));
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, { deadline }, (err, res) => {
        if (err !== null) {
          this.#noteFailure(err, client);
          reject(err);
        } else resolve((res ?? {}) as Record<string, unknown>);
      });
    });
  }

  /** One unary call, retried while the broker is unreachable. */
  async call(method: MethodName, request: object): Promise<Record<string, unknown>> {
    const retryFor = this.#options.retryForMs ?? 30_000;
    const until = this.#clock.now() + retryFor;
    const backoff = new Backoff({ baseMs: 100, maxMs: 3_000, ...this.#options.backoff });
    for (;;) {
      try {
        return await this.#once(method, request);
      } catch (err) {
        this.#stale = true;
        const code = (err as { code?: unknown }).code;
        const retry = typeof code === 'number' && RETRYABLE.has(code) && !this.#closed;
        if (!retry || this.#clock.now() >= until) throw fromServiceError(err, `broker ${method}`);
        this.#logger.debug({ method, err: messageOf(err) }, 'broker call failed; retrying');
        await sleep(this.#clock, backoff.next());
      }
    }
  }

  async registerCluster(cluster: ClusterInput): Promise<{ cluster: Cluster; revision: number }> {
    const res = await this.call('RegisterCluster', { cluster: { labels: {}, ...cluster } });
    return { cluster: res['cluster'] as Cluster, revision: toRevision(res['revision'], 'revision') };
  }

  async unregisterCluster(clusterId: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.call('UnregisterCluster', { cluster_id: clusterId });
    return { revision: toRevision(res['revision'], 'revision'), existed: res['existed'] === true };
  }

  async publishEndpoint(endpoint: EndpointInput, ttlSeconds = 30): Promise<PublishEndpointResult> {
    const res = await this.call('PublishEndpoint', { endpoint, ttl_seconds: ttlSeconds });
    return {
      leaseId: String(res['lease_id']),
      ttlSeconds: Number(res['ttl_seconds']),
      observedSourceIp: String(res['observed_source_ip'] ?? ''),
      revision: toRevision(res['revision'], 'revision'),
    };
  }

  async renewEndpoint(clusterId: string, hostname: string, leaseId: string): Promise<number> {
    const res = await this.call('RenewEndpoint', { cluster_id: clusterId, hostname, lease_id: leaseId });
    return Number(res['ttl_seconds']);
  }

  async withdrawEndpoint(clusterId: string, hostname: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.call('WithdrawEndpoint', { cluster_id: clusterId, hostname });
    return { revision: toRevision(res['revision'], 'revision'), existed: res['existed'] === true };
  }

  async publishExport(x: ExportInput): Promise<{ revision: number }> {
    const res = await this.call('PublishExport', { export: x });
    return { revision: toRevision(res['revision'], 'revision') };
  }

  async withdrawExport(clusterId: string, namespace: string, name: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.call('WithdrawExport', { cluster_id: clusterId, namespace, name });
    return { revision: toRevision(res['revision'], 'revision'), existed: res['existed'] === true };
  }

  async publishPolicy(p: Policy): Promise<{ revision: number }> {
    const res = await this.call('PublishPolicy', { policy: p });
    return { revision: toRevision(res['revision'], 'revision') };
  }

  async withdrawPolicy(clusterId: string, namespace: string, name: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.call('WithdrawPolicy', { cluster_id: clusterId, namespace, name });
    return { revision: toRevision(res['revision'], 'revision'), existed: res['existed'] === true };
  }

  async publishIdentities(set: IdentitySet): Promise<{ revision: number }> {
    const res = await this.call('PublishIdentities', { identities: set });
    return { revision: toRevision(res['revision'], 'revision') };
  }

  async withdrawIdentities(clusterId: string, namespace: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.call('WithdrawIdentities', { cluster_id: clusterId, namespace });
    return { revision: toRevision(res['revision'], 'revision'), existed: res['existed'] === true };
  }

  async publishPolicyStatus(s: PolicyStatusRecord): Promise<{ revision: number }> {
    const res = await this.call('PublishPolicyStatus', { status: s });
    return { revision: toRevision(res['revision'], 'revision') };
  }

  async withdrawPolicyStatus(clusterId: string, policyCluster: string, namespace: string, name: string): Promise<{ revision: number; existed: boolean }> {
    const res = await this.call('WithdrawPolicyStatus', { cluster_id: clusterId, policy_cluster: policyCluster, namespace, name });
    return { revision: toRevision(res['revision'], 'revision'), existed: res['existed'] === true };
  }

  /** Every record of `kinds` at one revision (one attempt; no retry). */
  async list(kinds: readonly Kind[]): Promise<{ revision: number; events: BrokerEvent[] }> {
    toKinds(kinds); // refuse unknown kinds here: the wire would turn them into KIND_UNSPECIFIED
    const client = await this.#channel();
    const m = methods.List;
    return new Promise((resolve, reject) => {
      const events: BrokerEvent[] = [];
      let revision = -1;
      let last = false;
      const stream = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { kinds }, {});
      stream.on('data', (page: { revision?: unknown; items?: unknown[]; last?: unknown }) => {
        try {
          revision = toRevision(page.revision, 'revision');
          for (const item of page.items ?? []) events.push(eventFromMessage(item));
          if (page.last === true) last = true;
        } catch (err) {
          stream.cancel();
          reject(err);
        }
      });
      stream.on('error', (err) => {
        this.#noteFailure(err, client);
        reject(fromServiceError(err, 'broker List'));
      });
      stream.on('end', () => {
        if (!last) reject(new IsthmusError(ErrorCodes.UNAVAILABLE, 'broker List ended before its last page'));
        else resolve({ revision, events });
      });
    });
  }

  /** A raw Watch stream (no retry: see BrokerCache). Returns a cancel function. */
  async watch(kinds: readonly Kind[], fromRevision: number, handlers: WatchHandlers): Promise<() => void> {
    toKinds(kinds);
    const client = await this.#channel();
    const m = methods.Watch;
    const stream: ClientReadableStream<unknown> = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { kinds, from_revision: String(fromRevision) }, {});
    let ended = false;
    const end = (err: IsthmusError | undefined): void => {
      if (ended) return;
      ended = true;
      handlers.onEnd(err);
    };
    stream.on('data', (res: { events?: unknown[]; revision?: unknown }) => {
      try {
        handlers.onEvents((res.events ?? []).map(eventFromMessage), toRevision(res.revision, 'revision'));
      } catch (err) {
        stream.cancel();
        end(isIsthmusError(err) ? err : new IsthmusError(ErrorCodes.INTERNAL, messageOf(err), { cause: err }));
      }
    });
    stream.on('error', (err) => {
      if ((err as { code?: number }).code === status.CANCELLED && ended) return;
      this.#noteFailure(err, client);
      end(fromServiceError(err, 'broker Watch'));
    });
    stream.on('end', () => end(undefined));
    return () => {
      if (ended) return;
      stream.cancel();
      end(undefined);
    };
  }
}

/** The gRPC path of a method, for logs. */
export function methodPath(method: MethodName): string {
  return `/${SERVICE_NAME}/${method}`;
}
