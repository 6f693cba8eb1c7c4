import { KubeRequestError } from '../core/kube-lite.ts';

/** The HTTP status of a failed Kubernetes request: core's KubeRequestError or a client-node ApiException; undefined for anything else. */
export function apiCode(err: unknown): number | undefined {
  if (err instanceof KubeRequestError) return err.status;
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

export const isNotFound = (err: unknown): boolean => apiCode(err) === 404;
export const isAlreadyExists = (err: unknown): boolean => apiCode(err) === 409;
