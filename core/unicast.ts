import { cidrContains, cidrsOverlap, formatCidr, parseCidr, parseIp, type Cidr } from './cidr.ts';

/**
 * Which addresses and CIDRs a cluster may publish, checked by the broker and again by
 * every receiver (they must not trust what the broker relays). Pure functions: each
 * returns the reason something is refused, or undefined when it is fine.
 *
 * - An address (gateway, health-check, exported endpoint) must be unicast: not the
 *   unspecified, loopback, link-local (169.254.0.0/16 holds the cloud metadata
 *   address), multicast, broadcast or reserved (240.0.0.0/4) ranges, nor "this
 *   network" (0.0.0.0/8) or an IPv4-mapped IPv6 address.
 * - A routed CIDR (pods, services) must not touch any of those ranges, must lie
 *   inside one range of an allow-list (default: the private ranges) and must not be
 *   broader than /8 (IPv4) or /32 (IPv6).
 */
const SPECIAL: readonly (readonly [string, string])[] = [
  ['0.0.0.0/8', '"this network" (0.0.0.0/8)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (holds the cloud metadata address)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (240.0.0.0/4, with the broadcast address)'],
  ['::/128', 'the unspecified address'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0/96', 'IPv4-mapped'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
];
const SPECIAL_CIDRS = SPECIAL.map(([c, what]) => [parseCidr(c), what] as const);

/** The private ranges: the default allow-list of routed CIDRs. */
export const PRIVATE_RANGES: readonly string[] = Object.freeze(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);

/** Broadest routed CIDR per family (prefix lengths). */
export const MIN_ROUTED_PREFIX = { 4: 8, 6: 32 } as const;

/** Why `ip` is not a unicast address a peer may be sent to, or undefined. */
export function addressProblem(ip: string): string | undefined {
  let parsed: { family: 4 | 6; value: bigint };
  try {
    parsed = parseIp(ip);
  } catch {
    return `${JSON.stringify(ip.slice(0, 64))} is not an IP address`;
  }
  for (const [c, what] of SPECIAL_CIDRS) {
    if (c.family === parsed.family && cidrContains(c, parsed.value)) return `${ip} is ${what}, not a unicast address`;
  }
  return undefined;
}

/** Why `cidr` may not be routed to a cluster under `allowed` (default PRIVATE_RANGES), or undefined. */
export function routedCidrProblem(cidr: string, allowed: readonly string[] = PRIVATE_RANGES): string | undefined {
  const shape = shapeProblem(cidr, SPECIAL_CIDRS);
  if (typeof shape === 'string') return shape;
  const c = shape;
  const inside = allowed.some((a) => {
    const r = parseCidr(a);
    return r.family === c.family && r.prefix <= c.prefix && cidrsOverlap(r, c);
  });
  if (!inside) return `${cidr} is outside the clusterset's allowed ranges (${allowed.join(', ')}); choose a CIDR inside them or have the broker's --allowed-cidrs extended`;
  return undefined;
}

/**
 * Why a receiver must not route `cidr` whatever the broker allowed, or undefined: it
 * touches a non-unicast range. 240.0.0.0/4 is allowed here (global addressing hands
 * out blocks of it), except the broadcast address.
 */
export function nonUnicastCidrProblem(cidr: string): string | undefined {
  const shape = shapeProblem(cidr, RECEIVER_SPECIAL);
  return typeof shape === 'string' ? shape : undefined;
}

/** The parsed CIDR, or why it is malformed, touches one of `special` or is broader than MIN_ROUTED_PREFIX. */
function shapeProblem(cidr: string, special: readonly (readonly [Cidr, string])[]): Cidr | string {
  let c: Cidr;
  try {
    c = parseCidr(cidr);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  for (const [s, what] of special) {
    if (cidrsOverlap(c, s)) return `${cidr} overlaps ${formatCidr(s)} (${what}); only unicast ranges may be routed`;
  }
  if (c.prefix < MIN_ROUTED_PREFIX[c.family]) return `${cidr} is broader than /${MIN_ROUTED_PREFIX[c.family]}`;
  return c;
}

const RECEIVER_SPECIAL = [
  ...SPECIAL_CIDRS.filter(([c]) => formatCidr(c) !== '240.0.0.0/4'),
  [parseCidr('255.255.255.255/32'), 'broadcast'] as const,
];

/** The first CIDR of `cidrs` that contains `ip`, or undefined (invalid entries are skipped). */
export function cidrHolding(cidrs: readonly string[], ip: string): string | undefined {
  for (const c of cidrs) {
    try {
      if (cidrContains(parseCidr(c), ip)) return c;
    } catch {
      // not a CIDR or not an address: contains nothing
    }
  }
  return undefined;
}
