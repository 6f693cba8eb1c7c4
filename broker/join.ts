import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { Counter, type Registry } from '../core/prom.ts';
import {
  ClustersetRoles, ErrorCodes, IsthmusError, PRIVATE_RANGES, certificateInfo, clustersetRoleOf, findOverlap, isIsthmusError, issueCertificate,
  messageOf, verifyChain, type Logger, type Service,
} from '../core/index.ts';
import {
  MAX_GATEWAYS_PER_REQUEST, parseJoinToken, type GatewayCertificatesRequest, type GatewayCertificatesResponse, type JoinRequest, type JoinResponse,
  type MintTokenRequest, type MintTokenResponse,
} from '../core/broker-api/join.ts';
import type { Cluster } from '../core/broker-api/types.ts';
import { JOIN_TOKEN_DIR, clusterKey, kindPrefix } from './keys.ts';
import { revokedKey } from './revocation.ts';
import { BrokerStore, ETCD_KEEPALIVE } from './store.ts';
import { judgeToken, mintToken, sha256, spend, type TokenRecord } from './tokens.ts';
import { validateCluster, validateClusterId } from './validate.ts';

/**
 * The join API (see core/broker-api/join.ts) served by each broker replica on its own
 * port with the broker's server certificate. It signs cluster certificates, so it needs
 * the clusterset CA key (`caDir`: ca.crt, ca.key, optionally ca-bundle.crt); replicas
 * without `--join-ca-dir` do not serve it. Token records live in etcd, so any replica
 * honours a token minted through another, and spending one is a compare-and-swap on
 * its record: of two joins racing with one token, one wins.
 */
export interface JoinServerOptions {
  readonly etcdHosts: readonly string[];
  readonly listen: string;
  /** The broker's TLS folder: tls.crt, tls.key, ca.crt (trust bundle for admin certificates). */
  readonly tlsDir: string;
  /** The clusterset CA that signs the certificates of joining clusters. */
  readonly caDir: string;
  readonly globalCidrPool?: string;
  readonly globalCidrPrefix?: number;
  readonly allowedCidrs?: readonly string[];
  /** Lifetime of issued cluster certificates (default 90 days). */
  readonly certDays?: number;
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly now?: () => Date;
}

const MAX_BODY = 64 * 1024;
const PATHS: readonly string[] = ['/v1/join', '/v1/tokens', '/v1/gateway-certificates'];

const HTTP_STATUS: Partial<Record<string, number>> = {
  [ErrorCodes.INVALID_ARGUMENT]: 400, [ErrorCodes.BAD_TOKEN]: 403, [ErrorCodes.UNAUTHENTICATED]: 401, [ErrorCodes.PERMISSION_DENIED]: 403,
  [ErrorCodes.ALREADY_EXISTS]: 409, [ErrorCodes.FAILED_PRECONDITION]: 409, [ErrorCodes.CIDR_IN_USE]: 409, [ErrorCodes.NOT_FOUND]: 404, [ErrorCodes.UNAVAILABLE]: 503,
};

export class JoinServer implements Service {
  readonly name = 'broker-join';
  readonly #o: JoinServerOptions;
  readonly #now: () => Date;
  readonly #requests: Counter<'path' | 'code'> | undefined;
  #etcd: Etcd3 | undefined;
  #store: BrokerStore | undefined;
  #server: Server | undefined;
  #ca: { certPem: string; keyPem: string; bundlePem: string } | undefined;
  #trusted: string[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #port = 0;

  constructor(options: JoinServerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#requests = options.registry === undefined ? undefined
      : new Counter({ name: 'isthmus_broker_join_requests_total', help: 'Join API requests by path and result code', labelNames: ['path', 'code'], registers: [options.registry] });
  }

  get port(): number {
    return this.#port;
  }

