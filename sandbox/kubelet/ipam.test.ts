import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allocateIp, capacityOf } from './ipam.ts';

test('lowest free address, skipping network, node and broadcast addresses', () => {
  assert.is(allocateIp('10.1.3.0/24', new Set()), '10.1.3.2');
  assert.is(allocateIp('10.1.3.0/24', new Set(['10.1.3.2', '10.1.3.3'])), '10.1.3.4');
  assert.is(allocateIp('10.1.3.0/24', new Set(['10.1.3.3'])), '10.1.3.2');
});

test('exhaustion returns undefined', () => {
  const used = new Set(['10.1.3.2', '10.1.3.3', '10.1.3.4', '10.1.3.5', '10.1.3.6']);
  assert.is(capacityOf('10.1.3.0/29'), 5);
  assert.is(allocateIp('10.1.3.0/29', used), undefined);
  used.delete('10.1.3.5');
  assert.is(allocateIp('10.1.3.0/29', used), '10.1.3.5');
});

test.run();
