import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OwnWrites, olderRv } from './own-writes.ts';

test('olderRv compares as integers, not as strings', () => {
  assert.ok(olderRv('9', '10'));
  assert.not.ok(olderRv('10', '9'));
  assert.not.ok(olderRv('10', '10'));
});

test('newer: our write while the cache is behind; forgotten once it caught up', () => {
  const w = new OwnWrites<string>();
  w.remember('ns/a', '105', 'ready');
  assert.is(w.newer('ns/a', '100'), 'ready', 'cache behind our write');
  assert.is(w.newer('ns/a', '100'), 'ready', 'still behind: still ours');
  assert.is(w.newer('ns/a', '105'), undefined, 'the cache holds our write');
  assert.is(w.size, 0, 'and the entry is gone');
  w.remember('ns/a', '105', 'ready');
  assert.is(w.newer('ns/a', '230'), undefined, 'a later change (someone else\'s) wins');
  assert.is(w.newer('ns/b', '1'), undefined, 'nothing written');
});

test('anything but decimal resourceVersions: the cache decides, nothing kept', () => {
  const w = new OwnWrites<string>();
  w.remember('k', 'abc', 'x');
  assert.is(w.size, 0);
  w.remember('k', undefined, 'x');
  assert.is(w.size, 0);
  w.remember('k', '12', 'x');
  assert.is(w.newer('k', 'opaque'), undefined);
  assert.is(w.newer('k', undefined), undefined, 'no cached copy: nothing to compare, forgotten');
  w.remember('k', '12', 'x');
  w.forget('k');
  assert.is(w.size, 0);
});

test.run();
