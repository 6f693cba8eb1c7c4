import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { FakeClock, flushPromises } from './clock.ts';
import { ErrorCodes, isIsthmusError } from './errors.ts';
import { createInformer, InformerSupervisor, objectKey, splitKey, type InformerLike, type WatchFn } from './informer.ts';
import { WorkQueue } from './workqueue.ts';

// ── InformerSupervisor with a fake informer ─────────────────────────────────

class FakeInformer implements InformerLike {
  readonly listeners = { connect: new Set<(err?: unknown) => void>(), error: new Set<(err?: unknown) => void>() };
  starts: number[] = [];
  stops = 0;
  failStart = false;
  readonly clock: FakeClock;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  on(event: 'connect' | 'error', cb: (err?: unknown) => void): void {
    this.listeners[event].add(cb);
  }

  off(event: 'connect' | 'error', cb: (err?: unknown) => void): void {
    this.listeners[event].delete(cb);
  }

  async start(): Promise<void> {
    this.starts.push(this.clock.now());
    if (this.failStart) throw new Error('list failed');
  }

  async stop(): Promise<void> {
    this.stops++;
  }

  emit(event: 'connect' | 'error', err?: unknown): void {
    for (const cb of this.listeners[event]) cb(err);
  }
}

/** random 0: each delay is half its ceiling, so 50, 100, 200, 400, 400 … with base 100, max 800. */
function setup(): { clock: FakeClock; informer: FakeInformer; sup: InformerSupervisor; t0: number } {
  const clock = new FakeClock();
  const informer = new FakeInformer(clock);
  const sup = new InformerSupervisor(informer, { clock, backoff: { baseMs: 100, maxMs: 800, random: () => 0 } });
  return { clock, informer, sup, t0: clock.now() };
}

test('supervisor: an error restarts the informer after the backoff delay', async () => {
  const { clock, informer, sup, t0 } = setup();
  await sup.start();
  assert.equal(informer.starts, [t0]);
  informer.emit('error', new Error('watch broke'));
  assert.ok(sup.restartPending);
  await clock.advance(49);
  assert.is(informer.starts.length, 1);
  await clock.advance(1);
  assert.equal(informer.starts, [t0, t0 + 50]);
  assert.is(sup.restarts, 1);
  assert.not.ok(sup.restartPending);
  await sup.stop();
});

test('supervisor: repeated errors grow the delay; errors while a restart is pending count once', async () => {
  const { clock, informer, sup, t0 } = setup();
  await sup.start();
  for (let i = 0; i < 5; i++) {
    informer.emit('error');
    informer.emit('error'); // same outage: not counted again
    await clock.advance(1000);
  }
  const gaps = informer.starts.slice(1).map((t, i) => t - (i === 0 ? t0 : t0 + 1000 * i));
  assert.equal(gaps, [50, 100, 200, 400, 400]);
  await sup.stop();
});

test('supervisor: a successful connect resets the backoff', async () => {
  const { clock, informer, sup } = setup();
  await sup.start();
  for (let i = 0; i < 3; i++) {
    informer.emit('error');
    await clock.advance(1000);
  }
  informer.emit('connect');
  const before = clock.now();
  informer.emit('error');
  await clock.advance(1000);
  assert.is(informer.starts.at(-1), before + 50);
  await sup.stop();
});

test('supervisor: a rejected start() is retried like an error and start() still resolves', async () => {
  const { clock, informer, sup, t0 } = setup();
  informer.failStart = true;
  await sup.start();
  await clock.advance(50);
  await clock.advance(100);
  assert.equal(informer.starts, [t0, t0 + 50, t0 + 150]);
  informer.failStart = false;
  await clock.advance(200);
  await clock.advance(10_000);
  assert.is(informer.starts.length, 4, 'no more restarts once start() succeeds');
  await sup.stop();
});

