import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError, isIsthmusError, messageOf } from './errors.ts';

test('codes are unique and prefixed', () => {
  const values = Object.values(ErrorCodes);
  assert.is(new Set(values).size, values.length);
  for (const v of values) assert.match(v, /^ISTHMUS_[A-Z_]+$/);
});

test('carries code, cause and frozen context', () => {
  const cause = new Error('boom');
  const e = new IsthmusError(ErrorCodes.TIMEOUT, 'waited 5s for etcd: check its log', { cause, context: { after: 5 } });
  assert.is(e.code, ErrorCodes.TIMEOUT);
  assert.is(e.cause, cause);
  assert.is(e.name, 'IsthmusError');
  assert.equal(e.context, { after: 5 });
  assert.ok(Object.isFrozen(e.context));
  assert.ok(e instanceof Error);
});

test('isIsthmusError narrows by code', () => {
  const e = new IsthmusError(ErrorCodes.NOT_FOUND, 'x');
  assert.ok(isIsthmusError(e));
  assert.ok(isIsthmusError(e, ErrorCodes.NOT_FOUND));
  assert.not.ok(isIsthmusError(e, ErrorCodes.TIMEOUT));
  assert.not.ok(isIsthmusError(new Error('x')));
});

test('messageOf handles non-errors', () => {
  assert.is(messageOf(new Error('a')), 'a');
  assert.is(messageOf('b'), 'b');
  assert.is(messageOf(3), '3');
});

test.run();
