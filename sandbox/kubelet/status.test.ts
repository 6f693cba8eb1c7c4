import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { containerState, initPolicy, podHostname, podPhase, restartBackoffMs, restarts } from './status.ts';

const exit = (code: number, reason = code === 0 ? 'Completed' : 'Error') => ({ at: '2026-01-01T00:00:00Z', code, reason });

test('phase: Running until every container has ended for good; then Succeeded or Failed', () => {
  assert.is(podPhase([{}, { terminated: exit(0) }]), 'Running');
  assert.is(podPhase([{ terminated: exit(0) }, { terminated: exit(0) }]), 'Succeeded');
  assert.is(podPhase([{ terminated: exit(0) }, { terminated: exit(2) }]), 'Failed');
  assert.is(podPhase([]), 'Running');
});

test('phase with init containers: Pending until each exited 0, Failed when one ended for good otherwise', () => {
  assert.is(podPhase([{}], [{ terminated: exit(0) }, {}]), 'Pending');
  assert.is(podPhase([{}], [{ terminated: exit(0) }, { terminated: exit(0) }]), 'Running');
  assert.is(podPhase([{}], [{ terminated: exit(1) }]), 'Failed');
  assert.is(initPolicy('Always'), 'OnFailure');
  assert.is(initPolicy('Never'), 'Never');
});

test('restartPolicy and backoff', () => {
  assert.ok(restarts('Always', 0));
  assert.ok(restarts('OnFailure', 1));
  assert.not.ok(restarts('OnFailure', 0));
  assert.not.ok(restarts('Never', 1));
  assert.equal([1, 2, 3, 6, 7, 20].map(restartBackoffMs), [1000, 2000, 4000, 30_000, 30_000, 30_000]);
});

test('container states', () => {
  const now = new Date('2026-01-01T00:00:01Z');
  assert.equal(containerState({ name: 'c', kind: 'process', restarts: 0 }, true, now), { running: { startedAt: now } });
  assert.equal(containerState({ name: 'c', kind: 'process', restarts: 0 }, false, now), { waiting: { reason: 'ContainerCreating' } });
  const t = containerState({ name: 'c', kind: 'process', restarts: 0, terminated: { ...exit(127, 'StartError'), message: 'x: no such program' } }, false, now);
  assert.is(t.terminated?.exitCode, 127);
  assert.is(t.terminated?.reason, 'StartError');
  assert.is(t.terminated?.message, 'x: no such program');
  assert.is(containerState({ name: 'c', kind: 'process', restarts: 1, lastExit: exit(1) }, false, now).waiting?.reason, 'CrashLoopBackOff');
});

test('hostname: spec.hostname, else the name, at most 63 characters', () => {
  assert.is(podHostname({ metadata: { name: 'web-0' }, spec: { hostname: 'web-0', subdomain: 'web', containers: [] } }), 'web-0');
  assert.is(podHostname({ metadata: { name: 'tools' } }), 'tools');
  assert.is(podHostname({ metadata: { name: `${'a'.repeat(62)}-b` } }), 'a'.repeat(62));
});

test.run();
