import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { ErrorCodes, FakeClock, IsthmusError, createLogger, flushPromises, silentLogger } from '../index.ts';
import { BrokerCache, type CacheSource, type Change } from './cache.ts';
import type { WatchHandlers } from './client.ts';
import type { AnyRecord, BrokerEvent, Kind } from './types.ts';

// The cache's list/watch/resume/relist/sweep logic against a scripted broker.

class FakeBroker implements CacheSource {
  readonly clock = new FakeClock();
  readonly logger = silentLogger();
  readonly state = new Map<string, BrokerEvent>();
  revision = 10;
  lists = 0;
  watchFrom: number[] = [];
  #open: WatchHandlers | undefined;
  listFails = 0;

  async list(kinds: readonly Kind[]): Promise<{ revision: number; events: BrokerEvent[] }> {
    this.lists++;
    if (this.listFails > 0) {
      this.listFails--;
      throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'broker down');
    }
    return { revision: this.revision, events: [...this.state.values()].filter((e) => kinds.includes(e.kind)) };
  }

  async watch(_kinds: readonly Kind[], from: number, handlers: WatchHandlers): Promise<() => void> {
    this.watchFrom.push(from);
    this.#open = handlers;
    return () => {
      this.#open = undefined;
      handlers.onEnd(undefined);
    };
  }

  markStale(): void {}

  /** Changes the state; `deliver` sends it to the open watch too. */
  put(key: string, v: number, deliver = true): BrokerEvent {
    this.revision++;
    const e: BrokerEvent = { type: 'PUT', kind: 'EXPORT', key, revision: this.revision, record: { name: key, v } as unknown as AnyRecord };
    this.state.set(key, e);
    if (deliver) this.#open?.onEvents([e], this.revision);
    return e;
  }

  del(key: string, deliver = true): BrokerEvent {
    this.revision++;
    const prev = this.state.get(key);
    const e: BrokerEvent = { type: 'DELETE', kind: 'EXPORT', key, revision: this.revision, record: prev?.record ?? ({} as AnyRecord) };
    this.state.delete(key);
    if (deliver) this.#open?.onEvents([e], this.revision);
    return e;
  }

  send(events: BrokerEvent[], revision: number): void {
    this.#open?.onEvents(events, revision);
  }

  end(err?: IsthmusError): void {
    const h = this.#open;
    this.#open = undefined;
    h?.onEnd(err);
  }

  get watching(): boolean {
    return this.#open !== undefined;
  }
}

function setup(): { broker: FakeBroker; cache: BrokerCache; changes: string[] } {
  const broker = new FakeBroker();
  broker.put('a', 1, false);
  broker.put('b', 1, false);
  const cache = new BrokerCache(broker, { kinds: ['EXPORT'], backoff: { baseMs: 100, maxMs: 100, random: () => 1 } });
  const changes: string[] = [];
  cache.onChange((c: Change) => changes.push(`${c.type}:${c.key}@${c.revision}`));
  return { broker, cache, changes };
}

test('lists, then watches from the list revision + 1; synced resolves after the list', async () => {
  const { broker, cache, changes } = setup();
  cache.start();
  await cache.synced;
  await flushPromises();
  assert.equal(changes, ['added:a@11', 'added:b@12']);
  assert.equal(broker.watchFrom, [13]);
  broker.put('a', 2);
  broker.del('b');
  assert.equal(changes.slice(2), ['updated:a@13', 'deleted:b@14']);
  assert.is(cache.revision, 14);
  assert.equal(cache.keys('EXPORT'), ['a']);
  await cache.stop();
});

test('events at or below the applied revision are dropped (no double apply)', async () => {
  const { broker, cache, changes } = setup();
  cache.start();
  await cache.synced;
  await flushPromises();
  const e = broker.put('c', 1);
  broker.send([e], e.revision); // the same revision again, e.g. after a resume
  assert.equal(changes.filter((c) => c.startsWith('added:c')), ['added:c@13']);
  // progress moves the revision without events
  broker.send([], 20);
  assert.is(cache.revision, 20);
  await cache.stop();
});

