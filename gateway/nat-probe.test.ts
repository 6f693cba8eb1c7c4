import { createSocket, type Socket } from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../core/index.ts';
import { NatProbe, encodeRequest, parseMessage } from './nat-probe.ts';

const NONCE = '0123456789abcdef0123456789abcdef';

async function rawSocket(address = '127.0.0.1'): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
  return s;
}

/** The datagrams `sock` receives within `ms`. */
function collect(sock: Socket, ms: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const on = (m: Buffer): void => void got.push(m);
  sock.on('message', on);
  return new Promise((resolve) => setTimeout(() => {
    sock.off('message', on);
    resolve(got);
  }, ms));
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A remote NatProbe (c2) on 127.0.0.1 and a local one (c1) on `localAddress`, closed after `fn`. */
async function withPair(localAddress: string, windowMs: number, fn: (remote: NatProbe, local: NatProbe) => Promise<void>): Promise<void> {
  const remote = await NatProbe.open({ address: '127.0.0.1', port: 0, clusterId: 'c2' });
  const local = await NatProbe.open({ address: localAddress, port: 0, clusterId: 'c1', windowMs });
  try {
    await fn(remote, local);
  } finally {
    local.close();
    remote.close();
  }
}

test('parseMessage: requests (padded), replies; everything else is undefined', () => {
  assert.equal(parseMessage(encodeRequest(NONCE, 'c2')), { type: 'probe', nonce: NONCE, cluster: 'c2' });
  assert.equal(parseMessage(Buffer.from(`isthmus-nat/1 seen ${NONCE} 198.51.100.7 40001`)), { type: 'seen', nonce: NONCE, seen: { ip: '198.51.100.7', port: 40001 } });
  assert.equal(parseMessage(Buffer.from(`isthmus-nat/1 seen ${NONCE} fd00::1 4490`)), { type: 'seen', nonce: NONCE, seen: { ip: 'fd00::1', port: 4490 } });
  for (const bad of [
    `isthmus-nat/1 probe ${NONCE} c2`, // not padded: a reply could be larger than it
    encodeRequest(NONCE, 'C_2!').toString(),
    encodeRequest('xyz', 'c2').toString(),
    `isthmus-nat/2 seen ${NONCE} 198.51.100.7 40001`,
    `isthmus-nat/1 seen ${NONCE} 198.51.100.7 0`,
    `isthmus-nat/1 seen ${NONCE} 198.51.100.7 70000`,
    `isthmus-nat/1 seen ${NONCE} not-an-ip 4490`,
    `isthmus-nat/1 seen ${NONCE} 198.51.100.7`,
    '',
    'isthmus-nat/1',
    `isthmus-nat/1 probe ${NONCE} c2 ${' '.repeat(600)}x`,
  ]) assert.is(parseMessage(Buffer.from(bad)), undefined, JSON.stringify(bad.trimEnd()));
  assert.is(parseMessage(Buffer.from([0xff, 0xfe, 0x00, 0x80])), undefined);
});

test('the private address answers: verdict private, at once, with the address the remote saw', () => withPair('127.0.0.1', 5000, async (remote, local) => {
  const started = Date.now();
  const r = await local.probe({ cluster: 'c2', privateIp: '127.0.0.1', publicIp: '127.0.0.1', port: remote.port });
  assert.ok(Date.now() - started < 2000, 'a private answer ends the probe before the window');
  assert.equal(r, { verdict: 'private', seen: { ip: '127.0.0.1', port: local.port }, behindNat: false });
}));

test('only the public address answers: verdict public; seen at its own address: not behind NAT', () => withPair('127.0.0.3', 300, async (remote, local) => {
  // the remote listens on 127.0.0.1 only: its "private" 127.0.0.2 gets nothing
  const r = await local.probe({ cluster: 'c2', privateIp: '127.0.0.2', publicIp: '127.0.0.1', port: remote.port });
  assert.is(r.verdict, 'public');
  assert.equal(r.seen, { ip: '127.0.0.3', port: local.port });
  assert.is(r.behindNat, false);
}));

test('unanswered: `attempts` requests spread over the window on the injected clock, then undefined', async () => {
  const clock = new FakeClock();
  const silent = await rawSocket();
  const local = await NatProbe.open({ address: '127.0.0.1', port: 0, clusterId: 'c1', clock, attempts: 3, windowMs: 900 });
  try {
    let result: unknown = 'not yet';
    const requests: ReturnType<typeof parseMessage>[] = [];
    silent.on('message', (m) => void requests.push(parseMessage(m)));
    void local.probe({ cluster: 'c2', privateIp: '127.0.0.1', publicIp: '', port: silent.address().port }).then((r) => (result = r));
    await clock.advance(299);
    await wait(100);
    assert.is(requests.length, 1, 'one request at once');
    await clock.advance(1);
    await wait(100);
    assert.is(requests.length, 2, 'the second a third of the window later');
    await clock.advance(599);
    await wait(100);
    assert.is(result, 'not yet');
    assert.is(requests.length, 3);
    assert.ok(requests.every((m) => m?.type === 'probe' && m.cluster === 'c1'));
    assert.is(new Set(requests.map((m) => m?.nonce)).size, 3, 'a new nonce per request');
    await clock.advance(1);
    assert.equal(result, { verdict: undefined, behindNat: false });
  } finally {
    local.close();
    silent.close();
  }
});

test('garbage to the responder gets no answer and breaks nothing; garbage to the prober is ignored', () => withPair('127.0.0.1', 2000, async (remote, local) => {
  const raw = await rawSocket();
  try {
    const answers = collect(raw, 200);
    for (const g of [Buffer.alloc(0), Buffer.from('hello'), Buffer.from(`isthmus-nat/1 probe ${NONCE} c9`), Buffer.alloc(2000, 0xff), encodeRequest('nope', 'c9')]) {
      raw.send(g, remote.port, '127.0.0.1');
      raw.send(g, local.port, '127.0.0.1');
    }
    raw.send(Buffer.from(`isthmus-nat/1 seen ${NONCE} 127.0.0.1 1`), local.port, '127.0.0.1');
    assert.equal(await answers, []);
    // a well-formed request from the raw socket is answered with what the responder saw
    const answer = collect(raw, 200);
    raw.send(encodeRequest(NONCE, 'c9'), remote.port, '127.0.0.1');
    assert.equal((await answer).map((m) => parseMessage(m)), [{ type: 'seen', nonce: NONCE, seen: { ip: '127.0.0.1', port: raw.address().port } }]);
    const r = await local.probe({ cluster: 'c2', privateIp: '127.0.0.1', publicIp: '', port: remote.port });
    assert.is(r.verdict, 'private');
  } finally {
    raw.close();
  }
}));

test('a reply with a wrong nonce, or the right nonce from another address, is ignored', async () => {
  const fake = await rawSocket();
  const other = await rawSocket();
  const local = await NatProbe.open({ address: '127.0.0.1', port: 0, clusterId: 'c1', attempts: 2, windowMs: 400 });
  let replies = 0;
  fake.on('message', (msg, from) => {
    const m = parseMessage(msg);
    if (m?.type !== 'probe') return;
    const wrong = m.nonce.replace(/^./, m.nonce.startsWith('0') ? '1' : '0');
    fake.send(`isthmus-nat/1 seen ${wrong} ${from.address} ${from.port}`, from.port, from.address);
    other.send(`isthmus-nat/1 seen ${m.nonce} ${from.address} ${from.port}`, from.port, from.address);
    replies++;
  });
  try {
    const r = await local.probe({ cluster: 'c2', privateIp: '127.0.0.1', publicIp: '', port: fake.address().port });
    assert.is(replies, 2, 'the fake responder saw both requests');
    assert.equal(r, { verdict: undefined, behindNat: false });
  } finally {
    local.close();
    fake.close();
    other.close();
  }
});

test('close() ends probes under way with what they have; a taken port does not open', async () => {
  const silent = await rawSocket();
  const local = await NatProbe.open({ address: '127.0.0.1', port: 0, clusterId: 'c1', windowMs: 60_000 });
  const pending = local.probe({ cluster: 'c2', privateIp: '127.0.0.1', publicIp: '', port: silent.address().port });
  try {
    await NatProbe.open({ address: '127.0.0.1', port: local.port, clusterId: 'c1' }).then(
      (p) => {
        p.close();
        assert.unreachable('two probes on one port');
      },
      (err: unknown) => assert.match(String(err), 'EADDRINUSE'),
    );
  } finally {
    local.close();
    silent.close();
  }
  assert.equal(await pending, { verdict: undefined, behindNat: false });
});

test.run();
