import { randomBytes } from 'node:crypto';
import { ErrorCodes, IsthmusError, isWireguardKey, wireguardKeyPair, wireguardPublicKeyOf } from '../core/index.ts';

/**
 * WireGuard keys for the clusterset tooling, on the primitives of core/wgkey.ts
 * (x25519 via node:crypto, in `wg`'s base64 text form). Private keys and preshared
 * keys are secrets: never log them.
 */
export interface WireGuardKeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
}

/** A new key pair (what `wg genkey | tee priv | wg pubkey` makes). */
export function generateWireGuardKeyPair(): WireGuardKeyPair {
  return wireguardKeyPair();
}

/** Decodes a WireGuard key, throwing INVALID_ARGUMENT (without the key) unless it is base64 of 32 bytes. */
export function decodeWireGuardKey(key: string, what = 'WireGuard key'): Buffer {
  if (!isWireguardKey(key)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${what} is not 44 characters of base64 encoding 32 bytes: generate one with \`isthmus certs wireguard\` or \`wg genkey\``);
  return Buffer.from(key, 'base64');
}

/** The public key of a WireGuard private key (what `wg pubkey` prints). */
export function wireGuardPublicKey(privateKey: string): string {
  return wireguardPublicKeyOf(privateKey);
}

/** A random 32-byte preshared key (what `wg genpsk` prints). */
export function generateWireGuardPresharedKey(): string {
  return randomBytes(32).toString('base64');
}
