import { X509Certificate } from 'node:crypto';
import { certificateInfo, type CertAndKey } from '../core/index.ts';
import { type ClustersetCA } from './ca.ts';
import { identityOf, issueFor, readIssued, writeIssued } from './issue.ts';

/**
 * Renewal with overlap: a certificate is renewed once `fraction` (default 2/3) of
 * its lifetime has passed, so the new one is in place long before the old one
 * expires; both are valid meanwhile, and readers reload files (gRPC's file watcher,
 * kubelet-style) without a gap.
 */
export interface RenewalPolicy {
  /** Renew after this share of the lifetime (default 2/3). */
  fraction?: number;
}

export function renewalTime(certPem: string, policy: RenewalPolicy = {}): Date {
  const info = certificateInfo(certPem);
  const from = info.notBefore.getTime();
  const life = info.notAfter.getTime() - from;
  return new Date(from + life * (policy.fraction ?? 2 / 3));
}

export function renewalDue(certPem: string, now: Date = new Date(), policy: RenewalPolicy = {}): boolean {
  return now.getTime() >= renewalTime(certPem, policy).getTime();
}

/** A new certificate for the same identity, with the same lifetime as the old one. */
export function renew(ca: CertAndKey, certPem: string): CertAndKey {
  const info = certificateInfo(certPem);
  const days = (info.notAfter.getTime() - info.notBefore.getTime()) / 86_400_000;
  return issueFor(ca, identityOf(certPem), { validDays: days });
}

export interface RenewResult {
  readonly renewed: boolean;
  readonly reason: string;
  readonly notAfter: Date;
}

/**
 * Renews the certificate in `dir` (tls.crt/tls.key/ca.crt) when due, when it was not
 * issued by the current CA, or when `force`. Always refreshes ca.crt to the CA's bundle.
 */
export async function renewDir(dir: string, ca: ClustersetCA, options: { force?: boolean; now?: Date } & RenewalPolicy = {}): Promise<RenewResult> {
  const current = await readIssued(dir);
  const now = options.now ?? new Date();
  const info = certificateInfo(current.certPem);
  const fromOldCa = !issuedBy(current.certPem, ca.certPem);
  let reason = '';
  if (options.force === true) reason = 'forced';
  else if (fromOldCa) reason = 'issued by a previous CA';
  else if (renewalDue(current.certPem, now, options)) reason = `past ${Math.round((options.fraction ?? 2 / 3) * 100)}% of its lifetime`;
  if (reason === '') {
    if (current.caPem.trim() !== ca.bundlePem.trim()) await writeIssued(dir, current, ca);
    return { renewed: false, reason: `not due until ${renewalTime(current.certPem, options).toISOString()}`, notAfter: info.notAfter };
  }
  const next = renew(ca, current.certPem);
  await writeIssued(dir, next, ca);
  return { renewed: true, reason, notAfter: certificateInfo(next.certPem).notAfter };
}

function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}