  async #tls(): Promise<{ cert: string; key: string; ca: string }> {
    const read = (dir: string, f: string): Promise<string> => readFile(join(dir, f), 'utf8').catch((err: unknown) => {
      throw new IsthmusError(ErrorCodes.NOT_FOUND, `cannot read ${join(dir, f)}: ${messageOf(err)}`);
    });
    const t = { cert: await read(this.#o.tlsDir, 'tls.crt'), key: await read(this.#o.tlsDir, 'tls.key'), ca: await read(this.#o.tlsDir, 'ca.crt') };
    const certPem = await read(this.#o.caDir, 'ca.crt');
    const bundlePem = await read(this.#o.caDir, 'ca-bundle.crt').catch(() => certPem);
    this.#ca = { certPem, keyPem: await read(this.#o.caDir, 'ca.key'), bundlePem };
    this.#trusted = t.ca.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
    return t;
  }

  async start(): Promise<void> {
    const t = await this.#tls();
    this.#etcd = new Etcd3({ hosts: [...this.#o.etcdHosts], dialTimeout: 2_000, grpcOptions: { ...ETCD_KEEPALIVE } });
    this.#store = new BrokerStore(this.#etcd, {
      logger: this.#o.logger,
      ...(this.#o.globalCidrPool === undefined ? {} : { globalCidrPool: this.#o.globalCidrPool }),
      ...(this.#o.globalCidrPrefix === undefined ? {} : { globalCidrPrefix: this.#o.globalCidrPrefix }),
    });
    const server = createServer({ ...t, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#o.logger.warn({ err: messageOf(err) }, 'join request failed'));
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    this.#server = server;
    const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(this.#o.listen);
    if (m === null) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `--join-listen ${this.#o.listen} is not host:port`);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(m[2]), m[1], () => resolve());
    });
    this.#port = (server.address() as { port: number }).port;
    // renewed certificates and a rotated CA are picked up like the gRPC side does
    this.#timer = setInterval(() => {
      this.#tls().then((x) => server.setSecureContext({ ...x, minVersion: 'TLSv1.2' }), (err: unknown) => this.#o.logger.warn({ err: messageOf(err) }, 'cannot re-read the join TLS files; keeping the old ones'));
    }, 60_000);
    this.#timer.unref();
    this.#o.logger.info({ listen: this.#o.listen, port: this.#port }, 'join API serving');
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.#store?.close();
    this.#etcd?.close();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '';
    let status = 200;
    let body: object;
    try {
      if (req.method !== 'POST' || !PATHS.includes(path)) throw new IsthmusError(ErrorCodes.NOT_FOUND, `no such call ${req.method ?? ''} ${path}: use POST ${PATHS.join(', ')}`);
      const input = await readJson(req);
      const socket = req.socket as TLSSocket;
      body = path === '/v1/tokens' ? await this.#mint(socket, input as MintTokenRequest)
        : path === '/v1/gateway-certificates' ? await this.#gatewayCertificates(socket, input as GatewayCertificatesRequest)
          : await this.#join(input as JoinRequest);
    } catch (err) {
      const e = isIsthmusError(err) ? err : new IsthmusError(ErrorCodes.INTERNAL, 'the broker failed to handle the request; its log says why');
      if (!isIsthmusError(err)) this.#o.logger.error({ err: messageOf(err) }, 'join API error');
      status = HTTP_STATUS[e.code] ?? 500;
      body = { code: e.code, message: e.message };
    }
    this.#requests?.inc({ path: PATHS.includes(path) ? path : 'other', code: status });
    const data = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    res.end(data);
  }

