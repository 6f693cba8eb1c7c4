// The public face of certs/: the clusterset CA, per-role certificates, renewal,
// WireGuard keys and IPsec credentials.
export * from './ca.ts';
export * from './issue.ts';
export * from './renew.ts';
export * from './wireguard.ts';
export * from './ipsec.ts';
export * from './identity.ts';
export { writeFileAtomic, readPemFile, splitPemBundle } from './files.ts';
