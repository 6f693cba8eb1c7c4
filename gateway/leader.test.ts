import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Lease } from '@kubernetes/client-node';
import { KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '../core/index.ts';
import { candidateWaitMs, electionStep, LeaderElector, stretchedLeaseMs, type LeaseApi, type LeaderOptions, type Observation } from './leader.ts';

const none: Observation = { record: undefined, changedAt: 0 };

test('no lease: create it', () => {
  assert.is(electionStep(none, undefined, 'a', 1000, 2000).action, 'create');
});

test('our lease: renew it', () => {
  assert.is(electionStep(none, { holder: 'a', renewTime: 't1', transitions: 0 }, 'a', 1000, 2000).action, 'renew');
});

test("another's fresh lease: follow until it has not changed for the lease duration by our clock", () => {
  const rec = { holder: 'b', renewTime: 't1', transitions: 0 };
  let s = electionStep(none, rec, 'a', 10_000, 2000);
  assert.is(s.action, 'follow');
  s = electionStep(s.seen, rec, 'a', 11_999, 2000);
  assert.is(s.action, 'follow');
  s = electionStep(s.seen, rec, 'a', 12_000, 2000);
  assert.is(s.action, 'takeover');
});

test('a renewal by the holder restarts the wait, whatever the clocks say', () => {
  let s = electionStep(none, { holder: 'b', renewTime: 't1', transitions: 0 }, 'a', 10_000, 2000);
  s = electionStep(s.seen, { holder: 'b', renewTime: 't2', transitions: 0 }, 'a', 11_900, 2000);
  assert.is(s.action, 'follow');
  s = electionStep(s.seen, { holder: 'b', renewTime: 't2', transitions: 0 }, 'a', 13_000, 2000);
  assert.is(s.action, 'follow');
  s = electionStep(s.seen, { holder: 'b', renewTime: 't2', transitions: 0 }, 'a', 13_900, 2000);
  assert.is(s.action, 'takeover');
});

test('a released lease (no holder) is taken at once', () => {
  assert.is(electionStep(none, { holder: '', renewTime: 't1', transitions: 3 }, 'a', 5, 2000).action, 'takeover');
});

test('a slow apiserver stretches the lease to whole seconds, 4 × the slowest call, at most the maximum; quick calls leave it as configured', () => {
  assert.is(stretchedLeaseMs(2000, 100, 15_000), 2000);
  assert.is(stretchedLeaseMs(2000, 500, 15_000), 2000, '4 × 500 ms is the 2 s the configured lease writes anyway');
  assert.is(stretchedLeaseMs(2000, 501, 15_000), 3000);
  assert.is(stretchedLeaseMs(2000, 1600, 15_000), 7000);
  assert.is(stretchedLeaseMs(2000, 60_000, 15_000), 15_000);
  assert.is(stretchedLeaseMs(500, 200, 15_000), 500, 'a sub-second lease stays as it is while 4 × the slowest fits its whole second');
  assert.is(stretchedLeaseMs(500, 300, 15_000), 2000);
});

test('a candidate waits what the holder stated when it stretched, never less than its own lease, never more than the maximum', () => {
  const rec = (durationMs?: number): { holder: string; renewTime: string; transitions: number; durationMs?: number } => ({ holder: 'b', renewTime: 't1', transitions: 0, ...(durationMs === undefined ? {} : { durationMs }) });
  assert.is(candidateWaitMs(rec(), 2000, 15_000), 2000);
  assert.is(candidateWaitMs(rec(2000), 2000, 15_000), 2000);
  assert.is(candidateWaitMs(rec(1000), 500, 15_000), 500, 'an unstretched sub-second lease is written as 1 s');
  assert.is(candidateWaitMs(rec(5000), 2000, 15_000), 5000);
  assert.is(candidateWaitMs(rec(1000), 2000, 15_000), 2000, 'a shorter stated lease does not shorten the wait');
  assert.is(candidateWaitMs(rec(3_600_000), 2000, 15_000), 15_000, 'a holder cannot hold it for an hour');
  let s = electionStep(none, rec(5000), 'a', 10_000, 2000);
  s = electionStep(s.seen, rec(5000), 'a', 14_999, 2000);
  assert.is(s.action, 'follow', 'still inside the stretched lease');
  assert.is(electionStep(s.seen, rec(5000), 'a', 15_000, 2000).action, 'takeover');
});

/** One Lease as the apiserver keeps it: a resourceVersion per write, a 409 for a stale one; every call takes `latencyMs`. */
class FakeLeases {
  lease: V1Lease | undefined;
  /** Calls by caller. */
  readonly calls = new Map<string, { read: number; create: number; replace: number }>();
  latencyMs = 0;
  /** Callers whose every call takes this long instead. */
  readonly slow = new Map<string, number>();
  #rv = 0;
  readonly #copy = (l: V1Lease): V1Lease => JSON.parse(JSON.stringify(l)) as V1Lease;
  api(who: string): LeaseApi {
    const n = { read: 0, create: 0, replace: 0 };
    this.calls.set(who, n);
    const wait = (): Promise<void> => new Promise((r) => setTimeout(r, this.slow.get(who) ?? this.latencyMs));
    return {
      read: async () => { n.read += 1; await wait(); return this.lease === undefined ? undefined : this.#copy(this.lease); },
      create: async (body) => {
        n.create += 1; await wait();
        if (this.lease !== undefined) throw Object.assign(new Error('exists'), { code: 409 });
        return this.#store(body);
      },
      replace: async (body) => {
        n.replace += 1; await wait();
        if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
        return this.#store(body);
      },
    };
  }
  #store(body: V1Lease): V1Lease {
    this.#rv += 1;
    this.lease = this.#copy({ ...body, metadata: { ...body.metadata, resourceVersion: String(this.#rv) } });
    return this.#copy(this.lease);
  }
}

/** An elector on `fake` with short timings, its transitions pushed to `events`; `over` replaces any option. */
function elector(fake: FakeLeases, identity: string, events: string[], over: Partial<LeaderOptions> = {}): LeaderElector {
  return new LeaderElector({
    leaseApi: fake.api(identity), kubeConfig: new KubeConfig(), namespace: 'ns', name: 'gw', identity, logger: silentLogger(),
    leaseMs: 500, renewDeadlineMs: 400, retryMs: 100,
    onStartedLeading: () => events.push(`${identity} leads`), onStoppedLeading: () => events.push(`${identity} stands down`),
    ...over,
  });
}

const until = async (what: string, ok: () => boolean, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/**
 * Two electors on `fake`: a starts and leads, then b starts; `body` runs, then the fake's calls
 * are made quick again and both stop (b first). `mk` makes each elector (default: elector()).
 */
async function leaderAndStandby(fake: FakeLeases, events: string[], body: (a: LeaderElector, b: LeaderElector) => Promise<void>,
  mk: (identity: string) => LeaderElector = (identity) => elector(fake, identity, events)): Promise<void> {
  const a = mk('a');
  a.start();
  await until('a leads', () => a.leading);
  const b = mk('b');
  b.start();
  try {
    await body(a, b);
  } finally {
    fake.latencyMs = 0;
    fake.slow.clear();
    await b.stop();
    await a.stop();
  }
}

test('the holder renews by replacing the Lease it last wrote (no read each time); with every call slow it keeps the lease', async () => {
  const fake = new FakeLeases();
  const events: string[] = [];
  await leaderAndStandby(fake, events, async () => {
    const byA = (): { read: number; create: number; replace: number } => fake.calls.get('a') ?? { read: 0, create: 0, replace: 0 };
    await until('ten renewals', () => byA().replace >= 10);
    assert.is(byA().read, 1, 'a read the Lease once, before it created it; every renewal since is one replace');
    assert.is(byA().create, 1);
    assert.ok((fake.calls.get('b')?.read ?? 0) > 0, 'b follows by reading');
    // now every call takes 180 ms, more than the 100 ms between attempts: a renews back to back
    // (one replace each), b sees a change at least every 360 ms, inside the 500 ms lease
    fake.latencyMs = 180;
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal(events, ['a leads'], 'no failover under a slow apiserver');
    assert.is(fake.lease?.spec?.holderIdentity, 'a');
  });
  assert.equal(events, ['a leads', 'a stands down'], 'a released it on stop');
  assert.is(fake.lease?.spec?.holderIdentity, '');
});

test('an apiserver that slows down step by step: the holder stretches its lease and keeps it (no stand-down, the standby follows), and shortens it again once calls have been quick for its memory (here 2 s)', async () => {
  const fake = new FakeLeases();
  const events: string[] = [];
  await leaderAndStandby(fake, events, async () => {
    // 300 ms a call: back-to-back renewals fit the 750 ms deadline, and the lease stretches to 2 s
    fake.latencyMs = 300;
    await until('the Lease states 2 s', () => fake.lease?.spec?.leaseDurationSeconds === 2, 5_000);
    // 600 ms a call: past the configured 1 s lease for b and the 750 ms deadline for a, inside the
    // stretched ones; unstretched, a would stand down and b would take over
    fake.latencyMs = 600;
    await until('the Lease states 3 s', () => fake.lease?.spec?.leaseDurationSeconds === 3, 8_000);
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(events, ['a leads'], 'no stand-down and no takeover while the apiserver was slow');
    fake.latencyMs = 0;
    await until('the Lease back to 1 s', () => fake.lease?.spec?.leaseDurationSeconds === 1, 8_000);
    assert.equal(events, ['a leads']);
  }, (identity) => elector(fake, identity, events, { leaseMs: 1000, renewDeadlineMs: 750, latencyMemoryMs: 2_000 }));
});

test('a renewal that hangs past the deadline: the holder stands down before the standby takes over (never two active), and its late renewal then fails (409): it follows', async () => {
  const fake = new FakeLeases();
  const events: string[] = [];
  const at: number[] = [];
  const log = (e: string): void => {
    events.push(e);
    at.push(Date.now());
  };
  await leaderAndStandby(fake, events, async (a, b) => {
    // only a's apiserver calls hang now (2 s each, past its 400 ms deadline and b's 500 ms lease)
    fake.slow.set('a', 2_000);
    await until('b leads', () => b.leading, 3_000);
    assert.equal(events, ['a leads', 'a stands down', 'b leads'], 'a stood down before b led');
    assert.ok((at[1] ?? 0) <= (at[2] ?? 0), 'a stood down first');
    assert.not.ok(a.leading, 'a is not active while its renewal hangs');
    // a's hung renewal lands after b's takeover: a 409, so a follows b
    await new Promise((r) => setTimeout(r, 2_500));
    assert.not.ok(a.leading);
    assert.is(fake.lease?.spec?.holderIdentity, 'b');
  }, (identity) => elector(fake, identity, events, { onStartedLeading: () => log(`${identity} leads`), onStoppedLeading: () => log(`${identity} stands down`) }));
  assert.equal(events.slice(0, 4), ['a leads', 'a stands down', 'b leads', 'b stands down']);
});

test('a Lease written by someone else: the holder\'s replace fails (409), it reads, follows and stands down; released, the standby takes it at once', async () => {
  const fake = new FakeLeases();
  const events: string[] = [];
  const a = elector(fake, 'a', events);
  a.start();
  await until('a leads', () => a.leading);
  // an operator (or a split second of another elector) hands the lease to c, renewing it for a while
  const c = fake.api('c');
  const steal = async (): Promise<void> => {
    const cur = await c.read();
    await c.replace({ ...cur, spec: { ...cur?.spec, holderIdentity: 'c', renewTime: new Date(Date.now()) } }).catch(() => undefined);
  };
  const thief = setInterval(() => void steal(), 50);
  try {
    await until('a stands down', () => !a.leading);
    assert.equal(events, ['a leads', 'a stands down']);
  } finally {
    clearInterval(thief);
  }
  // c stops renewing: a takes over after the lease duration by its own clock
  await until('a leads again', () => a.leading, 3_000);
  assert.is(fake.lease?.spec?.holderIdentity, 'a');
  assert.is(fake.lease?.spec?.leaseTransitions, 1, 'created (0), then taken over (1)');
  assert.equal(events, ['a leads', 'a stands down', 'a leads']);
  const b = elector(fake, 'b', events);
  b.start();
  await a.stop();
  await until('b leads at once after the release', () => b.leading, 1_000);
  await b.stop();
});

test('a follower is told who holds the Lease on every read (the engine removes the cables it kept once another holds it)', async () => {
  const fake = new FakeLeases();
  const events: string[] = [];
  const seen: string[] = [];
  await leaderAndStandby(fake, events, async (a, b) => {
    await until('b read a few times', () => seen.length >= 3);
    assert.equal([...new Set(seen)], ['a']);
    assert.ok(b.heldByOther);
    assert.not.ok(a.heldByOther);
    assert.is(a.writtenLeaseMs, 500, 'unstretched: the configured lease');
  }, (identity) => elector(fake, identity, events, identity === 'b' ? { onOtherHolder: (h) => seen.push(h) } : {}));
});

test.run();
