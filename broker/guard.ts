import { createServer, isIP, type Server as NetServer, type Socket } from 'node:net';
import { ErrorCodes, IsthmusError, messageOf, type Logger } from '../core/index.ts';
import { parseNamedNumbers } from './quota.ts';

/**
 * The broker's listening socket: a plain TCP server in front of grpc-js that bounds
 * what anyone can hold before TLS has authenticated them. It refuses a connection
 * beyond `maxConnections` in all or `maxConnectionsPerPeer` from one source address,
 * or more than `maxNewConnectionsPerSecond` new ones in a second, and closes a
 * connection on which nothing moved for `idleTimeoutMs` (a gRPC session
 * with a Watch sees progress messages every few seconds, so only idle and stuck
 * handshakes hit it). Accepted sockets are handed to grpc-js, which does TLS with a
 * required client certificate.
 */
export interface ConnectionLimits {
  /** Open connections in all (default 1024). */
  maxConnections: number;
  /** Open connections from one source address (default 16). */
  maxConnectionsPerPeer: number;
  /** A connection on which no byte moved this long is closed (default 120 000 ms). */
  idleTimeoutMs: number;
  /** Concurrent gRPC streams per connection (default 32). */
  maxConcurrentStreams: number;
  /** A connection with no open call for this long is closed by a GOAWAY (default 300 000 ms). */
  maxConnectionIdleMs: number;
  /**
   * New connections accepted per second in all, with a burst of as many (default 200):
   * each costs a TLS handshake, so a flood of them would take the CPU that established
   * connections need. Beyond it a connection is closed at once, before any TLS.
   */
  maxNewConnectionsPerSecond: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  maxConnections: 1024,
  maxConnectionsPerPeer: 16,
  idleTimeoutMs: 120_000,
  maxConcurrentStreams: 32,
  maxConnectionIdleMs: 300_000,
  maxNewConnectionsPerSecond: 200,
});

/** The limits with defaults filled in; INVALID_CONFIG for a value that is not a positive whole number. */
export function connectionLimits(given: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const out = { ...DEFAULT_CONNECTION_LIMITS, ...given };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isInteger(v) || v < 1) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `broker limit ${k} must be a whole number ≥ 1, got ${String(v)}`);
  }
  return out;
}

/** Parses "maxConnectionsPerPeer=64,…" (the CLI's --limits). */
export function parseConnectionLimits(text: string): ConnectionLimits {
  return connectionLimits(parseNamedNumbers(text, DEFAULT_CONNECTION_LIMITS, '--limits'));
}

/** "host:port", "[v6]:port" → host and port; INVALID_CONFIG otherwise. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]+):(\d+)$/.exec(listen);
  const host = m?.[1];
  const port = Number(m?.[2]);
  if (host === undefined || !Number.isInteger(port) || port > 65_535 || (isIP(host) === 0 && !/^[a-z0-9.-]+$/i.test(host))) {
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `cannot listen on ${JSON.stringify(listen)}: give host:port, e.g. 0.0.0.0:7443 or [::]:7443`);
  }
  return { host, port };
}

export class ConnectionGuard {
  readonly #limits: ConnectionLimits;
  readonly #logger: Logger;
  readonly #inject: (socket: Socket) => void;
  readonly #perPeer = new Map<string, number>();
  readonly #sockets = new Set<Socket>();
  #server: NetServer | undefined;
  /** Connections refused by a limit, by limit name. */
  readonly refused = { maxConnections: 0, maxConnectionsPerPeer: 0, maxNewConnectionsPerSecond: 0, idleTimeoutMs: 0 };
  #tokens: number;
  #tokensAt = Date.now();

  constructor(limits: ConnectionLimits, inject: (socket: Socket) => void, logger: Logger) {
    this.#limits = limits;
    this.#inject = inject;
    this.#logger = logger;
    this.#tokens = limits.maxNewConnectionsPerSecond;
  }

  /** Takes one token of the accept rate; false when none is left. */
  #takeToken(): boolean {
    const now = Date.now();
    const rate = this.#limits.maxNewConnectionsPerSecond;
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#tokensAt) / 1000) * rate);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  /** Listens and resolves with the bound port; PORT_IN_USE / INVALID_CONFIG when it cannot. */
  async listen(listen: string): Promise<number> {
    const { host, port } = parseListen(listen);
    const server = createServer({ pauseOnConnect: false, noDelay: true }, (s) => this.#accept(s));
    this.#server = server;
    return new Promise<number>((resolve, reject) => {
      server.once('error', (err) => reject(new IsthmusError(/EADDRINUSE/.test(messageOf(err)) ? ErrorCodes.PORT_IN_USE : ErrorCodes.INVALID_CONFIG, `cannot listen on ${listen}: ${messageOf(err)}`, { cause: err })));
      server.listen(port, host, () => {
        const a = server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  #accept(socket: Socket): void {
    const peer = socket.remoteAddress ?? '';
    const n = this.#perPeer.get(peer) ?? 0;
    const over = this.#sockets.size >= this.#limits.maxConnections ? 'maxConnections'
      : n >= this.#limits.maxConnectionsPerPeer ? 'maxConnectionsPerPeer'
      : !this.#takeToken() ? 'maxNewConnectionsPerSecond' : undefined;
    if (over !== undefined) {
      this.refused[over]++;
      this.#logger.debug({ peer, limit: over }, 'connection refused by a limit');
      socket.destroy();
      return;
    }
    this.#perPeer.set(peer, n + 1);
    this.#sockets.add(socket);
    socket.setTimeout(this.#limits.idleTimeoutMs, () => {
      this.refused.idleTimeoutMs++;
      socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      const left = (this.#perPeer.get(peer) ?? 1) - 1;
      if (left <= 0) this.#perPeer.delete(peer);
      else this.#perPeer.set(peer, left);
    });
    this.#inject(socket);
  }

  /** Stops listening and closes every connection still open. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
