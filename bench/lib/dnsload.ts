// A DNS load generator, run as its own process so it never shares an event loop with the
// server it measures: UDP queries from one socket, cycling over the names given.
//   closed loop: --mode max --inflight 64 → the server's throughput (answers/s)
//   open loop:   --mode rate --qps 10000 → latency percentiles at a fixed offered load
// Prints one JSON line: {sent, answered, lost, qps, p50, p90, p99, max} (ms).
// usage: node bench/lib/dnsload.ts --server 127.0.0.1 --port 53 --names a,b --seconds 10 --mode max|rate
import { createSocket } from 'node:dgram';
import * as dns from 'dns-packet';
import { arg, numberArg } from './args.ts';

const server = arg('server', '127.0.0.1');
const port = numberArg('port', 53);
const names = arg('names', '').split(',').filter((n) => n !== '');
const seconds = numberArg('seconds', 10);
const mode = arg('mode', 'max');
const inflight = numberArg('inflight', 64);
const qps = numberArg('qps', 10_000);
if (names.length === 0) throw new Error('--names is required');

// Queries are encoded once; the id is patched in per send.
const packets = names.map((name) => dns.encode({ type: 'query', id: 0, flags: dns.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] }));
const sock = createSocket('udp4');
const pending = new Map<number, bigint>();
const latencies: number[] = [];
let sent = 0;
let answered = 0;
let nextId = 1;
let i = 0;
const start = process.hrtime.bigint();
const endAt = start + BigInt(Math.round(seconds * 1e9));
let done = false;

function send(): void {
  let id = nextId;
  for (let tries = 0; pending.has(id) && tries < 65535; tries++) id = (id % 65535) + 1;
  nextId = (id % 65535) + 1;
  const p = packets[i++ % packets.length] as Buffer;
  p.writeUInt16BE(id, 0);
  pending.set(id, process.hrtime.bigint());
  sent++;
  sock.send(p, port, server);
}

sock.on('message', (msg) => {
  if (msg.length < 2) return;
  const id = msg.readUInt16BE(0);
  const t0 = pending.get(id);
  if (t0 === undefined) return;
  pending.delete(id);
  answered++;
  latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (mode === 'max' && !done) send();
});

function finish(): void {
  done = true;
  setTimeout(() => {
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    latencies.sort((a, b) => a - b);
    const q = (p: number): number => Number((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN).toFixed(3));
    process.stdout.write(JSON.stringify({ sent, answered, lost: sent - answered, qps: Math.round(answered / Math.min(elapsed, seconds)), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) }) + '\n');
    sock.close();
  }, 500);
}

sock.bind(0, () => {
  if (mode === 'max') {
    for (let k = 0; k < inflight; k++) send();
    // a lost reply must not stall the loop: resend for entries older than 1 s
    const sweep = setInterval(() => {
      const now = process.hrtime.bigint();
      for (const [id, t0] of pending) {
        if (now - t0 > 1_000_000_000n) {
          pending.delete(id);
          if (!done) send();
        }
      }
      if (now >= endAt) {
        clearInterval(sweep);
        finish();
      }
    }, 100);
  } else {
    // open loop: send in 1 ms ticks, as many as the rate says are due
    const tick = setInterval(() => {
      const now = process.hrtime.bigint();
      const due = Math.floor((Number(now - start) / 1e9) * qps);
      while (sent < due) send();
      if (now >= endAt) {
        clearInterval(tick);
        finish();
      }
    }, 1);
  }
});
