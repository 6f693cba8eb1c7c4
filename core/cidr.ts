import { ErrorCodes, IsthmusError } from './errors.ts';

/**
 * IPv4 and IPv6 addresses and CIDR blocks as bigints. Pure functions, no I/O.
 *
 * Parsing is strict: IPv4 octets with leading zeros ("010.0.0.1") are rejected because
 * tools disagree on whether they are octal; IPv6 zone ids ("fe80::1%eth0") are rejected.
 * IPv4-mapped and IPv4-embedded IPv6 forms ("::ffff:1.2.3.4") are accepted and are
 * family 6; formatIp writes IPv4-mapped addresses back as "::ffff:a.b.c.d" (RFC 5952 §5).
 */
export interface Cidr {
  readonly family: 4 | 6;
  /** The network address; host bits are zero. */
  readonly base: bigint;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  readonly prefix: number;
}

const BITS = { 4: 32, 6: 128 } as const;

function bitsOf(family: 4 | 6): number {
  return BITS[family];
}

function maxOf(family: 4 | 6): bigint {
  return (1n << BigInt(bitsOf(family))) - 1n;
}

/** The mask of the host part of a /prefix block. */
function hostMask(family: 4 | 6, prefix: number): bigint {
  return (1n << BigInt(bitsOf(family) - prefix)) - 1n;
}

function invalid(message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, message);
}

function parseIpv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseGroups(s: string): number[] | undefined {
  if (s === '') return [];
  const groups: number[] = [];
  for (const g of s.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    groups.push(parseInt(g, 16));
  }
  return groups;
}

function parseIpv6(s: string): bigint | undefined {
  let text = s;
  let tail: number[] = [];
  // An embedded IPv4 address may stand for the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.includes('.', lastColon)) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [Number(v4 >> 16n), Number(v4 & 0xffffn)];
    // Drop the separating colon, but keep "::" intact when the IPv4 part follows it ("::1.2.3.4").
    const head = text.slice(0, lastColon + 1);
    text = head.endsWith('::') ? head : head.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0] ?? '');
    const rest = parseGroups(halves[1] ?? '');
    if (head === undefined || rest === undefined) return undefined;
    const fill = 8 - head.length - rest.length - tail.length;
    // "::" stands for at least one zero group.
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
  } else {
    const all = parseGroups(text);
    if (all === undefined || (text === '' && tail.length > 0)) return undefined;
    groups = [...all, ...tail];
    if (groups.length !== 8) return undefined;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** Parses a dotted-quad IPv4 or any RFC 4291 IPv6 text form. Throws INVALID_ARGUMENT. */
export function parseIp(s: string): { family: 4 | 6; value: bigint } {
  if (typeof s === 'string') {
    if (s.includes(':')) {
      const value = parseIpv6(s);
      if (value !== undefined) return { family: 6, value };
      if (s.includes('%')) {
        throw invalid(`"${s}" is not a valid IP address: IPv6 zone ids (%…) are not supported; remove the zone`);
      }
    } else {
      const value = parseIpv4(s);
      if (value !== undefined) return { family: 4, value };
      if (/(^|\.)0[0-9]/.test(s)) {
        throw invalid(`"${s}" is not a valid IP address: IPv4 octets must not have leading zeros`);
      }
    }
  }
  throw invalid(`"${String(s)}" is not a valid IP address; expected e.g. 10.0.0.1 or fd00::1`);
}

function checkValue(family: 4 | 6, value: bigint): void {
  if ((family !== 4 && family !== 6) || value < 0n || value > maxOf(family)) {
    throw invalid(`${String(value)} is not an IPv${String(family)} address value`);
  }
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
}

/** Formats an address; IPv6 in RFC 5952 canonical form (lowercase, longest zero run as "::"). */
export function formatIp(family: 4 | 6, value: bigint): string {
  checkValue(family, value);
  if (family === 4) return formatIpv4(value);
  if (value >> 32n === 0xffffn) return `::ffff:${formatIpv4(value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups, at least two long; the first one wins a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Parses "address/prefix". Throws INVALID_ARGUMENT when malformed, out of range or host bits are set. */
export function parseCidr(s: string): Cidr {
  const parts = typeof s === 'string' ? s.split('/') : [];
  const [addr, len] = parts;
  if (parts.length !== 2 || addr === undefined || len === undefined) {
    throw invalid(`"${String(s)}" is not a CIDR; expected address/prefix, e.g. 10.0.0.0/16 or fd00::/64`);
  }
  const { family, value } = parseIp(addr);
  const bits = bitsOf(family);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(len) || Number(len) > bits) {
    throw invalid(`"${s}" has an invalid prefix length; IPv${String(family)} prefixes are 0 to ${String(bits)}`);
  }
  const prefix = Number(len);
  const base = value & ~hostMask(family, prefix) & maxOf(family);
  if (base !== value) {
    throw invalid(`"${s}" has host bits set; did you mean ${formatIp(family, base)}/${String(prefix)}?`);
  }
  return { family, base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.family, c.base)}/${String(c.prefix)}`;
}

/** True when the blocks share at least one address; always false across families. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const shorter = Math.min(a.prefix, b.prefix);
  const mask = ~hostMask(a.family, shorter);
  return (a.base & mask) === (b.base & mask);
}

/** True when `ip` lies in `c`. A bigint is taken to be of c's family; a string of another family is not contained. */
export function cidrContains(c: Cidr, ip: string | bigint): boolean {
  let value: bigint;
  if (typeof ip === 'bigint') {
    if (ip < 0n || ip > maxOf(c.family)) return false;
    value = ip;
  } else {
    const parsed = parseIp(ip);
    if (parsed.family !== c.family) return false;
    value = parsed.value;
  }
  return (value & ~hostMask(c.family, c.prefix)) === c.base;
}

/** Number of addresses in the block (2^(bits - prefix)). */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(bitsOf(c.family) - c.prefix);
}

