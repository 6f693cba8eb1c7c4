import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Serial } from './serial.ts';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('one at a time, in call order, even when later work is quicker', async () => {
  const s = new Serial();
  const events: string[] = [];
  const job = (name: string, ms: number) => async () => {
    events.push(`start ${name}`);
    await tick(ms);
    events.push(`end ${name}`);
    return name;
  };
  const results = await Promise.all([s.run(job('a', 30)), s.run(job('b', 1)), s.run(job('c', 10))]);
  assert.equal(results, ['a', 'b', 'c']);
  assert.equal(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
});

test('a failure reaches its caller only; the next work still runs', async () => {
  const s = new Serial();
  const failed = s.run(async () => {
    throw new Error('boom');
  });
  const next = s.run(async () => 'ran');
  try {
    await failed;
    assert.unreachable();
  } catch (err) {
    assert.is((err as Error).message, 'boom');
  }
  assert.is(await next, 'ran');
  await s.idle();
});

test.run();
