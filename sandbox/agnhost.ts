import { exec } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { hostname } from 'node:os';
import { ErrorCodes, IsthmusError } from '../core/index.ts';

/**
 * The subcommands of `registry.k8s.io/e2e-test-images/agnhost` that the upstream
 * suites run in pods, for the sandbox (`isthmus sandbox agnhost <sub>`; the image
 * table maps /agnhost here):
 * - `netexec [--http-port 8080] [--udp-port 8081]`: HTTP `/hostname`, `/echo?msg=`,
 *   `/clientip`, `/healthz`, `/shell?shellCommand=`, `/exit?code=`; UDP datagrams
 *   `hostname`, `echo <msg>`, `clientip`;
 * - `serve-hostname [--port 9376] [--tcp] [--udp] [--http=false]`: the hostname, over
 *   HTTP (default), raw TCP or UDP;
 * - `pause`: waits until signalled.
 * The hostname is the pod's: the sandbox runs containers in a UTS namespace that has it.
 */
/** `--k v`, `--k=v` and bare `--k` (true). Pure. */
export function parseFlags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (!a.startsWith('-')) continue;
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    if (eq >= 0) out.set(body.slice(0, eq), body.slice(eq + 1));
    else if (argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith('-') && !['tcp', 'udp', 'http', 'close'].includes(body)) out.set(body, argv[++i] as string);
    else out.set(body, 'true');
  }
  return out;
}

function port(flags: Map<string, string>, name: string, dflt: number): number {
  const v = Number(flags.get(name) ?? dflt);
  if (!Number.isInteger(v) || v < 0 || v > 65535) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--${name} must be a port 0-65535 (got ${flags.get(name) ?? ''})`);
  return v;
}

/** The reply of netexec's UDP server to one datagram. Pure. */
export function udpReply(msg: string, host: string, client: string): string {
  const m = msg.trim();
  if (m === 'hostname') return host;
  if (m.startsWith('echo ')) return m.slice(5);
  if (m === 'clientip') return client;
  return `unknown command ${m}`;
}

function netexec(flags: Map<string, string>): void {
  const httpPort = port(flags, 'http-port', 8080);
  const udpPort = port(flags, 'udp-port', 8081);
  const http = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const client = `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? 0}`;
    switch (url.pathname) {
      case '/hostname':
        return void res.end(hostname());
      case '/echo':
        return void res.end(url.searchParams.get('msg') ?? '');
      case '/clientip':
        return void res.end(client.replace(/^::ffff:/, ''));
      case '/healthz':
        return void res.end('ok');
      case '/exit': {
        res.end();
        setTimeout(() => process.exit(Number(url.searchParams.get('code') ?? 0)), 10);
        return;
      }
      case '/shell':
        exec(url.searchParams.get('shellCommand') ?? 'true', (err, stdout, stderr) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(err === null ? { output: stdout } : { error: `${err.message}\n${stderr}` }));
        });
        return;
      default:
        res.end(`NOW: ${new Date().toISOString()}`);
    }
  });
  http.listen(httpPort);
  if (udpPort > 0) {
    const udp = createSocket('udp4');
    udp.on('message', (m, r) => udp.send(udpReply(m.toString(), hostname(), `${r.address}:${r.port}`), r.port, r.address));
    udp.bind(udpPort);
  }
}

function serveHostname(flags: Map<string, string>): void {
  const p = port(flags, 'port', 9376);
  const name = hostname();
  if (flags.get('udp') === 'true') {
    const udp = createSocket('udp4');
    udp.on('message', (_m, r) => udp.send(name, r.port, r.address));
    udp.bind(p);
  } else if (flags.get('tcp') === 'true') {
    createTcpServer((s) => s.end(name)).listen(p);
  } else if (flags.get('http') !== 'false') {
    createHttpServer((_req, res) => res.end(name)).listen(p);
  }
}

export function runAgnhost(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const flags = parseFlags(rest);
  switch (sub) {
    case 'netexec':
      netexec(flags);
      break;
    case 'serve-hostname':
      serveHostname(flags);
      break;
    case 'pause':
    case undefined:
      break;
    default:
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `agnhost ${sub}: the isthmus sandbox has netexec, serve-hostname and pause (give the container a command to run something else)`);
  }
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve(0));
    process.once('SIGINT', () => resolve(0));
  });
}
