import { spawn } from 'node:child_process';
import type { SpdyConnection, SpdyStream } from './spdy.ts';

/**
 * `kubectl port-forward` as a kubelet serves it over SPDY (protocol
 * portforward.k8s.io): for every local connection the client opens an `error` and a
 * `data` stream sharing a `requestid` and naming the `port`; the kubelet connects to
 * that port on the pod's loopback, inside its network namespace (here through
 * `socat`), and copies bytes both ways. A port nobody listens on is reported on that
 * request's error stream only; the connection and its other requests go on.
 *
 * Invariant: every connector process ends when its streams end or the connection closes.
 */
export const PORTFORWARD_PROTOCOL = 'portforward.k8s.io';

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
}

export function servePortForward(conn: SpdyConnection, netns: string, podLabel: string): void {
  const pairs = new Map<string, Pair>();
  const kills = new Set<() => void>();
  conn.on('close', () => {
    for (const k of kills) k();
  });
  conn.on('stream', (s) => {
    void conn.reply(s);
    const id = s.header('requestid') ?? '';
    const type = s.header('streamtype');
    const p = pairs.get(id) ?? {};
    if (type === 'error') p.error = s;
    else if (type === 'data') p.data = s;
    else {
      s.reset();
      return;
    }
    pairs.set(id, p);
    if (p.error === undefined || p.data === undefined) return;
    pairs.delete(id);
    const port = Number(s.header('port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      p.error.end(`invalid port ${String(s.header('port'))}: it must be 1-65535`);
      p.data.end();
      return;
    }
    forward(p.error, p.data, netns, port, podLabel, kills);
  });
}

function forward(errorStream: SpdyStream, data: SpdyStream, netns: string, port: number, podLabel: string, kills: Set<() => void>): void {
  const child = spawn('ip', ['netns', 'exec', netns, 'socat', '-t', '1', 'STDIO', `TCP4:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  kills.add(kill);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  child.stdin.on('error', () => {});
  data.pipe(child.stdin);
  child.stdout.pipe(data);
  data.on('close', kill);
  data.on('error', kill);
  child.on('error', () => {});
  child.on('close', (code) => {
    kills.delete(kill);
    if (code !== 0 && code !== null) {
      const why = stderr.split('\n').find((l) => l.includes(' E ')) ?? stderr.trim();
      errorStream.end(`an error occurred forwarding ${port} -> ${port}: error forwarding port ${port} to pod ${podLabel}: ${why.replace(/^.* E /, '') || `exit status ${code}`}`);
    } else {
      errorStream.end();
    }
  });
}
