import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';

/**
 * Generic X.509 primitives: RSA-2048 keys (native, node:crypto), a self-signed CA,
 * certificates issued by it (node-forge builds and signs them), chain verification
 * and certificate inspection (native X509Certificate).
 *
 * All PEM in, PEM out. Private keys are PKCS#1 PEM ("RSA PRIVATE KEY"); never log them.
 * Certificates are SHA-256 signed, carry a random positive 128-bit serial, a subject
 * key identifier and (when issued by a CA) an authority key identifier.
 */

export interface KeyPair {
  readonly keyPem: string;
  readonly publicKeyPem: string;
}

export interface CertAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** The same shape under the name other parts use. */
export type CertKeyPair = CertAndKey;

export type CertUsage = 'server' | 'client';

export interface CreateCAOptions {
  commonName: string;
  /** Lifetime in days from notBefore (may be fractional, must be > 0). */
  validDays: number;
  /** Start of validity (default: now minus 5 minutes, to tolerate clock skew). */
  notBefore?: Date;
  /** Use this key instead of generating one (PEM). */
  keyPem?: string;
}

export interface IssueOptions {
  ca: CertAndKey;
  commonName: string;
  /** Subject O= values (Kubernetes reads them as groups). */
  organizations?: readonly string[];
  dnsNames?: readonly string[];
  /** IPv4 or IPv6 addresses for the subjectAltName. */
  ipAddresses?: readonly string[];
  /** At least one: 'server' → serverAuth, 'client' → clientAuth. */
  usages: readonly CertUsage[];
  /** Lifetime in days from notBefore (may be fractional, must be > 0). */
  validDays: number;
  /** Start of validity (default: now minus 5 minutes). Must not precede the CA's notBefore. */
  notBefore?: Date;
  /** Certify this existing key (PEM) instead of generating a new one. */
  keyPem?: string;
  /**
   * Certify this public key (SPKI PEM, RSA) whose private key stays with its owner (a
   * joining cluster); the result's keyPem is then ''. Excludes `keyPem`.
   */
  publicKeyPem?: string;
}

export interface CertificateInfo {
  readonly commonName: string | undefined;
  readonly organizations: readonly string[];
  readonly issuerCommonName: string | undefined;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Upper-case hex, no separators. */
  readonly serial: string;
  readonly isCA: boolean;
  /** SHA-256 fingerprint, upper-case hex with colons. */
  readonly fingerprint256: string;
}

const SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

function bad(message: string, cause?: unknown): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, message, cause === undefined ? {} : { cause });
}

