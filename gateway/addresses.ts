import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * This node's own addresses and the broker's, for the receiver checks of screen.ts
 * (a remote CIDR must contain none of them).
 */

/** Every non-loopback interface address of the network namespace this process runs in. */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => !a.internal).map((a) => a.address.replace(/%.*$/, '')));
}

/** The IPs of the host of "host:port" / "[v6]:port" (a literal as is, a name resolved); [] when it cannot be resolved. */
export async function resolveHost(address: string): Promise<string[]> {
  const m = /^\[([^\]]+)\]:\d+$/.exec(address) ?? /^([^:]+):\d+$/.exec(address);
  const host = m?.[1] ?? address;
  if (isIP(host) !== 0) return [host];
  try {
    return (await lookup(host, { all: true })).map((r) => r.address);
  } catch {
    return [];
  }
}
