import { ErrorCodes, IsthmusError } from './errors.ts';

/**
 * Time, injectable. Code that waits takes a Clock so unit tests drive time with
 * FakeClock.advance() and never sleep.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  readonly id: number;
}

/** Resolves after `ms` on `clock`; rejects with ABORTED when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new IsthmusError(ErrorCodes.ABORTED, 'aborted', { cause: signal.reason }));
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(new IsthmusError(ErrorCodes.ABORTED, 'aborted', { cause: signal?.reason }));
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

let nextId = 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = globalThis.setTimeout(fn, ms);
    const handle = { id: nextId++, t };
    return handle;
  },
  clearTimeout(handle) {
    const t = (handle as TimerHandle & { t?: ReturnType<typeof globalThis.setTimeout> }).t;
    if (t !== undefined) globalThis.clearTimeout(t);
  },
};

/**
 * A clock for unit tests: time moves only when advance() is called, and timers
 * fire in due order (ties in the order they were set).
 */
export class FakeClock implements Clock {
  #now: number;
  #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle.id);
  }

  /** Number of timers not yet fired. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, and lets promises settle. */
  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= until && (due === undefined || entry[1].at < due[1].at)) due = entry;
      }
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].fn();
      await flushPromises();
    }
    this.#now = until;
    await flushPromises();
  }
}

/** Lets every already-queued promise continuation run. */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}
