import { test, Lab } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { BrokerClient, BrokerServer } from '../broker/index.ts';
import { methods, METHOD_NAMES } from '../core/broker-api/proto.ts';
import { seededRandom } from '../core/testing.ts';

// Issue 10: a seeded fuzz test against a real broker on real etcd. Mutated gRPC messages
// from a member (valid certificate), random HTTP/2 frames after a member's TLS handshake,
// and random bytes from a client without a certificate. The broker must not crash, must
// keep answering a legitimate client, and its heap must stay bounded. The seed is printed;
// ISTHMUS_FUZZ_SEED replays a run.
const SEED = Number(process.env['ISTHMUS_FUZZ_SEED'] ?? 20261130);
const ROUNDS = Number(process.env['ISTHMUS_FUZZ_ROUNDS'] ?? 300);
let lab: Lab;
let broker: BrokerServer;
let legit: BrokerClient;
let heapAtStart = 0;

const rand = seededRandom(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));

/** One mutation of `b`: flip bits, cut, splice random bytes, duplicate, or a varint that claims a huge length. */
function mutate(b: Buffer): Buffer {
  const out = Buffer.from(b);
  switch (int(6)) {
    case 0:
      for (let n = 0; n < 1 + int(8) && out.length > 0; n++) {
        const i = int(out.length);
        out[i] = (out[i] ?? 0) ^ (1 << int(8));
      }
      return out;
    case 1:
      return out.subarray(0, int(out.length + 1));
    case 2: {
      const at = int(out.length + 1);
      return Buffer.concat([out.subarray(0, at), bytes(1 + int(64)), out.subarray(at)]);
    }
    case 3:
      return Buffer.concat([out, out, out]);
    case 4:
      return Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), out]);
    default:
      return bytes(int(512));
  }
}

const SAMPLES: Record<string, object> = {
  RegisterCluster: { cluster: { cluster_id: 'fz', pod_cidrs: ['10.77.0.0/16'], service_cidrs: ['10.177.0.0/16'], labels: { a: 'b' } } },
  UnregisterCluster: { cluster_id: 'fz' },
  PublishEndpoint: { endpoint: { cluster_id: 'fz', hostname: 'gw', private_ip: '192.168.1.5', ports: [{ name: 'cable', port: 51820, protocol: 'UDP' }], cable_driver: 'wireguard', backend_config: { 'public-key': 'k' } }, ttl_seconds: 30 },
  RenewEndpoint: { cluster_id: 'fz', hostname: 'gw', lease_id: '1' },
  WithdrawEndpoint: { cluster_id: 'fz', hostname: 'gw' },
  PublishExport: { export: { cluster_id: 'fz', namespace: 'default', name: 'web', ports: [{ name: 'http', protocol: 'TCP', port: 80 }], annotations: { x: 'y' } } },
  WithdrawExport: { cluster_id: 'fz', namespace: 'default', name: 'web' },
  List: { kinds: ['CLUSTER', 'EXPORT'] },
  Watch: { kinds: ['EXPORT'], from_revision: '0' },
};

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['fz', 'ok']);
  broker = await lab.startBroker({ quotas: { writesPerSecond: 100_000, writeBurst: 100_000 } });
  legit = lab.client(broker.port, await lab.tls('ok'), { retryForMs: 5_000 });
  await legit.registerCluster({ cluster_id: 'ok', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  globalThis.gc?.();
  heapAtStart = process.memoryUsage().heapUsed;
  process.stdout.write(`  fuzz seed ${SEED}, ${ROUNDS} rounds (ISTHMUS_FUZZ_SEED / ISTHMUS_FUZZ_ROUNDS)\n`);
});

test.after(async () => {
  await lab?.cleanup();
});

async function stillServes(what: string): Promise<void> {
  const { events } = await legit.list(['CLUSTER']);
  assert.ok(events.some((e) => e.key === 'ok'), `the broker still serves after ${what}`);
}

test('mutated gRPC messages from a member: every call ends with a status, the broker serves on', async () => {
  const tls = await lab.tls('fz');
  const raw = new Client(`127.0.0.1:${broker.port}`, credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem)), {
    'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost',
  });
  const id = (b: Buffer): Buffer => b;
  let calls = 0;
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const name = METHOD_NAMES[int(METHOD_NAMES.length)] ?? 'List';
      const m = methods[name];
      const body = mutate(m.requestSerialize(SAMPLES[name] ?? {}) as Buffer);
      const deadline = new Date(Date.now() + 3_000);
      await new Promise<void>((resolve) => {
        if (name === 'List' || name === 'Watch') {
          const s = raw.makeServerStreamRequest(m.path, id, id, body, new Metadata(), { deadline });
          s.on('data', () => undefined);
          s.on('error', () => resolve());
          s.on('end', () => resolve());
          if (name === 'Watch') setTimeout(() => s.cancel(), 50);
        } else {
          raw.makeUnaryRequest(m.path, id, id, body, new Metadata(), { deadline }, () => resolve());
        }
      });
      calls++;
    }
  } finally {
    raw.close();
  }
  assert.is(calls, ROUNDS);
  assert.match(await broker.metrics.metrics(), /isthmus_broker_requests_total\{method="\w+",code="INVALID_ARGUMENT"\} \d+/, 'mutated messages reached the handlers and were refused there');
  await stillServes('mutated gRPC messages');
});

test('random HTTP/2 frames after a member\'s TLS handshake, and random bytes without one', async () => {
  const tls = await lab.tls('fz');
  const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  for (let r = 0; r < ROUNDS; r++) {
    const frames: Buffer[] = [int(4) === 0 ? bytes(24) : PREFACE];
    for (let i = 0; i < 1 + int(6); i++) {
      const payload = bytes(int(300));
      const header = Buffer.alloc(9);
      header.writeUIntBE(int(8) === 0 ? 0xffffff : payload.length, 0, 3); // sometimes a length it never sends
      header[3] = int(12); // DATA … CONTINUATION, and unknown types
      header[4] = int(256);
      header.writeUInt32BE(int(8) === 0 ? 0 : (1 + 2 * int(50)) >>> 0, 5);
      frames.push(header, payload);
    }
    await new Promise<void>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: broker.port, ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
        s.write(Buffer.concat(frames));
        setTimeout(() => s.destroy(), 20);
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
  }
  for (let r = 0; r < ROUNDS; r++) {
    await new Promise<void>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: broker.port }, () => {
        // a TLS record header now and then, then noise
        s.write(Buffer.concat([int(2) === 0 ? Buffer.from([0x16, 0x03, 0x01, int(256), int(256)]) : Buffer.alloc(0), bytes(int(2048))]));
        setTimeout(() => s.destroy(), 10);
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
  }
  await stillServes('random frames and bytes');
});

test('memory stays bounded', async () => {
  globalThis.gc?.();
  const grown = (process.memoryUsage().heapUsed - heapAtStart) / 1048576;
  assert.ok(grown < 64, `the heap grew ${grown.toFixed(1)} MB over the fuzz run`);
  assert.ok(broker.metrics !== undefined);
  await stillServes('the whole run');
});

test.run();
