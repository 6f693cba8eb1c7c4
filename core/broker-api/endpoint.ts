import { Backoff, ErrorCodes, IsthmusError, messageOf, sleep, type Logger } from '../index.ts';
import type { BrokerClient, EndpointInput, PublishEndpointResult } from './client.ts';

/**
 * Keeps a gateway's Endpoint published: publishes it, renews its lease every third
 * of the TTL, publishes again when the lease is gone (NOT_FOUND), and keeps trying
 * while the broker is unreachable. If this process dies, renewals stop and the broker
 * drops the endpoint within the TTL. stop() withdraws it unless told not to.
 */
export interface EndpointKeeperOptions {
  ttlSeconds?: number;
  logger?: Logger;
  /** Called after each successful publish (e.g. to learn the public address the broker saw). */
  onPublished?: (result: PublishEndpointResult) => void;
}

export class EndpointKeeper {
  readonly #client: BrokerClient;
  readonly #endpoint: EndpointInput;
  readonly #ttl: number;
  readonly #logger: Logger;
  readonly #onPublished: ((r: PublishEndpointResult) => void) | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #lease: string | undefined;
  #resolveFirst!: (r: PublishEndpointResult) => void;
  /** Resolves with the first successful publish. */
  readonly published: Promise<PublishEndpointResult>;

  constructor(client: BrokerClient, endpoint: EndpointInput, options: EndpointKeeperOptions = {}) {
    this.#client = client;
    this.#endpoint = endpoint;
    this.#ttl = options.ttlSeconds ?? 30;
    this.#logger = options.logger ?? client.logger;
    this.#onPublished = options.onPublished;
    this.published = new Promise((resolve) => {
      this.#resolveFirst = resolve;
    });
  }

  /** The lease currently holding the endpoint, if any. */
  get leaseId(): string | undefined {
    return this.#lease;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async #pause(ms: number): Promise<void> {
    await Promise.race([
      sleep(this.#client.clock, ms),
      new Promise<void>((resolve) => {
        this.#wake = resolve;
      }),
    ]);
  }

  async #run(): Promise<void> {
    const backoff = new Backoff({ baseMs: 200, maxMs: (this.#ttl * 1000) / 3 });
    while (!this.#stopped) {
      try {
        if (this.#lease === undefined) {
          const r = await this.#client.publishEndpoint(this.#endpoint, this.#ttl);
          if (this.#stopped) return;
          this.#lease = r.leaseId;
          this.#logger.info({ hostname: this.#endpoint.hostname, observedSourceIp: r.observedSourceIp }, 'endpoint published');
          this.#resolveFirst(r);
          this.#onPublished?.(r);
        } else {
          await this.#client.renewEndpoint(this.#endpoint.cluster_id, this.#endpoint.hostname, this.#lease);
        }
        backoff.reset();
        await this.#pause((this.#ttl * 1000) / 3);
      } catch (err) {
        if (this.#stopped) return;
        if (err instanceof IsthmusError && err.code === ErrorCodes.NOT_FOUND) {
          this.#logger.warn({ hostname: this.#endpoint.hostname }, 'endpoint lease expired; publishing again');
          this.#lease = undefined;
          continue;
        }
        if (err instanceof IsthmusError && (err.code === ErrorCodes.INVALID_ARGUMENT || err.code === ErrorCodes.PERMISSION_DENIED || err.code === ErrorCodes.UNAUTHENTICATED)) {
          this.#logger.error({ err: messageOf(err) }, 'the broker refused the endpoint; retrying slowly');
        } else {
          this.#logger.debug({ err: messageOf(err) }, 'cannot reach the broker; retrying');
        }
        await this.#pause(backoff.next());
      }
    }
  }

  /** Stops renewing; withdraws the endpoint unless `withdraw` is false. */
  async stop(withdraw = true): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    if (withdraw && this.#lease !== undefined) {
      await this.#client.withdrawEndpoint(this.#endpoint.cluster_id, this.#endpoint.hostname);
      this.#lease = undefined;
    }
  }
}
