import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { ErrorCodes, IsthmusError, createLogger, messageOf, silentLogger, type Logger } from '../core/index.ts';

/**
 * The sandbox's echo server (the `isthmus/echo` image, `isthmus sandbox echo`): on
 * each port it listens on TCP and on UDP and says who answered and who asked.
 *
 * - TCP: HTTP/1.1, any method and path, keep-alive: 200 with the JSON body
 *   `{ pod, namespace, cluster, podIp, client, path }` and a newline, plus `received`
 *   (the request body's length) when it had a body, so a test can send a large body
 *   and check it all arrived. `GET /bytes/N` (N ≤ 64 MiB) answers N bytes instead, to
 *   test the other direction.
 * - UDP: every datagram gets one datagram back, one line of JSON:
 *   `{ pod, namespace, cluster, podIp, client }` and a newline (no `path`).
 *
 * `client` is the peer's "ip:port" as this server sees it ("[v6]:port" for IPv6;
 * IPv4-mapped IPv6 peers are shown as plain IPv4), so a test can tell whether a
 * packet was NATed on its way.
 */
export interface EchoIdentity {
  readonly pod: string;
  readonly namespace: string;
  readonly cluster: string;
  readonly podIp: string;
}

export interface EchoReply extends EchoIdentity {
  readonly client: string;
  /** The HTTP request target (path and query); absent in UDP replies. */
  readonly path?: string;
  /** Bytes of request body received, when there was one. */
  readonly received?: number;
}

/** The largest body `GET /bytes/N` sends. */
export const MAX_BYTES_BODY = 64 << 20;

export interface EchoOptions {
  /** Ports to serve on both TCP and UDP. 0 picks a free port that is free for both. */
  readonly ports: readonly number[];
  /** Address to listen on (default 0.0.0.0; "::" for IPv6 and IPv4). */
  readonly host?: string;
  readonly identity: EchoIdentity;
  /** Default: silent. */
  readonly logger?: Logger;
}

export interface EchoServer {
  /** The ports listened on, in the order asked (0 replaced by the port picked). */
  readonly ports: readonly number[];
  /** Stops listening on every port and drops open connections. Idempotent. */
  close(): Promise<void>;
}

/** How often a port 0 is retried when the TCP port picked is taken on UDP. */
const EPHEMERAL_TRIES = 20;

function invalid(message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, message);
}

/** "ip:port" for IPv4 (also IPv4-mapped IPv6), "[ip]:port" for IPv6. */
export function formatClient(address: string, port: number): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1] !== undefined) return `${mapped[1]}:${String(port)}`;
  return isIP(address) === 6 ? `[${address}]:${String(port)}` : `${address}:${String(port)}`;
}

function reply(id: EchoIdentity, client: string, path?: string): EchoReply {
  const r = { pod: id.pod, namespace: id.namespace, cluster: id.cluster, podIp: id.podIp, client };
  return path === undefined ? r : { ...r, path };
}

