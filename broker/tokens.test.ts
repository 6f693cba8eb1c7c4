import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { parseJoinToken } from '../core/broker-api/join.ts';
import { judgeToken, mintToken, spend } from './tokens.ts';

const T0 = new Date('2026-01-01T00:00:00Z');
const later = (s: number): Date => new Date(T0.getTime() + s * 1000);

function refusal(f: () => unknown): { code: string; reason: unknown; message: string } | undefined {
  try {
    f();
  } catch (err) {
    assert.instance(err, IsthmusError);
    const e = err as IsthmusError;
    return { code: e.code, reason: e.context['reason'], message: e.message };
  }
  return undefined;
}

test('a minted token parses, and only its hash is in the record', () => {
  const { id, token, record } = mintToken(T0, 3600);
  const p = parseJoinToken(token);
  assert.is(p.id, id);
  assert.not.ok(JSON.stringify(record).includes(p.secret));
  assert.is(record.expiresAt, later(3600).toISOString());
});

test('malformed tokens are refused before any lookup', () => {
  for (const bad of ['', 'ijt_', 'ijt_0123.abc', 'xyz_0123456789abcdef.' + 'a'.repeat(43), 'ijt_0123456789ABCDEF.' + 'a'.repeat(43)]) {
    assert.is(refusal(() => parseJoinToken(bad))?.code, ErrorCodes.BAD_TOKEN, bad);
  }
});

test('ttl bounds', () => {
  assert.is(refusal(() => mintToken(T0, 10))?.code, ErrorCodes.INVALID_ARGUMENT);
  assert.is(refusal(() => mintToken(T0, 30 * 86_400))?.code, ErrorCodes.INVALID_ARGUMENT);
});

test('verdicts: fresh, retry of the same join, and every refusal with what to do', () => {
  const { token, record } = mintToken(T0, 3600);
  const { secret } = parseJoinToken(token);
  const other = parseJoinToken(mintToken(T0, 3600).token).secret;
  const used = spend(record, 'c2', 'key-a', later(10));
  const bound = mintToken(T0, 3600, 'c4');
  const cases: [string, () => unknown, string | undefined][] = [
    ['fresh', () => judgeToken(record, secret, 'c2', 'key-a', later(1)), undefined],
    ['unknown id', () => judgeToken(undefined, secret, 'c2', 'key-a', later(1)), undefined],
    ['wrong secret', () => judgeToken(record, other, 'c2', 'key-a', later(1)), undefined],
    ['expired', () => judgeToken(record, secret, 'c2', 'key-a', later(3600)), 'expired'],
    ['reused by another cluster', () => judgeToken(used, secret, 'c3', 'key-b', later(20)), 'used'],
    ['reused with another key', () => judgeToken(used, secret, 'c2', 'key-b', later(20)), 'used'],
    ['bound to another id', () => judgeToken(bound.record, parseJoinToken(bound.token).secret, 'c5', 'k', later(1)), 'other-cluster'],
  ];
  assert.is(judgeToken(record, secret, 'c2', 'key-a', later(1)), 'fresh');
  assert.is(judgeToken(used, secret, 'c2', 'key-a', later(20)), 'retry');
  assert.is(refusal(() => judgeToken(used, secret, 'c2', 'key-a', later(4000)))?.reason, 'used', 'a retry too ends with the token');
  for (const [name, f, reason] of cases.slice(1)) {
    const r = refusal(f);
    assert.is(r?.code, ErrorCodes.BAD_TOKEN, name);
    assert.is(r?.reason, reason, name);
    assert.match(r?.message ?? '', /isthmus broker token|--cluster-id/, `${name} says what to do`);
  }
});

test.run();
