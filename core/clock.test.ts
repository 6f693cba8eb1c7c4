import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Backoff } from './backoff.ts';
import { FakeClock, sleep } from './clock.ts';
import { ErrorCodes, IsthmusError } from './errors.ts';

test('FakeClock fires timers in due order when advanced', async () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push('b@200'), 200);
  clock.setTimeout(() => fired.push('a@100'), 100);
  const c = clock.setTimeout(() => fired.push('c@150'), 150);
  clock.clearTimeout(c);
  await clock.advance(150);
  assert.equal(fired, ['a@100']);
  assert.is(clock.now(), 150);
  await clock.advance(100);
  assert.equal(fired, ['a@100', 'b@200']);
  assert.is(clock.pending, 0);
});

test('timers set by timers fire within the same advance', async () => {
  const clock = new FakeClock(0);
  const at: number[] = [];
  clock.setTimeout(() => {
    at.push(clock.now());
    clock.setTimeout(() => at.push(clock.now()), 50);
  }, 50);
  await clock.advance(100);
  assert.equal(at, [50, 100]);
});

test('sleep resolves on the fake clock and rejects on abort', async () => {
  const clock = new FakeClock(0);
  let done = false;
  const p = sleep(clock, 1000).then(() => (done = true));
  await clock.advance(999);
  assert.not.ok(done);
  await clock.advance(1);
  await p;
  assert.ok(done);
  const ac = new AbortController();
  const q = sleep(clock, 1000, ac.signal);
  ac.abort();
  try {
    await q;
    assert.unreachable();
  } catch (err) {
    assert.is((err as IsthmusError).code, ErrorCodes.ABORTED);
  }
  assert.is(clock.pending, 0);
});

test('backoff grows exponentially with jitter, capped, and resets', () => {
  const lo = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
  assert.equal([lo.next(), lo.next(), lo.next(), lo.next(), lo.next(), lo.next()], [50, 100, 200, 400, 500, 500]);
  const hi = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999999 });
  assert.equal([hi.next(), hi.next(), hi.next(), hi.next(), hi.next()], [100, 200, 400, 800, 1000]);
  assert.is(hi.attempts, 5);
  hi.reset();
  assert.is(hi.attempts, 0);
  assert.is(hi.next(), 100);
});

test.run();
