import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lifecycle, type Service } from './lifecycle.ts';

function service(name: string, events: string[], failStart = false, failStop = false): Service & { signal?: AbortSignal } {
  const s: Service & { signal?: AbortSignal } = {
    name,
    async start(signal) {
      events.push(`start ${name}`);
      s.signal = signal;
      if (failStart) throw new Error(`${name} cannot start`);
    },
    async stop() {
      events.push(`stop ${name}`);
      if (failStop) throw new Error(`${name} cannot stop`);
    },
  };
  return s;
}

test('starts in order, stops in reverse order, once', async () => {
  const events: string[] = [];
  const a = service('a', events);
  const lc = new Lifecycle([a, service('b', events), service('c', events)]);
  await lc.start();
  await Promise.all([lc.stop(), lc.stop()]);
  await lc.stop();
  assert.equal(events, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  assert.ok(a.signal?.aborted, 'services see the signal abort on stop');
});

test('a failed start stops what already started and rethrows', async () => {
  const events: string[] = [];
  const lc = new Lifecycle([service('a', events), service('b', events), service('c', events, true), service('d', events)]);
  try {
    await lc.start();
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'c cannot start');
  }
  assert.equal(events, ['start a', 'start b', 'start c', 'stop b', 'stop a']);
});

test('a failing stop does not keep the others from stopping; the first error is rethrown', async () => {
  const events: string[] = [];
  const lc = new Lifecycle([service('a', events), service('b', events, false, true), service('c', events)]);
  await lc.start();
  try {
    await lc.stop();
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'b cannot stop');
  }
  assert.equal(events.slice(3), ['stop c', 'stop b', 'stop a']);
});

test.run();
