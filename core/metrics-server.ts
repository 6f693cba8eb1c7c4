import { createServer, type Server } from 'node:http';
import type { Registry } from './prom.ts';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';
import type { Service } from './lifecycle.ts';

/**
 * Serves a registry (prom.ts) at GET /metrics on host:port, plus /healthz (the process
 * answers) and /readyz (`ready()` resolves true: for the broker, it serves and etcd answers;
 * for a gateway, the engine runs and, when active, its broker cache has synced).
 * The registry is a type import only: a part that serves metrics brings its own.
 */
export class MetricsServer implements Service {
  readonly name = 'metrics';
  readonly #registry: Registry;
  readonly #listen: string;
  readonly #ready: () => Promise<boolean>;
  #server: Server | undefined;

  constructor(registry: Registry, listen: string, ready: () => Promise<boolean> = async () => true) {
    this.#registry = registry;
    this.#listen = listen;
    this.#ready = ready;
  }

  async start(): Promise<void> {
    const m = /^(.*):(\d+)$/.exec(this.#listen);
    if (m === null) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `metrics address ${JSON.stringify(this.#listen)} is not host:port`);
    const host = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1');
    this.#server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/healthz') {
        res.writeHead(200).end('ok\n');
        return;
      }
      if (req.method === 'GET' && req.url === '/readyz') {
        this.#ready().then(
          (ok) => res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready\n'),
          (err: unknown) => res.writeHead(503).end(`not ready: ${messageOf(err)}\n`),
        );
        return;
      }
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics, /healthz or /readyz\n');
        return;
      }
      this.#registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.#registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(`${messageOf(err)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.#server?.once('error', (err) => reject(new IsthmusError(ErrorCodes.PORT_IN_USE, `cannot serve metrics on ${this.#listen}: ${messageOf(err)}`, { cause: err })));
      this.#server?.listen(Number(m[2]), host, resolve);
    });
  }

  /** The port it listens on (the one chosen when the address said port 0), once started. */
  get port(): number {
    const a = this.#server?.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
  }
}