test('supervisor: stop cancels a pending restart and ignores later events', async () => {
  const { clock, informer, sup } = setup();
  await sup.start();
  informer.emit('error');
  assert.is(clock.pending, 1);
  await sup.stop();
  assert.is(clock.pending, 0);
  assert.is(informer.stops, 1);
  assert.is(informer.listeners.error.size + informer.listeners.connect.size, 0);
  informer.emit('error');
  await clock.advance(60_000);
  assert.is(informer.starts.length, 1);
  await sup.stop();
  assert.is(informer.stops, 1, 'stop is idempotent');
});

// ── createInformer over a real ListWatch with a fake transport ──────────────

interface Pod extends KubernetesObject {
  spec?: { node?: string };
}

function pod(ns: string, name: string, rv: string): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: ns, name, resourceVersion: rv } };
}

interface WatchCall {
  path: string;
  query: Record<string, string | number | boolean | undefined>;
  send: (type: string, obj: unknown) => void;
  end: (err: unknown) => void;
  controller: AbortController;
}

function transport(): { watch: WatchFn; calls: WatchCall[] } {
  const calls: WatchCall[] = [];
  const watch: WatchFn = async (path, query, callback, done) => {
    const controller = new AbortController();
    calls.push({ path, query, send: (t, o) => callback(t, o), end: (err) => done(err), controller });
    return controller;
  };
  return { watch, calls };
}

function lister(): {
  list: () => Promise<KubernetesListObject<Pod>>;
  calls: number;
  respond: (items: Pod[], rv: string) => void;
  fail: (err: Error) => void;
} {
  let pending: { resolve: (l: KubernetesListObject<Pod>) => void; reject: (e: Error) => void } | undefined;
  const l = {
    calls: 0,
    list: () => {
      l.calls++;
      return new Promise<KubernetesListObject<Pod>>((resolve, reject) => (pending = { resolve, reject }));
    },
    respond: (items: Pod[], rv: string) => pending?.resolve({ items, metadata: { resourceVersion: rv } }),
    fail: (err: Error) => pending?.reject(err),
  };
  return l;
}

function drain(q: WorkQueue<string>): Promise<string[]> {
  return (async () => {
    const keys: string[] = [];
    while (q.len > 0) {
      const k = await q.get();
      if (k === undefined) break;
      keys.push(k);
      q.done(k);
    }
    return keys.sort();
  })();
}

function harness() {
  const clock = new FakeClock();
  const queue = new WorkQueue<string>({ clock });
  const t = transport();
  const l = lister();
  const informer = createInformer<Pod>({
    kubeConfig: new KubeConfig(),
    path: '/api/v1/pods',
    list: l.list,
    queue,
    clock,
    backoff: { baseMs: 100, random: () => 0 },
    watch: t.watch,
  });
  return { clock, queue, t, l, informer };
}

test('informer: synced resolves only after the initial list is in the cache', async () => {
  const { queue, t, l, informer } = harness();
  let cachedAtSync = -1;
  let keysAtSync = -1;
  void informer.synced.then(() => {
    cachedAtSync = informer.cache.list().length;
    keysAtSync = queue.len;
  });
  const started = informer.start();
  await flushPromises();
  assert.is(l.calls, 1);
  assert.is(cachedAtSync, -1, 'not synced while the list is pending');
  assert.is(t.calls.length, 0);
  l.respond([pod('a', 'x', '5'), pod('b', 'y', '6'), { metadata: { name: 'node1', resourceVersion: '7' } }], '10');
  await informer.synced;
  await started;
  assert.is(cachedAtSync, 3);
  assert.is(keysAtSync, 3);
  assert.equal(await drain(queue), ['a/x', 'b/y', 'node1']);
  assert.is(informer.cache.get('a', 'x')?.metadata?.resourceVersion, '5');
  assert.is(informer.cache.get('', 'node1')?.metadata?.name, 'node1');
  assert.is(informer.cache.get('b', 'x'), undefined);
  assert.is(informer.cache.list('b').length, 1);
  assert.is(t.calls.length, 1);
  assert.is(t.calls[0]?.query['resourceVersion'], '10');
  await informer.stop();
});

