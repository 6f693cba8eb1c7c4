import type { Logger } from 'pino';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';

/**
 * A long-running piece of a process (a server, a controller, a watcher).
 *
 * Invariants: start() returns once the service is started (not necessarily
 * synced) or throws; stop() is called only after a successful start(), at most
 * once, and returns when the service has released what it holds. A service
 * should also stop when the signal given to start() aborts.
 */
export interface Service {
  readonly name: string;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts services in order and stops them in reverse order. If one fails to
 * start, those already started are stopped (reverse order) and the error is
 * rethrown. stop() is idempotent.
 */
export class Lifecycle {
  readonly #services: readonly Service[];
  readonly #logger: Logger | undefined;
  readonly #controller = new AbortController();
  #started: Service[] = [];
  #stopping: Promise<void> | undefined;

  constructor(services: readonly Service[], logger?: Logger) {
    this.#services = services;
    this.#logger = logger;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  async start(): Promise<void> {
    for (const s of this.#services) {
      if (this.#controller.signal.aborted) throw new IsthmusError(ErrorCodes.ABORTED, `start aborted before ${s.name}`);
      try {
        await s.start(this.#controller.signal);
        this.#started.push(s);
        this.#logger?.debug({ service: s.name }, 'started');
      } catch (err) {
        this.#logger?.error({ service: s.name, err: messageOf(err) }, 'failed to start');
        await this.stop();
        throw err;
      }
    }
  }

  /** Stops every started service in reverse order; errors are logged, the first is rethrown. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#controller.abort();
      let first: unknown;
      for (const s of this.#started.reverse()) {
        try {
          await s.stop();
          this.#logger?.debug({ service: s.name }, 'stopped');
        } catch (err) {
          this.#logger?.error({ service: s.name, err: messageOf(err) }, 'failed to stop');
          first ??= err;
        }
      }
      this.#started = [];
      if (first !== undefined) throw first;
    })();
    return this.#stopping;
  }

  /** Stops on SIGINT/SIGTERM; resolves when stopped. */
  async runUntilSignal(): Promise<void> {
    await this.start();
    await new Promise<void>((resolve) => {
      const onSignal = (): void => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      this.#controller.signal.addEventListener('abort', onSignal, { once: true });
    });
    await this.stop();
  }
}
