import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TLSSocket } from 'node:tls';
import { refusal, route } from './api.ts';
import { EventEmitter } from 'node:events';
import { chooseProtocol, collectStreams, execArgv, execOptions, exitStatus, expectedStreams, type ExecOptions } from './remotecommand.ts';
import type { SpdyStream } from './spdy.ts';

test('exec query: repeated command, stdio flags, and what is refused', () => {
  assert.equal(execOptions(new URLSearchParams('command=sh&command=-c&command=echo%20hi&output=1&error=1')), { stdin: false, stdout: true, stderr: true, tty: false, command: ['sh', '-c', 'echo hi'] });
  assert.match(String(execOptions(new URLSearchParams('output=1'))), 'no command given');
  assert.match(String(execOptions(new URLSearchParams(''))), 'more than 10,000');
  assert.match(String(execOptions(new URLSearchParams('command=true'))), 'at least one of stdin, stdout and stderr');
});

test('protocol negotiation takes the first offer we speak, from comma lists too', () => {
  assert.is(chooseProtocol(['v5.channel.k8s.io, v4.channel.k8s.io'], ['v4.channel.k8s.io', 'v5.channel.k8s.io']), 'v5.channel.k8s.io');
  assert.is(chooseProtocol(['v2.channel.k8s.io', 'v4.channel.k8s.io'], ['v4.channel.k8s.io']), 'v4.channel.k8s.io');
  assert.is(chooseProtocol(['channel.k8s.io'], ['v4.channel.k8s.io']), undefined);
});

test('the exit status is a metav1.Status kubectl turns into its exit code', () => {
  assert.equal(JSON.parse(exitStatus(0, ['true'])), { metadata: {}, status: 'Success' });
  const s = JSON.parse(exitStatus(127, ['nope'])) as { reason: string; details: { causes: { reason: string; message: string }[] } };
  assert.is(s.reason, 'NonZeroExitCode');
  assert.equal(s.details.causes, [{ reason: 'ExitCode', message: '127' }]);
});

test('exec enters the container namespaces, or the pod network namespace; a TTY goes through script', () => {
  assert.equal(execArgv({ pid: 42 }, ['ls', '-l'], false), ['nsenter', '-t', '42', '-m', '-u', '-n', '--', 'ls', '-l']);
  assert.equal(execArgv({ netns: 'isb-x' }, ['ls'], false), ['ip', 'netns', 'exec', 'isb-x', 'ls']);
  assert.equal(execArgv({ netns: 'isb-x', hostname: 'web-0' }, ['ls'], false), ['ip', 'netns', 'exec', 'isb-x', 'unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', 'web-0', 'ls']);
  assert.equal(execArgv({ pid: 7 }, ['sh', "it's"], true), ['nsenter', '-t', '7', '-m', '-u', '-n', '--', 'script', '-q', '-e', '-c', "'sh' 'it'\\''s'", '/dev/null']);
});

test('a TTY starts at the client size', () => {
  assert.equal(execArgv({ pid: 7 }, ['top'], true, { width: 101, height: 33 }).slice(-2), ["stty rows 33 cols 101 2>/dev/null; exec 'top'", '/dev/null']);
});

const opts = (o: Partial<ExecOptions>): ExecOptions => ({ stdin: false, stdout: true, stderr: true, tty: false, command: ['sh'], ...o });

test('streams counted as the kubelet counts them: with a TTY stderr folds into stdout and a resize stream comes', () => {
  assert.is(expectedStreams(opts({})), 3); // error, stdout, stderr
  assert.is(expectedStreams(opts({ stdin: true, tty: true })), 4); // error, stdin, stdout, resize (kubectl exec -it)
  assert.is(expectedStreams(opts({ tty: true })), 3);
  assert.is(expectedStreams(opts({ stdout: false, stderr: false, stdin: true })), 2);
});

/** A connection that opens streams of the given types, one per tick. */
function fakeConn(types: readonly string[]): EventEmitter<{ stream: [SpdyStream]; close: [] }> {
  const conn = new EventEmitter<{ stream: [SpdyStream]; close: [] }>();
  types.forEach((t, i) => setTimeout(() => conn.emit('stream', { header: (k: string) => (k === 'streamtype' ? t : undefined) } as unknown as SpdyStream), i));
  return conn;
}

test('exec with tty=1 in the query from a client whose own TTY flag is off (error, stdout, stderr; no resize) gets its streams', async () => {
  const got = await collectStreams(fakeConn(['error', 'stdout', 'stderr']), opts({ tty: true }), 500);
  assert.equal([...(got?.keys() ?? [])], ['error', 'stdout', 'stderr']);
  const it = await collectStreams(fakeConn(['error', 'stdin', 'stdout', 'resize']), opts({ stdin: true, tty: true }), 500);
  assert.equal([...(it?.keys() ?? [])].sort(), ['error', 'resize', 'stdin', 'stdout']);
  assert.is(await collectStreams(fakeConn(['error', 'stdout']), opts({}), 50), undefined, 'too few streams: timed out');
});

test('kubelet API routes', () => {
  assert.equal(route('/exec/ns/p/c'), { kind: 'exec', ns: 'ns', pod: 'p', container: 'c' });
  assert.equal(route('/exec/ns/p'), { kind: 'exec', ns: 'ns', pod: 'p', container: undefined });
  assert.equal(route('/portForward/ns/p'), { kind: 'portForward', ns: 'ns', pod: 'p' });
  assert.equal(route('/containerLogs/ns/p/c'), { kind: 'logs', ns: 'ns', pod: 'p', container: 'c' });
  assert.equal(route('/healthz'), { kind: 'healthz' });
  assert.equal(route('/metrics'), { kind: 'metrics' });
  assert.is(route('/run/ns/p/c'), undefined);
  assert.is(route('/containerLogs/ns/p'), undefined);
});

test('only the apiserver kubelet-client certificate is let in', () => {
  const sock = (authorized: boolean, cn?: string): TLSSocket => ({ authorized, getPeerCertificate: () => ({ subject: cn === undefined ? undefined : { CN: cn } }) }) as unknown as TLSSocket;
  assert.is(refusal(sock(false)), 401);
  assert.is(refusal(sock(true, 'isthmus-admin')), 403);
  assert.is(refusal(sock(true, 'kube-apiserver-kubelet-client')), 0);
});

test.run();
