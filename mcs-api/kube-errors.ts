/** The HTTP status of a client-node ApiException, or undefined for anything else. */
export function apiCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

export const isNotFound = (err: unknown): boolean => apiCode(err) === 404;
export const isAlreadyExists = (err: unknown): boolean => apiCode(err) === 409;
