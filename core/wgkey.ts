import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { ErrorCodes, IsthmusError } from './errors.ts';

/**
 * WireGuard keys for parts that may not import certs/ (the gateway): Curve25519
 * (x25519) through node:crypto, in WireGuard's text form (base64 of the 32 raw
 * bytes), the same as `wg genkey` / `wg pubkey`. A private key is a secret: never
 * log it, put it in an error, or pass it on a command line.
 */
export interface WgKeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
}

// DER prefix of a PKCS#8 X25519 private key; the 32 raw bytes follow.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function raw(jwkValue: string | undefined): string {
  if (jwkValue === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, 'x25519 key export lacks its key bytes');
  return Buffer.from(jwkValue, 'base64url').toString('base64');
}

/** A fresh key pair, as `wg genkey | tee priv | wg pubkey` would make. */
export function wireguardKeyPair(): WgKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: raw(privateKey.export({ format: 'jwk' }).d), publicKey: raw(publicKey.export({ format: 'jwk' }).x) };
}

/** True when `key` is WireGuard's text form of a key: 44 characters of canonical base64 for 32 bytes. */
export function isWireguardKey(key: unknown): key is string {
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(key)) return false;
  const bytes = Buffer.from(key, 'base64');
  return bytes.length === 32 && bytes.toString('base64') === key;
}

/** The public key of a private key (what `wg pubkey` prints). Throws INVALID_ARGUMENT, without the key, when malformed. */
export function wireguardPublicKeyOf(privateKey: string): string {
  if (!isWireguardKey(privateKey)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'the WireGuard private key is not 44 characters of base64 encoding 32 bytes: generate one with `isthmus certs wireguard` or `wg genkey`');
  }
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(privateKey, 'base64')]), format: 'der', type: 'pkcs8' });
  return raw(createPublicKey(key).export({ format: 'jwk' }).x);
}
