import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { formatIp, messageOf, parseIp, systemClock, type Clock, type Logger, type TimerHandle } from '../core/index.ts';
import type { ProbeVerdict } from './desired.ts';

/**
 * NAT discovery by a UDP probe exchange. Every gateway runs one socket on its private
 * address at the nat-probe port (published in its Endpoint as `nat-probe`); the socket
 * answers probes and sends its own, so each probe also opens this gateway's NAT
 * mapping towards the peer.
 *
 * Wire format, one UTF-8 datagram each, fields separated by one space:
 *   request  `isthmus-nat/1 probe <nonce> <fromCluster>`, padded with spaces to 128 bytes
 *   reply    `isthmus-nat/1 seen <nonce> <ip> <port>`: the source the responder saw
 * A reply is never larger than the request that caused it (no amplification). Anything
 * else (garbage, short requests, unknown nonces, replies from an address the request
 * did not go to) is ignored; a malformed datagram never throws.
 *
 * probe() sends `attempts` requests spread over `windowMs` to the remote's private
 * address and, when it differs, to its public one, and resolves with the verdict:
 * 'private' as soon as the private address answers, 'public' when by the end of the
 * window only the public one did, undefined when neither did (the caller keeps its
 * guess). It also tells the address the remote saw us as: another address than ours
 * means this gateway sits behind NAT on that path.
 */
export const NAT_PROBE_PORT_NAME = 'nat-probe';
export const DEFAULT_NAT_PROBE_PORT = 4490;

const MAGIC = 'isthmus-nat/1';
const REQUEST_BYTES = 128;
const MAX_DATAGRAM = 512;
const NONCE = /^[0-9a-f]{32}$/;
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface NatProbeTarget {
  readonly cluster: string;
  readonly privateIp: string;
  /** The remote's public address ('' or the private one: only the private address is probed). */
  readonly publicIp: string;
  /** Its nat-probe port. */
  readonly port: number;
}

export interface SeenAddress {
  readonly ip: string;
  readonly port: number;
}

export interface NatProbeResult {
  readonly verdict: ProbeVerdict | undefined;
  /** Our address as the remote saw it (from the answer the verdict rests on). */
  readonly seen?: SeenAddress;
  /** The remote saw us at another IP than the one this socket is bound to. */
  readonly behindNat: boolean;
}

export interface NatProbeOptions {
  /** This gateway's private address: the socket binds to it. */
  readonly address: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly clusterId: string;
  /** Requests per address (default 3). */
  readonly attempts?: number;
  /** How long a probe waits for answers, in ms (default 1000). */
  readonly windowMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

type Which = 'private' | 'public';

interface Outstanding {
  readonly which: Which;
  readonly ip: string;
  readonly port: number;
  readonly answer: (which: Which, seen: SeenAddress) => void;
}

/** The canonical text of an address (IPv6 has many spellings); the input when it is not one. */
function canonical(ip: string): string {
  try {
    const p = parseIp(ip);
    return formatIp(p.family, p.value);
  } catch {
    return ip;
  }
}

export function encodeRequest(nonce: string, fromCluster: string): Buffer {
  return Buffer.from(`${MAGIC} probe ${nonce} ${fromCluster}`.padEnd(REQUEST_BYTES, ' '), 'utf8');
}

/** Parses a datagram; undefined for anything that is not a well-formed request or reply. */
export function parseMessage(msg: Buffer): { type: 'probe'; nonce: string; cluster: string } | { type: 'seen'; nonce: string; seen: SeenAddress } | undefined {
  if (msg.length > MAX_DATAGRAM) return undefined;
  const f = msg.toString('utf8').trimEnd().split(' ');
  if (f[0] !== MAGIC || f[2] === undefined || !NONCE.test(f[2])) return undefined;
  if (f[1] === 'probe' && f.length === 4 && msg.length >= REQUEST_BYTES && LABEL.test(f[3] ?? '')) return { type: 'probe', nonce: f[2], cluster: f[3] ?? '' };
  if (f[1] === 'seen' && f.length === 5 && isIP(f[3] ?? '') !== 0 && /^\d{1,5}$/.test(f[4] ?? '')) {
    const port = Number(f[4]);
    if (port >= 1 && port <= 65535) return { type: 'seen', nonce: f[2], seen: { ip: f[3] ?? '', port } };
  }
  return undefined;
}

export class NatProbe {
  readonly #sock: Socket;
  readonly #bound: string;
  readonly #o: Required<Omit<NatProbeOptions, 'logger'>> & { logger: Logger | undefined };
  readonly #outstanding = new Map<string, Outstanding>();
  /** Finishes every probe under way (close()). */
  readonly #running = new Set<() => void>();

