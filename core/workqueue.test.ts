import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock, flushPromises, sleep } from './clock.ts';
import { ErrorCodes, isIsthmusError } from './errors.ts';
import { WorkQueue } from './workqueue.ts';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A resolved-or-not probe for a promise. */
function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}

test('a key added many times before it is taken is processed once, in order', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  for (const k of ['a', 'b', 'a', 'c', 'b', 'a']) q.add(k);
  assert.is(q.len, 3);
  const seen: string[] = [];
  const run = q.run(async (k) => {
    seen.push(k);
  });
  await flushPromises();
  assert.equal(seen, ['a', 'b', 'c']);
  assert.is(q.len, 0);
  q.shutDown();
  await run;
});

test('get/done: a key added while processing is queued again after done, once', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  q.add('a');
  const k = await q.get();
  assert.is(k, 'a');
  q.add('a');
  q.add('a');
  assert.is(q.len, 0, 'a processing key is not handed out again');
  const next = q.get();
  const gotNext = settled(next);
  await flushPromises();
  assert.not.ok(gotNext());
  q.done('a');
  assert.is(await next, 'a');
  q.done('a');
  assert.is(q.len, 0);
  q.done('a'); // done on a key not processing is a no-op
  assert.is(q.len, 0);
});

test('run: re-add during processing runs the key again after the first run ends', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  const gate = deferred();
  const calls: string[] = [];
  const run = q.run(
    async (k) => {
      calls.push(k);
      if (calls.length === 1) await gate.promise;
    },
    { workers: 2 },
  );
  q.add('a');
  await flushPromises();
  q.add('a');
  q.add('a');
  await flushPromises();
  assert.equal(calls, ['a'], 'not run concurrently although a second worker is idle');
  gate.resolve();
  await flushPromises();
  assert.equal(calls, ['a', 'a']);
  q.shutDown();
  await run;
});

test('addAfter fires at its deadline and keeps the earliest per key', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock });
  q.addAfter('a', 100);
  q.addAfter('a', 300); // later: ignored
  q.addAfter('b', 200);
  q.addAfter('b', 50); // earlier: replaces
  q.addAfter('c', 0); // at once
  assert.is(q.len, 1);
  await clock.advance(49);
  assert.is(q.len, 1);
  await clock.advance(1);
  assert.is(q.len, 2);
  await clock.advance(50);
  assert.is(q.len, 3);
  await clock.advance(1000);
  assert.is(q.len, 3, 'no timer left to fire twice');
  assert.is(clock.pending, 0);
});

test('addRateLimited: per-key backoff doubles while failing, forget on success resets it', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock, backoff: { baseMs: 100, maxMs: 800, random: () => 0 } });
  const t0 = clock.now();
  const times: number[] = [];
  let failuresLeft = 5;
  const run = q.run(async () => {
    times.push(clock.now() - t0);
    if (failuresLeft-- > 0) throw new Error('boom');
  });
  q.add('a');
  await flushPromises();
  assert.is(q.numRequeues('a'), 1);
  // random 0 gives half of base*2^n: 50, 100, 200, 400, then capped at 800/2 = 400.
  await clock.advance(50 + 100 + 200 + 400 + 400);
  assert.equal(times, [0, 50, 150, 350, 750, 1150]);
  assert.is(q.numRequeues('a'), 0, 'forgotten after the success');
  // The next failure starts from the base delay again.
  failuresLeft = 1;
  q.add('a');
  await flushPromises();
  await clock.advance(50);
  assert.equal(times.slice(6).map((t) => t - 1150), [0, 50]);
  assert.is(q.numRequeues('a'), 0);
  // Keys back off independently.
  q.addRateLimited('x');
  q.addRateLimited('x');
  q.addRateLimited('y');
  assert.is(q.numRequeues('x'), 2);
  assert.is(q.numRequeues('y'), 1);
  q.forget('x');
  assert.is(q.numRequeues('x'), 0);
  q.shutDown();
  await run;
});