  /** The client certificate, verified against the clusterset's CA bundle; UNAUTHENTICATED without one. */
  #peer(socket: TLSSocket, what: string): string {
    const raw = socket.getPeerX509Certificate?.();
    if (raw === undefined) throw new IsthmusError(ErrorCodes.UNAUTHENTICATED, `${what} needs a client certificate`);
    const pem = new X509Certificate(raw.raw).toString();
    if (!this.#trusted.some((ca) => {
      try {
        verifyChain(pem, ca, this.#now());
        return true;
      } catch {
        return false;
      }
    })) throw new IsthmusError(ErrorCodes.UNAUTHENTICATED, 'the client certificate is not from this clusterset\'s CA, or expired');
    return pem;
  }

  /** Only the clusterset admin mints tokens. */
  async #mint(socket: TLSSocket, input: MintTokenRequest): Promise<MintTokenResponse> {
    const pem = this.#peer(socket, 'minting a join token (the clusterset admin certificate)');
    if (clustersetRoleOf(certificateInfo(pem).organizations) !== 'admin') throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, 'only the clusterset admin certificate mints join tokens');
    if (input.clusterId !== undefined) validateClusterId(input.clusterId, 'clusterId');
    const { id, token, record } = mintToken(this.#now(), input.ttlSeconds, input.clusterId);
    await this.#etcd?.put(JOIN_TOKEN_DIR + id).value(JSON.stringify(record));
    this.#o.logger.info({ tokenId: id, expiresAt: record.expiresAt, clusterId: input.clusterId }, 'join token minted');
    return { token, expiresAt: record.expiresAt };
  }

  async #join(input: JoinRequest): Promise<JoinResponse> {
    const etcd = this.#etcd;
    const store = this.#store;
    const ca = this.#ca;
    if (etcd === undefined || store === undefined || ca === undefined) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the join API is not started');
    const { id, secret } = parseJoinToken(String(input.token ?? ''));
    const cluster: Cluster = validateCluster({
      cluster_id: input.clusterId, pod_cidrs: input.podCidrs, service_cidrs: input.serviceCidrs, labels: {}, global_cidr: '',
    }, this.#o.allowedCidrs ?? PRIVATE_RANGES);
    const keyPem = String(input.publicKeyPem ?? '');
    let keySha: string;
    try {
      keySha = sha256(createPublicKey(keyPem).export({ type: 'spki', format: 'der' }).toString('base64'));
    } catch (err) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `publicKeyPem is not a public key in PEM form (${messageOf(err)})`);
    }
    const tokenKey = JOIN_TOKEN_DIR + id;
    const got = await store.retry('read join token', (o) => etcd.kv.range({ key: Buffer.from(tokenKey) }, o));
    const kv = got.kvs[0];
    const record = kv === undefined ? undefined : (JSON.parse(kv.value.toString()) as TokenRecord);
    const now = this.#now();
    const verdict = judgeToken(record, secret, cluster.cluster_id, keySha, now);
    if (verdict === 'fresh') await this.#checkMembership(store, etcd, cluster);
    const members = await this.#memberIds(store);
    if (input.dryRun === true) return { certPem: '', caPem: ca.bundlePem, globalCidr: '', members };
    if (verdict === 'fresh' && record !== undefined && kv !== undefined) {
      const res = await store.retry('spend join token', (o) => etcd.kv.txn({
        compare: [{ key: Buffer.from(tokenKey), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
        success: [{ request_put: { key: Buffer.from(tokenKey), value: Buffer.from(JSON.stringify(spend(record, cluster.cluster_id, keySha, now))) } }],
      }, o));
      if (!res.succeeded) throw new IsthmusError(ErrorCodes.BAD_TOKEN, 'the join token was spent by another join at the same moment: each token joins one cluster; ask the clusterset admin for a new one');
    }
    const registered = await store.registerCluster(cluster);
    const issued = issueCertificate({
      ca, commonName: cluster.cluster_id, organizations: [ClustersetRoles.cluster], usages: ['client'], validDays: this.#o.certDays ?? 90, publicKeyPem: keyPem,
    });
    this.#o.logger.info({ clusterId: cluster.cluster_id, tokenId: id, retry: verdict === 'retry' }, 'cluster joined');
    return { certPem: issued.certPem, caPem: ca.bundlePem, globalCidr: registered.cluster.global_cidr, members: [...new Set([...members, cluster.cluster_id])].sort() };
  }

  /**
   * IPsec gateway certificates for the calling member's own gateways: the caller's
   * certificate must be a cluster's (role and CN), its cluster registered and neither it nor
   * its serial revoked; each certificate is `<gateway>.<that cluster>` with the gateway role,
   * so a member can never obtain another cluster's identity.
   */
  async #gatewayCertificates(socket: TLSSocket, input: GatewayCertificatesRequest): Promise<GatewayCertificatesResponse> {
    const etcd = this.#etcd;
    const store = this.#store;
    const ca = this.#ca;
    if (etcd === undefined || store === undefined || ca === undefined) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'the join API is not started');
    const info = certificateInfo(this.#peer(socket, 'gateway certificates (the cluster\'s certificate from `isthmus join`)'));
    const clusterId = info.commonName ?? '';
    if (clustersetRoleOf(info.organizations) !== 'cluster') throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, 'only a member cluster\'s certificate gets gateway certificates, for its own gateways');
    validateClusterId(clusterId, 'the certificate\'s cluster id');
    for (const key of [revokedKey({ clusterId }), revokedKey({ serial: info.serial })]) {
      const hit = await store.retry('read revocation', (o) => etcd.kv.range({ key: Buffer.from(key), count_only: true }, o));
      if (Number(hit.count) > 0) throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `cluster ${clusterId} or its certificate is revoked at this clusterset`);
    }
    const member = await store.retry('read cluster', (o) => etcd.kv.range({ key: Buffer.from(clusterKey(clusterId)), count_only: true }, o));
    if (Number(member.count) === 0) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${clusterId} is not a member of this clusterset (unregistered): join it again`);
    const gateways = Array.isArray(input.gateways) ? input.gateways : undefined;
    if (gateways === undefined || gateways.length === 0 || gateways.length > MAX_GATEWAYS_PER_REQUEST) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `gateways must list 1 to ${MAX_GATEWAYS_PER_REQUEST} gateways ({name, publicKeyPem}); ask in several requests for more`);
    }
    const names = new Set<string>();
    const certificates = gateways.map((g, i) => {
      const name = validateClusterId(String((g as { name?: unknown }).name ?? ''), `gateways[${i}].name`);
      const commonName = `${name}.${clusterId}`;
      if (commonName.length > 64) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `gateways[${i}]: ${commonName} is longer than a certificate's 64-character common name: use a shorter node name`);
      if (names.has(name)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `gateways[${i}]: ${name} is listed twice`);
      names.add(name);
      const issued = issueCertificate({
        ca, commonName, organizations: [ClustersetRoles.gateway], usages: ['server', 'client'], dnsNames: [commonName],
        validDays: this.#o.certDays ?? 90, publicKeyPem: String((g as { publicKeyPem?: unknown }).publicKeyPem ?? ''),
      });
      return { name, certPem: issued.certPem };
    });
    this.#o.logger.info({ clusterId, gateways: [...names] }, 'gateway certificates issued');
    return { certificates, caPem: ca.bundlePem };
  }

  /** A new member: its id free and not revoked, its CIDRs clear of every member's (unless global addressing). */
  async #checkMembership(store: BrokerStore, etcd: Etcd3, cluster: Cluster): Promise<void> {
    const id = cluster.cluster_id;
    const exists = await store.retry('read cluster', (o) => etcd.kv.range({ key: Buffer.from(clusterKey(id)), count_only: true }, o));
    if (Number(exists.count) > 0) {
      throw new IsthmusError(ErrorCodes.ALREADY_EXISTS, `cluster id ${id} is already a member of this clusterset: join with another --cluster-id (a cluster cannot join as another), or take ${id} out first (\`isthmus uninstall\` in it)`);
    }
    const revoked = await store.retry('read revocation', (o) => etcd.kv.range({ key: Buffer.from(revokedKey({ clusterId: id })), count_only: true }, o));
    if (Number(revoked.count) > 0) throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `cluster id ${id} is revoked at this clusterset: choose another id, or have the admin lift the revocation`);
    if (store.globalCidrPool !== undefined) return;
    const { kvs } = await store.range(kindPrefix('CLUSTER'));
    const mine = [...cluster.pod_cidrs, ...cluster.service_cidrs];
    for (const other of kvs.map((x) => JSON.parse(x.value.toString()) as Cluster)) {
      const hit = findOverlap(mine, [...other.pod_cidrs, ...other.service_cidrs]);
      if (hit !== undefined) {
        throw new IsthmusError(ErrorCodes.CIDR_IN_USE, `CIDR ${hit[0]} of ${id} overlaps ${hit[1]} of member cluster ${other.cluster_id}: nothing was changed; give this cluster non-overlapping pod and service CIDRs, or deploy the broker with --global-addressing`, {
          context: { otherCluster: other.cluster_id },
        });
      }
    }
  }

  async #memberIds(store: BrokerStore): Promise<string[]> {
    const { kvs } = await store.range(kindPrefix('CLUSTER'));
    return kvs.map((x) => (JSON.parse(x.value.toString()) as Cluster).cluster_id).sort();
  }
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `the request is larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
        resolve(v);
      } catch (err) {
        reject(new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `the request is not a JSON object (${messageOf(err)})`));
      }
    });
    req.on('error', reject);
  });
}
