import { spawn, type ChildProcess } from 'node:child_process';
import { kill } from '../../test/lib/clusterset.ts';

/** Benchmark helpers for "when did traffic flow again": a timestamped ping and a fast poll. */
export interface Pinger {
  /** Epoch ms of every echo reply so far. */
  readonly replies: number[];
  stop(): void;
}

/** `ping -D` every 20 ms from `netns` to `to` (from source address `from` when given). */
export function pinger(netns: string, to: string, from?: string): Pinger {
  const replies: number[] = [];
  const p: ChildProcess = spawn('ip', ['netns', 'exec', netns, 'ping', '-n', '-D', '-i', '0.02', '-W', '1', ...(from === undefined ? [] : ['-I', from]), to], { stdio: ['ignore', 'pipe', 'ignore'] });
  let rest = '';
  p.stdout?.on('data', (b: Buffer) => {
    const lines = (rest + b.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
      if (m?.[1] !== undefined) replies.push(Number(m[1]) * 1000);
    }
  });
  return { replies, stop: () => kill(p, 'SIGKILL') };
}

/**
 * The first reply after the outage that began at or after `since`: replies already on their way
 * when the path broke arrive just after it and do not count. An outage is a gap of more than
 * `gapMs` between two replies. undefined while the outage lasts (or when none happened yet).
 */
export function firstAfterOutage(replies: readonly number[], since: number, gapMs = 200): number | undefined {
  for (let i = 1; i < replies.length; i++) {
    const prev = replies[i - 1] ?? 0;
    const t = replies[i] ?? 0;
    if (t > since && t - Math.max(prev, since) > gapMs) return t;
  }
  return undefined;
}

/** Polls `fn` every `everyMs` until it returns a value, or throws after `timeoutMs`. */
export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}
