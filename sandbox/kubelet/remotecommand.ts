import { spawn, type ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { readlinkSync, readFileSync } from 'node:fs';
import type { SpdyConnection, SpdyStream } from './spdy.ts';
import { shQuote } from './containers.ts';

/**
 * `kubectl exec` as a kubelet serves it over SPDY (remotecommand protocol
 * v4.channel.k8s.io; v5 behaves the same over SPDY): the client opens an `error`
 * stream and one per requested stdio (`stdin`, `stdout`, `stderr`, and `resize`
 * with a TTY); once all are open the command runs; its exit is reported on the
 * error stream as a metav1.Status (Success, or NonZeroExitCode with the code as
 * the ExitCode cause), then everything closes.
 *
 * With a TTY the command runs under util-linux `script`, which gives it a
 * pseudo-terminal; resize messages set the terminal's size with `stty`, and the
 * kernel signals the foreground job (SIGWINCH).
 *
 * Invariant: when the client goes away before the command ends, the command's whole
 * process group is killed — nothing outlives its connection.
 */
export const EXEC_PROTOCOLS = ['v4.channel.k8s.io', 'v5.channel.k8s.io'] as const;
const STREAMS_TIMEOUT_MS = 30_000;
const FIRST_SIZE_WAIT_MS = 1000;
const CLOSE_WAIT_MS = 5000;

export interface ExecOptions {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly tty: boolean;
  readonly command: readonly string[];
}

/** Reads the exec query (`command` repeated, `input`/`output`/`error`/`tty`); a string is a 400 message. */
export function execOptions(q: URLSearchParams): ExecOptions | string {
  const flag = (k: string): boolean => q.get(k) === '1' || q.get(k) === 'true';
  const command = q.getAll('command');
  if (command.length === 0 && [...q.keys()].length === 0) {
    return 'the exec request came without any query: kube-apiserver drops all the parameters of an exec with more than 10,000 of them (Go\'s limit on query parameters); pass fewer arguments (e.g. a script on stdin)';
  }
  if (command.length === 0) return 'no command given (the query needs command=…)';
  const o = { stdin: flag('input'), stdout: flag('output'), stderr: flag('error'), tty: flag('tty'), command };
  if (!o.stdin && !o.stdout && !o.stderr) return 'you must request at least one of stdin, stdout and stderr';
  return o;
}

/** The first protocol the client offers that we speak (header values may be comma lists). */
export function chooseProtocol(offered: readonly string[], ours: readonly string[]): string | undefined {
  const list = offered.flatMap((v) => v.split(',')).map((s) => s.trim());
  return list.find((p) => ours.includes(p));
}

/** metav1.Status JSON for the error stream. */
export function exitStatus(code: number, command: readonly string[]): string {
  if (code === 0) return JSON.stringify({ metadata: {}, status: 'Success' });
  return JSON.stringify({
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  });
}

export function errorStatus(message: string): string {
  return JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 });
}

/**
 * Where an exec runs: inside a running container's namespaces, or (a container with no
 * process behind it) the pod's network namespace and a new UTS namespace with its hostname.
 */
export type ExecTarget = { readonly pid: number } | { readonly netns: string; readonly hostname?: string };

export interface TermSize {
  readonly width: number;
  readonly height: number;
}

/**
 * argv that runs `command` in `target` (nsenter keeps the container's mounts, hostname
 * and network). With a TTY, `size` is set on the new terminal before the command starts.
 */
export function execArgv(target: ExecTarget, command: readonly string[], tty: boolean, size?: TermSize): string[] {
  const quoted = command.map(shQuote).join(' ');
  const line = size === undefined ? quoted : `stty rows ${size.height} cols ${size.width} 2>/dev/null; exec ${quoted}`;
  const inner = tty ? ['script', '-q', '-e', '-c', line, '/dev/null'] : [...command];
  if ('pid' in target) return ['nsenter', '-t', String(target.pid), '-m', '-u', '-n', '--', ...inner];
  const uts = target.hostname === undefined ? [] : ['unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', target.hostname];
  return ['ip', 'netns', 'exec', target.netns, ...uts, ...inner];
}

/** The container process's environment, as exec inherits it from the container. */
export function containerEnv(pid: number | undefined): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  if (pid === undefined) return env;
  try {
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  } catch {
    /* gone: the defaults do */
  }
  return env;
}

/**
 * How many streams the client opens for an exec, counted as the kubelet counts them: the
 * error stream, one per requested stdio, except stderr with a TTY (the terminal carries
 * it), plus a resize stream with a TTY. The kubelet waits for that many streams of any
 * type: client-go asked for tty=1 in the query while its own TTY flag is off (the MCS
 * conformance suite's exec does that) opens error, stdout and stderr and no resize
 * stream, the same count; the command then runs on a TTY without resizes.
 */
export function expectedStreams(o: ExecOptions): number {
  return 1 + (o.stdin ? 1 : 0) + (o.stdout ? 1 : 0) + (o.stderr && !o.tty ? 1 : 0) + (o.tty ? 1 : 0);
}