test('addRateLimited: the overall token bucket spaces keys out', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock, backoff: { baseMs: 0 }, rateLimit: { perSecond: 10, burst: 2 } });
  for (const k of ['k1', 'k2', 'k3', 'k4']) q.addRateLimited(k);
  assert.is(q.len, 2, 'the burst goes at once');
  await clock.advance(99);
  assert.is(q.len, 2);
  await clock.advance(1);
  assert.is(q.len, 3);
  await clock.advance(100);
  assert.is(q.len, 4);
  // After a quiet second the bucket is full again, but never above the burst.
  await clock.advance(1000);
  for (const k of ['k5', 'k6', 'k7']) q.addRateLimited(k);
  assert.is(q.len, 6);
  await clock.advance(100);
  assert.is(q.len, 7);
});

test('options are validated', async () => {
  assert.throws(() => new WorkQueue({ rateLimit: { perSecond: 0 } }), (e: unknown) => isIsthmusError(e, ErrorCodes.INVALID_ARGUMENT));
  const q = new WorkQueue({ clock: new FakeClock() });
  try {
    await q.run(async () => {}, { workers: 0 });
    assert.unreachable();
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.INVALID_ARGUMENT));
  }
});

test('4 workers never process the same key concurrently', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock });
  const active = new Set<string>();
  let maxParallel = 0;
  let violations = 0;
  const count = new Map<string, number>();
  const run = q.run(
    async (k) => {
      if (active.has(k)) violations++;
      active.add(k);
      maxParallel = Math.max(maxParallel, active.size);
      count.set(k, (count.get(k) ?? 0) + 1);
      await sleep(clock, 10 + (k.charCodeAt(0) % 3) * 7);
      active.delete(k);
    },
    { workers: 4 },
  );
  const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 5; i++) q.add(keys[(round * 7 + i * 3) % keys.length] as string);
    await clock.advance(3);
  }
  await clock.advance(1000);
  assert.is(violations, 0);
  assert.is(maxParallel, 4);
  assert.is(active.size, 0);
  for (const k of keys) assert.ok((count.get(k) ?? 0) > 1, `${k} was processed repeatedly`);
  q.shutDown();
  await run;
});

test('shutDown: run resolves after in-flight work finishes; waiting and later keys are dropped', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock });
  const started: string[] = [];
  const finished: string[] = [];
  const run = q.run(
    async (k) => {
      started.push(k);
      await sleep(clock, 100);
      finished.push(k);
      if (k === 'b') throw new Error('fails during shutdown');
    },
    { workers: 2 },
  );
  q.add('a');
  q.add('b');
  q.add('c');
  q.addAfter('d', 10);
  await flushPromises();
  assert.equal(started, ['a', 'b']);
  q.shutDown();
  assert.ok(q.shuttingDown);
  assert.is(q.len, 0);
  q.add('e');
  q.addRateLimited('f');
  assert.is(q.len, 0);
  const isDone = settled(run);
  await clock.advance(99);
  assert.not.ok(isDone(), 'still waiting for in-flight handlers');
  await clock.advance(1);
  assert.ok(isDone());
  await run;
  assert.equal(finished, ['a', 'b']);
  assert.equal(started, ['a', 'b'], 'c, d, e, f never ran');
  assert.is(clock.pending, 0, 'no retry timer left behind');
  assert.is(await q.get(), undefined);
});

test('run: aborting the signal shuts the queue down; a pending get() resolves undefined', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  const ac = new AbortController();
  const run = q.run(async () => {}, { workers: 3, signal: ac.signal });
  const get = q.get();
  await flushPromises();
  ac.abort();
  await run;
  assert.is(await get, undefined);
  assert.ok(q.shuttingDown);
  // Already aborted: returns at once.
  const q2 = new WorkQueue({ clock: new FakeClock() });
  q2.add('a');
  let ran = false;
  await q2.run(async () => {
    ran = true;
  }, { signal: AbortSignal.abort() });
  assert.not.ok(ran);
});

test.run();
