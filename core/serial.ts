/**
 * Runs async work one piece at a time, in call order. A failure is returned to its
 * own caller and does not stop the work queued behind it. For an object whose
 * operations must not overlap (a cable driver's init/set/cleanup, a state file's
 * writes, a scheduler's decisions).
 */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn, fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves when everything queued so far has finished. */
  idle(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
