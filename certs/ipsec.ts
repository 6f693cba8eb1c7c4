import { randomBytes } from 'node:crypto';
import { ErrorCodes, IsthmusError, certificateInfo, type CertAndKey } from '../core/index.ts';
import { type ClustersetCA } from './ca.ts';
import { issueFor } from './issue.ts';

/**
 * IPsec (IKEv2) credentials for a gateway. The default is a per-gateway certificate from
 * the clusterset CA (peers authenticate each other against the CA, and the IKE identity
 * is the certificate's CN "<gateway>.<cluster>"); a clusterset-wide PSK is only an option,
 * for peers that cannot do certificates. Keys and PSKs are secrets: never log them.
 */
export type IpsecCredentials =
  | { readonly mode: 'certificate'; readonly identity: string; readonly certPem: string; readonly keyPem: string; readonly caPem: string }
  | { readonly mode: 'psk'; readonly psk: string };

export function issueIpsecCredentials(ca: ClustersetCA, clusterId: string, gateway: string, validDays = 90): IpsecCredentials {
  const issued: CertAndKey = issueFor(ca, { role: 'gateway', clusterId, gateway }, { validDays });
  const identity = certificateInfo(issued.certPem).commonName;
  if (identity === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, 'issued gateway certificate has no CN');
  return { mode: 'certificate', identity, certPem: issued.certPem, keyPem: issued.keyPem, caPem: ca.bundlePem };
}

/** A random 48-byte PSK in base64 (strongSwan takes it as `0s<base64>`). */
export function generateIpsecPsk(): IpsecCredentials {
  return { mode: 'psk', psk: randomBytes(48).toString('base64') };
}

/** Validates a PSK given by a user: base64, at least 32 bytes. */
export function validateIpsecPsk(psk: string): IpsecCredentials {
  const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(psk) ? Buffer.from(psk, 'base64') : Buffer.alloc(0);
  if (raw.length < 32) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'the IPsec PSK must be base64 of at least 32 random bytes: generate one with `isthmus certs psk`');
  return { mode: 'psk', psk };
}
