import { request } from 'node:https';
import { ErrorCodes, IsthmusError, messageOf } from '../errors.ts';

/**
 * The broker's join API: HTTPS + JSON beside the gRPC API, on its own port, because a
 * joining cluster has no client certificate yet (the gRPC port refuses a TLS handshake
 * without one). Three calls:
 *
 * - `POST /v1/tokens` (admin client certificate): mints a join token. The broker keeps
 *   only the token's SHA-256, its expiry and, once used, who used it (etcd, KEYS.md).
 * - `POST /v1/join` (no client certificate; the token is the credential): with
 *   `dryRun` it only checks (token valid, cluster id free, CIDRs not overlapping a
 *   member) and changes nothing; without, it spends the token: registers the cluster
 *   and signs a cluster certificate for the public key sent (the private key never
 *   leaves the joining side). The same token, cluster id and public key again (a join
 *   cut short after the broker answered) get a certificate again; anything else with a
 *   spent token is refused.
 * - `POST /v1/gateway-certificates` (a member cluster's client certificate): signs IPsec
 *   gateway certificates for that cluster's own gateways only — CN `<gateway>.<cluster>`,
 *   the gateway role — for public keys sent (at most MAX_GATEWAYS_PER_REQUEST). A revoked or
 *   unregistered cluster gets none.
 *
 * A token is `ijt_<id>.<secret>`: `id` 16 hex digits (names the etcd record), `secret`
 * 32 random bytes in base64url. Errors come back as `{code, message}` with the codes of
 * core/errors.ts, and are rethrown as IsthmusErrors by the client.
 */
export interface MintTokenRequest {
  /** Lifetime in seconds (60 .. 604 800; default 86 400). */
  readonly ttlSeconds?: number;
  /** When set, the token joins only this cluster id. */
  readonly clusterId?: string;
}

export interface MintTokenResponse {
  readonly token: string;
  readonly expiresAt: string;
}

export interface JoinRequest {
  readonly token: string;
  readonly clusterId: string;
  readonly podCidrs: readonly string[];
  readonly serviceCidrs: readonly string[];
  /** SPKI PEM of the RSA key the cluster certificate is for. */
  readonly publicKeyPem: string;
  readonly dryRun?: boolean;
}

export interface JoinResponse {
  /** Empty for a dry run. */
  readonly certPem: string;
  /** The CA bundle members trust. */
  readonly caPem: string;
  /** The cluster's global CIDR under global addressing, else ''. */
  readonly globalCidr: string;
  /** Member cluster ids (this one included once joined). */
  readonly members: readonly string[];
}

export interface GatewayCertificatesRequest {
  /** Gateway names (RFC-1123 labels, the node names) and the SPKI PEM of each one's RSA key. */
  readonly gateways: readonly { readonly name: string; readonly publicKeyPem: string }[];
}

export interface GatewayCertificatesResponse {
  readonly certificates: readonly { readonly name: string; readonly certPem: string }[];
  /** The CA bundle members trust. */
  readonly caPem: string;
}

export const MAX_GATEWAYS_PER_REQUEST = 16;

const TOKEN = /^ijt_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

export const TOKEN_TTL_DEFAULT_S = 86_400;
export const TOKEN_TTL_MAX_S = 604_800;

/** Splits a token into id and secret, or throws BAD_TOKEN saying what a token looks like. */
export function parseJoinToken(token: string): { id: string; secret: string } {
  const m = TOKEN.exec(token.trim());
  if (m === null) {
    throw new IsthmusError(ErrorCodes.BAD_TOKEN, 'the join token is malformed (a token looks like ijt_<16 hex>.<43 base64url>): use broker-info.json as `isthmus broker deploy` or `isthmus broker token` wrote it');
  }
  return { id: m[1] as string, secret: m[2] as string };
}

