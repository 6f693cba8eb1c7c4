import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, Registry } from '../../core/prom.ts';
import { messageOf, type Logger } from '../../core/index.ts';
import { findByMarker } from '../process.ts';
import { APISERVER_KUBELET_CLIENT_CN } from '../pki.ts';
import { logOptions, streamLogs } from './logs.ts';
import { KUBELET_PORT } from './node.ts';
import { PORTFORWARD_PROTOCOL, servePortForward } from './portforward.ts';
import { EXEC_PROTOCOLS, chooseProtocol, containerEnv, execOptions, serveExec, type ExecTarget } from './remotecommand.ts';
import { SpdyConnection } from './spdy.ts';

/**
 * The kubelet API of every sandbox node: HTTPS on `<node ip>:10250` (the port the Node
 * status advertises), with a serving certificate from the cluster's CA, answering only
 * a client that presents the apiserver's kubelet-client certificate (CN
 * kube-apiserver-kubelet-client, issued by the cluster CA). Anyone else gets 401/403
 * before anything is looked up or run.
 *
 * Serves `/exec/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}` (SPDY/3.1
 * upgrades: kube-apiserver 1.36 translates kubectl's WebSockets to SPDY towards a
 * kubelet that does not declare the ExtendWebSocketsToKubelet node feature, as this
 * one does not), `/containerLogs/{ns}/{pod}/{container}`, `/healthz`, and `/metrics` (Prometheus:
 * requests by endpoint and outcome, refused callers, open streaming connections).
 *
 * The node's address lives in the node's network namespace while this process runs in
 * the host's, so each node's TLS server listens on a Unix socket in the cluster folder
 * and a `socat` started in the node's namespace forwards the node's port to it.
 */
export interface ContainerView {
  readonly podUid: string;
  readonly netns: string;
  /** The running container's process, when there is one. */
  readonly pid?: number;
  /** False when the container has exited (or never started). */
  readonly running: boolean;
  /** True when the sandbox runs nothing for it (unknown image without a command). */
  readonly empty: boolean;
  /** The pod's hostname (absent for hostNetwork pods). */
  readonly hostname?: string;
  readonly logPath: string;
  readonly previousLogPath: string;
}

export interface PodLookup {
  /** The container, or a message for a 404 (no such pod/container on this node). */
  container(node: string, namespace: string, pod: string, container: string | undefined): ContainerView | string;
}