test('a broken stream resumes from the last revision without listing; the last state is served meanwhile', async () => {
  const { broker, cache, changes } = setup();
  cache.start();
  await cache.synced;
  await flushPromises();
  broker.put('a', 2);
  broker.end(new IsthmusError(ErrorCodes.UNAVAILABLE, 'broker restarted'));
  await flushPromises();
  assert.not.ok(cache.connected);
  assert.equal(cache.keys('EXPORT').sort(), ['a', 'b'], 'serves its last state');
  broker.put('b', 2, false); // missed while disconnected
  await broker.clock.advance(100);
  assert.equal(broker.watchFrom, [13, 14], 'resumed from revision + 1');
  assert.is(broker.lists, 1, 'no relist');
  broker.send([broker.state.get('b') as BrokerEvent], 14);
  assert.equal(changes, ['added:a@11', 'added:b@12', 'updated:a@13', 'updated:b@14']);
  assert.is(cache.resumes, 1);
  await cache.stop();
});

test('compaction: list again and sweep, reporting only real differences', async () => {
  const { broker, cache, changes } = setup();
  cache.start();
  await cache.synced;
  await flushPromises();
  broker.end(new IsthmusError(ErrorCodes.COMPACTED, 'compacted', { context: { reason: 'compacted' } }));
  await flushPromises();
  // while away: a updated, b deleted, c added; nothing else changes
  broker.put('a', 9, false);
  broker.del('b', false);
  broker.put('c', 1, false);
  await broker.clock.advance(100);
  assert.is(broker.lists, 2);
  assert.equal(changes.slice(2).sort(), ['added:c@15', 'deleted:b@15', 'updated:a@13']);
  assert.equal(broker.watchFrom.at(-1), 16);
  assert.is(cache.relists, 2);
  await cache.stop();
});

test('a future revision also leads to a relist; a failing list is retried', async () => {
  const { broker, cache } = setup();
  cache.start();
  await cache.synced;
  await flushPromises();
  broker.listFails = 1;
  broker.end(new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'future', { context: { reason: 'future-revision' } }));
  await flushPromises();
  await broker.clock.advance(100);
  assert.is(broker.lists, 2, 'tried to list');
  assert.not.ok(broker.watching);
  await broker.clock.advance(100);
  assert.is(broker.lists, 3, 'retried after the failure');
  assert.ok(broker.watching);
  await cache.stop();
});

test('an outage is logged once at warn when it starts and once at info when the broker answers again, not at every retry', async () => {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); done(); } });
  const broker = new FakeBroker();
  const cache = new BrokerCache(broker, { kinds: ['EXPORT'], logger: createLogger({ component: 'test', destination, level: 'info' }), backoff: { baseMs: 100, maxMs: 100, random: () => 1 } });
  cache.start();
  await cache.synced;
  await flushPromises();
  broker.listFails = 0;
  broker.end(new IsthmusError(ErrorCodes.UNAVAILABLE, 'connection refused'));
  await flushPromises();
  // the watch fails three more times before the broker answers
  for (let i = 0; i < 3; i++) {
    await broker.clock.advance(100);
    broker.end(new IsthmusError(ErrorCodes.UNAVAILABLE, 'connection refused'));
    await flushPromises();
  }
  assert.equal(lines.map((l) => `${l.level} ${l.msg}`), ['40 broker unreachable; serving the last state and retrying']);
  await broker.clock.advance(100);
  broker.put('c', 1);
  await flushPromises();
  assert.equal(lines.map((l) => `${l.level} ${l.msg}`), ['40 broker unreachable; serving the last state and retrying', '30 broker reachable again']);
  await cache.stop();
});

test('a throwing handler does not stop the others or the cache', async () => {
  const { broker, cache, changes } = setup();
  cache.onChange(() => {
    throw new Error('handler bug');
  });
  cache.start();
  await cache.synced;
  await flushPromises();
  broker.put('d', 1);
  assert.ok(changes.includes('added:d@13'));
  assert.ok(cache.get('EXPORT', 'd'));
  await cache.stop();
});

test.run();
