import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { ErrorCodes, IsthmusError } from '../core/index.ts';

/**
 * WireGuard keys: Curve25519 (x25519) via node:crypto, in WireGuard's text form
 * (base64 of the raw 32 bytes), the same as `wg genkey` / `wg pubkey` / `wg genpsk`.
 * Private keys and preshared keys are secrets: never log them.
 */
export interface WireGuardKeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
}

// DER prefix of a PKCS#8 X25519 private key; the 32 raw bytes follow.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function rawFromJwk(value: string | undefined): string {
  if (value === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, 'x25519 key export lacks its key bytes');
  return Buffer.from(value, 'base64url').toString('base64');
}

export function generateWireGuardKeyPair(): WireGuardKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: rawFromJwk(privateKey.export({ format: 'jwk' }).d), publicKey: rawFromJwk(publicKey.export({ format: 'jwk' }).x) };
}

/** Decodes a WireGuard key, throwing INVALID_ARGUMENT unless it is base64 of 32 bytes. */
export function decodeWireGuardKey(key: string, what = 'WireGuard key'): Buffer {
  const raw = typeof key === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(key) ? Buffer.from(key, 'base64') : undefined;
  if (raw?.length !== 32) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${what} is not 44 characters of base64 encoding 32 bytes: generate one with \`wg genkey\` or isthmus`);
  return raw;
}

/** The public key of a WireGuard private key (what `wg pubkey` prints). */
export function wireGuardPublicKey(privateKey: string): string {
  const raw = decodeWireGuardKey(privateKey, 'WireGuard private key');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  return rawFromJwk(createPublicKey(key).export({ format: 'jwk' }).x);
}

/** A random 32-byte preshared key (what `wg genpsk` prints). */
export function generateWireGuardPresharedKey(): string {
  return randomBytes(32).toString('base64');
}