/** A new RSA-2048 key pair, generated natively. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { keyPem: privateKey, publicKeyPem: publicKey };
}

function parsePrivateKey(keyPem: string, what: string): forge.pki.rsa.PrivateKey {
  try {
    return forge.pki.privateKeyFromPem(keyPem);
  } catch (err) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${what} is not an RSA private key in PEM form (${messageOf(err)}): give the key file written with the certificate`, { cause: err });
  }
}

function parseCert(certPem: string, what: string): forge.pki.Certificate {
  try {
    return forge.pki.certificateFromPem(certPem);
  } catch (err) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${what} is not an RSA certificate in PEM form (${messageOf(err)})`, { cause: err });
  }
}

function nativeCert(certPem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(certPem);
  } catch (err) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${what} is not a certificate in PEM form (${messageOf(err)})`, { cause: err });
  }
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x10; // positive, and no leading zero byte to strip
  return bytes.toString('hex');
}

function validity(validDays: number, notBefore: Date | undefined): { from: Date; to: Date } {
  if (!Number.isFinite(validDays) || validDays <= 0) throw bad(`validDays must be a positive number of days, got ${validDays}`);
  if (notBefore !== undefined && Number.isNaN(notBefore.getTime())) throw bad('notBefore is not a valid date');
  const start = notBefore ?? new Date(Date.now());
  const from = notBefore ?? new Date(start.getTime() - SKEW_MS);
  return { from, to: new Date(start.getTime() + validDays * DAY_MS) };
}

function checkName(name: string, what: string): void {
  if (name.length === 0 || name.length > 64) throw bad(`${what} must be 1 to 64 characters, got ${JSON.stringify(name)}`);
}

function keysFor(keyPem: string | undefined): { keyPem: string; key: forge.pki.rsa.PrivateKey; pub: forge.pki.rsa.PublicKey } {
  const pem = keyPem ?? generateKeyPair().keyPem;
  const key = parsePrivateKey(pem, 'the given key');
  return { keyPem: pem, key, pub: forge.pki.setRsaPublicKey(key.n, key.e) };
}

function parseRsaPublicKey(pem: string): forge.pki.rsa.PublicKey {
  try {
    const key = forge.pki.publicKeyFromPem(pem) as forge.pki.rsa.PublicKey;
    if (key.n === undefined || key.e === undefined) throw new Error('not an RSA key');
    if (key.n.bitLength() < 2048) throw new Error(`an RSA key of ${key.n.bitLength()} bits (2048 at least)`);
    return key;
  } catch (err) {
    throw bad(`the public key is not a PEM RSA public key of 2048 bits or more: ${messageOf(err)}`);
  }
}

/** A self-signed CA certificate (basicConstraints cA, keyCertSign/cRLSign) and its key. */
export function createCA(options: CreateCAOptions): CertAndKey {
  checkName(options.commonName, 'CA common name');
  const { from, to } = validity(options.validDays, options.notBefore);
  const { keyPem, key, pub } = keysFor(options.keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = from;
  cert.validity.notAfter = to;
  const attrs = [{ name: 'commonName', value: options.commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  const ski = cert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ski },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

function sameKey(a: forge.pki.rsa.PublicKey, b: forge.pki.rsa.PublicKey): boolean {
  return a.n.equals(b.n) && a.e.equals(b.e);
}

/** A certificate for `commonName` signed by `ca`, with a new key unless `keyPem` is given. */
export function issueCertificate(options: IssueOptions): CertAndKey {
  checkName(options.commonName, 'common name');
  if (options.usages.length === 0) throw bad('usages must name at least one of server, client');
  for (const u of options.usages) if (u !== 'server' && u !== 'client') throw bad(`unknown usage ${JSON.stringify(u)}: use server or client`);
  for (const o of options.organizations ?? []) checkName(o, 'organization');
  for (const d of options.dnsNames ?? []) {
    if (!/^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/.test(d) || d.length > 253) {
      throw bad(`DNS name ${JSON.stringify(d)} is not a valid host name`);
    }
  }
  for (const ip of options.ipAddresses ?? []) if (isIP(ip) === 0) throw bad(`IP address ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);

  const caCert = parseCert(options.ca.certPem, 'the CA certificate');
  const caKey = parsePrivateKey(options.ca.keyPem, 'the CA key');
  if (!sameKey(caCert.publicKey as forge.pki.rsa.PublicKey, forge.pki.setRsaPublicKey(caKey.n, caKey.e))) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the CA key does not belong to the CA certificate: give the key file created with that CA');
  }
  const bc = caCert.getExtension('basicConstraints') as { cA?: boolean } | null;
  if (bc?.cA !== true) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the CA certificate is not a CA (basicConstraints cA is not set)');

  const { from, to } = validity(options.validDays, options.notBefore);
  const caTo = caCert.validity.notAfter;
  const notAfter = to.getTime() > caTo.getTime() ? caTo : to;
  if (notAfter.getTime() <= from.getTime()) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the CA expired at ${caTo.toISOString()}: create or renew the CA first`);
  }
  const { keyPem, pub } = options.publicKeyPem === undefined ? keysFor(options.keyPem) : { keyPem: '', pub: parseRsaPublicKey(options.publicKeyPem) };
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = from;
  cert.validity.notAfter = notAfter;
  cert.setSubject([
    ...(options.organizations ?? []).map((o) => ({ name: 'organizationName', value: o })),
    { name: 'commonName', value: options.commonName },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  const server = options.usages.includes('server');
  const client = options.usages.includes('client');
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const caSki = caCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: server, clientAuth: client },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caSki },
  ]);
  cert.sign(parsePrivateKey(options.ca.keyPem, 'the CA key'), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/**
 * Checks that `certPem` was signed by the CA in `caPem` and that both are valid at
 * `now`. Throws IsthmusError BAD_CREDENTIALS saying which check failed.
 */
export function verifyChain(certPem: string, caPem: string, now: Date = new Date()): void {
  const cert = nativeCert(certPem, 'the certificate');
  const ca = nativeCert(caPem, 'the CA certificate');
  const subject = cert.subject.replace(/\n/g, ', ');
  if (!ca.ca) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the CA certificate (${ca.subject.replace(/\n/g, ', ')}) is not a CA`);
  if (cert.checkIssued(ca) === false || !cert.verify(ca.publicKey)) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `certificate ${subject} was not issued by CA ${ca.subject.replace(/\n/g, ', ')} (issuer: ${cert.issuer.replace(/\n/g, ', ')}): use a certificate from this clusterset's CA`, {
      context: { reason: 'wrong-ca' },
    });
  }
  for (const [c, what] of [[ca, 'CA certificate'], [cert, 'certificate']] as const) {
    const from = new Date(c.validFrom);
    const to = new Date(c.validTo);
    if (now.getTime() < from.getTime()) {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${what} ${c.subject.replace(/\n/g, ', ')} is not yet valid (valid from ${from.toISOString()}): check the clock`, {
        context: { reason: 'not-yet-valid' },
      });
    }
    if (now.getTime() > to.getTime()) {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `${what} ${c.subject.replace(/\n/g, ', ')} expired at ${to.toISOString()}: renew it`, {
        context: { reason: 'expired' },
      });
    }
  }
}

function subjectValues(subject: string, key: string): string[] {
  const out: string[] = [];
  for (const line of subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && line.slice(0, eq) === key) out.push(line.slice(eq + 1));
  }
  return out;
}

function splitSans(san: string | undefined): { dns: string[]; ips: string[] } {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const part of (san ?? '').split(', ')) {
    if (part.startsWith('DNS:')) dns.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ips.push(part.slice(11));
  }
  return { dns, ips };
}

/** The fields of a certificate that the project reads. */
export function certificateInfo(certPem: string): CertificateInfo {
  const c = nativeCert(certPem, 'the certificate');
  const { dns, ips } = splitSans(c.subjectAltName);
  return {
    commonName: subjectValues(c.subject, 'CN')[0],
    organizations: subjectValues(c.subject, 'O'),
    issuerCommonName: subjectValues(c.issuer, 'CN')[0],
    dnsNames: dns,
    ipAddresses: ips.map(normalizeIp),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    serial: c.serialNumber.toUpperCase(),
    isCA: c.ca,
    fingerprint256: c.fingerprint256,
  };
}

function normalizeIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  // OpenSSL prints IPv6 SANs fully expanded; give the canonical short form.
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** True when `keyPem` is the private key of `certPem`. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  const cert = nativeCert(certPem, 'the certificate');
  let pub: string;
  try {
    pub = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
  } catch (err) {
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the key is not a private key in PEM form (${messageOf(err)})`, { cause: err });
  }
  return cert.publicKey.export({ type: 'spki', format: 'pem' }).toString() === pub;
}

/**
 * How a clusterset certificate names its holder (shared by certs/, which issues,
 * and broker/, which authorizes). The subject CN is the name (a cluster id, a
 * gateway name, or "isthmus-admin"); exactly one O= value below gives the role.
 */
export const ClustersetRoles = {
  /** A member cluster; CN = cluster id. May write only its own records. */
  cluster: 'isthmus:cluster',
  /** The clusterset administrator; may do anything. */
  admin: 'isthmus:admin',
  /** A broker replica's serving certificate. */
  broker: 'isthmus:broker',
  /** A gateway's IPsec/TLS identity; CN = "<gateway>.<cluster id>". */
  gateway: 'isthmus:gateway',
} as const;

export type ClustersetRole = keyof typeof ClustersetRoles;

/** The role named by a certificate's O= values, or undefined when it names none or several. */
export function clustersetRoleOf(organizations: readonly string[]): ClustersetRole | undefined {
  const found = (Object.entries(ClustersetRoles) as [ClustersetRole, string][]).filter(([, o]) => organizations.includes(o));
  return found.length === 1 ? found[0]?.[0] : undefined;
}