/** The n-th address of the block (0 is the network address). Throws INVALID_ARGUMENT when out of range. */
export function nthAddress(c: Cidr, n: bigint | number): string {
  if (typeof n === 'number' && !Number.isSafeInteger(n)) {
    throw invalid(`address index ${String(n)} is not an integer`);
  }
  const i = BigInt(n);
  const size = cidrSize(c);
  if (i < 0n || i >= size) {
    throw invalid(`address index ${String(i)} is outside ${formatCidr(c)}, which holds ${String(size)} addresses`);
  }
  return formatIp(c.family, c.base + i);
}

/**
 * Every /prefix subnet of `pool`, lowest first. Throws INVALID_ARGUMENT at once (not on
 * first iteration) when prefix is shorter than the pool's or longer than the family allows.
 */
export function subnets(pool: Cidr, prefix: number): Generator<Cidr> {
  const bits = bitsOf(pool.family);
  if (!Number.isInteger(prefix) || prefix < pool.prefix || prefix > bits) {
    throw invalid(
      `cannot split ${formatCidr(pool)} into /${String(prefix)} subnets; choose a prefix from ${String(pool.prefix)} to ${String(bits)}`,
    );
  }
  return generate(pool, prefix);
}

function* generate(pool: Cidr, prefix: number): Generator<Cidr> {
  const step = 1n << BigInt(bitsOf(pool.family) - prefix);
  const end = pool.base + cidrSize(pool);
  for (let base = pool.base; base < end; base += step) yield { family: pool.family, base, prefix };
}

/**
 * The first pair (a from `cidrs`, b from `others`) that overlap, as given, or undefined.
 * Throws INVALID_ARGUMENT if any string is not a valid CIDR.
 */
export function findOverlap(cidrs: readonly string[], others: readonly string[]): [string, string] | undefined {
  const parsedOthers = others.map((o) => [o, parseCidr(o)] as const);
  for (const a of cidrs) {
    const ca = parseCidr(a);
    for (const [b, cb] of parsedOthers) if (cidrsOverlap(ca, cb)) return [a, b];
  }
  return undefined;
}
