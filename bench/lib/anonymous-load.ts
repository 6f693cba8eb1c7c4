/**
 * The anonymous load of bench/security.ts, in its own process so its CPU does not slow
 * the member whose latency the benchmark measures:
 *
 *   node bench/lib/anonymous-load.ts PORT COUNT
 *
 * Half of COUNT sit idle after TCP connect (opened at 100 per second, so the broker's
 * new-connection rate takes them all; "held" is printed then); the other half attempt
 * TLS without a client certificate again and again. They come from 50 loopback source addresses. On SIGTERM it
 * prints "<open idle connections> <handshake attempts>" and exits.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
const source = (i: number): string => `127.0.1.${1 + (i % 50)}`;
const idle = Math.floor(count / 2);
const held: Socket[] = [];
let attempts = 0;
let stop = false;

process.once('SIGTERM', () => {
  stop = true;
  process.stdout.write(`${held.filter((s) => !s.closed).length} ${attempts}\n`);
  for (const s of held) s.destroy();
  process.exit(0);
});

// the idle half first, paced below the broker's new-connection rate so that all are taken
for (let i = 0; i < idle; i++) {
  const s = netConnect({ host: '127.0.0.1', port, localAddress: source(i) });
  s.on('error', () => undefined);
  held.push(s);
  if (i % 10 === 9) await new Promise((r) => setTimeout(r, 100));
}
process.stdout.write('held\n');
for (let i = 0; i < count - idle; i++) {
  void (async () => {
    while (!stop) {
      await new Promise<void>((resolve) => {
        const s = tlsConnect({ socket: netConnect({ host: '127.0.0.1', port, localAddress: source(i + idle) }), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
        s.on('error', () => undefined);
        s.on('close', () => resolve());
        s.on('secureConnect', () => s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
      });
      attempts++;
    }
  })();
}
