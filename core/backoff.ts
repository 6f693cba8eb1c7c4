/**
 * Exponential backoff with full jitter, capped. Pure: the caller supplies the
 * random source so tests are deterministic.
 *
 * delay(n) for attempt n (0-based) is uniform in [base*2^n/2, base*2^n], capped at max.
 */
export interface BackoffOptions {
  /** First delay in ms (default 200). */
  baseMs?: number;
  /** Largest delay in ms (default 30 000). */
  maxMs?: number;
  /** Random source in [0, 1) (default Math.random). */
  random?: () => number;
}

export class Backoff {
  readonly #base: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#base = options.baseMs ?? 200;
    this.#max = options.maxMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const ceiling = Math.min(this.#max, this.#base * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(ceiling / 2 + (ceiling / 2) * this.#random());
  }

  /** Number of failures since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** Call after a success. */
  reset(): void {
    this.#attempt = 0;
  }
}