export interface NodeEndpoint {
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface KubeletApiOptions {
  readonly clusterDir: string;
  readonly caFile: string;
  readonly nodes: readonly NodeEndpoint[];
  readonly lookup: PodLookup;
  readonly logger: Logger;
}

/** Room for an exec of 10,000 arguments: each is a query parameter of the request line. */
const MAX_HEADER_BYTES = 4 * 1024 * 1024;

export function socketPath(clusterDir: string, node: string): string {
  return `${clusterDir}/kubelet-${node}.sock`;
}

function plain(res: ServerResponse, code: number, msg: string): void {
  if (res.headersSent) return void res.end();
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(msg.endsWith('\n') ? msg : `${msg}\n`);
}

function rawReply(sock: Duplex, code: number, reason: string, msg: string): void {
  sock.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(msg)}\r\nConnection: close\r\n\r\n${msg}`);
}

/** 0 when the caller is the apiserver; else the HTTP status to refuse it with. */
export function refusal(sock: TLSSocket): 0 | 401 | 403 {
  if (!sock.authorized) return 401;
  const cn = sock.getPeerCertificate().subject?.CN;
  return cn === APISERVER_KUBELET_CLIENT_CN ? 0 : 403;
}

type Route =
  | { kind: 'exec'; ns: string; pod: string; container: string | undefined }
  | { kind: 'portForward'; ns: string; pod: string }
  | { kind: 'logs'; ns: string; pod: string; container: string }
  | { kind: 'healthz' }
  | { kind: 'metrics' };

/** The route of a request path, or undefined. Pure. */
export function route(path: string): Route | undefined {
  const p = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (p.length === 1 && p[0] === 'healthz') return { kind: 'healthz' };
  if (p.length === 1 && p[0] === 'metrics') return { kind: 'metrics' };
  if (p[0] === 'exec' && (p.length === 4 || p.length === 3)) return { kind: 'exec', ns: p[1] as string, pod: p[2] as string, container: p[3] };
  if (p[0] === 'portForward' && p.length === 3) return { kind: 'portForward', ns: p[1] as string, pod: p[2] as string };
  if (p[0] === 'containerLogs' && p.length === 4) return { kind: 'logs', ns: p[1] as string, pod: p[2] as string, container: p[3] as string };
  return undefined;
}

export class KubeletApi {
  readonly #o: KubeletApiOptions;
  readonly #servers: Server[] = [];
  readonly #forwarders: ChildProcess[] = [];
  readonly #spdy = new Set<SpdyConnection>();
  readonly #registry = new Registry();
  readonly #requests = new Counter({ name: 'isthmus_sandbox_kubelet_api_requests_total', help: 'Kubelet API requests by endpoint and HTTP status (101 for an upgrade)', labelNames: ['endpoint', 'code'] as const, registers: [this.#registry] });

  constructor(o: KubeletApiOptions) {
    this.#o = o;
    const streams = this.#spdy;
    new Gauge({
      name: 'isthmus_sandbox_kubelet_api_open_streams', help: 'Open exec and port-forward (SPDY) connections', registers: [this.#registry],
      collect(this: Gauge) {
        this.set(streams.size);
      },
    });
  }

  async start(): Promise<void> {
    const ca = readFileSync(this.#o.caFile);
    for (const n of this.#o.nodes) {
      const sock = socketPath(this.#o.clusterDir, n.name);
      // a forwarder left by a kubelet that died holds the port: end it
      for (const pid of await findByMarker(sock)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await rm(sock, { force: true });
      const server = createServer({ cert: readFileSync(n.certFile), key: readFileSync(n.keyFile), ca, requestCert: true, rejectUnauthorized: false, maxHeaderSize: MAX_HEADER_BYTES });
      server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.#request(n, req, res).catch((e: unknown) => plain(res, 500, messageOf(e))));
      server.on('upgrade', (req: IncomingMessage, s: Duplex, head: Buffer) => this.#upgrade(n, req, s, head));
      server.on('tlsClientError', () => {});
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(sock, () => resolve());
      });
      this.#servers.push(server);
      const fwd = spawn('ip', ['netns', 'exec', n.netns, 'socat', `TCP4-LISTEN:${KUBELET_PORT},bind=${n.ip},reuseaddr,fork`, `UNIX-CONNECT:${sock}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      fwd.stderr.on('data', (d: Buffer) => this.#o.logger.warn({ node: n.name, socat: d.toString().trim() }, 'kubelet API forwarder'));
      fwd.on('error', (e) => this.#o.logger.error({ node: n.name, err: messageOf(e) }, 'kubelet API forwarder did not start (is socat installed? ./setup installs it)'));
      this.#forwarders.push(fwd);
    }
    this.#o.logger.info({ nodes: this.#o.nodes.map((n) => `${n.ip}:${KUBELET_PORT}`) }, 'kubelet API serving');
  }

