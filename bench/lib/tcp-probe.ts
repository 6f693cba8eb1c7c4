// A TCP reachability prober for benches, run inside a pod's network namespace
// (`ip netns exec NS node bench/lib/tcp-probe.ts --interval 20 --timeout 60 IP:PORT …`).
// Each target is tried on its own: a connect, closed at once, then `interval` ms of rest;
// an attempt with no answer within `timeout` ms counts as refused (a dropped SYN). Prints one
// JSON line {t, target, ok} per target when it starts and whenever its state flips, `t` being
// the start of the attempt that saw the new state (ms since the epoch). Runs until SIGTERM,
// at most --seconds (default 900).
import { connect } from 'node:net';
import { numberArg } from './args.ts';

const interval = numberArg('interval', 20);
const timeout = numberArg('timeout', 60);
const until = Date.now() + numberArg('seconds', 900) * 1000;
const targets = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !(all[i - 1] ?? '').startsWith('--'));

function attempt(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function probe(target: string): Promise<void> {
  const [host = '', port = '0'] = target.split(':');
  let last: boolean | undefined;
  while (Date.now() < until) {
    const t = Date.now();
    const ok = await attempt(host, Number(port));
    if (ok !== last) process.stdout.write(`${JSON.stringify({ t, target, ok })}\n`);
    last = ok;
    await new Promise((r) => setTimeout(r, interval));
  }
}

process.once('SIGTERM', () => process.exit(0));
await Promise.all(targets.map(probe));
