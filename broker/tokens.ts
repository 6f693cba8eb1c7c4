import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { TOKEN_TTL_DEFAULT_S, TOKEN_TTL_MAX_S } from '../core/broker-api/join.ts';

/**
 * Join tokens, pure: minting and the verdict on a presented token. The broker stores a
 * TokenRecord per token id (etcd, JOIN_TOKEN_DIR); it holds the secret's SHA-256, never
 * the secret, so reading etcd does not give anyone a token. Invariants:
 * - a token is good until `expiresAt`, for one cluster id (`clusterId` when minted for
 *   one, else the first that spends it);
 * - once spent (`usedBy` set) it is good only for the same cluster id and public key
 *   again — a retry of the same join — and for nothing else.
 */
export interface TokenRecord {
  readonly sha256: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly clusterId?: string;
  readonly usedBy?: { readonly clusterId: string; readonly keySha256: string; readonly at: string };
}

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function mintToken(now: Date, ttlSeconds: number = TOKEN_TTL_DEFAULT_S, clusterId?: string): { id: string; token: string; record: TokenRecord } {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60 || ttlSeconds > TOKEN_TTL_MAX_S) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `a join token lives 60 s to ${TOKEN_TTL_MAX_S / 86_400} days; got ${ttlSeconds} s`);
  }
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: TokenRecord = {
    sha256: sha256(secret), createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
    ...(clusterId === undefined ? {} : { clusterId }),
  };
  return { id, token: `ijt_${id}.${secret}`, record };
}

const MINT_HINT = 'ask the clusterset admin for a new broker-info.json (`isthmus broker token --context <broker cluster>`)';

/**
 * The verdict on `secret` for a join of `clusterId` with a key whose SPKI hashes to
 * `keySha256`: 'fresh' (the token may be spent now) or 'retry' (the same join again,
 * already spent); anything else throws BAD_TOKEN saying why and what to do.
 */
export function judgeToken(record: TokenRecord | undefined, secret: string, clusterId: string, keySha256: string, now: Date): 'fresh' | 'retry' {
  const given = Buffer.from(sha256(secret), 'hex');
  const known = Buffer.from(record?.sha256 ?? '', 'hex');
  if (record === undefined || known.length !== given.length || !timingSafeEqual(known, given)) {
    throw new IsthmusError(ErrorCodes.BAD_TOKEN, `the join token is not known to this broker (altered, or minted by another clusterset): ${MINT_HINT}`);
  }
  if (record.usedBy !== undefined) {
    if (record.usedBy.clusterId === clusterId && record.usedBy.keySha256 === keySha256 && now.getTime() < Date.parse(record.expiresAt)) return 'retry';
    throw new IsthmusError(ErrorCodes.BAD_TOKEN, `the join token was used by cluster ${record.usedBy.clusterId} at ${record.usedBy.at}: a token joins one cluster once; ${MINT_HINT}`, { context: { reason: 'used' } });
  }
  if (now.getTime() >= Date.parse(record.expiresAt)) {
    throw new IsthmusError(ErrorCodes.BAD_TOKEN, `the join token expired at ${record.expiresAt}: ${MINT_HINT}`, { context: { reason: 'expired' } });
  }
  if (record.clusterId !== undefined && record.clusterId !== clusterId) {
    throw new IsthmusError(ErrorCodes.BAD_TOKEN, `the join token is for cluster ${record.clusterId}, not ${clusterId}: join with --cluster-id ${record.clusterId}, or ${MINT_HINT}`, { context: { reason: 'other-cluster' } });
  }
  return 'fresh';
}

/** The record once spent by `clusterId`. */
export function spend(record: TokenRecord, clusterId: string, keySha256: string, now: Date): TokenRecord {
  return { ...record, usedBy: { clusterId, keySha256, at: now.toISOString() } };
}
