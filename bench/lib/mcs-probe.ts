// Runs inside a pod's network namespace (ip netns exec) for bench/mcs-latency.ts: reads
// names from stdin, one a line; for each, asks the pod's DNS server for its A record every
// `--every` ms until it resolves, then connects over TCP to the address and `--port` (a new
// attempt every `--every` ms) until a connection is accepted. Prints one JSON line per name:
// {name, ready} as soon as its first query was answered (the bench then creates the ServiceExport), then {name,
// resolvedAt, connectedAt} (Date.now(), same machine as the bench). One name at a time.
// usage: node bench/lib/mcs-probe.ts --dns 10.101.0.10 --port 8080 [--every 10]
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import * as packet from 'dns-packet';
import { arg, numberArg } from './args.ts';

const DNS = arg('dns', '');
const PORT = numberArg('port', 8080);
const EVERY = numberArg('every', 10);
const sock = createSocket('udp4');
let id = 0;
const waiting = new Map<number, (a: string[] | undefined) => void>();
sock.on('message', (msg) => {
  const p = packet.decode(msg);
  const done = waiting.get(p.id ?? -1);
  if (done === undefined) return;
  waiting.delete(p.id ?? -1);
  done((p.answers ?? []).flatMap((a) => (a.type === 'A' ? [String(a.data)] : [])));
});

/** The A records of `name` ([] for NXDOMAIN or NODATA), undefined when no answer came in 500 ms. */
function query(name: string): Promise<string[] | undefined> {
  id = (id + 1) % 65536;
  const q = id;
  return new Promise((resolve) => {
    const t = setTimeout(() => { waiting.delete(q); resolve(undefined); }, 500);
    waiting.set(q, (a) => { clearTimeout(t); resolve(a); });
    sock.send(packet.encode({ type: 'query', id: q, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), 53, DNS);
  });
}

function tcp(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: ip, port: PORT, timeout: 500 });
    const end = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.once('connect', () => end(true));
    s.once('error', () => end(false));
    s.once('timeout', () => end(false));
  });
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const out = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');

async function probe(name: string): Promise<void> {
  let told = false;
  let ips: string[] | undefined;
  for (;;) {
    ips = await query(name);
    if (!told && ips !== undefined) {
      out({ name, ready: true });
      told = true;
    }
    if (ips !== undefined && ips.length > 0) break;
    await pause(EVERY);
  }
  const resolvedAt = Date.now();
  const ip = ips[0] ?? '';
  // a new attempt every EVERY ms, each waiting up to 500 ms, so a SYN that is lost (no rule
  // for the IP yet) does not hide a rule that appears meanwhile: resolution EVERY, not 500 ms
  const connectedAt = await new Promise<number>((resolve) => {
    let done = false;
    const tick = setInterval(() => {
      void tcp(ip).then((ok) => {
        if (ok && !done) {
          done = true;
          clearInterval(tick);
          resolve(Date.now());
        }
      });
    }, EVERY);
  });
  out({ name, resolvedAt, connectedAt });
}

for await (const line of createInterface({ input: process.stdin })) if (line.trim() !== '') await probe(line.trim());
sock.close();
