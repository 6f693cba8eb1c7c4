import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { ErrorCodes, IsthmusError, messageOf, type Service } from '../core/index.ts';

/** Serves a prom-client registry at GET /metrics on host:port. */
export class MetricsServer implements Service {
  readonly name = 'metrics';
  readonly #registry: Registry;
  readonly #listen: string;
  #server: Server | undefined;

  constructor(registry: Registry, listen: string) {
    this.#registry = registry;
    this.#listen = listen;
  }

  async start(): Promise<void> {
    const m = /^(.*):(\d+)$/.exec(this.#listen);
    if (m === null) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `metrics address ${JSON.stringify(this.#listen)} is not host:port`);
    const host = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1');
    this.#server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics\n');
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

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
  }
}
