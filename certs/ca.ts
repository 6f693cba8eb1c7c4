import { access } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ErrorCodes, IsthmusError, certificateInfo, createCA, isIsthmusError, keyMatchesCertificate, verifyChain, type CertAndKey,
} from '../core/index.ts';
import { readPemFile, splitPemBundle, writeFileAtomic } from './files.ts';

/**
 * The clusterset CA on disk: `ca.crt` (0644), `ca.key` (0600) and `ca-bundle.crt`, the
 * certificates to trust (the current CA, plus the previous one while it is still valid
 * after a rotation, so certificates it issued keep working until they are re-issued).
 */
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const CA_BUNDLE_FILE = 'ca-bundle.crt';

export interface ClustersetCA extends CertAndKey {
  /** PEM certificates to trust: the current CA first, then still-valid previous ones. */
  readonly bundlePem: string;
}

export interface CreateClustersetCAOptions {
  /** CA common name (default "isthmus-clusterset-ca"). */
  commonName?: string;
  /** Lifetime (default 1825 days). */
  validDays?: number;
}

const CA_HINT = 'create one with `isthmus certs ca create --out DIR`';

export function createClustersetCA(options: CreateClustersetCAOptions = {}): ClustersetCA {
  const ca = createCA({ commonName: options.commonName ?? 'isthmus-clusterset-ca', validDays: options.validDays ?? 1825 });
  return { ...ca, bundlePem: ca.certPem };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes the CA into `dir`. Refuses to replace an existing CA key unless `overwrite`. */
export async function writeClustersetCA(dir: string, ca: ClustersetCA, overwrite = false): Promise<void> {
  if (!overwrite && (await exists(join(dir, CA_KEY_FILE)))) {
    throw new IsthmusError(ErrorCodes.ALREADY_EXISTS, `${join(dir, CA_KEY_FILE)} already exists: choose another directory (replacing a CA cuts every cluster off; use \`isthmus certs ca rotate\`)`);
  }
  await writeFileAtomic(join(dir, CA_KEY_FILE), ca.keyPem, true);
  await writeFileAtomic(join(dir, CA_CERT_FILE), ca.certPem, false);
  await writeFileAtomic(join(dir, CA_BUNDLE_FILE), ca.bundlePem, false);
}

/** Reads the CA from `dir` and checks that its key and certificate belong together. */
export async function loadClustersetCA(dir: string): Promise<ClustersetCA> {
  const certPem = await readPemFile(join(dir, CA_CERT_FILE), 'CA certificate', CA_HINT);
  const keyPem = await readPemFile(join(dir, CA_KEY_FILE), 'CA key', CA_HINT);
  if (!certificateInfo(certPem).isCA) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${join(dir, CA_CERT_FILE)} is not a CA certificate`);
  if (!keyMatchesCertificate(keyPem, certPem)) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${join(dir, CA_KEY_FILE)} is not the key of ${join(dir, CA_CERT_FILE)}: restore the matching pair`);
  }
  let bundlePem = certPem;
  if (await exists(join(dir, CA_BUNDLE_FILE))) bundlePem = await readPemFile(join(dir, CA_BUNDLE_FILE), 'CA bundle', CA_HINT);
  return { certPem, keyPem, bundlePem };
}

/** The bundle without certificates expired at `now`, current CA first. */
export function pruneBundle(bundlePem: string, now: Date = new Date()): string {
  return splitPemBundle(bundlePem)
    .filter((p) => certificateInfo(p).notAfter.getTime() > now.getTime())
    .join('');
}

/**
 * Replaces the CA with a new one (new key) while keeping trust in the old one: the
 * new bundle holds the new CA and every still-valid previous CA. Re-issue the leaf
 * certificates (`renew` with force), roll them out, and the old CA ages out of the
 * bundle by itself. Nothing drops meanwhile: old leaves verify against the old CA in
 * the bundle, new leaves against the new one.
 */
export function rotateClustersetCA(current: ClustersetCA, options: CreateClustersetCAOptions = {}, now: Date = new Date()): ClustersetCA {
  const oldInfo = certificateInfo(current.certPem);
  const next = createCA({ commonName: options.commonName ?? oldInfo.commonName ?? 'isthmus-clusterset-ca', validDays: options.validDays ?? 1825 });
  const previous = pruneBundle(current.bundlePem, now);
  const bundle = splitPemBundle(previous).some((p) => p.trim() === current.certPem.trim()) ? previous : current.certPem + previous;
  return { ...next, bundlePem: next.certPem + bundle };
}

/**
 * Verifies `certPem` against any CA of a trust bundle. Throws BAD_CREDENTIALS; when no CA
 * of the bundle issued the certificate the message says so, otherwise it gives the
 * issuing CA's reason (expired, not yet valid).
 */
export function verifyWithBundle(certPem: string, bundlePem: string, now: Date = new Date()): void {
  const cas = splitPemBundle(bundlePem);
  if (cas.length === 0) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the CA bundle holds no certificate');
  let first: unknown;
  for (const ca of cas) {
    try {
      verifyChain(certPem, ca, now);
      return;
    } catch (err) {
      if (isIsthmusError(err) && err.context['reason'] !== 'wrong-ca') throw err;
      first ??= err;
    }
  }
  throw first;
}
