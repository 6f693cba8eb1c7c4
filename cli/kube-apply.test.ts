import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from './kube-apply.ts';

test('waitFor: the value once the check gives one', async () => {
  let n = 0;
  assert.is(await waitFor('three calls', 1000, async () => (++n === 3 ? 'done' : undefined), 1), 'done');
});

test('waitFor: a timeout names what it waited for and the last error the check threw', async () => {
  let n = 0;
  const err = await waitFor('an answer', 30, async () => {
    throw new Error(`curl: (6) Could not resolve host (try ${++n})`);
  }, 5).then(() => undefined, (e: unknown) => e as Error);
  assert.ok(err);
  assert.match(err.message, /^an answer did not happen within 0 s \(last: curl: \(6\) Could not resolve host \(try \d+\)\)$/);
  assert.ok(n >= 2);
});

test('waitFor: with a state function, the last state is named instead', async () => {
  const err = await waitFor('a pod', 20, async () => undefined, 5, undefined, async () => 'Pending').then(() => undefined, (e: unknown) => e as Error);
  assert.match(err?.message ?? '', /\(last: Pending\)$/);
});

test.run();
