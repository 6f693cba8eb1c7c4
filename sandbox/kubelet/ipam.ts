import { cidrContains, cidrSize, nthAddress, parseCidr } from '../../core/index.ts';

/**
 * Pod addresses from a node's pod CIDR, the way host-local IPAM hands them out:
 * the network address, the first address (kept for the node) and the broadcast
 * address are never given; the lowest free address is. Pure.
 */
export function allocateIp(podCidr: string, used: ReadonlySet<string>): string | undefined {
  const cidr = parseCidr(podCidr);
  const size = cidrSize(cidr);
  for (let i = 2n; i < size - 1n; i++) {
    const ip = nthAddress(cidr, i);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

/** How many pods a node's CIDR can hold. */
export function capacityOf(podCidr: string): number {
  return Number(cidrSize(parseCidr(podCidr))) - 3;
}

export function inCidr(podCidr: string, ip: string): boolean {
  return cidrContains(parseCidr(podCidr), ip);
}
