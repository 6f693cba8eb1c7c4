import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ErrorCodes, IsthmusError } from '../core/index.ts';

/** TLS material for a probe; `insecure` skips server verification (self-signed component ports). */
export interface ProbeTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly insecure?: boolean;
}

export interface ProbeResult {
  readonly status: number;
  readonly body: string;
}

/** One GET with a short timeout; rejects on connection errors. */
export function probe(url: string, tls: ProbeTls = {}, timeoutMs = 2000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const options = u.protocol === 'https:'
      ? {
          ...(tls.ca === undefined ? {} : { ca: readFileSync(tls.ca) }),
          ...(tls.cert === undefined ? {} : { cert: readFileSync(tls.cert) }),
          ...(tls.key === undefined ? {} : { key: readFileSync(tls.key) }),
          rejectUnauthorized: tls.insecure !== true,
          timeout: timeoutMs,
        }
      : { timeout: timeoutMs };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { ...options, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** True when GET `url` answers 200. */
export async function healthy(url: string, tls: ProbeTls = {}): Promise<boolean> {
  try {
    return (await probe(url, tls)).status === 200;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a log file, for error messages. */
export async function tail(path: string, lines = 15): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `check` every 200 ms until it returns true. On timeout, or when
 * `stillAlive` says the process died, throws with the tail of its log.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; log: string; stillAlive: () => boolean },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (!opts.stillAlive()) {
      throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `${what} exited during start; the end of ${opts.log}:\n${await tail(opts.log)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new IsthmusError(ErrorCodes.TIMEOUT, `${what} was not ready after ${opts.timeoutMs / 1000} s; the end of ${opts.log}:\n${await tail(opts.log)}`);
}
