import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { run, type Run } from './cli.ts';

/** Helpers for e2e tests that look at namespaces and send traffic from inside them. */
export function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

export function linkNames(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter(Boolean);
}

/** Pids of the processes in a network namespace ([] when it does not exist). */
export function netnsPids(netns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Pids of the processes in `netns` whose name is one of `names` (pgrep alone sees every namespace's). */
export function processesNamed(netns: string, ...names: string[]): number[] {
  return netnsPids(netns).filter((pid) => {
    try {
      return names.includes(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
    } catch {
      return false; // gone meanwhile
    }
  }).sort((a, b) => a - b);
}

/** Runs a command in a network namespace. */
export function inNetns(netns: string, command: string, args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  return run('ip', ['netns', 'exec', netns, command, ...args], { timeoutMs });
}

const CLIENT = `
import { request } from 'node:http';
import { createSocket } from 'node:dgram';
const [proto, host, port] = process.argv.slice(1);
const done = (s) => { process.stdout.write(s); process.exit(0); };
setTimeout(() => { process.stderr.write('no answer'); process.exit(2); }, 5000);
if (proto === 'tcp') {
  request({ host, port: Number(port), path: '/e2e' }, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => done(b)); })
    .on('error', (e) => { process.stderr.write(String(e)); process.exit(1); }).end();
} else {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => done(m.toString()));
  // a datagram may be lost like any other: resent every second, as a UDP client would (TCP retransmits its SYN)
  const ping = () => s.send('ping', Number(port), host);
  ping();
  setInterval(ping, 1000);
}`;

/** One TCP (HTTP) or UDP exchange with an echo server, from inside `netns` (5 s, a datagram resent each second); resolves with the answer. */
export async function echoFrom(netns: string, proto: 'tcp' | 'udp', host: string, port: number): Promise<Record<string, unknown>> {
  const r = await inNetns(netns, process.execPath, ['--input-type=module', '-e', CLIENT, proto, host, String(port)]);
  if (r.code !== 0) throw new Error(`${proto} ${host}:${port} from ${netns}: exit ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
