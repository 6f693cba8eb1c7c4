import { test, Lab, eventually, sleepMs } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { BrokerClient, type BrokerServer } from '../broker/index.ts';
import { ErrorCodes, type IsthmusError } from '../core/index.ts';
import { issueFor, writeIssued } from '../certs/index.ts';

// Finding 2 of issue 10: what a client without a certificate (or a member, on one
// connection) can hold at the broker, against a real broker on real etcd over real TLS.
let lab: Lab;
let broker: BrokerServer;
let c1: BrokerClient;
const LIMITS = { maxConnections: 64, maxConnectionsPerPeer: 4, idleTimeoutMs: 1_500, maxConcurrentStreams: 8, maxNewConnectionsPerSecond: 30 };

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1']);
  broker = await lab.startBroker({ connections: LIMITS });
  c1 = lab.client(broker.port, await lab.tls('c1'), { retryForMs: 5_000 });
  await c1.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
});

test.after(async () => {
  await lab?.cleanup();
});

/** How a TLS connection from `material` ends: 'secure' + first server bytes, or the error. */
async function tlsOutcome(material: { certPem?: string; keyPem?: string }): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({
      host: '127.0.0.1', port: broker.port, ca: lab.ca.certPem, servername: 'localhost', ALPNProtocols: ['h2'],
      ...(material.certPem === undefined ? {} : { cert: material.certPem, key: material.keyPem }),
    });
    let done = false;
    const finish = (what: string): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(what);
    };
    // the server speaks first after the handshake (its HTTP/2 SETTINGS): a refused client sees an alert instead
    s.once('data', () => finish('served'));
    s.once('error', (err: Error) => finish(`refused: ${err.message}`));
    s.once('close', () => finish('closed'));
  });
}

test('TLS itself refuses a client without a certificate or from a foreign CA; a member is served', async () => {
  assert.match(await tlsOutcome({}), /refused|closed/, 'no certificate');
  assert.match(await tlsOutcome(lab.tlsOf(lab.foreignCert('c1'))), /refused|closed/, 'foreign CA');
  assert.match(await tlsOutcome(lab.tlsOf(lab.expiredCert('c1'))), /refused|closed/, 'expired');
  assert.is(await tlsOutcome(await lab.tls('c1')), 'served', 'member');
});

function rawFrom(localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port: broker.port, localAddress });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

const closed = (s: Socket): Promise<void> => new Promise((r) => (s.closed ? r() : s.once('close', () => r())));

test('one source address holds at most maxConnectionsPerPeer connections; other addresses are still served', async () => {
  const held: Socket[] = [];
  try {
    for (let i = 0; i < 12; i++) held.push(await rawFrom('127.0.0.2'));
    // the ones over the limit are closed by the broker at once
    await eventually('the excess connections to be closed', () => (held.filter((s) => !s.closed).length === LIMITS.maxConnectionsPerPeer ? true : undefined), 5_000);
    const { events } = await c1.list(['CLUSTER']);
    assert.equal(events.map((e) => e.key), ['c1'], 'a member from another address is served meanwhile');
  } finally {
    for (const s of held) s.destroy();
  }
});

test('a flood of new connections (from many addresses) beyond maxNewConnectionsPerSecond is closed before TLS; members are served', async () => {
  const held = await Promise.all(Array.from({ length: 50 }, (_, i) => rawFrom(`127.0.2.${i + 1}`)));
  try {
    await eventually('some of the flood to be closed', () => (held.some((s) => s.closed) ? true : undefined), 5_000);
    assert.ok(held.filter((s) => !s.closed).length <= LIMITS.maxNewConnectionsPerSecond + 5, 'at most about one second\'s worth were taken');
    assert.match(await broker.metrics.metrics(), /isthmus_broker_connections_refused\{limit="maxNewConnectionsPerSecond"\} [1-9]/);
    const { events } = await c1.list(['CLUSTER']);
    assert.equal(events.map((e) => e.key), ['c1']);
  } finally {
    for (const s of held) s.destroy();
  }
});

test('a connection that sends nothing is closed after idleTimeoutMs', async () => {
  const s = await rawFrom('127.0.0.3');
  try {
    const t0 = Date.now();
    await Promise.race([closed(s), sleepMs(10_000)]);
    assert.ok(s.closed, 'the idle connection was closed');
    assert.ok(Date.now() - t0 >= LIMITS.idleTimeoutMs - 100, 'not before the idle timeout');
  } finally {
    s.destroy();
  }
});

test('a member connection advertises maxConcurrentStreams in its HTTP/2 settings', async () => {
  const tls = await lab.tls('c1');
  const session = h2connect(`https://127.0.0.1:${broker.port}`, { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, servername: 'localhost' });
  try {
    const max = await new Promise<number | undefined>((resolve, reject) => {
      session.once('remoteSettings', (s) => resolve(s.maxConcurrentStreams));
      session.once('error', reject);
    });
    assert.is(max, LIMITS.maxConcurrentStreams);
  } finally {
    session.destroy();
  }
});

test('finding 12: the client refuses a server whose certificate is from the clusterset CA but not a broker\'s', async () => {
  // an impostor serving with a gateway certificate (server usage, its own DNS name) of the same CA
  const dir = join(lab.dir, 'impostor');
  await writeIssued(dir, issueFor(lab.ca, { role: 'gateway', clusterId: 'c1', gateway: 'gw' }), lab.ca);
  const impostor = await lab.startBroker({ tlsDir: dir });
  const client = new BrokerClient({ address: `127.0.0.1:${impostor.port}`, serverName: 'gw.c1', credentials: async () => lab.tls('c1'), retryForMs: 0 });
  try {
    const err = await client.list(['CLUSTER']).then(() => undefined, (e: unknown) => e as IsthmusError);
    assert.is(err?.code, ErrorCodes.UNAVAILABLE);
    assert.match(String(err?.message), /not a broker's|isthmus:gateway/);
  } finally {
    client.close();
    await lab.stopBroker(impostor);
  }
});

test('bad limits are refused at start with a clear message', async () => {
  let msg = '';
  try {
    await lab.startBroker({ connections: { maxConnectionsPerPeer: 0 } });
  } catch (err) {
    msg = String(err);
  }
  assert.match(msg, /maxConnectionsPerPeer must be a whole number/);
});

test.run();
