import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, FakeClock, IsthmusError } from '../core/index.ts';
import { errorCode } from '../core/testing.ts';
import { DEFAULT_QUOTAS, Quotas, parseQuotas, quotaLimits, type Usage } from './quota.ts';

function limitOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, ErrorCodes.RESOURCE_EXHAUSTED);
    return String((err as IsthmusError).context['limit']);
  }
  return undefined;
}

test('the write rate is a token bucket per identity', () => {
  const clock = new FakeClock(0);
  const refused: string[] = [];
  const q = new Quotas(quotaLimits({ writesPerSecond: 2, writeBurst: 3 }), () => ({ records: 0, bytes: 0, endpoints: 0 }), { clock, onRefuse: (who, l) => refused.push(`${who}:${l}`) });
  for (let i = 0; i < 3; i++) q.takeWrite('evil');
  assert.is(limitOf(() => q.takeWrite('evil')), 'writesPerSecond');
  assert.is(limitOf(() => q.takeWrite('victim')), undefined, 'other identities have their own bucket');
  clock.advance(500);
  assert.is(limitOf(() => q.takeWrite('evil')), undefined, 'one token back after half a second');
  assert.is(limitOf(() => q.takeWrite('evil')), 'writesPerSecond');
  assert.equal(refused, ['evil:writesPerSecond', 'evil:writesPerSecond']);
});

test('records, endpoints, bytes and record size; an update replaces its old size', () => {
  let usage: Usage = { records: 10, bytes: 900, endpoints: 2 };
  const q = new Quotas(quotaLimits({ maxRecords: 10, maxEndpoints: 2, maxBytes: 1000, maxRecordBytes: 200 }), () => usage);
  assert.is(limitOf(() => q.checkRecord('c', 'EXPORT', 10, undefined)), 'maxRecords');
  assert.is(limitOf(() => q.checkRecord('c', 'EXPORT', 160, 50)), 'maxBytes');
  assert.is(limitOf(() => q.checkRecord('c', 'EXPORT', 100, 50)), undefined, '900 - 50 + 100 fits');
  assert.is(limitOf(() => q.checkRecord('c', 'EXPORT', 201, 200)), 'maxRecordBytes');
  usage = { records: 2, bytes: 0, endpoints: 2 };
  assert.is(limitOf(() => q.checkRecord('c', 'ENDPOINT', 10, undefined)), 'maxEndpoints');
  assert.is(limitOf(() => q.checkRecord('c', 'ENDPOINT', 10, 10)), undefined, 'republishing an endpoint it has');
});

test('watches per identity are released once each', () => {
  const q = new Quotas(quotaLimits({ maxWatches: 1 }), () => ({ records: 0, bytes: 0, endpoints: 0 }));
  const release = q.openWatch('evil');
  assert.is(limitOf(() => q.openWatch('evil')), 'maxWatches');
  release();
  release();
  const again = q.openWatch('evil');
  assert.is(limitOf(() => q.openWatch('evil')), 'maxWatches', 'a double release did not free two');
  again();
});

test('--quotas parsing and bad values', () => {
  assert.equal(parseQuotas('maxRecords=100, writesPerSecond=2.5'), { ...DEFAULT_QUOTAS, maxRecords: 100, writesPerSecond: 2.5 });
  assert.is(errorCode(() => parseQuotas('maxRecrods=1')), ErrorCodes.INVALID_CONFIG);
  assert.is(errorCode(() => parseQuotas('maxRecords=-1')), ErrorCodes.INVALID_CONFIG);
  assert.is(errorCode(() => quotaLimits({ maxWatches: 0 })), ErrorCodes.INVALID_CONFIG);
});

test.run();
