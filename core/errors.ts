/**
 * One error type for the whole project. Every error carries a stable `code` from
 * the table below (tests assert on it) and a message that tells the user what to
 * do next. Codes never change meaning; new ones are appended.
 */
export const ErrorCodes = {
  /** Input from a user or a peer failed validation. */
  INVALID_ARGUMENT: 'ISTHMUS_INVALID_ARGUMENT',
  /** Configuration failed validation at start. */
  INVALID_CONFIG: 'ISTHMUS_INVALID_CONFIG',
  /** A program or package the project needs is not installed. */
  MISSING_DEPENDENCY: 'ISTHMUS_MISSING_DEPENDENCY',
  /** The operation needs root (or CAP_NET_ADMIN) and the process lacks it. */
  NOT_ROOT: 'ISTHMUS_NOT_ROOT',
  /** A TCP/UDP port is already bound by something else. */
  PORT_IN_USE: 'ISTHMUS_PORT_IN_USE',
  /** A CIDR overlaps one that is already in use. */
  CIDR_IN_USE: 'ISTHMUS_CIDR_IN_USE',
  /** The thing already exists (e.g. the sandbox is already up). */
  ALREADY_EXISTS: 'ISTHMUS_ALREADY_EXISTS',
  /** The thing does not exist (e.g. no sandbox is up). */
  NOT_FOUND: 'ISTHMUS_NOT_FOUND',
  /** An external command exited non-zero or could not be started. */
  COMMAND_FAILED: 'ISTHMUS_COMMAND_FAILED',
  /** Waited too long for something to become ready. */
  TIMEOUT: 'ISTHMUS_TIMEOUT',
  /** The operation was aborted through an AbortSignal. */
  ABORTED: 'ISTHMUS_ABORTED',
  /** The caller is not allowed to do this. */
  PERMISSION_DENIED: 'ISTHMUS_PERMISSION_DENIED',
  /** The caller presented no or an invalid identity. */
  UNAUTHENTICATED: 'ISTHMUS_UNAUTHENTICATED',
  /** A precondition about the world does not hold (e.g. overlapping CIDRs). */
  FAILED_PRECONDITION: 'ISTHMUS_FAILED_PRECONDITION',
  /** A remote service could not be reached. */
  UNAVAILABLE: 'ISTHMUS_UNAVAILABLE',
  /** A certificate or key is invalid, expired or from the wrong CA. */
  BAD_CREDENTIALS: 'ISTHMUS_BAD_CREDENTIALS',
  /** A watch resumed from a revision the store no longer has. */
  COMPACTED: 'ISTHMUS_COMPACTED',
  /** A bug: an invariant did not hold. */
  INTERNAL: 'ISTHMUS_INTERNAL',
  /** A quota or limit was reached (the message names it). */
  RESOURCE_EXHAUSTED: 'ISTHMUS_RESOURCE_EXHAUSTED',
  /** A join token is malformed, unknown, expired, already used or for another cluster id. */
  BAD_TOKEN: 'ISTHMUS_BAD_TOKEN',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface IsthmusErrorOptions {
  cause?: unknown;
  /**
   * Structured context for logs and callers; never put secrets here. (Not named
   * `details`: test reporters such as uvu treat an error's `details` as a diff string.)
   */
  context?: Record<string, unknown>;
}

export class IsthmusError extends Error {
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: IsthmusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IsthmusError';
    this.code = code;
    this.context = Object.freeze({ ...(options.context ?? {}) });
  }
}

export function isIsthmusError(err: unknown, code?: ErrorCode): err is IsthmusError {
  return err instanceof IsthmusError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for wrapping it into an IsthmusError. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