/** Waits for the streams the options call for (expectedStreams); resolves undefined on timeout or close. */
export function collectStreams(conn: EventEmitter<{ stream: [SpdyStream]; close: [] }>, o: ExecOptions, timeoutMs = STREAMS_TIMEOUT_MS): Promise<Map<string, SpdyStream> | undefined> {
  const want = expectedStreams(o);
  const got = new Map<string, SpdyStream>();
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), timeoutMs);
    const done = (v: Map<string, SpdyStream> | undefined): void => {
      clearTimeout(timer);
      conn.off('stream', onStream);
      conn.off('close', onClose);
      resolve(v);
    };
    const onStream = (s: SpdyStream): void => {
      const type = s.header('streamtype') ?? '';
      got.set(type, s);
      if (got.size >= want) done(got);
    };
    const onClose = (): void => done(undefined);
    conn.on('stream', onStream);
    conn.on('close', onClose);
  });
}

function ttyOf(scriptPid: number): string | undefined {
  try {
    const kids = readFileSync(`/proc/${scriptPid}/task/${scriptPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    for (const k of kids) {
      const link = readlinkSync(`/proc/${k}/fd/0`);
      if (link.startsWith('/dev/pts/')) return link;
    }
  } catch {
    /* not there yet */
  }
  return undefined;
}

/** Applies a terminal size to the command's pseudo-terminal (retried briefly while `script` starts). */
async function resize(child: ChildProcess, width: number, height: number): Promise<void> {
  for (let i = 0; i < 20 && child.exitCode === null; i++) {
    const tty = child.pid === undefined ? undefined : ttyOf(child.pid);
    if (tty !== undefined) {
      spawn('stty', ['-F', tty, 'rows', String(height), 'cols', String(width)], { stdio: 'ignore' }).on('error', () => {});
      return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Reads concatenated JSON objects `{"Width":…,"Height":…}` from the resize stream. */
function onResize(s: SpdyStream, apply: (w: number, h: number) => void): void {
  let buf = '';
  s.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    for (;;) {
      const end = buf.indexOf('}');
      if (end < 0) break;
      const obj = buf.slice(0, end + 1);
      buf = buf.slice(end + 1);
      try {
        const size = JSON.parse(obj) as { Width?: number; Height?: number };
        if (typeof size.Width === 'number' && typeof size.Height === 'number') apply(size.Width, size.Height);
      } catch {
        /* not a size: ignored, as the kubelet does */
      }
    }
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/**
 * Runs one exec on an upgraded SPDY connection. `target` is undefined when the
 * container is not running: the client gets that as the error status.
 */
export async function serveExec(conn: SpdyConnection, o: ExecOptions, target: ExecTarget | string, env: Record<string, string>): Promise<void> {
  // every stream is answered, also one the query did not announce (it then goes unused)
  conn.on('stream', (s) => void conn.reply(s));
  const streams = await collectStreams(conn, o);
  if (streams === undefined) {
    conn.close();
    return;
  }
  const errorStream = streams.get('error');
  const finish = (status: string): void => {
    for (const k of ['stdout', 'stderr']) streams.get(k)?.end();
    errorStream?.end(status);
    // the client closes once it has read everything; closing first could drop frames still queued on its side
    const timer = setTimeout(() => conn.close(), CLOSE_WAIT_MS);
    conn.once('close', () => clearTimeout(timer));
  };
  if (typeof target === 'string') {
    finish(errorStatus(target));
    return;
  }
  // a TTY starts at the client's size: its first resize message comes right after the streams
  const rs = streams.get('resize');
  let resizeTo: (w: number, h: number) => void = () => {};
  const first = rs === undefined ? undefined : await new Promise<TermSize | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), FIRST_SIZE_WAIT_MS);
    onResize(rs, (width, height) => {
      clearTimeout(timer);
      resolve({ width, height });
      resizeTo(width, height);
    });
  });
  const argv = execArgv(target, o.command, o.tty, first);
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    stdio: [o.stdin ? 'pipe' : 'ignore', o.stdout ? 'pipe' : 'ignore', o.stderr && !o.tty ? 'pipe' : 'ignore'],
    env: o.tty ? { ...env, TERM: env['TERM'] ?? 'xterm' } : env,
  });
  const onGone = (): void => killGroup(child);
  conn.once('close', onGone);
  const stdin = streams.get('stdin');
  if (stdin !== undefined && child.stdin !== null) {
    child.stdin.on('error', () => {});
    stdin.pipe(child.stdin);
  }
  if (child.stdout !== null) child.stdout.pipe(streams.get('stdout') as SpdyStream, { end: false });
  if (child.stderr !== null) child.stderr.pipe(streams.get('stderr') as SpdyStream, { end: false });
  resizeTo = (w, h) => void resize(child, w, h);
  const code = await new Promise<number>((resolve) => {
    child.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ENOENT' ? 127 : 126));
    child.once('close', (c, sig) => resolve(c ?? (sig === null ? 1 : 128 + 9)));
  });
  conn.off('close', onGone);
  if (!conn.closed) finish(exitStatus(code, o.command));
}