export interface JoinCallOptions {
  /**
   * host:port of the join API, or several (broker-info's joinAddresses): tried in order, the
   * next only when no connection could be made to one (so a request is never sent twice).
   */
  readonly address: string | readonly string[];
  /** CA bundle to verify the broker's certificate against (from broker-info.json). */
  readonly caPem: string;
  /** Client certificate: the admin's (minting) or the cluster's (gateway certificates). */
  readonly client?: { readonly certPem: string; readonly keyPem: string };
  readonly timeoutMs?: number;
}

type JoinPath = '/v1/join' | '/v1/tokens' | '/v1/gateway-certificates';

/** A call that never got a connection: the next address may be tried. */
class NotConnected extends Error {
  readonly error: IsthmusError;

  constructor(error: IsthmusError) {
    super(error.message);
    this.error = error;
  }
}

/**
 * One call of the join API: JSON in, JSON out; a refusal is rethrown with its code. With
 * several addresses, one that takes no connection (refused, unreachable, silent) hands over
 * to the next; once a connection is made its outcome is final. The error of the last one is
 * thrown when none takes it.
 */
export async function callJoinApi<T>(o: JoinCallOptions, path: JoinPath, body: object): Promise<T> {
  const addresses = typeof o.address === 'string' ? [o.address] : o.address;
  if (addresses.length === 0) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'no join API address: broker-info.json lists none (joinAddresses)');
  let last: IsthmusError | undefined;
  for (const address of addresses) {
    try {
      return await callOnce<T>({ ...o, address }, path, body);
    } catch (err) {
      if (!(err instanceof NotConnected)) throw err;
      last = err.error;
    }
  }
  throw last ?? new IsthmusError(ErrorCodes.UNAVAILABLE, 'the broker\'s join API took no connection');
}

function callOnce<T>(o: JoinCallOptions & { readonly address: string }, path: JoinPath, body: object): Promise<T> {
  const [host, port] = splitHostPort(o.address);
  const data = Buffer.from(JSON.stringify(body));
  return new Promise<T>((resolve, reject) => {
    const req = request({
      host, port, path, method: 'POST', ca: o.caPem,
      ...(o.client === undefined ? {} : { cert: o.client.certPem, key: o.client.keyPem }),
      headers: { 'content-type': 'application/json', 'content-length': data.length },
      timeout: o.timeoutMs ?? 15_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          reject(new IsthmusError(ErrorCodes.UNAVAILABLE, `the broker's join API at ${o.address} answered HTTP ${res.statusCode ?? '?'} with no JSON: is this the join port of broker-info.json?`));
          return;
        }
        if (res.statusCode === 200) {
          resolve(parsed as T);
          return;
        }
        const e = parsed as { code?: string; message?: string };
        const code = Object.values(ErrorCodes).find((c) => c === e.code) ?? ErrorCodes.INTERNAL;
        reject(new IsthmusError(code, `broker: ${e.message ?? `HTTP ${res.statusCode ?? '?'}`}`));
      });
    });
    let connected = false;
    req.on('socket', (socket) => socket.once('connect', () => {
      connected = true;
    }));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${(o.timeoutMs ?? 15_000) / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const tls = /certificate|self.signed|unable to verify|SSL|TLS|altnames/i.test(`${err.code ?? ''} ${err.message}`);
      if (tls) {
        reject(new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the broker at ${o.address} is not certified by the CA in broker-info.json (${messageOf(err)}): the file was altered or belongs to another clusterset; get a fresh one from the clusterset admin (\`isthmus broker token\`)`, { cause: err }));
        return;
      }
      const e = new IsthmusError(ErrorCodes.UNAVAILABLE, `cannot reach the broker's join API at ${o.address} (${messageOf(err)}): check the address in broker-info.json and that this machine can reach it`, { cause: err });
      reject(connected ? e : new NotConnected(e));
    });
    req.end(data);
  });
}

function splitHostPort(address: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(address);
  if (m === null) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${JSON.stringify(address)} is not host:port`);
  return [m[1] as string, Number(m[2])];
}