  async stop(): Promise<void> {
    for (const f of this.#forwarders) f.kill('SIGKILL');
    for (const c of this.#spdy) c.close();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    })));
  }

  /** Open streaming connections (exec and port-forward) — for tests that check nothing leaks. */
  get openStreams(): number {
    return this.#spdy.size;
  }

  async #request(n: NodeEndpoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const endpoint = route(new URL(req.url ?? '/', 'https://kubelet').pathname)?.kind ?? 'unknown';
    res.on('finish', () => this.#requests.inc({ endpoint, code: String(res.statusCode) }));
    const why = refusal(req.socket as TLSSocket);
    if (why !== 0) return plain(res, why, why === 401 ? 'Unauthorized' : 'Forbidden: only the apiserver may call the kubelet API');
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const r = route(url.pathname);
    if (r === undefined) return plain(res, 404, `no such kubelet endpoint ${url.pathname}`);
    if (r.kind === 'healthz') return plain(res, 200, 'ok');
    if (r.kind === 'metrics') {
      res.writeHead(200, { 'content-type': this.#registry.contentType });
      res.end(await this.#registry.metrics());
      return;
    }
    if (r.kind !== 'logs') return plain(res, 400, 'this endpoint needs an upgrade to SPDY/3.1');
    const c = this.#o.lookup.container(n.name, r.ns, r.pod, r.container);
    if (typeof c === 'string') return plain(res, 404, c);
    const opts = logOptions(url.searchParams, new Date());
    if (typeof opts === 'string') return plain(res, 400, opts);
    if (opts.previous && c.previousLogPath === '') return plain(res, 400, `previous terminated container "${r.container}" in pod "${r.pod}" not found`);
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'transfer-encoding': 'chunked' });
    const path = opts.previous ? c.previousLogPath : c.logPath;
    const alive = (): boolean => {
      const now = this.#o.lookup.container(n.name, r.ns, r.pod, r.container);
      return typeof now !== 'string' && now.running && now.podUid === c.podUid && !opts.previous;
    };
    await streamLogs({ path, alive }, opts, (s) => (res.write(s) ? true : new Promise<boolean>((ok) => res.once('drain', () => ok(!res.destroyed)))), ac.signal);
    res.end();
  }

  #upgrade(n: NodeEndpoint, req: IncomingMessage, sock: Duplex, head: Buffer): void {
    sock.on('error', () => {});
    const endpoint = route(new URL(req.url ?? '/', 'https://kubelet').pathname)?.kind ?? 'unknown';
    const reply = (code: number, reason: string, msg: string): void => {
      this.#requests.inc({ endpoint, code: String(code) });
      rawReply(sock, code, reason, msg);
    };
    const why = refusal(req.socket as TLSSocket);
    if (why !== 0) return reply(why, why === 401 ? 'Unauthorized' : 'Forbidden', 'only the apiserver may call the kubelet API\n');
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const r = route(url.pathname);
    if (r === undefined || r.kind === 'healthz' || r.kind === 'logs' || r.kind === 'metrics') return reply(404, 'Not Found', `no streaming endpoint ${url.pathname}\n`);
    if (!/spdy\/3\.1/i.test(req.headers.upgrade ?? '')) return reply(400, 'Bad Request', 'upgrade to SPDY/3.1 (the only streaming protocol this kubelet speaks)\n');
    const offered = ([] as string[]).concat(req.headers['x-stream-protocol-version'] ?? []);
    const ours: readonly string[] = r.kind === 'exec' ? EXEC_PROTOCOLS : [PORTFORWARD_PROTOCOL];
    const protocol = chooseProtocol(offered, ours);
    if (protocol === undefined) return reply(403, 'Forbidden', `no protocol in common: the client offers [${offered.join(', ')}], this kubelet speaks [${ours.join(', ')}]\n`);
    const c = this.#o.lookup.container(n.name, r.ns, r.pod, r.kind === 'exec' ? r.container : undefined);
    if (typeof c === 'string') return reply(404, 'Not Found', `${c}\n`);
    let exec: ReturnType<typeof execOptions> | undefined;
    if (r.kind === 'exec') {
      exec = execOptions(url.searchParams);
      if (typeof exec === 'string') {
        this.#o.logger.warn({ pod: `${r.ns}/${r.pod}`, urlBytes: (req.url ?? '').length, contentLength: req.headers['content-length'] }, `exec refused: ${exec}`);
        return reply(400, 'Bad Request', `${exec}\n`);
      }
    }
    this.#requests.inc({ endpoint, code: '101' });
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    const conn = new SpdyConnection(sock, head);
    this.#spdy.add(conn);
    conn.once('close', () => this.#spdy.delete(conn));
    if (r.kind === 'portForward') {
      servePortForward(conn, c.netns, `${r.ns}/${r.pod}`);
      return;
    }
    const target: ExecTarget | string = c.empty
      ? { netns: c.netns, ...(c.hostname === undefined ? {} : { hostname: c.hostname }) }
      : c.running && c.pid !== undefined
        ? { pid: c.pid }
        : `container ${r.container ?? ''} of pod ${r.ns}/${r.pod} is not running: exec needs a running container (see kubectl describe pod)`;
    void serveExec(conn, exec as Exclude<typeof exec, string | undefined>, target, containerEnv(c.pid)).catch((e: unknown) => {
      this.#o.logger.warn({ pod: `${r.ns}/${r.pod}`, err: messageOf(e) }, 'exec failed');
      conn.close();
    });
  }
}
