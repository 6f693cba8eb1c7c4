import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Field paths pino replaces with "[redacted]". Anything that can hold a key, a PSK,
 * a token or a certificate private key must be named here or never be logged.
 */
export const REDACTED_PATHS: readonly string[] = [
  'privateKey', '*.privateKey', 'key', '*.key', 'keyPem', '*.keyPem',
  'psk', '*.psk', 'presharedKey', '*.presharedKey', 'token', '*.token',
  'password', '*.password', 'secret', '*.secret', 'authorization', '*.authorization',
  'headers.authorization', 'tls.key', 'credentials', '*.credentials',
];

export interface LoggerOptions {
  /** The part: broker, gateway, route-agent, mcs-api, sandbox, cli, … */
  component: string;
  /** The cluster id this process works for, when it has one. */
  cluster?: string;
  /** pino level; defaults to $ISTHMUS_LOG_LEVEL or "info". */
  level?: string;
  /** Where to write; defaults to stderr so stdout stays free for command output. */
  destination?: DestinationStream;
}

/** A pino JSON logger bound to its component and cluster, with secret fields redacted. */
export function createLogger(options: LoggerOptions): Logger {
  const bindings: Record<string, string> = { component: options.component };
  if (options.cluster !== undefined) bindings['cluster'] = options.cluster;
  const level = options.level ?? process.env['ISTHMUS_LOG_LEVEL'] ?? 'info';
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    { level, base: bindings, redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' } },
    destination,
  );
}

/** A logger that writes nothing, for unit tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
