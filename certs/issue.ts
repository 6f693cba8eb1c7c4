import { join } from 'node:path';
import {
  ClustersetRoles, ErrorCodes, IsthmusError, certificateInfo, clustersetRoleOf, issueCertificate,
  type CertAndKey, type CertUsage,
} from '../core/index.ts';
import { CA_CERT_FILE, type ClustersetCA } from './ca.ts';
import { readPemFile, writeFileAtomic } from './files.ts';
import { splitSans, validateClusterId } from './identity.ts';

/**
 * Who a clusterset certificate is for. The role is written as the subject O= value
 * (core ClustersetRoles), the name as CN; the broker authorizes from exactly these.
 */
export type Identity =
  | { readonly role: 'cluster'; readonly clusterId: string }
  | { readonly role: 'admin' }
  | { readonly role: 'broker'; readonly sans: readonly string[] }
  | { readonly role: 'gateway'; readonly clusterId: string; readonly gateway: string };

export const ADMIN_COMMON_NAME = 'isthmus-admin';
export const BROKER_COMMON_NAME = 'isthmus-broker';

/** Files of an issued certificate: like a Kubernetes TLS Secret. */
export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';

export interface IssueForOptions {
  /** Lifetime (default 90 days, renewed at 2/3 by `renewDir`; never beyond the CA's). */
  validDays?: number;
  notBefore?: Date;
}

interface Plan {
  commonName: string;
  organizations: string[];
  usages: CertUsage[];
  dnsNames: string[];
  ipAddresses: string[];
}

function plan(identity: Identity): Plan {
  switch (identity.role) {
    case 'cluster':
      return { commonName: validateClusterId(identity.clusterId), organizations: [ClustersetRoles.cluster], usages: ['client'], dnsNames: [], ipAddresses: [] };
    case 'admin':
      return { commonName: ADMIN_COMMON_NAME, organizations: [ClustersetRoles.admin], usages: ['client'], dnsNames: [], ipAddresses: [] };
    case 'broker': {
      const { dnsNames, ipAddresses } = splitSans(identity.sans);
      if (dnsNames.length + ipAddresses.length === 0) {
        throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'a broker server certificate needs at least one SAN: give --san with the names and IPs clients dial');
      }
      return { commonName: BROKER_COMMON_NAME, organizations: [ClustersetRoles.broker], usages: ['server'], dnsNames, ipAddresses };
    }
    case 'gateway': {
      const name = `${validateClusterId(identity.gateway, 'gateway name')}.${validateClusterId(identity.clusterId)}`;
      return { commonName: name, organizations: [ClustersetRoles.gateway], usages: ['server', 'client'], dnsNames: [name], ipAddresses: [] };
    }
  }
}

/** Issues the certificate for `identity` from the clusterset CA. */
export function issueFor(ca: CertAndKey, identity: Identity, options: IssueForOptions = {}): CertAndKey {
  const p = plan(identity);
  return issueCertificate({
    ca, commonName: p.commonName, organizations: p.organizations, dnsNames: p.dnsNames, ipAddresses: p.ipAddresses,
    usages: p.usages, validDays: options.validDays ?? 90,
    ...(options.notBefore === undefined ? {} : { notBefore: options.notBefore }),
  });
}

/** Reads back the identity a clusterset certificate was issued for (used by renewal). */
export function identityOf(certPem: string): Identity {
  const info = certificateInfo(certPem);
  const role = clustersetRoleOf(info.organizations);
  const cn = info.commonName ?? '';
  switch (role) {
    case 'cluster':
      return { role, clusterId: cn };
    case 'admin':
      return { role };
    case 'broker':
      return { role, sans: [...info.dnsNames, ...info.ipAddresses] };
    case 'gateway': {
      const dot = cn.indexOf('.');
      return { role, gateway: cn.slice(0, dot), clusterId: cn.slice(dot + 1) };
    }
    case undefined:
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `certificate ${cn} names no clusterset role (O=${info.organizations.join(',')}): it was not issued by \`isthmus certs issue\``);
  }
}

/** Writes tls.crt (0644), tls.key (0600) and ca.crt (the trust bundle) into `dir`. */
export async function writeIssued(dir: string, issued: CertAndKey, ca: ClustersetCA): Promise<void> {
  await writeFileAtomic(join(dir, TLS_KEY_FILE), issued.keyPem, true);
  await writeFileAtomic(join(dir, TLS_CERT_FILE), issued.certPem, false);
  await writeFileAtomic(join(dir, CA_CERT_FILE), ca.bundlePem, false);
}

export async function readIssued(dir: string): Promise<CertAndKey & { caPem: string }> {
  const hint = 'issue one with `isthmus certs issue`';
  return {
    certPem: await readPemFile(join(dir, TLS_CERT_FILE), 'certificate', hint),
    keyPem: await readPemFile(join(dir, TLS_KEY_FILE), 'key', hint),
    caPem: await readPemFile(join(dir, CA_CERT_FILE), 'CA bundle', hint),
  };
}
