import { spawn } from 'node:child_process';
import { ErrorCodes, IsthmusError } from './errors.ts';

/**
 * Runs OS tools (ip, wg, nft, iptables, swanctl, …). Parts take a CommandRunner so
 * unit tests use FakeRunner and need no root; e2e tests use the real one.
 *
 * Invariant: run() resolves only when the command exited 0 (or `allowFailure` is
 * set) and rejects with IsthmusError COMMAND_FAILED otherwise, MISSING_DEPENDENCY
 * when the program is not installed.
 */
export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Kill the command after this many ms (default 60 000). */
  timeoutMs?: number;
  /** Resolve with the result even when the exit code is not 0. */
  allowFailure?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Run inside this network namespace (`ip netns exec NAME …`). */
  netns?: string;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandRunner {
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** The Debian package that provides each tool, for "install it" messages. */
export const PACKAGE_OF: Readonly<Record<string, string>> = {
  ip: 'iproute2', bridge: 'iproute2', tc: 'iproute2', wg: 'wireguard-tools', 'wireguard-go': 'wireguard-go',
  nft: 'nftables', iptables: 'iptables', 'iptables-restore': 'iptables', ip6tables: 'iptables',
  swanctl: 'strongswan-swanctl', charon: 'strongswan-charon', etcd: 'etcd-server', etcdctl: 'etcd-client',
  dig: 'dnsutils', iperf3: 'iperf3', ping: 'iputils-ping', conntrack: 'conntrack', ipset: 'ipset',
};

export const SETUP_HINT = 'run ./setup from the isthmus checkout to install it';

export function missingDependency(command: string): IsthmusError {
  const pkg = PACKAGE_OF[command.split('/').pop() ?? command];
  const what = pkg === undefined ? `"${command}"` : `"${command}" (Debian package ${pkg})`;
  return new IsthmusError(ErrorCodes.MISSING_DEPENDENCY, `${what} is not installed: ${SETUP_HINT}`, {
    context: { command },
  });
}

function describe(command: string, args: readonly string[]): string {
  return [command, ...args].join(' ');
}

export class SystemRunner implements CommandRunner {
  run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const [cmd, argv] = options.netns === undefined ? [command, args] : ['ip', ['netns', 'exec', options.netns, command, ...args]];
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, argv, {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: options.env === undefined ? process.env : { ...process.env, ...options.env },
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      // our own timer (spawn's `timeout` keeps its timer when the program never starts)
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
      }, options.timeoutMs ?? 60_000);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (e.code === 'ENOENT') reject(missingDependency(cmd));
        else if (e.name === 'AbortError') reject(new IsthmusError(ErrorCodes.ABORTED, `${describe(command, args)}: aborted`, { cause: e }));
        else reject(new IsthmusError(ErrorCodes.COMMAND_FAILED, `${describe(command, args)}: ${e.message}`, { cause: e }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const result: RunResult = {
          code: code ?? 128,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        };
        if (result.code === 0 || options.allowFailure === true) {
          resolve(result);
          return;
        }
        const why = timedOut ? `timed out after ${options.timeoutMs ?? 60_000} ms` : signal !== null ? `killed by ${signal}` : `exited ${result.code}`;
        reject(
          new IsthmusError(ErrorCodes.COMMAND_FAILED, `${describe(command, args)} ${why}: ${result.stderr.trim() || result.stdout.trim()}`, {
            context: { command, args: [...args], code: result.code, stderr: result.stderr.slice(0, 4000) },
          }),
        );
      });
      child.stdin.on('error', () => {});
      child.stdin.end(options.input ?? '');
    });
  }
}

export interface FakeCall {
  readonly command: string;
  readonly args: readonly string[];
  readonly options: RunOptions;
}

export type FakeHandler = (call: FakeCall) => Partial<RunResult> | undefined;

/**
 * A CommandRunner for unit tests of pure logic: records every call and answers
 * from handlers (first one returning a result wins; default: exit 0, no output).
 */
export class FakeRunner implements CommandRunner {
  readonly calls: FakeCall[] = [];
  readonly #handlers: FakeHandler[] = [];

  on(handler: FakeHandler): this {
    this.#handlers.push(handler);
    return this;
  }

  /** Answer `command args…` (prefix match on args) with `result`. */
  when(command: string, argsPrefix: readonly string[], result: Partial<RunResult>): this {
    return this.on((c) =>
      c.command === command && argsPrefix.every((a, i) => c.args[i] === a) ? result : undefined,
    );
  }

  /** The calls as shell-like lines, for compact assertions. */
  lines(): string[] {
    return this.calls.map((c) => describe(c.command, c.args));
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: FakeCall = { command, args: [...args], options };
    this.calls.push(call);
    let partial: Partial<RunResult> = {};
    for (const h of this.#handlers) {
      const r = h(call);
      if (r !== undefined) {
        partial = r;
        break;
      }
    }
    const result: RunResult = { code: partial.code ?? 0, stdout: partial.stdout ?? '', stderr: partial.stderr ?? '' };
    if (result.code !== 0 && options.allowFailure !== true) {
      throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `${describe(command, args)} exited ${result.code}: ${result.stderr}`, {
        context: { command, args: [...args], code: result.code },
      });
    }
    return result;
  }
}