test('informer: watch events only enqueue keys; the cache follows them', async () => {
  const { queue, t, l, informer } = harness();
  const started = informer.start();
  await flushPromises();
  l.respond([pod('a', 'x', '5')], '10');
  await started;
  await drain(queue);
  const w = t.calls[0];
  w?.send('MODIFIED', { ...pod('a', 'x', '11'), spec: { node: 'n2' } });
  w?.send('ADDED', pod('a', 'z', '12'));
  w?.send('MODIFIED', pod('a', 'z', '12')); // same resourceVersion: no event
  assert.equal(await drain(queue), ['a/x', 'a/z']);
  assert.is(informer.cache.get('a', 'x')?.spec?.node, 'n2');
  w?.send('DELETED', pod('a', 'x', '13'));
  assert.equal(await drain(queue), ['a/x']);
  assert.is(informer.cache.get('a', 'x'), undefined);
  await informer.stop();
});

test('informer: keyOf picks the queue key; index lists objects by a value and follows updates and deletes', async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue<string>({ clock });
  const t = transport();
  const l = lister();
  const informer = createInformer<Pod>({
    kubeConfig: new KubeConfig(), path: '/api/v1/pods', list: l.list, queue, clock, watch: t.watch,
    keyOf: (p) => (p.spec?.node === undefined ? undefined : `node/${p.spec.node}`),
    index: (p) => p.spec?.node,
  });
  const started = informer.start();
  await flushPromises();
  l.respond([{ ...pod('a', 'x', '5'), spec: { node: 'n1' } }, { ...pod('a', 'y', '6'), spec: { node: 'n1' } }, pod('a', 'z', '7')], '10');
  await started;
  assert.equal(await drain(queue), ['node/n1']);
  assert.equal(informer.cache.byIndex('n1').map((p) => p.metadata?.name).sort(), ['x', 'y']);
  const w = t.calls[0];
  w?.send('MODIFIED', { ...pod('a', 'x', '11'), spec: { node: 'n2' } });
  assert.equal(await drain(queue), ['node/n2']);
  assert.equal(informer.cache.byIndex('n1').map((p) => p.metadata?.name), ['y']);
  assert.equal(informer.cache.byIndex('n2').map((p) => p.spec?.node), ['n2']);
  w?.send('DELETED', { ...pod('a', 'y', '12'), spec: { node: 'n1' } });
  assert.equal(await drain(queue), ['node/n1']);
  assert.equal(informer.cache.byIndex('n1'), []);
  assert.equal(informer.cache.byIndex('none'), []);
  await informer.stop();
});

