import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import type { Counter } from '../../core/prom.ts';
import { ErrorCodes, IsthmusError, messageOf } from '../../core/errors.ts';
import type { Service } from '../../core/lifecycle.ts';
import { CachedAnswerer } from './answer.ts';
import type { ZoneIndex } from './zone.ts';

/**
 * The DNS server: UDP and TCP on one host:port, answering every query from the zone
 * index in memory (answer() is pure and synchronous: no API call, no await per query;
 * replies are cached until the zone changes, see CachedAnswerer).
 *
 * TCP (RFC 7766): 2-byte length-prefixed messages, several per connection, answered in
 * order; a connection idle for `tcpIdleMs` (default 10 s) or sending a length of 0 or
 * more than it may is closed. At most `maxTcpConnections` (default 1,000) at a time.
 */
export interface DnsServerOptions {
  /** host:port; IPv6 hosts in brackets. Port 0 picks one (see `port`). */
  listen: string;
  zone: ZoneIndex;
  tcpIdleMs?: number;
  maxTcpConnections?: number;
  /** Counts replies by transport and rcode. */
  replies?: Counter<'transport' | 'rcode'>;
}

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(listen);
  const port = Number(m?.[2]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `DNS listen address ${JSON.stringify(listen)} is not host:port (e.g. 0.0.0.0:53 or [::]:53)`);
  }
  return { host: (m[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port };
}

export class DnsServer implements Service {
  readonly name = 'dns';
  readonly #options: DnsServerOptions;
  #udp: Socket | undefined;
  #tcp: Server | undefined;
  readonly #conns = new Set<TcpSocket>();
  #port = 0;
  readonly #answerer: CachedAnswerer;

  constructor(options: DnsServerOptions) {
    this.#options = options;
    this.#answerer = new CachedAnswerer(options.zone);
  }

  /** The port served (the one chosen for port 0), once started. */
  get port(): number {
    return this.#port;
  }

  #count(transport: 'udp' | 'tcp', reply: Buffer): void {
    const rcode = reply.length >= 4 ? (reply.readUInt16BE(2) & 0xf) : 2;
    this.#options.replies?.inc({ transport, rcode: RCODE_NAMES[rcode] ?? String(rcode) });
  }

  async start(): Promise<void> {
    const { host, port } = parseListen(this.#options.listen);
    const where = this.#options.listen;
    const inUse = (err: unknown): IsthmusError =>
      new IsthmusError(ErrorCodes.PORT_IN_USE, `cannot serve DNS on ${where}: ${messageOf(err)}; stop what holds it (ss -ltunp 'sport = :${port}') or choose another --listen`, { cause: err });
    const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
    udp.on('message', (msg, rinfo) => {
      const out = this.#answerer.answer(msg, { transport: 'udp' });
      if (out === undefined) return;
      this.#count('udp', out);
      udp.send(out, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', (err) => reject(inUse(err)));
      udp.bind(port, host, () => resolve());
    });
    udp.on('error', () => {}); // a send to a vanished client: nothing to do
    this.#udp = udp;
    this.#port = udp.address().port;
    const tcp = createServer((sock) => this.#serveTcp(sock));
    tcp.maxConnections = this.#options.maxTcpConnections ?? 1000;
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', (err) => reject(inUse(err)));
        tcp.listen(this.#port, host, () => resolve());
      });
    } catch (err) {
      udp.close();
      this.#udp = undefined;
      throw err;
    }
    this.#tcp = tcp;
  }

  #serveTcp(sock: TcpSocket): void {
    this.#conns.add(sock);
    sock.setTimeout(this.#options.tcpIdleMs ?? 10_000, () => sock.destroy());
    sock.on('close', () => this.#conns.delete(sock));
    sock.on('error', () => sock.destroy());
    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (len === 0) return void sock.destroy();
        if (pending.length < 2 + len) return;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        const out = this.#answerer.answer(msg, { transport: 'tcp' });
        if (out === undefined) continue;
        this.#count('tcp', out);
        const frame = Buffer.alloc(2 + out.length);
        frame.writeUInt16BE(out.length, 0);
        out.copy(frame, 2);
        sock.write(frame);
      }
    });
  }

  async stop(): Promise<void> {
    for (const c of this.#conns) c.destroy();
    await Promise.all([
      new Promise<void>((resolve) => (this.#udp === undefined ? resolve() : this.#udp.close(() => resolve()))),
      new Promise<void>((resolve) => (this.#tcp === undefined ? resolve() : this.#tcp.close(() => resolve()))),
    ]);
    this.#udp = undefined;
    this.#tcp = undefined;
  }
}
