import { isIP } from 'node:net';
import { ErrorCodes, IsthmusError } from '../index.ts';

/**
 * The broker's addresses as its clients are given them: one `host:port`, or several
 * separated by commas (broker-info.json's `brokers`, which `isthmus join` writes into the
 * ConfigMap isthmus-gateway's BROKER as one comma list). A host is an IPv4 address, an
 * IPv6 address in brackets, or a DNS name. The broker's replicas run behind a NodePort
 * with externalTrafficPolicy Local, so only the nodes that run one answer: a client
 * holds every address and uses whichever answers (core/broker-api/client.ts).
 */
export interface BrokerAddress {
  /** The host without brackets. */
  readonly host: string;
  readonly port: number;
  /** 4 or 6 for an IP address, 0 for a DNS name. */
  readonly family: 0 | 4 | 6;
}

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function parseOne(raw: string, what: string): BrokerAddress {
  const bad = (why: string): IsthmusError => new IsthmusError(ErrorCodes.INVALID_ARGUMENT,
    `${what}: ${JSON.stringify(raw)} ${why}; give host:port (an IPv4 address, an IPv6 address in brackets as [fd00::1]:7443, or a DNS name), several separated by commas`,
    { context: { reason: 'bad-broker-address' } });
  const m = /^\[([^\]]*)\]:(\d{1,5})$/.exec(raw) ?? /^([^:[\]]*):(\d{1,5})$/.exec(raw);
  if (m === null) {
    if (isIP(raw) === 6 || (/^[0-9a-fA-F:]+:\d+$/.test(raw) && raw.split(':').length > 2)) throw bad('is an IPv6 address without brackets');
    throw bad('is not host:port');
  }
  const host = m[1] as string;
  const port = Number(m[2]);
  if (!(port >= 1 && port <= 65535)) throw bad(`has port ${m[2] as string}, outside 1-65535`);
  const bracketed = raw.startsWith('[');
  if (bracketed) {
    if (isIP(host) !== 6 || host.includes('%')) throw bad('holds no IPv6 address (zone ids are not allowed) in its brackets');
    return { host, port, family: 6 };
  }
  if (isIP(host) === 4) return { host, port, family: 4 };
  if (/^[0-9.]+$/.test(host)) throw bad('is not a valid IPv4 address');
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name === '' || name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) throw bad('has a host that is neither an IP address nor a DNS name');
  return { host, port, family: 0 };
}

/**
 * Parses one address or a list (a comma-separated string, or an array of such strings);
 * spaces around each are ignored, repeats dropped (the first kept). Throws
 * INVALID_ARGUMENT naming the bad entry, also when there is none. `what` names the
 * setting in the message (default "broker address").
 */
export function parseBrokerAddresses(raw: string | readonly string[], what = 'broker address'): BrokerAddress[] {
  const items = (typeof raw === 'string' ? [raw] : raw).flatMap((s) => s.split(',')).map((s) => s.trim());
  if (items.length === 0 || items.every((s) => s === '')) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${what}: none given; give the broker's host:port (several separated by commas)`, { context: { reason: 'bad-broker-address' } });
  }
  const out: BrokerAddress[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (item === '') throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${what}: an empty entry in ${JSON.stringify(typeof raw === 'string' ? raw : raw.join(','))}; separate host:port addresses by single commas`, { context: { reason: 'bad-broker-address' } });
    const a = parseOne(item, what);
    const key = formatBrokerAddress(a).toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(a);
  }
  return out;
}

/** host:port, with an IPv6 host in brackets. */
export function formatBrokerAddress(a: BrokerAddress): string {
  return a.family === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * The gRPC targets (@grpc/grpc-js) that reach these addresses, in the order given: every
 * IPv4 address in one `ipv4:` target and every IPv6 address in one `ipv6:` target (their
 * channel's pick_first policy tries them in order, moves on when one fails, and connects
 * to the next one after 250 ms while a dead one does not answer), each DNS name its own
 * `dns:` target (re-resolved when its connection fails). A channel takes one target, so
 * a client given more than one moves from target to target on failure itself. The TLS
 * name a target's connections check the broker's certificate against is its first host
 * (all the broker's addresses are named in its one certificate). Pure.
 */
export function brokerTargets(addresses: readonly BrokerAddress[]): string[] {
  const groups = new Map<string, string[]>();
  for (const a of addresses) {
    const key = a.family === 4 ? 'ipv4' : a.family === 6 ? 'ipv6' : `dns:${a.host.toLowerCase()}:${a.port}`;
    const list = groups.get(key) ?? [];
    list.push(formatBrokerAddress(a));
    groups.set(key, list);
  }
  return [...groups].map(([key, list]) => (key === 'ipv4' || key === 'ipv6' ? `${key}:${list.join(',')}` : `dns:${list[0] ?? ''}`));
}