test('informer: a watch error restarts with backoff and resumes from the last resourceVersion', async () => {
  const { clock, queue, t, l, informer } = harness();
  const started = informer.start();
  await flushPromises();
  l.respond([pod('a', 'x', '5')], '10');
  await started;
  t.calls[0]?.send('ADDED', pod('a', 'y', '11'));
  t.calls[0]?.end(Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
  await flushPromises();
  assert.is(t.calls.length, 1, 'waits for the backoff');
  await clock.advance(50);
  assert.is(t.calls.length, 2);
  assert.is(t.calls[1]?.query['resourceVersion'], '11');
  assert.is(l.calls, 1, 'no relist needed');
  // The watch was accepted, so the backoff is back at its base.
  t.calls[1]?.end(new Error('socket hang up'));
  await clock.advance(50);
  assert.is(t.calls.length, 3);
  await drain(queue);
  // 410 Gone: ListWatch relists at once and reports objects deleted meanwhile.
  t.calls[2]?.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
  await flushPromises();
  assert.is(l.calls, 2);
  l.respond([pod('a', 'y', '20')], '30');
  await flushPromises();
  assert.equal(await drain(queue), ['a/x', 'a/y']);
  assert.is(informer.cache.get('a', 'x'), undefined);
  assert.is(t.calls.at(-1)?.query['resourceVersion'], '30');
  await informer.stop();
});

test('informer: a failed initial list is retried with growing backoff; synced waits for it', async () => {
  const { clock, l, t, informer } = harness();
  let synced = false;
  void informer.synced.then(() => (synced = true));
  await Promise.all([informer.start(), flushPromises().then(() => l.fail(new Error('forbidden')))]);
  await clock.advance(49);
  assert.is(l.calls, 1);
  await clock.advance(1);
  assert.is(l.calls, 2);
  l.fail(new Error('forbidden'));
  await flushPromises();
  await clock.advance(99);
  assert.is(l.calls, 2);
  await clock.advance(1);
  assert.is(l.calls, 3);
  assert.not.ok(synced);
  l.respond([], '1');
  await flushPromises();
  assert.ok(synced);
  assert.is(t.calls.length, 1);
  await informer.stop();
});

test('informer: stop before sync rejects synced with ABORTED and cancels the restart', async () => {
  const { clock, l, t, informer } = harness();
  const started = informer.start();
  await flushPromises();
  l.fail(new Error('connection refused'));
  await started;
  assert.is(clock.pending, 1);
  await informer.stop();
  assert.is(clock.pending, 0);
  try {
    await informer.synced;
    assert.unreachable();
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.ABORTED));
  }
  await clock.advance(60_000);
  assert.is(l.calls, 1);
  assert.is(t.calls.length, 0);
});

test('informer: stop aborts the open watch and opens no new one', async () => {
  const { clock, l, t, informer } = harness();
  const started = informer.start();
  await flushPromises();
  l.respond([], '1');
  await started;
  const w = t.calls[0];
  await informer.stop();
  assert.ok(w?.controller.signal.aborted);
  w?.end(new DOMException('aborted', 'AbortError'));
  await clock.advance(60_000);
  assert.is(t.calls.length, 1);
});

test('informer: a normal close reconnects on the clock; stop during that delay opens no watch', async () => {
  const { clock, l, t, informer } = harness();
  const started = informer.start();
  await flushPromises();
  l.respond([], '1');
  await started;
  t.calls[0]?.end(null); // server closed the stream: ListWatch reconnects by itself
  await flushPromises();
  assert.is(t.calls.length, 2, 'first reconnect is immediate');
  t.calls[1]?.end(null);
  await flushPromises();
  assert.is(t.calls.length, 2, 'the second waits for the ListWatch reconnect delay');
  await clock.advance(1000);
  assert.is(t.calls.length, 3);
  t.calls[2]?.end(null);
  await flushPromises();
  assert.is(clock.pending, 1);
  await informer.stop();
  assert.is(clock.pending, 0);
  await clock.advance(60_000);
  assert.is(t.calls.length, 3);
  assert.is(l.calls, 1);
});

test('informer: stop while the watch is connecting aborts it once connected', async () => {
  const clock = new FakeClock();
  const l = lister();
  let connect!: () => void;
  const controller = new AbortController();
  const informer = createInformer<Pod>({
    kubeConfig: new KubeConfig(),
    path: '/api/v1/pods',
    list: l.list,
    queue: new WorkQueue<string>({ clock }),
    clock,
    watch: () => new Promise((resolve) => (connect = () => resolve(controller))),
  });
  const started = informer.start();
  await flushPromises();
  l.respond([], '1');
  await flushPromises();
  const stopped = informer.stop();
  connect();
  await Promise.all([started, stopped]);
  assert.ok(controller.signal.aborted);
});

test('objectKey and splitKey', () => {
  assert.is(objectKey(pod('ns', 'n', '1')), 'ns/n');
  assert.is(objectKey({ metadata: { name: 'node1' } }), 'node1');
  assert.equal(splitKey('ns/n'), { namespace: 'ns', name: 'n' });
  assert.equal(splitKey('node1'), { namespace: '', name: 'node1' });
});

test.run();