  private constructor(sock: Socket, options: NatProbeOptions) {
    this.#sock = sock;
    this.#bound = canonical(sock.address().address);
    this.#o = { attempts: 3, windowMs: 1000, clock: systemClock, ...options, logger: options.logger };
    sock.on('message', (msg, from) => this.#onMessage(msg, from));
    sock.on('error', (err) => this.#o.logger?.debug({ err: err.message }, 'nat probe socket error'));
  }

  /** Binds the socket on `address:port` and starts answering. */
  static async open(options: NatProbeOptions): Promise<NatProbe> {
    const sock = createSocket(options.address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(options.port, options.address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    return new NatProbe(sock, options);
  }

  /** The port it is bound to. */
  get port(): number {
    return this.#sock.address().port;
  }

  #onMessage(msg: Buffer, from: RemoteInfo): void {
    const m = parseMessage(msg);
    if (m === undefined) return;
    if (m.type === 'probe') {
      const reply = Buffer.from(`${MAGIC} seen ${m.nonce} ${from.address} ${from.port}`, 'utf8');
      if (reply.length > msg.length) return;
      this.#o.logger?.debug({ from: m.cluster, address: from.address }, 'nat probe answered');
      this.#send(reply, from.port, from.address);
      return;
    }
    const o = this.#outstanding.get(m.nonce);
    if (o === undefined || o.ip !== canonical(from.address) || o.port !== from.port) return;
    o.answer(o.which, m.seen);
  }

  #send(buf: Buffer, port: number, address: string): void {
    try {
      this.#sock.send(buf, port, address, (err) => {
        if (err !== null && err !== undefined) this.#o.logger?.debug({ address, err: err.message }, 'nat probe not sent');
      });
    } catch (err) {
      this.#o.logger?.debug({ address, err: messageOf(err) }, 'nat probe not sent');
    }
  }

  /** Probes one remote gateway; resolves after at most `windowMs` (sooner when its private address answers). */
  probe(target: NatProbeTarget): Promise<NatProbeResult> {
    const addresses: [Which, string][] = [['private', target.privateIp]];
    if (target.publicIp !== '' && target.publicIp !== target.privateIp) addresses.push(['public', target.publicIp]);
    const { clock, attempts, windowMs } = this.#o;
    return new Promise((resolve) => {
      const answers = new Map<Which, SeenAddress>();
      const nonces: string[] = [];
      const timers: TimerHandle[] = [];
      const finish = (): void => {
        if (!this.#running.delete(finish)) return;
        for (const t of timers) clock.clearTimeout(t);
        for (const n of nonces) this.#outstanding.delete(n);
        const seen = answers.get('private') ?? answers.get('public');
        const verdict = answers.has('private') ? 'private' : answers.has('public') ? 'public' : undefined;
        resolve({ verdict, ...(seen === undefined ? {} : { seen }), behindNat: seen !== undefined && canonical(seen.ip) !== this.#bound });
      };
      const answer = (which: Which, seen: SeenAddress): void => {
        if (!answers.has(which)) answers.set(which, seen);
        if (which === 'private') finish();
      };
      const round = (): void => {
        for (const [which, ip] of addresses) {
          const nonce = randomBytes(16).toString('hex');
          nonces.push(nonce);
          this.#outstanding.set(nonce, { which, ip: canonical(ip), port: target.port, answer });
          this.#send(encodeRequest(nonce, this.#o.clusterId), target.port, ip);
        }
      };
      this.#running.add(finish);
      round();
      for (let i = 1; i < attempts; i++) timers.push(clock.setTimeout(round, (i * windowMs) / attempts));
      timers.push(clock.setTimeout(finish, windowMs));
    });
  }

  /** Stops answering; probes under way resolve with what they have. */
  close(): void {
    for (const finish of [...this.#running]) finish();
    this.#sock.close();
  }
}
