import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import {
  Server, ServerCredentials, experimental, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { Counter, Gauge, Registry, collectDefaultMetrics } from '../core/prom.ts';
import { ErrorCodes, IsthmusError, PRIVATE_RANGES, formatCidr, messageOf, parseCidr, type Logger, type Service } from '../core/index.ts';
import { Authenticator, authorizeWrite, type Caller } from './auth.ts';
import { WatchHub, type HubOptions } from './hub.ts';
import { eventMessage, isMalformed, methods, serverServiceDefinition, toKinds, toRevision, type MethodName } from '../core/broker-api/proto.ts';
import { toStatus } from '../core/broker-api/status.ts';
import type { BrokerEvent, Cluster } from '../core/broker-api/types.ts';
import { BrokerStore, ETCD_KEEPALIVE } from './store.ts';
import { Quotas, quotaLimits, type QuotaLimits } from './quota.ts';
import { clusterKey, endpointKey, exportKey, identityKey, policyKey, policyStatusKey } from './keys.ts';
import { validateIdentitySet, validatePolicyRecord, validatePolicyStatus } from '../core/broker-api/identity.ts';
import { RevocationList } from './revocation.ts';
import { ConnectionGuard, connectionLimits, type ConnectionLimits } from './guard.ts';
import { validateCluster, validateClusterId, validateEndpoint, validateExport, validateHostname, validateLabel, validateTtl } from './validate.ts';

/**
 * The broker: a stateless gRPC front to etcd (several replicas may share one etcd).
 * Serves mTLS with the files of `tlsDir` (tls.crt, tls.key, ca.crt as written by
 * `isthmus certs issue --server`), reloading them when they are renewed.
 */
export interface BrokerServerOptions {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  etcdHosts: readonly string[];
  /** host:port to listen on (port 0: pick one; see `port`). */
  listen: string;
  /** Directory with tls.crt, tls.key and ca.crt (the trust bundle). */
  tlsDir: string;
  globalCidrPool?: string;
  /**
   * Ranges member CIDRs must lie in (default PRIVATE_RANGES: 10/8, 172.16/12, 192.168/16,
   * 100.64/10, fc00::/7). Non-unicast ranges and blocks broader than /8 (/32) are refused whatever this says.
   */
  allowedCidrs?: readonly string[];
  globalCidrPrefix?: number;
  logger: Logger;
  /** Requests larger than this are refused with RESOURCE_EXHAUSTED (default 1 MiB). */
  maxMessageBytes?: number;
  /** Largest etcd response the broker takes (default 64 MiB); a bigger watch revision makes it list again. */
  etcdMaxMessageBytes?: number;
  /** How long etcd operations are retried through member failures (default 15 s). */
  etcdRetryMs?: number;
  /** How often the TLS files are re-read (default 60 s). */
  tlsRefreshMs?: number;
  hub?: Omit<HubOptions, 'logger'>;
  /** Where metrics are registered (default: a new registry, see `metrics`). */
  registry?: Registry;
  /** Per-cluster quotas (defaults: DEFAULT_QUOTAS). */
  quotas?: Partial<QuotaLimits>;
  /** How often the revocation list is read again besides its watch (default 30 000 ms). */
  revocationReloadMs?: number;
  /** Connection and stream limits (defaults: DEFAULT_CONNECTION_LIMITS). */
  connections?: Partial<ConnectionLimits>;
}

const LIST_PAGE_ITEMS = 500;
const LIST_PAGE_BYTES = 512 * 1024;
/** A watcher that has this much unsent data is cut off (it resumes from its last revision). */
const MAX_WATCH_BACKLOG = 32 * 1024 * 1024;

export class BrokerServer implements Service {
  readonly name = 'broker';
  readonly metrics: Registry;
  readonly #options: BrokerServerOptions;
  readonly #logger: Logger;
  #etcd: Etcd3 | undefined;
  #store: BrokerStore | undefined;
  #hub: WatchHub | undefined;
  #server: Server | undefined;
  #guard: ConnectionGuard | undefined;
  #revocations: RevocationList | undefined;
  #auth: Authenticator | undefined;
  #port = 0;
  #caTimer: ReturnType<typeof setInterval> | undefined;
  readonly #requests: Counter<'method' | 'code'>;
  readonly #allowed: readonly string[];
  readonly #quotas: Quotas;

  constructor(options: BrokerServerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#allowed = (options.allowedCidrs ?? PRIVATE_RANGES).map((c) => {
      try {
        return formatCidr(parseCidr(c));
      } catch (err) {
        throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `allowed CIDR ${JSON.stringify(c)}: ${messageOf(err)}`);
      }
    });
    this.metrics = options.registry ?? new Registry();
    const refusals = new Counter({ name: 'isthmus_broker_quota_refusals_total', help: 'Requests refused by a per-cluster quota, by identity and limit', labelNames: ['identity', 'limit'], registers: [this.metrics] });
    this.#quotas = new Quotas(quotaLimits(options.quotas), (id) => this.#hub?.usage(id) ?? { records: 0, bytes: 0, endpoints: 0 }, {
      onRefuse: (identity, limit) => refusals.inc({ identity, limit }),
    });
    if (options.registry === undefined) collectDefaultMetrics({ register: this.metrics, prefix: 'isthmus_broker_' });
    this.#requests = new Counter({ name: 'isthmus_broker_requests_total', help: 'Broker RPCs by method and gRPC status code', labelNames: ['method', 'code'], registers: [this.metrics] });
    const hub = (): WatchHub | undefined => this.#hub;
    new Gauge({ name: 'isthmus_broker_watchers', help: 'Open Watch streams', registers: [this.metrics], collect() { this.set(hub()?.watchers ?? 0); } });
    new Gauge({ name: 'isthmus_broker_revision', help: 'etcd revision the broker has applied', registers: [this.metrics], collect() { this.set(hub()?.revision ?? 0); } });
    const guard = (): ConnectionGuard | undefined => this.#guard;
    new Gauge({ name: 'isthmus_broker_connections', help: 'Open TCP connections to the broker', registers: [this.metrics], collect() { this.set(guard()?.connections ?? 0); } });
    new Gauge({
      name: 'isthmus_broker_connections_refused', help: 'Connections refused or closed by a limit since start, by limit', labelNames: ['limit'], registers: [this.metrics],
      collect() {
        for (const [limit, n] of Object.entries(guard()?.refused ?? {})) this.set({ limit }, n);
      },
    });
    new Gauge({
      name: 'isthmus_broker_cluster_records', help: 'Endpoints and exports each cluster holds', labelNames: ['cluster'], registers: [this.metrics],
      collect() {
        this.reset();
        for (const [cluster, u] of hub()?.usages() ?? []) this.set({ cluster }, u.records);
      },
    });
    new Gauge({
      name: 'isthmus_broker_cluster_bytes', help: 'Bytes of the records each cluster holds', labelNames: ['cluster'], registers: [this.metrics],
      collect() {
        this.reset();
        for (const [cluster, u] of hub()?.usages() ?? []) this.set({ cluster }, u.bytes);
      },
    });
    new Gauge({ name: 'isthmus_broker_records', help: 'Records in the broker cache', registers: [this.metrics], collect() { this.set(hub()?.size ?? 0); } });
  }

  /** The port the server listens on (after start). */
  get port(): number {
    return this.#port;
  }

  /** True while the broker serves and etcd answers within `timeoutMs` (for a readiness probe). */
  async ready(timeoutMs = 2_000): Promise<boolean> {
    const store = this.#store;
    if (this.#server === undefined || this.#hub === undefined || store === undefined) return false;
    return store.ping(timeoutMs);
  }

  async #readCaBundle(): Promise<string[]> {
    const pem = await readFile(join(this.#options.tlsDir, 'ca.crt'), 'utf8').catch((err: unknown) => {
      throw new IsthmusError(ErrorCodes.NOT_FOUND, `cannot read ${join(this.#options.tlsDir, 'ca.crt')}: ${messageOf(err)}; issue the broker's certificate with \`isthmus certs issue --server --san … --out DIR\``);
    });
    const cas = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    if (cas.length === 0) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${join(this.#options.tlsDir, 'ca.crt')} holds no certificate`);
    return cas.map((c) => `${c}\n`);
  }

  async start(): Promise<void> {
    const o = this.#options;
    const limits = connectionLimits(o.connections);
    for (const f of ['tls.crt', 'tls.key']) {
      await readFile(join(o.tlsDir, f)).catch((err: unknown) => {
        throw new IsthmusError(ErrorCodes.NOT_FOUND, `cannot read ${join(o.tlsDir, f)}: ${messageOf(err)}; issue the broker's certificate with \`isthmus certs issue --server --san … --out ${o.tlsDir}\``);
      });
    }
    this.#auth = new Authenticator(await this.#readCaBundle());
    // bounded: a revision larger than this is skipped by listing again (see WatchHub), never retried
    this.#etcd = new Etcd3({ hosts: [...o.etcdHosts], dialTimeout: 2_000, grpcOptions: { 'grpc.max_receive_message_length': o.etcdMaxMessageBytes ?? 64 * 1024 * 1024, ...ETCD_KEEPALIVE } });
    this.#store = new BrokerStore(this.#etcd, {
      logger: this.#logger,
      ...(o.globalCidrPool === undefined ? {} : { globalCidrPool: o.globalCidrPool }),
      ...(o.globalCidrPrefix === undefined ? {} : { globalCidrPrefix: o.globalCidrPrefix }),
      ...(o.etcdRetryMs === undefined ? {} : { retryForMs: o.etcdRetryMs }),
      // a deletion batch travels with its previous values in one watch message
      deleteBatchBytes: Math.min(2 * 1024 * 1024, Math.floor((o.etcdMaxMessageBytes ?? 64 * 1024 * 1024) / 8)),
      pageBytes: { max: o.etcdMaxMessageBytes ?? 64 * 1024 * 1024, record: this.#quotas.limits.maxRecordBytes },
    });
    try {
      await this.#store.init();
      this.#revocations = new RevocationList(this.#etcd, this.#logger, o.revocationReloadMs ?? 30_000);
      await this.#revocations.start();
      this.#hub = new WatchHub(this.#etcd, this.#store, { logger: this.#logger, ...(o.hub ?? {}) });
      await this.#hub.start();
      const refresh = o.tlsRefreshMs ?? 60_000;
      const provider = new experimental.FileWatcherCertificateProvider({
        certificateFile: join(o.tlsDir, 'tls.crt'), privateKeyFile: join(o.tlsDir, 'tls.key'), caCertificateFile: join(o.tlsDir, 'ca.crt'), refreshIntervalMs: refresh,
      });
      this.#caTimer = setInterval(() => {
        this.#readCaBundle().then((cas) => this.#auth?.setTrusted(cas), (err: unknown) => this.#logger.warn({ err: messageOf(err) }, 'cannot re-read the CA bundle; keeping the old one'));
      }, refresh);
      this.#caTimer.unref();
      // the TLS handshake itself requires a client certificate from a trusted CA: a client
      // without one never reaches HTTP/2, so it cannot open streams or send messages
      const creds: ServerCredentials = experimental.createCertificateProviderServerCredentials(provider, provider, true);
      const max = o.maxMessageBytes ?? 1024 * 1024;
      this.#server = new Server({
        'grpc.enable_channelz': 0, 'grpc.max_receive_message_length': max, 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1,
        'grpc.max_concurrent_streams': limits.maxConcurrentStreams, 'grpc.max_connection_idle_ms': limits.maxConnectionIdleMs,
        // nghttp2's own buffers per connection, in MB
        'grpc-node.max_session_memory': Math.max(10, Math.ceil((4 * max) / (1024 * 1024))),
      });
      this.#server.addService(serverServiceDefinition(), this.#handlers());
      const injector = this.#server.createConnectionInjector(creds);
      // grpc-js drops connections until it has read the TLS files: listen only once it has
      await credentialsLoaded(provider, this.#options.tlsDir);
      this.#guard = new ConnectionGuard(limits, (socket) => injector.injectConnection(socket), this.#logger);
      this.#port = await this.#guard.listen(o.listen);
      this.#logger.info({ listen: o.listen, port: this.#port, revision: this.#hub.revision, records: this.#hub.size, globalCidrPool: o.globalCidrPool }, 'broker serving');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.#caTimer !== undefined) clearInterval(this.#caTimer);
    const server = this.#server;
    this.#server = undefined;
    const guard = this.#guard;
    this.#guard = undefined;
    this.#store?.close();
    await this.#revocations?.stop();
    await this.#hub?.stop();
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await guard?.close();
    this.#etcd?.close();
    this.#etcd = undefined;
  }

  #count(method: MethodName, code: status): void {
    this.#requests.inc({ method, code: status[code] ?? String(code) });
  }

  /** The caller of `call`: its certificate verified against the CA bundle, then checked against the revocation list. */
  #caller(call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): Caller {
    if (this.#auth === undefined || this.#revocations === undefined) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker is not started');
    const caller = this.#auth.authenticate(call);
    this.#revocations.check(caller.serial, caller.role === 'cluster' ? caller.clusterId : undefined);
    return caller;
  }

  #unary(method: MethodName, fn: (req: Record<string, unknown>, caller: Caller, call: ServerUnaryCall<object, object>) => Promise<object>) {
    return (call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>): void => {
      (async () => {
        const caller = this.#caller(call);
        this.#quotas.takeWrite(caller.name);
        if (isMalformed(call.request)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `malformed ${method} request: ${call.request.malformed}`);
        return fn(call.request as Record<string, unknown>, caller, call);
      })().then(
        (res) => {
          this.#count(method, status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          const st = toStatus(err);
          this.#count(method, st.code);
          if (st.code === status.INTERNAL || st.code === status.UNAVAILABLE) this.#logger.warn({ method, err: messageOf(err) }, 'request failed');
          else this.#logger.debug({ method, code: status[st.code], err: st.details }, 'request refused');
          callback(st, null);
        },
      );
    };
  }

  /** Waits (briefly) until the cache the quotas count from has every write so far; lagging, the count is a little behind. */
  async #fresh(): Promise<void> {
    await this.#hub?.waitFresh(1_000).catch(() => undefined);
  }

  #store_(): BrokerStore {
    if (this.#store === undefined) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker is not started');
    return this.#store;
  }

  #handlers(): UntypedServiceImplementation {
    return {
      RegisterCluster: this.#unary('RegisterCluster', async (req, caller) => {
        const cluster = validateCluster(req['cluster'], this.#allowed);
        authorizeWrite(caller, cluster.cluster_id, 'register the cluster record');
        const r = await this.#store_().registerCluster(cluster);
        return { cluster: r.cluster, revision: String(r.revision) };
      }),
      UnregisterCluster: this.#unary('UnregisterCluster', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        authorizeWrite(caller, id, 'remove the cluster record');
        const r = await this.#store_().unregisterCluster(id);
        return { revision: String(r.revision), existed: r.existed };
      }),
      PublishEndpoint: this.#unary('PublishEndpoint', async (req, caller, call) => {
        const endpoint = validateEndpoint(req['endpoint']);
        const ttl = validateTtl(req['ttl_seconds']);
        authorizeWrite(caller, endpoint.cluster_id, 'publish endpoints');
        endpoint.observed_source_ip = peerAddress(call.getPeer());
        const key = endpointKey(endpoint.cluster_id, endpoint.hostname);
        await this.#fresh();
        this.#quotas.checkRecord(endpoint.cluster_id, 'ENDPOINT', Buffer.byteLength(JSON.stringify(endpoint)), this.#hub?.recordBytes(key));
        const r = await this.#store_().publishEndpoint(endpoint, ttl, this.#quotas.limits.maxEndpoints);
        return { lease_id: r.leaseId, ttl_seconds: ttl, observed_source_ip: endpoint.observed_source_ip, revision: String(r.revision) };
      }),
      RenewEndpoint: this.#unary('RenewEndpoint', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        const host = validateHostname(req['hostname'], 'hostname');
        const lease = typeof req['lease_id'] === 'string' && /^\d{1,20}$/.test(req['lease_id']) ? req['lease_id'] : undefined;
        if (lease === undefined) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'lease_id must be the decimal lease id PublishEndpoint returned');
        authorizeWrite(caller, id, 'renew endpoints');
        return { ttl_seconds: await this.#store_().renewEndpoint(id, host, lease) };
      }),
      WithdrawEndpoint: this.#unary('WithdrawEndpoint', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        const host = validateHostname(req['hostname'], 'hostname');
        authorizeWrite(caller, id, 'withdraw endpoints');
        const r = await this.#store_().withdrawEndpoint(id, host);
        return { revision: String(r.revision), existed: r.existed };
      }),
      PublishExport: this.#unary('PublishExport', async (req, caller) => {
        const x = validateExport(req['export']);
        authorizeWrite(caller, x.cluster_id, 'publish exports');
        await this.#fresh();
        this.#quotas.checkRecord(x.cluster_id, 'EXPORT', Buffer.byteLength(JSON.stringify(x)), this.#hub?.recordBytes(exportKey(x.cluster_id, x.namespace, x.name)));
        const r = await this.#store_().publishExport(x);
        return { revision: String(r.revision) };
      }),
      WithdrawExport: this.#unary('WithdrawExport', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        const ns = validateLabel(req['namespace'], 'namespace');
        const name = validateLabel(req['name'], 'name');
        authorizeWrite(caller, id, 'withdraw exports');
        const r = await this.#store_().withdrawExport(id, ns, name);
        return { revision: String(r.revision), existed: r.existed };
      }),
      PublishPolicy: this.#unary('PublishPolicy', async (req, caller) => {
        const { record } = validatePolicyRecord(req['policy']);
        authorizeWrite(caller, record.cluster_id, 'publish policies');
        await this.#fresh();
        this.#quotas.checkRecord(record.cluster_id, 'POLICY', Buffer.byteLength(JSON.stringify(record)), this.#hub?.recordBytes(policyKey(record.cluster_id, record.namespace, record.name)));
        const r = await this.#store_().publishPolicy(record);
        return { revision: String(r.revision) };
      }),
      WithdrawPolicy: this.#unary('WithdrawPolicy', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        const ns = validateLabel(req['namespace'], 'namespace');
        const name = validateHostname(req['name'], 'name');
        authorizeWrite(caller, id, 'withdraw policies');
        const r = await this.#store_().withdrawRecord(policyKey(id, ns, name), 'policy');
        return { revision: String(r.revision), existed: r.existed };
      }),
      PublishIdentities: this.#unary('PublishIdentities', async (req, caller) => {
        const raw = (req['identities'] ?? {}) as Record<string, unknown>;
        const id = validateClusterId(raw['cluster_id']);
        authorizeWrite(caller, id, 'publish identities');
        await this.#fresh();
        const cluster = this.#hub?.recordAt(clusterKey(id));
        if (cluster === undefined) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${id} is not registered: register it (RegisterCluster) before publishing its identities`);
        const set = validateIdentitySet(raw, (cluster.record as Cluster).pod_cidrs);
        this.#quotas.checkRecord(id, 'IDENTITY', Buffer.byteLength(JSON.stringify(set)), this.#hub?.recordBytes(identityKey(id, set.namespace)));
        const r = await this.#store_().publishIdentities(set, cluster.revision);
        return { revision: String(r.revision) };
      }),
      WithdrawIdentities: this.#unary('WithdrawIdentities', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        const ns = validateLabel(req['namespace'], 'namespace');
        authorizeWrite(caller, id, 'withdraw identities');
        const r = await this.#store_().withdrawRecord(identityKey(id, ns), 'identities');
        return { revision: String(r.revision), existed: r.existed };
      }),
      PublishPolicyStatus: this.#unary('PublishPolicyStatus', async (req, caller) => {
        const s = validatePolicyStatus(req['status']);
        authorizeWrite(caller, s.cluster_id, 'publish policy statuses');
        await this.#fresh();
        this.#quotas.checkRecord(s.cluster_id, 'POLICY_STATUS', Buffer.byteLength(JSON.stringify(s)), this.#hub?.recordBytes(policyStatusKey(s.cluster_id, s.policy_cluster, s.namespace, s.name)));
        const r = await this.#store_().publishPolicyStatus(s);
        return { revision: String(r.revision) };
      }),
      WithdrawPolicyStatus: this.#unary('WithdrawPolicyStatus', async (req, caller) => {
        const id = validateClusterId(req['cluster_id']);
        const author = validateClusterId(req['policy_cluster']);
        const ns = validateLabel(req['namespace'], 'namespace');
        const name = validateHostname(req['name'], 'name');
        authorizeWrite(caller, id, 'withdraw policy statuses');
        const r = await this.#store_().withdrawRecord(policyStatusKey(id, author, ns, name), 'policy status');
        return { revision: String(r.revision), existed: r.existed };
      }),
      List: (call: ServerWritableStream<object, object>) => this.#list(call),
      Watch: (call: ServerWritableStream<object, object>) => this.#watch(call),
    };
  }

  #fail(method: MethodName, call: ServerWritableStream<object, object>, err: unknown): void {
    const st = toStatus(err);
    this.#count(method, st.code);
    if (st.code === status.INTERNAL) this.#logger.warn({ method, err: messageOf(err) }, 'stream failed');
    call.emit('error', st);
  }

  async #list(call: ServerWritableStream<object, object>): Promise<void> {
    try {
      this.#caller(call);
      if (isMalformed(call.request)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `malformed List request: ${call.request.malformed}`);
      const kinds = new Set(toKinds((call.request as Record<string, unknown>)['kinds']));
      const hub = this.#hub;
      if (hub === undefined) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker is not started');
      let snapshot: { revision: number; events: BrokerEvent[] };
      try {
        await hub.waitFresh();
        snapshot = hub.snapshot(kinds);
      } catch (err) {
        if (!(err instanceof IsthmusError) || err.code !== ErrorCodes.UNAVAILABLE) throw err;
        this.#logger.debug({ err: err.message }, 'cache not provably fresh; listing from etcd');
        snapshot = await hub.readThrough(kinds);
      }
      const { revision, events } = snapshot;
      let page: object[] = [];
      let bytes = 0;
      const flush = async (last: boolean): Promise<void> => {
        const ok = call.write(methods.List.responseSerialize({ revision: String(revision), items: page, last }));
        page = [];
        bytes = 0;
        if (!ok && !call.cancelled) await new Promise<void>((resolve) => call.once('drain', resolve));
      };
      for (const e of events) {
        if (call.cancelled) return;
        const m = eventMessage(e);
        page.push(m);
        bytes += 200 + JSON.stringify(e.record).length;
        if (page.length >= LIST_PAGE_ITEMS || bytes >= LIST_PAGE_BYTES) await flush(false);
      }
      await flush(true);
      this.#count('List', status.OK);
      call.end();
    } catch (err) {
      this.#fail('List', call, err);
    }
  }

  async #watch(call: ServerWritableStream<object, object>): Promise<void> {
    let release: (() => void) | undefined;
    try {
      release = this.#quotas.openWatch(this.#caller(call).name);
      if (isMalformed(call.request)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `malformed Watch request: ${call.request.malformed}`);
      const req = call.request as Record<string, unknown>;
      const kinds = new Set(toKinds(req['kinds']));
      const from = toRevision(req['from_revision'] ?? '0', 'from_revision');
      const hub = this.#hub;
      if (hub === undefined) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker is not started');
      let closed = false;
      let unsubscribe: (() => void) | undefined;
      // registered before subscribing: a client may go away while we replay
      const gone = (): void => {
        closed = true;
        release?.();
        unsubscribe?.();
      };
      call.on('cancelled', gone);
      call.on('close', gone);
      const close = (err?: IsthmusError): void => {
        if (closed) return;
        closed = true;
        release?.();
        unsubscribe?.();
        if (err === undefined) {
          this.#count('Watch', status.OK);
          call.end();
        } else this.#fail('Watch', call, err);
      };
      unsubscribe = await hub.subscribe({
        kinds,
        send: (bytes) => {
          if (closed) return;
          call.write(bytes);
          if (call.writableLength > MAX_WATCH_BACKLOG) {
            close(new IsthmusError(ErrorCodes.UNAVAILABLE, 'this watcher fell too far behind: resume from the last revision received'));
          }
        },
        close,
      }, from);
      if (closed || call.cancelled) {
        closed = true;
        release();
        unsubscribe();
      }
    } catch (err) {
      release?.();
      this.#fail('Watch', call, err);
    }
  }
}

/**
 * Resolves once `provider` has delivered both the CA bundle and the identity (its listeners
 * run in the order they were added, so the server's credentials, added before, are set by
 * then); INVALID_CONFIG after 10 s.
 */
async function credentialsLoaded(provider: experimental.FileWatcherCertificateProvider, dir: string): Promise<void> {
  let ca: (update: experimental.CaCertificateUpdate | null) => void = () => undefined;
  let id: (update: experimental.IdentityCertificateUpdate | null) => void = () => undefined;
  const both = Promise.all([
    new Promise<void>((resolve) => (ca = (u) => (u === null ? undefined : resolve()))),
    new Promise<void>((resolve) => (id = (u) => (u === null ? undefined : resolve()))),
  ]);
  provider.addCaCertificateListener(ca);
  provider.addIdentityCertificateListener(id);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([both, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new IsthmusError(ErrorCodes.INVALID_CONFIG, `the TLS files in ${dir} could not be loaded within 10 s: check tls.crt, tls.key and ca.crt`)), 10_000);
    })]);
    await new Promise((r) => setImmediate(r));
  } finally {
    clearTimeout(timer);
    provider.removeCaCertificateListener(ca);
    provider.removeIdentityCertificateListener(id);
  }
}

/** The IP of a grpc-js peer string ("10.0.0.1:5000", "::1:5000", "::ffff:10.0.0.1:5000"), or "". */
export function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, '');
  const bracketed = /^\[(.*)\]:\d+$/.exec(bare);
  const host = bracketed === null ? bare.replace(/:\d+$/, '') : (bracketed[1] ?? '');
  const ip = host.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  return isIP(ip) === 0 ? '' : ip;
}
