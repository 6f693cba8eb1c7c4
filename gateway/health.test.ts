import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket, type Socket } from 'node:dgram';
import { HealthProber, RttWindow, healthMessage, parseHealth, startResponder, statusWriteDue } from './health.ts';

async function udp(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
  return s;
}
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the status is written at most every everyMs, but at once when the dead cables change', () => {
  assert.ok(statusWriteDue(undefined, 0, '', 1000));
  assert.not.ok(statusWriteDue({ at: 1000, dead: '' }, 1500, '', 1000));
  assert.ok(statusWriteDue({ at: 1000, dead: '' }, 2000, '', 1000));
  assert.ok(statusWriteDue({ at: 1000, dead: '' }, 1500, 'c2', 1000));
  assert.ok(statusWriteDue({ at: 1000, dead: 'c2' }, 1001, '', 1000));
  assert.not.ok(statusWriteDue({ at: 1000, dead: 'c2' }, 1999, 'c2', 1000));
});

test('stats over the window: last, min, avg, max, stddev, loss', () => {
  const w = new RttWindow(5);
  for (const s of [2, 4, undefined, 4, 5]) w.add(s);
  const st = w.stats();
  assert.is(st.lastMs, 5);
  assert.is(st.minMs, 2);
  assert.is(st.maxMs, 5);
  assert.is(st.avgMs, 3.75);
  assert.ok(Math.abs((st.stddevMs ?? 0) - Math.sqrt(1.1875)) < 1e-9);
  assert.is(st.loss, 0.2);
  assert.is(st.sent, 5);
});

test('the window slides; an all-lost window has no RTT and loss 1', () => {
  const w = new RttWindow(3);
  for (const s of [1, 1, 1, undefined, undefined, undefined]) w.add(s);
  assert.equal(w.stats(), { lastMs: undefined, minMs: undefined, avgMs: undefined, maxMs: undefined, stddevMs: undefined, loss: 1, sent: 3 });
  assert.ok(w.lostLast(3));
  w.add(7);
  assert.not.ok(w.lostLast(3));
  assert.is(new RttWindow().stats().loss, 0);
});

test('probes over real UDP on loopback: answered ones have an RTT, a dead target counts as lost', async () => {
  const responder = await startResponder('127.0.0.1', 0);
  const port = responder.address().port;
  const prober = await HealthProber.open(port);
  try {
    const targets = [{ cluster: 'up', address: '127.0.0.1' }, { cluster: 'down', address: '127.0.0.2' }];
    responder.on('message', () => {});
    // 127.0.0.2 has no responder on that port: its probes go unanswered
    for (let i = 0; i < 3; i++) {
      prober.tick(targets);
      await new Promise((r) => setTimeout(r, 100));
    }
    prober.tick(targets);
    const up = prober.window('up').stats();
    const down = prober.window('down').stats();
    assert.is(up.sent, 3);
    assert.is(up.loss, 0);
    assert.ok((up.lastMs ?? -1) >= 0);
    assert.is(down.loss, 1);
  } finally {
    prober.close();
    responder.close();
  }
});

const NONCE = '0123456789abcdef0123456789abcdef';

test('issue 10 finding 9: a responder answers a request once and never an answer (no echo loop)', async () => {
  const a = await startResponder('127.0.0.1', 0);
  const b = await startResponder('127.0.0.1', 0);
  let seen = 0;
  const count = () => void seen++;
  a.on('message', count);
  b.on('message', count);
  try {
    // the spoofed datagram of the finding: a request "from" b's responder to a's
    b.send(healthMessage('req', NONCE), a.address().port, '127.0.0.1');
    await wait(200);
    assert.is(seen, 2, 'a got the request, b got one answer, and nothing more');
    // an answer is never answered; garbage and oversized datagrams neither
    const probe = await udp('127.0.0.1');
    let answers = 0;
    probe.on('message', () => void answers++);
    for (const m of [healthMessage('rep', NONCE), Buffer.from('isthmus-health/1 1'), Buffer.alloc(4096, 0x61)]) probe.send(m, a.address().port, '127.0.0.1');
    await wait(150);
    assert.is(answers, 0);
    probe.close();
  } finally {
    a.close();
    b.close();
  }
});

test('finding 9: an answer counts only with the nonce of a probe in flight and from the address it went to', async () => {
  // the "remote" on 127.0.0.2 does not answer itself: it hands the probe to an accomplice on 127.0.0.3, which answers
  const remote = createSocket('udp4');
  await new Promise<void>((resolve) => remote.bind(0, '127.0.0.2', () => resolve()));
  const accomplice = await udp('127.0.0.3');
  const prober = await HealthProber.open(remote.address().port);
  try {
    remote.on('message', (msg, from) => {
      const nonce = parseHealth(msg, 'req');
      if (nonce !== undefined) accomplice.send(healthMessage('rep', nonce), from.port, '127.0.0.1');
    });
    const target = [{ cluster: 'c2', address: '127.0.0.2' }];
    prober.tick(target);
    await wait(150);
    prober.tick(target);
    assert.is(prober.window('c2').stats().loss, 1, 'the answer from another address was not taken');
    // guessing: answers with made-up nonces from the right address count for nothing
    remote.removeAllListeners('message');
    remote.on('message', (_msg, from) => {
      for (const n of ['1', '2', NONCE]) remote.send(healthMessage('rep', n), from.port, '127.0.0.1');
    });
    await wait(150);
    prober.tick(target);
    assert.is(prober.window('c2').stats().loss, 1);
  } finally {
    prober.close();
    remote.close();
    accomplice.close();
  }
});

test.run();
