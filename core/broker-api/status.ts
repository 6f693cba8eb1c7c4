import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCodes, IsthmusError, isIsthmusError, messageOf, type ErrorCode } from '../index.ts';

/**
 * IsthmusError ⇄ gRPC status. The server answers with the gRPC code matching the
 * error's code and puts the Isthmus code in the trailer "isthmus-code" (plus an
 * optional "isthmus-reason"); the client turns the status back into an IsthmusError.
 */
const TO_GRPC: Partial<Record<ErrorCode, status>> = {
  [ErrorCodes.INVALID_ARGUMENT]: status.INVALID_ARGUMENT,
  [ErrorCodes.PERMISSION_DENIED]: status.PERMISSION_DENIED,
  [ErrorCodes.UNAUTHENTICATED]: status.UNAUTHENTICATED,
  [ErrorCodes.BAD_CREDENTIALS]: status.UNAUTHENTICATED,
  [ErrorCodes.FAILED_PRECONDITION]: status.FAILED_PRECONDITION,
  [ErrorCodes.CIDR_IN_USE]: status.FAILED_PRECONDITION,
  [ErrorCodes.NOT_FOUND]: status.NOT_FOUND,
  [ErrorCodes.ALREADY_EXISTS]: status.ALREADY_EXISTS,
  [ErrorCodes.COMPACTED]: status.OUT_OF_RANGE,
  [ErrorCodes.UNAVAILABLE]: status.UNAVAILABLE,
  [ErrorCodes.TIMEOUT]: status.DEADLINE_EXCEEDED,
  [ErrorCodes.ABORTED]: status.CANCELLED,
  [ErrorCodes.RESOURCE_EXHAUSTED]: status.RESOURCE_EXHAUSTED,
};

const FROM_GRPC: Partial<Record<status, ErrorCode>> = {
  [status.INVALID_ARGUMENT]: ErrorCodes.INVALID_ARGUMENT,
  [status.PERMISSION_DENIED]: ErrorCodes.PERMISSION_DENIED,
  [status.UNAUTHENTICATED]: ErrorCodes.UNAUTHENTICATED,
  [status.FAILED_PRECONDITION]: ErrorCodes.FAILED_PRECONDITION,
  [status.NOT_FOUND]: ErrorCodes.NOT_FOUND,
  [status.ALREADY_EXISTS]: ErrorCodes.ALREADY_EXISTS,
  [status.OUT_OF_RANGE]: ErrorCodes.COMPACTED,
  [status.UNAVAILABLE]: ErrorCodes.UNAVAILABLE,
  [status.DEADLINE_EXCEEDED]: ErrorCodes.TIMEOUT,
  [status.CANCELLED]: ErrorCodes.ABORTED,
  [status.RESOURCE_EXHAUSTED]: ErrorCodes.INVALID_ARGUMENT,
};

export interface GrpcStatus {
  code: status;
  details: string;
  metadata: Metadata;
}

/** The status the server answers for `err`; unknown errors become INTERNAL without internals. */
export function toStatus(err: unknown): GrpcStatus {
  const metadata = new Metadata();
  if (isIsthmusError(err)) {
    metadata.set('isthmus-code', err.code);
    const reason = err.context['reason'];
    if (typeof reason === 'string') metadata.set('isthmus-reason', reason);
    return { code: TO_GRPC[err.code] ?? status.INTERNAL, details: err.message, metadata };
  }
  metadata.set('isthmus-code', ErrorCodes.INTERNAL);
  // never the text of what failed inside (etcd addresses, library errors): that goes to the server's log
  return { code: status.INTERNAL, details: 'internal error in the broker: its log has the details', metadata };
}

function first(md: Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** The IsthmusError for a failed call; context.grpcCode and context.reason are set. */
export function fromServiceError(err: unknown, what: string): IsthmusError {
  if (isIsthmusError(err)) return err;
  const e = err as Partial<ServiceError>;
  const grpcCode = typeof e.code === 'number' ? e.code : status.UNKNOWN;
  const sent = first(e.metadata, 'isthmus-code');
  const known = Object.values(ErrorCodes) as string[];
  const code: ErrorCode = sent !== undefined && known.includes(sent) ? (sent as ErrorCode) : (FROM_GRPC[grpcCode] ?? ErrorCodes.UNAVAILABLE);
  const reason = first(e.metadata, 'isthmus-reason');
  const message = e.details !== undefined && e.details !== '' ? e.details : messageOf(err);
  return new IsthmusError(code, `${what}: ${message}`, { cause: err, context: { grpcCode, ...(reason === undefined ? {} : { reason }) } });
}

/**
 * Whether the broker refused a write on a quota of the caller's cluster (broker/quota.ts:
 * RESOURCE_EXHAUSTED with reason "quota:<limit>"), which only fewer records of that cluster
 * or a higher limit lift — unlike its rate limits, which pass with time.
 */
export function isQuotaRefusal(err: unknown): boolean {
  if (!isIsthmusError(err) || err.code !== ErrorCodes.RESOURCE_EXHAUSTED) return false;
  const reason = err.context['reason'];
  return typeof reason === 'string' && reason.startsWith('quota:');
}
