import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { systemClock, type Clock, type Logger } from '../core/index.ts';

/**
 * Cable health: every interval (default 500 ms) the active gateway sends a small UDP
 * probe through each cable to the remote gateway's health-check address and times
 * the answer. RttWindow keeps the last `size` probes of one cable and derives the
 * figures the Gateway status and the metrics show. Pure apart from the socket.
 */
export interface RttStats {
  readonly lastMs: number | undefined;
  readonly minMs: number | undefined;
  readonly avgMs: number | undefined;
  readonly maxMs: number | undefined;
  readonly stddevMs: number | undefined;
  /** Lost probes / sent probes in the window, 0..1. */
  readonly loss: number;
  readonly sent: number;
}

export class RttWindow {
  readonly #size: number;
  /** RTT in ms, or undefined for a probe that got no answer. */
  readonly #samples: (number | undefined)[] = [];

  constructor(size = 60) {
    this.#size = size;
  }

  add(rttMs: number | undefined): void {
    this.#samples.push(rttMs);
    if (this.#samples.length > this.#size) this.#samples.shift();
  }

  stats(): RttStats {
    const ok = this.#samples.filter((s): s is number => s !== undefined);
    const sent = this.#samples.length;
    const last = [...this.#samples].reverse().find((s) => s !== undefined);
    if (ok.length === 0) return { lastMs: undefined, minMs: undefined, avgMs: undefined, maxMs: undefined, stddevMs: undefined, loss: sent === 0 ? 0 : 1, sent };
    const avg = ok.reduce((a, b) => a + b, 0) / ok.length;
    const variance = ok.reduce((a, b) => a + (b - avg) ** 2, 0) / ok.length;
    return {
      lastMs: last,
      minMs: Math.min(...ok),
      avgMs: avg,
      maxMs: Math.max(...ok),
      stddevMs: Math.sqrt(variance),
      loss: (sent - ok.length) / sent,
      sent,
    };
  }

  /** True when the most recent `n` probes all went unanswered. */
  lostLast(n: number): boolean {
    return this.#samples.length >= n && this.#samples.slice(-n).every((s) => s === undefined);
  }
}

/**
 * Whether the Gateway status is written this tick: at most every `everyMs` while nothing
 * changes (probes run more often than the status needs writing), but at once when the
 * set of dead cables (`dead`, a canonical string of their clusters) differs from the one
 * last written, so that a cable going down (or back up) reaches the status, and the
 * mcs controllers that read it, on the tick that decided it. `last` undefined: never
 * written yet.
 */
export function statusWriteDue(last: { readonly at: number; readonly dead: string } | undefined, now: number, dead: string, everyMs: number): boolean {
  return last === undefined || last.dead !== dead || now - last.at >= everyMs;
}

/**
 * The probe protocol: a probe is "isthmus-health/1 req <nonce>", its answer
 * "isthmus-health/1 rep <nonce>" with the same nonce (16 random bytes, hex, one per
 * probe). A responder answers requests only, never an answer, so a datagram spoofed
 * between two responders cannot start an echo loop; a prober counts an answer only
 * when it carries the nonce of a probe in flight and comes from the address and port
 * that probe went to, so health cannot be faked by guessing. (A responder of an older
 * version echoes the request unchanged; the prober takes that echo too.)
 */
const MAGIC = 'isthmus-health/1';
const MAX_DATAGRAM = 128;

/** The nonce of a message of `kind`, or undefined when it is not one. */
export function parseHealth(msg: Buffer, kind: 'req' | 'rep'): string | undefined {
  if (msg.length > MAX_DATAGRAM) return undefined;
  const m = new RegExp(`^${MAGIC} ${kind} ([0-9a-f]{32})$`).exec(msg.toString('latin1'));
  return m?.[1];
}

export function healthMessage(kind: 'req' | 'rep', nonce: string): Buffer {
  return Buffer.from(`${MAGIC} ${kind} ${nonce}`, 'latin1');
}

/** Answers health probes on `address:port` (the gateway's health-check address). */
export async function startResponder(address: string, port: number): Promise<Socket> {
  const sock = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (msg, from) => {
    const nonce = parseHealth(msg, 'req');
    if (nonce !== undefined) sock.send(healthMessage('rep', nonce), from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, address, () => resolve());
  });
  return sock;
}

/** "::ffff:10.0.0.1" and "10.0.0.1" are the same sender. */
function sameAddress(a: string, b: string): boolean {
  return a.replace(/^::ffff:/, '') === b.replace(/^::ffff:/, '');
}

export interface ProbeTarget {
  readonly cluster: string;
  readonly address: string;
}

/**
 * Sends one probe per target per `tick()` and records the answers (or their absence
 * by the next tick) in each target's RttWindow.
 */
export class HealthProber {
  readonly #sock: Socket;
  readonly #clock: Clock;
  readonly #port: number;
  readonly #windows = new Map<string, RttWindow>();
  /** Probes in flight by nonce. */
  readonly #inflight = new Map<string, { cluster: string; address: string; sentAt: number }>();

  private constructor(sock: Socket, port: number, clock: Clock) {
    this.#sock = sock;
    this.#port = port;
    this.#clock = clock;
    sock.on('message', (msg, from) => {
      const nonce = parseHealth(msg, 'rep') ?? parseHealth(msg, 'req');
      const p = nonce === undefined ? undefined : this.#inflight.get(nonce);
      if (p === undefined || nonce === undefined || from.port !== this.#port || !sameAddress(from.address, p.address)) return;
      this.#inflight.delete(nonce);
      this.window(p.cluster).add(this.#clock.now() - p.sentAt);
    });
  }

  static async open(port: number, clock: Clock = systemClock, family: 'udp4' | 'udp6' = 'udp4'): Promise<HealthProber> {
    const sock = createSocket(family);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, () => resolve());
    });
    return new HealthProber(sock, port, clock);
  }

  window(cluster: string): RttWindow {
    let w = this.#windows.get(cluster);
    if (w === undefined) {
      w = new RttWindow();
      this.#windows.set(cluster, w);
    }
    return w;
  }

  /** Counts last tick's unanswered probes as lost, then sends the next round. */
  tick(targets: readonly ProbeTarget[], logger?: Logger): void {
    for (const p of this.#inflight.values()) this.window(p.cluster).add(undefined);
    this.#inflight.clear();
    for (const name of [...this.#windows.keys()]) if (!targets.some((t) => t.cluster === name)) this.#windows.delete(name);
    for (const t of targets) {
      const nonce = randomBytes(16).toString('hex');
      this.#inflight.set(nonce, { cluster: t.cluster, address: t.address, sentAt: this.#clock.now() });
      this.#sock.send(healthMessage('req', nonce), this.#port, t.address, (err) => {
        if (err !== null && err !== undefined) logger?.debug({ cluster: t.cluster, err: err.message }, 'health probe not sent');
      });
    }
  }

  close(): void {
    this.#sock.close();
  }
}
