import { X509Certificate } from 'node:crypto';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { ErrorCodes, IsthmusError, certificateInfo, clustersetRoleOf, messageOf, verifyChain } from '../core/index.ts';


/**
 * Who is calling, from the client certificate of the mTLS connection. The TLS layer
 * already checked the chain against the clusterset CA bundle (expired and foreign
 * certificates leave the connection unauthorized); the broker checks it again against
 * the bundle it holds now (it can rotate) and reads the role from the subject.
 */
export type Caller =
  | { readonly role: 'cluster'; readonly clusterId: string; readonly name: string; readonly serial: string }
  | { readonly role: 'admin'; readonly name: string; readonly serial: string };

const NO_CERT = 'no valid client certificate: present one issued by this clusterset\'s CA that has not expired (`isthmus certs issue --cluster ID`)';

export class Authenticator {
  #caPems: readonly string[];
  readonly #cache = new Map<string, { caller: Caller; notAfter: number }>();

  constructor(caBundle: readonly string[]) {
    this.#caPems = caBundle;
  }

  /** Replaces the trusted CAs (after a rotation). */
  setTrusted(caBundle: readonly string[]): void {
    this.#caPems = caBundle;
    this.#cache.clear();
  }

  /** The caller of `call`, or UNAUTHENTICATED / PERMISSION_DENIED. */
  authenticate(call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>, now = Date.now()): Caller {
    const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
    if (raw === undefined) throw new IsthmusError(ErrorCodes.UNAUTHENTICATED, NO_CERT);
    const fingerprint = raw.toString('base64');
    const hit = this.#cache.get(fingerprint);
    if (hit !== undefined && now < hit.notAfter) return hit.caller;
    const x509 = new X509Certificate(raw);
    const pem = x509.toString();
    const serial = x509.serialNumber.toUpperCase();
    let verified = false;
    let why = '';
    for (const ca of this.#caPems) {
      try {
        verifyChain(pem, ca, new Date(now));
        verified = true;
        break;
      } catch (err) {
        why = messageOf(err);
      }
    }
    if (!verified) throw new IsthmusError(ErrorCodes.UNAUTHENTICATED, `${NO_CERT} (${why})`);
    const info = certificateInfo(pem);
    const role = clustersetRoleOf(info.organizations);
    const name = info.commonName ?? '';
    let caller: Caller;
    if (role === 'admin') caller = { role: 'admin', name, serial };
    else if (role === 'cluster' && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) && name.length <= 63) caller = { role: 'cluster', clusterId: name, name, serial };
    else throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `certificate ${name} (role ${role ?? 'none'}) may not use the broker: use a cluster or admin certificate`);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(fingerprint, { caller, notAfter: info.notAfter.getTime() });
    return caller;
  }
}

/** Throws PERMISSION_DENIED unless `caller` may write records of `clusterId`. */
export function authorizeWrite(caller: Caller, clusterId: string, what: string): void {
  if (caller.role === 'admin') return;
  if (caller.clusterId !== clusterId) {
    throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `cluster ${caller.clusterId} may not ${what} of cluster ${clusterId}: a cluster writes only its own records`);
  }
}

