import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { electionStep, type Observation } from './leader.ts';

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

test.run();
