import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HealthProber, RttWindow, startResponder } from './health.ts';

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

test.run();
