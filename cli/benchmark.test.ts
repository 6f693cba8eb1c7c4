import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { iperf, parseCurlTimes, parseIperf, percentile, variants } from './benchmark.ts';

test('iperf3 -J: received bits per second and retransmits; its error or a missing total refused', () => {
  const json = JSON.stringify({ start: {}, end: { sum_sent: { bits_per_second: 9.9e8, retransmits: 3 }, sum_received: { bits_per_second: 9.5e8 } } });
  assert.equal(parseIperf(json), { bitsPerSecond: 9.5e8, retransmits: 3 });
  assert.throws(() => parseIperf(JSON.stringify({ error: 'unable to connect to server: Connection refused' })), /iperf3: unable to connect/);
  assert.throws(() => parseIperf(JSON.stringify({ end: {} })), /no received total/);
  assert.throws(() => parseIperf('iperf3: error - the server is busy'), /iperf3 printed no JSON: iperf3: error/);
});

test('iperf: tried again only while the control connection fails, at most 3 times', async () => {
  const fail = (m: string) => () => Promise.reject(new IsthmusError(ErrorCodes.COMMAND_FAILED, `iperf3: ${m}`));
  const said: string[] = [];
  let calls = 0;
  const flaky = (): Promise<number> => (++calls === 1 ? fail('unable to receive control message: Connection reset by peer')() : Promise.resolve(42));
  assert.is(await iperf(flaky, (s) => said.push(s), 3, 1), 42);
  assert.is(calls, 2);
  assert.match(said[0] ?? '', /failed before measuring \(iperf3: unable to receive control message: Connection reset by peer\); trying again/);
  calls = 0;
  await iperf(() => (calls++, fail('the server is busy running a test. try again later')()), () => undefined, 3, 1).then(() => assert.unreachable(), (err: unknown) => assert.match(String(err), /busy/));
  assert.is(calls, 3, 'three attempts, then its error');
  calls = 0;
  await iperf(() => (calls++, fail('error - control socket has closed unexpectedly')()), () => undefined, 3, 1).then(() => assert.unreachable(), (err: unknown) => assert.match(String(err), /closed unexpectedly/));
  assert.is(calls, 1, 'a failure while measuring is not tried again');
});

test('percentile: nearest rank', () => {
  const v = Array.from({ length: 100 }, (_, i) => 100 - i); // 1..100 unsorted
  assert.is(percentile(v, 50), 50);
  assert.is(percentile(v, 90), 90);
  assert.is(percentile(v, 99), 99);
  assert.is(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('curl times: connect and request round trips in ms; failed requests (connect 0) and noise skipped', () => {
  const t = parseCurlTimes('0.000512 0.000600 0.001100\n0.000000 0.000000 0.000000\ncurl: (28) timeout\n0.001000 0.001050 0.002050\n');
  assert.equal(t.connectMs.map((x) => Math.round(x * 1000)), [512, 1000]);
  assert.equal(t.requestMs.map((x) => Math.round(x * 1000)), [500, 1000]);
});

test('variants: the active gateway nodes, and nodes without a gateway when both clusters have one', () => {
  assert.equal(variants({ context: 'c1', active: 'c1-n2', plain: ['c1-n3'] }, { context: 'c2', active: 'c2-n1', plain: ['c2-n3', 'c2-n4'] }), [
    { name: 'gateway node → gateway node', client: 'c1-n2', server: 'c2-n1' },
    { name: 'non-gateway node → non-gateway node', client: 'c1-n3', server: 'c2-n3' },
  ]);
  assert.equal(variants({ context: 'c1', active: 'c1-n1', plain: ['c1-n2'] }, { context: 'c2', active: 'c2-n1', plain: [] })[1], { name: 'non-gateway node → non-gateway node', skip: 'c2 has no node without a gateway' });
});

test.run();
