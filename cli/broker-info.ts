import { readFile, stat } from 'node:fs/promises';
import { ErrorCodes, IsthmusError, certificateInfo, messageOf } from '../core/index.ts';
import { parseJoinToken } from '../core/broker-api/join.ts';
import { parseBrokerAddresses } from '../core/broker-api/address.ts';
import { writeFileAtomic } from '../certs/index.ts';

/**
 * broker-info.json: what a cluster needs to join, written by `isthmus broker deploy` /
 * `isthmus broker token` with mode 0600 (it holds a join token). Readers refuse a file
 * others can read (the token may have leaked: mint a new one), one that does not parse
 * or lacks a field, and a token that is not a token. The CA certificate in it is what
 * the broker's certificate is checked against, so an altered file fails at the first
 * connection (core/broker-api/join.ts says so).
 */
export interface BrokerInfo {
  readonly apiVersion: 'isthmus.dev/v1alpha1';
  readonly kind: 'BrokerInfo';
  /**
   * gRPC addresses (host:port: IPv4, [IPv6] or a DNS name) gateways and controllers dial:
   * join gives them all (the ConfigMaps' BROKER, one comma list), and the clients use
   * whichever answers.
   */
  readonly brokers: readonly string[];
  /** Join API addresses (host:port). */
  readonly joinAddresses: readonly string[];
  /** The clusterset CA bundle (PEM). */
  readonly caPem: string;
  readonly clusterset: { readonly cableDriver: 'wireguard' | 'ipsec' | 'vxlan'; readonly globalAddressing: boolean };
  readonly token: string;
  readonly tokenExpiresAt: string;
}

/** Checks the shape of a parsed broker-info; throws INVALID_ARGUMENT naming the bad field. */
export function validateBrokerInfo(v: unknown, file: string): BrokerInfo {
  const bad = (what: string): IsthmusError => new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${file}: ${what}; use the file as \`isthmus broker deploy\` or \`isthmus broker token\` wrote it (ask the clusterset admin for a new one)`);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o['kind'] !== 'BrokerInfo' || o['apiVersion'] !== 'isthmus.dev/v1alpha1') throw bad('not a BrokerInfo (kind BrokerInfo, apiVersion isthmus.dev/v1alpha1)');
  for (const f of ['brokers', 'joinAddresses'] as const) {
    const list = o[f];
    if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'string' && !a.includes(','))) throw bad(`${f} must list host:port addresses`);
    try {
      parseBrokerAddresses(list as string[], f);
    } catch (err) {
      throw bad(`${f} must list host:port addresses (${messageOf(err)})`);
    }
  }
  if (typeof o['caPem'] !== 'string') throw bad('caPem is missing');
  try {
    if (!certificateInfo(o['caPem']).isCA) throw new Error('not a CA certificate');
  } catch (err) {
    throw bad(`caPem is not a CA certificate (${messageOf(err)})`);
  }
  const cs = o['clusterset'] as Record<string, unknown> | undefined;
  if (cs === undefined || !['wireguard', 'ipsec', 'vxlan'].includes(String(cs['cableDriver'])) || typeof cs['globalAddressing'] !== 'boolean') {
    throw bad('clusterset must have cableDriver (wireguard, ipsec or vxlan) and globalAddressing (true or false)');
  }
  if (typeof o['token'] !== 'string') throw bad('token is missing');
  parseJoinToken(o['token']);
  if (typeof o['tokenExpiresAt'] !== 'string' || Number.isNaN(Date.parse(o['tokenExpiresAt']))) throw bad('tokenExpiresAt is not a time');
  return o as unknown as BrokerInfo;
}

/** Reads and checks broker-info.json: NOT_FOUND, PERMISSION_DENIED (mode), INVALID_ARGUMENT. */
export async function readBrokerInfo(file: string): Promise<BrokerInfo> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch {
    throw new IsthmusError(ErrorCodes.NOT_FOUND, `${file} does not exist: give the broker-info.json that \`isthmus broker deploy\` wrote (the clusterset admin mints more with \`isthmus broker token\`)`);
  }
  if ((mode & 0o077) !== 0) {
    throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `${file} is readable by others (mode ${(mode & 0o777).toString(8)}): it holds a join token; \`chmod 600 ${file}\`, and if others may have read it, ask for a new token`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${file} is not JSON (${messageOf(err)}): use the file as \`isthmus broker deploy\` wrote it`);
  }
  return validateBrokerInfo(parsed, file);
}

export async function writeBrokerInfo(file: string, info: BrokerInfo): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(info, null, 2) + '\n', true);
}