function bindError(err: unknown, proto: 'TCP' | 'UDP', host: string, port: number): IsthmusError {
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${proto} ${host} port ${String(port)}`;
  const details = { proto, host, port };
  if (errno === 'EADDRINUSE') {
    return new IsthmusError(ErrorCodes.PORT_IN_USE, `${where} is already in use; stop what holds it (ss -ltunp 'sport = :${String(port)}') or choose another port`, { cause: err, context: details });
  }
  if (errno === 'EACCES') {
    return new IsthmusError(ErrorCodes.PERMISSION_DENIED, `binding ${where} needs root or CAP_NET_BIND_SERVICE; run as root or use a port of 1024 or more`, { cause: err, context: details });
  }
  if (errno === 'EADDRNOTAVAIL' || errno === 'EAFNOSUPPORT') {
    return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `cannot listen on ${where}: ${host} is not an address of this network namespace; use 0.0.0.0 or one of its addresses`, { cause: err, context: details });
  }
  return new IsthmusError(ErrorCodes.UNAVAILABLE, `cannot listen on ${where}: ${messageOf(err)}`, { cause: err, context: details });
}

function httpServer(id: EchoIdentity, logger: Logger): Server {
  const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    const socket = req.socket;
    const client = formatClient(socket.remoteAddress ?? '', socket.remotePort ?? 0);
    const path = req.url ?? '/';
    let received = 0;
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    // Answer once the request body (if any) is read, so keep-alive stays in step.
    req.on('end', () => {
      const bytes = /^\/bytes\/(\d+)$/.exec(path);
      if (bytes !== null && Number(bytes[1]) <= MAX_BYTES_BODY) {
        const n = Number(bytes[1]);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
        res.end(Buffer.alloc(n, 0x78));
        return;
      }
      const body = JSON.stringify({ ...reply(id, client, path), ...(received > 0 ? { received } : {}) }) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      logger.debug({ proto: 'tcp', client, method: req.method, path }, 'answered');
    });
    req.on('error', (err) => logger.debug({ client, err: messageOf(err) }, 'request failed'));
  });
  return server;
}

function listenTcp(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(bindError(err, 'TCP', host, port));
    };
    const onListening = (): void => {
      server.off('error', onError);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, exclusive: true });
  });
}

function closeTcp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function udpSocket(id: EchoIdentity, host: string, logger: Logger): UdpSocket {
  const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
  socket.on('message', (_msg, rinfo) => {
    const client = formatClient(rinfo.address, rinfo.port);
    const line = JSON.stringify(reply(id, client)) + '\n';
    socket.send(line, rinfo.port, rinfo.address, (err) => {
      if (err) logger.debug({ client, err: messageOf(err) }, 'udp reply failed');
      else logger.debug({ proto: 'udp', client }, 'answered');
    });
  });
  return socket;
}

function bindUdp(socket: UdpSocket, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.off('listening', onListening);
      reject(bindError(err, 'UDP', host, port));
    };
    const onListening = (): void => {
      socket.off('error', onError);
      resolve(socket.address().port);
    };
    socket.once('error', onError);
    socket.once('listening', onListening);
    socket.bind({ port, address: host, exclusive: true });
  });
}

function closeUdp(socket: UdpSocket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // not bound, or already closed
    }
  });
}

interface Listener {
  readonly port: number;
  close(): Promise<void>;
}

/** TCP and UDP on one port; for port 0, a port that is free on both. */
async function listenBoth(id: EchoIdentity, host: string, port: number, logger: Logger): Promise<Listener> {
  for (let attempt = 1; ; attempt++) {
    const server = httpServer(id, logger);
    const tcpPort = await listenTcp(server, host, port);
    const socket = udpSocket(id, host, logger);
    try {
      await bindUdp(socket, host, tcpPort);
    } catch (err) {
      await Promise.all([closeTcp(server), closeUdp(socket)]);
      if (port === 0 && attempt < EPHEMERAL_TRIES && (err as IsthmusError).code === ErrorCodes.PORT_IN_USE) continue;
      throw err;
    }
    server.on('error', (err) => logger.warn({ port: tcpPort, err: messageOf(err) }, 'http server error'));
    socket.on('error', (err) => logger.warn({ port: tcpPort, err: messageOf(err) }, 'udp socket error'));
    return { port: tcpPort, close: async () => { await Promise.all([closeTcp(server), closeUdp(socket)]); } };
  }
}

function checkOptions(options: EchoOptions): string {
  const host = options.host ?? '0.0.0.0';
  if (isIP(host) === 0) throw invalid(`echo host "${host}" is not an IP address; use e.g. 0.0.0.0, :: or 127.0.0.1`);
  if (options.ports.length === 0) throw invalid('echo needs at least one port');
  const seen = new Set<number>();
  for (const p of options.ports) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw invalid(`echo port ${String(p)} is not a port number (1 to 65535, or 0 for any free port)`);
    if (p !== 0 && seen.has(p)) throw invalid(`echo port ${String(p)} is given twice`);
    seen.add(p);
  }
  for (const [k, v] of Object.entries(options.identity)) {
    if (typeof v !== 'string') throw invalid(`echo identity field ${k} must be a string`);
  }
  return host;
}

/**
 * Listens on TCP and UDP on every port, or on none: when one port cannot be
 * bound (PORT_IN_USE, PERMISSION_DENIED, INVALID_ARGUMENT for a foreign address),
 * the ports already bound are released before the error is thrown.
 */
export async function startEcho(options: EchoOptions): Promise<EchoServer> {
  const host = checkOptions(options);
  const logger = options.logger ?? silentLogger();
  const { pod, namespace, cluster, podIp } = options.identity;
  const id: EchoIdentity = { pod, namespace, cluster, podIp };
  const listeners: Listener[] = [];
  try {
    for (const p of options.ports) listeners.push(await listenBoth(id, host, p, logger));
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    ports: listeners.map((l) => l.port),
    close() {
      closing ??= Promise.all(listeners.map((l) => l.close())).then(() => undefined);
      return closing;
    },
  };
}

export const ECHO_USAGE = `isthmus sandbox echo [--ports P1,P2,...] [--host ADDR]

Serves HTTP on TCP and a JSON line on UDP on each port, naming the pod that answered
and the client that asked; runs until SIGTERM or SIGINT.

  --ports LIST   comma-separated ports, each 1..65535 (default 8080)
  --host ADDR    address to listen on (default 0.0.0.0, or :: when POD_IP is IPv6)

environment (the identity it reports):
  POD_NAME          pod name (default: the host name)
  POD_NAMESPACE     namespace (default "default")
  ISTHMUS_CLUSTER   cluster id (default "")
  POD_IP            pod IP (default "")
  ISTHMUS_LOG_LEVEL log level (default info)`;

/** Parses "8080,9090": each 1..65535, no repeats. Throws INVALID_ARGUMENT. */
export function parsePorts(list: string): number[] {
  const parts = list.split(',').map((s) => s.trim());
  const ports: number[] = [];
  for (const s of parts) {
    const n = /^[0-9]{1,5}$/.test(s) ? Number(s) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      throw invalid(`--ports "${list}": "${s}" is not a port; give comma-separated numbers from 1 to 65535, e.g. --ports 8080,9090`);
    }
    if (ports.includes(n)) throw invalid(`--ports "${list}": port ${String(n)} is given twice`);
    ports.push(n);
  }
  return ports;
}

interface EchoArgs {
  readonly ports: number[];
  readonly host: string | undefined;
  readonly help: boolean;
}

function parseEchoArgs(args: readonly string[]): EchoArgs {
  let ports: number[] = [8080];
  let host: string | undefined;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) throw invalid(`${name} needs a value\n\n${ECHO_USAGE}`);
      i++;
      return next;
    };
    switch (name) {
      case '--ports':
        ports = parsePorts(value());
        break;
      case '--host':
        host = value();
        break;
      case '--help':
      case '-h':
        help = true;
        break;
      default:
        throw invalid(`unknown echo argument "${a}"\n\n${ECHO_USAGE}`);
    }
  }
  return { ports, host, help };
}

/**
 * `isthmus sandbox echo`: serves until SIGTERM or SIGINT, then closes and returns 0.
 * Identity from POD_NAME, POD_NAMESPACE, ISTHMUS_CLUSTER and POD_IP (see ECHO_USAGE).
 * Throws INVALID_ARGUMENT for bad arguments, PORT_IN_USE when a port is taken.
 */
export async function runEchoCommand(args: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Promise<number> {
  const parsed = parseEchoArgs(args);
  if (parsed.help) {
    process.stdout.write(ECHO_USAGE + '\n');
    return 0;
  }
  const identity: EchoIdentity = {
    pod: env['POD_NAME'] ?? hostname(),
    namespace: env['POD_NAMESPACE'] ?? 'default',
    cluster: env['ISTHMUS_CLUSTER'] ?? '',
    podIp: env['POD_IP'] ?? '',
  };
  const host = parsed.host ?? (isIP(identity.podIp) === 6 ? '::' : '0.0.0.0');
  const logger = createLogger({
    component: 'echo',
    ...(identity.cluster !== '' ? { cluster: identity.cluster } : {}),
    level: env['ISTHMUS_LOG_LEVEL'] ?? 'info',
  });
  // Listen for signals before binding, so a SIGTERM during start-up is not fatal.
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => { stop = resolve; });
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'stopping');
    stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const server = await startEcho({ ports: parsed.ports, host, identity, logger });
    logger.info({ ports: server.ports, host, pod: identity.pod, namespace: identity.namespace, podIp: identity.podIp }, 'echo listening');
    await stopped;
    await server.close();
    logger.info('echo stopped');
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
