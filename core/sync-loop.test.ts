import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CachedInformer } from './informer.ts';
import { silentLogger } from './log.ts';
import { CoalescingQueue, startSyncLoop } from './sync-loop.ts';

function fakeInformer(): CachedInformer<unknown> & { sync(): void; started: boolean; stopped: boolean } {
  let resolve!: () => void;
  const synced = new Promise<void>((r) => (resolve = r));
  return {
    cache: { get: () => undefined, list: () => [], byIndex: () => [] },
    synced,
    started: false,
    stopped: false,
    async start() {
      this.started = true;
    },
    async stop() {
      this.stopped = true;
    },
    sync: () => resolve(),
  };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

test('no reconcile before every informer and extra promise has synced; a burst of events is one reconcile; stop stops all', async () => {
  const queue = new CoalescingQueue();
  const a = fakeInformer();
  const b = fakeInformer();
  let extra!: () => void;
  const also = new Promise<void>((r) => (extra = r));
  let runs = 0;
  const loop = await startSyncLoop(queue, [a, b], async () => {
    runs++;
  }, { logger: silentLogger(), resyncMs: 60_000, alsoSynced: [also] });
  assert.ok(a.started && b.started);
  queue.add('x');
  a.sync();
  b.sync();
  await tick();
  assert.is(runs, 0, 'the broker cache has not synced yet');
  assert.is(loop.synced(), false);
  extra();
  await tick();
  assert.is(loop.synced(), true);
  const after = runs;
  assert.ok(after >= 1);
  for (let i = 0; i < 50; i++) queue.add(`k${i}`);
  await tick();
  assert.ok(runs - after <= 2, `a burst coalesces (${runs - after} reconciles)`);
  await loop.stop();
  assert.ok(a.stopped && b.stopped);
});

test.run();
