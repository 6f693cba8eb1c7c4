import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { firstAfterOutage } from './ping.ts';

test('firstAfterOutage: replies in flight at the kill do not count; the first one after the gap does', () => {
  const before = [900, 920, 940, 960, 980];
  assert.is(firstAfterOutage([...before, 1010, 1030], 1000), undefined, 'in flight, no outage yet');
  assert.is(firstAfterOutage([...before, 1010, 1030, 3400, 3420], 1000), 3400);
  assert.is(firstAfterOutage([...before, 3400], 1000), 3400, 'no reply in flight');
  assert.is(firstAfterOutage([...before, 1150], 1000), undefined, 'a gap shorter than gapMs is no outage');
  assert.is(firstAfterOutage([100, 500, ...before, 2000], 1000), 2000, 'a gap before the kill is not this outage');
});

test.run();
